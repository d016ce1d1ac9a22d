# Node drains and GKE upgrades take at most maxUnavailable Triton pods at a time.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "triton.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "triton.selectorLabels" . | nindent 6 }}
