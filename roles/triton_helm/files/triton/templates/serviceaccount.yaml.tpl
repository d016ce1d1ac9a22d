# GCS access: Workload Identity binds this Kubernetes service account to a Google service account
# (iam.gke.io/gcp-service-account); no key file is involved unless gcsKey is set.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "triton.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.gcpServiceAccount }}
  annotations:
    iam.gke.io/gcp-service-account: {{ . | quote }}
  {{- end }}
