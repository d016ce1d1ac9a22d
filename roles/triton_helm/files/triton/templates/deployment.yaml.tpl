apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "triton.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
  {{- with .Values.chartDigest }}
  annotations:
    rapids.triton-fil/chart-digest: {{ . | quote }}
  {{- end }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicas.min }}
  {{- end }}
  {{- /* With autoscaling, replicas stays unset so that an upgrade keeps what the HPA chose. */}}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "triton.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ .Values.strategy.maxSurge }}
      maxUnavailable: {{ .Values.strategy.maxUnavailable }}
  template:
    metadata:
      labels:
        {{- include "triton.labels" . | nindent 8 }}
      annotations:
        {{- if .Values.gcsKey.keyJson }}
        checksum/gcs-key: {{ .Values.gcsKey.keyJson | sha256sum | trunc 16 }}
        {{- end }}
        cluster-autoscaler.kubernetes.io/safe-to-evict: "true"
    spec:
      serviceAccountName: {{ include "triton.serviceAccountName" . }}
      terminationGracePeriodSeconds: 60
      {{- with .Values.gpu.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.gpu.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: tritonserver
          image: {{ .Values.image.ref | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          # args only, as Triton's own charts (deploy/gke-marketplace-app, deploy/k8s-onprem): the NGC image's
          # entrypoint (/opt/nvidia/nvidia_entrypoint.sh: CUDA forward compatibility) then runs tritonserver.
          args:
            - tritonserver
            - --model-repository={{ .Values.modelRepository }}
            - --http-port={{ .Values.server.httpPort }}
            - --grpc-port={{ .Values.server.grpcPort }}
            - --metrics-port={{ .Values.server.metricsPort }}
            - --allow-metrics=true
            - --allow-gpu-metrics=true
            - --log-verbose={{ .Values.server.logVerbose }}
            - --model-control-mode={{ .Values.server.modelControlMode }}
            {{- if eq .Values.server.modelControlMode "explicit" }}
            {{- range .Values.server.loadModels }}
            - --load-model={{ . }}
            {{- end }}
            {{- end }}
            {{- range .Values.server.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          {{- if or .Values.gcsKey.keyJson .Values.gcsKey.secretName }}
          env:
            # Opt-in key file; without it the GCS client uses the GKE metadata server (Workload Identity).
            - name: GOOGLE_APPLICATION_CREDENTIALS
              value: /var/run/secrets/gcs/key.json
          {{- end }}
          ports:
            - name: http
              containerPort: {{ .Values.server.httpPort }}
              protocol: TCP
            - name: grpc
              containerPort: {{ .Values.server.grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ .Values.server.metricsPort }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            periodSeconds: {{ .Values.probes.periodSeconds }}
            failureThreshold: {{ div (add .Values.probes.startupTimeoutSeconds .Values.probes.periodSeconds -1) .Values.probes.periodSeconds }}
            timeoutSeconds: 5
          livenessProbe:
            httpGet:
              path: /v2/health/live
              port: http
            periodSeconds: {{ .Values.probes.periodSeconds }}
            failureThreshold: 3
            timeoutSeconds: 5
          readinessProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            periodSeconds: 5
            failureThreshold: 2
            timeoutSeconds: 5
          resources:
            requests:
              {{- toYaml .Values.resources.requests | nindent 14 }}
            limits:
              {{- toYaml .Values.resources.limits | nindent 14 }}
              nvidia.com/gpu: {{ .Values.gpu.count }}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: dshm
              mountPath: /dev/shm
            {{- if or .Values.gcsKey.keyJson .Values.gcsKey.secretName }}
            - name: gcs-key
              mountPath: /var/run/secrets/gcs
              readOnly: true
            {{- end }}
      volumes:
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ .Values.shmSize }}
        {{- if or .Values.gcsKey.keyJson .Values.gcsKey.secretName }}
        - name: gcs-key
          secret:
            secretName: {{ include "triton.gcsKeySecretName" . }}
            defaultMode: 256  # 0400
        {{- end }}
