# Internal by default: ClusterIP, or a GKE internal passthrough load balancer. A public (external)
# load balancer needs service.type=LoadBalancer AND service.internal=false.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "triton.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "triton.labels" . | nindent 4 }}
  {{- if and (eq .Values.service.type "LoadBalancer") .Values.service.internal }}
  annotations:
    networking.gke.io/load-balancer-type: "Internal"
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  {{- if and (eq .Values.service.type "LoadBalancer") .Values.service.loadBalancerSourceRanges }}
  loadBalancerSourceRanges:
    {{- toYaml .Values.service.loadBalancerSourceRanges | nindent 4 }}
  {{- end }}
  selector:
    {{- include "triton.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.server.httpPort }}
      targetPort: http
      protocol: TCP
    - name: grpc
      port: {{ .Values.server.grpcPort }}
      targetPort: grpc
      protocol: TCP
    - name: metrics
      port: {{ .Values.server.metricsPort }}
      targetPort: metrics
      protocol: TCP
