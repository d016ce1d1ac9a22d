{{- /* Opt-in only: a service-account key for GCS. Never rendered with the default values. */}}
{{- if .Values.gcsKey.keyJson }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "triton.gcsKeySecretName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
type: Opaque
data:
  key.json: {{ .Values.gcsKey.keyJson | b64enc | quote }}
{{- end }}
