{{/* Names and labels shared by every object of the release. */}}
{{- define "triton.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "triton.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "triton.labels" -}}
{{ include "triton.selectorLabels" . }}
app.kubernetes.io/component: inference-server
app.kubernetes.io/part-of: rapids-triton-fil
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "triton.serviceAccountName" -}}
{{- default (include "triton.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "triton.gcsKeySecretName" -}}
{{- .Values.gcsKey.secretName | default (printf "%s-gcs-key" (include "triton.fullname" .)) -}}
{{- end -}}

{{/*
The autoscaling chain, derived from autoscaling.metric alone:
  PodMonitoring <fullname> scrapes port "metrics"  ->  series carry job="<fullname>"
  Rules <fullname>-autoscaling records metric.name from metric.expr (__JOB__ -> <fullname>)
  Cloud Monitoring: prometheus.googleapis.com/<name>/gauge
  HPA external metric: prometheus.googleapis.com|<name>|gauge (custom-metrics-stackdriver-adapter)
*/}}
{{- define "triton.metricsJob" -}}
{{- include "triton.fullname" . -}}
{{- end -}}

{{- define "triton.autoscalingExpr" -}}
{{- .Values.autoscaling.metric.expr | replace "__JOB__" (include "triton.metricsJob" .) | trim -}}
{{- end -}}

{{- define "triton.externalMetricName" -}}
{{- printf "prometheus.googleapis.com|%s|gauge" .Values.autoscaling.metric.name -}}
{{- end -}}
