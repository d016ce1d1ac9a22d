{{- if .Values.monitoring.managedPrometheus }}
# Google Managed Prometheus scrapes Triton's metrics port; the series carry job="<this name>".
apiVersion: monitoring.googleapis.com/v1
kind: PodMonitoring
metadata:
  name: {{ include "triton.metricsJob" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "triton.selectorLabels" . | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ .Values.autoscaling.scrapeInterval }}
  targetLabels:
    metadata: [pod, container, node]
{{- end }}
