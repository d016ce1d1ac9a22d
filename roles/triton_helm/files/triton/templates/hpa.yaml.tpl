{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.replicas.min) (int .Values.replicas.max) }}
{{- fail (printf "replicas.min (%v) is larger than replicas.max (%v)" .Values.replicas.min .Values.replicas.max) }}
{{- end }}
# Reads the series recorded by the Rules object through the custom-metrics-stackdriver-adapter.
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "triton.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "triton.fullname" . }}
  minReplicas: {{ .Values.replicas.min }}
  maxReplicas: {{ .Values.replicas.max }}
  metrics:
    - type: External
      external:
        metric:
          name: {{ include "triton.externalMetricName" . | quote }}
          selector:
            matchLabels:
              resource.labels.namespace: {{ .Release.Namespace | quote }}
              {{- with .Values.autoscaling.clusterName }}
              resource.labels.cluster: {{ . | quote }}
              {{- end }}
        target:
          type: {{ .Values.autoscaling.metric.targetType }}
          {{- if eq .Values.autoscaling.metric.targetType "Value" }}
          value: {{ .Values.autoscaling.metric.target | quote }}
          {{- else }}
          averageValue: {{ .Values.autoscaling.metric.target | quote }}
          {{- end }}
  {{- with .Values.autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
