{{- if and .Values.autoscaling.enabled .Values.monitoring.managedPrometheus }}
# Managed rule evaluation records the autoscaling signal as one series per cluster and namespace:
# Cloud Monitoring metric prometheus.googleapis.com/{{ .Values.autoscaling.metric.name }}/gauge.
apiVersion: monitoring.googleapis.com/v1
kind: Rules
metadata:
  name: {{ include "triton.fullname" . }}-autoscaling
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
spec:
  groups:
    - name: triton-autoscaling
      interval: {{ .Values.autoscaling.ruleInterval }}
      rules:
        - record: {{ .Values.autoscaling.metric.name }}
          expr: {{ include "triton.autoscalingExpr" . | quote }}
{{- end }}
