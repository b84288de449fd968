{{/*
Names, labels and the pod template shared by the Deployment (standalone) and the
StatefulSet (replicated). Fixed paths inside the container:
  /data              SE_DATA_DIR (data PVC)
  /wal               SE_WAL_DIR  (WAL PVC)
  /etc/se/tls        TLS Secret, mounted as a directory (no subPath) so renewals propagate
  /etc/se/jwks-ca    JWKS CA bundle
  /etc/se/peer-ca    peer CA bundle
*/}}

{{- define "storage-element.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "storage-element.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Headless Service of the replicated StatefulSet (peer DNS names). */}}
{{- define "storage-element.headlessName" -}}
{{- printf "%s-headless" (include "storage-element.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "storage-element.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "storage-element.selectorLabels" -}}
app.kubernetes.io/name: {{ include "storage-element.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "storage-element.labels" -}}
helm.sh/chart: {{ include "storage-element.chart" . }}
{{ include "storage-element.selectorLabels" . }}
app.kubernetes.io/version: {{ include "storage-element.imageTag" . | quote }}
app.kubernetes.io/component: storage-element
app.kubernetes.io/part-of: artstore
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "storage-element.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "storage-element.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "storage-element.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "storage-element.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "storage-element.imageTag" .) }}
{{- end }}
{{- end }}

{{- define "storage-element.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "storage-element.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "storage-element.storageId" -}}
{{- default (include "storage-element.fullname" .) .Values.storageId }}
{{- end }}

{{- define "storage-element.replicated" -}}
{{- if eq .Values.replicaMode "replicated" }}true{{ end }}
{{- end }}

{{- define "storage-element.dataClaimName" -}}
{{- default (printf "%s-data" (include "storage-element.fullname" .)) .Values.persistence.data.existingClaim }}
{{- end }}

{{- define "storage-element.walClaimName" -}}
{{- default (printf "%s-wal" (include "storage-element.fullname" .)) .Values.persistence.wal.existingClaim }}
{{- end }}

{{/* The peer CA file, or "" when followers use the system roots. */}}
{{- define "storage-element.peerCAFile" -}}
{{- if .Values.peerTLS.caSecret.name }}/etc/se/peer-ca/{{ .Values.peerTLS.caSecret.key }}
{{- else if .Values.peerTLS.useTLSSecretCA }}/etc/se/tls/ca.crt
{{- end }}
{{- end }}

{{/*
optEnv renders one env entry when the value is not empty. YAML numbers arrive as float64,
which toString would print as 2.147483648e+09: integral ones are printed as integers.
*/}}
{{- define "storage-element.optEnv" -}}
{{- $v := index . 1 }}
{{- if kindIs "float64" $v }}{{ $v = printf "%.0f" $v }}{{ end }}
{{- if not (eq (toString $v) "") }}
- name: {{ index . 0 }}
  value: {{ toString $v | quote }}
{{- end }}
{{- end }}

{{/*
Container environment. Order matters: POD_NAME precedes SE_ADVERTISE_ADDR, which refers to
it as $(POD_NAME).
*/}}
{{- define "storage-element.env" -}}
{{- $replicated := include "storage-element.replicated" . -}}
- name: SE_STORAGE_ID
  value: {{ include "storage-element.storageId" . | quote }}
- name: SE_PORT
  value: {{ .Values.port | quote }}
- name: SE_DATA_DIR
  value: /data
- name: SE_WAL_DIR
  value: /wal
- name: SE_MODE
  value: {{ .Values.mode | quote }}
- name: SE_REPLICA_MODE
  value: {{ .Values.replicaMode | quote }}
- name: SE_JWKS_URL
  value: {{ required "jwks.url is required (https URL of the Admin module's JWKS)" .Values.jwks.url | quote }}
{{- if .Values.jwks.caSecret.name }}
- name: SE_JWKS_CA_CERT
  value: /etc/se/jwks-ca/{{ .Values.jwks.caSecret.key }}
{{- end }}
{{- include "storage-element.optEnv" (list "SE_JWT_ISSUER" .Values.jwks.issuer) }}
{{- include "storage-element.optEnv" (list "SE_JWT_AUDIENCE" .Values.jwks.audience) }}
- name: SE_TLS_CERT
  value: /etc/se/tls/tls.crt
- name: SE_TLS_KEY
  value: /etc/se/tls/tls.key
{{- if $replicated }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: SE_ADVERTISE_ADDR
  value: "$(POD_NAME).{{ include "storage-element.headlessName" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.port }}"
{{- include "storage-element.optEnv" (list "SE_PEER_CA_CERT" (include "storage-element.peerCAFile" .)) }}
{{- if .Values.peerTLS.insecureSkipVerify }}
- name: SE_PEER_TLS_INSECURE_SKIP_VERIFY
  value: "true"
{{- end }}
{{- else }}
{{- include "storage-element.optEnv" (list "SE_ADVERTISE_ADDR" .Values.config.advertiseAddr) }}
{{- end }}
{{- with .Values.config }}
{{- include "storage-element.optEnv" (list "SE_BIND_ADDR" .bindAddr) }}
{{- include "storage-element.optEnv" (list "SE_MAX_FILE_SIZE" .maxFileSize) }}
{{- include "storage-element.optEnv" (list "SE_MAX_CAPACITY" .maxCapacity) }}
{{- include "storage-element.optEnv" (list "SE_GC_INTERVAL" .gcInterval) }}
{{- include "storage-element.optEnv" (list "SE_RECONCILE_INTERVAL" .reconcileInterval) }}
{{- include "storage-element.optEnv" (list "SE_INDEX_REFRESH_INTERVAL" .indexRefreshInterval) }}
{{- include "storage-element.optEnv" (list "SE_ELECTION_RETRY_INTERVAL" .electionRetryInterval) }}
{{- include "storage-element.optEnv" (list "SE_SHUTDOWN_TIMEOUT" .shutdownTimeout) }}
{{- include "storage-element.optEnv" (list "SE_LOG_LEVEL" .logLevel) }}
{{- include "storage-element.optEnv" (list "SE_LOG_FORMAT" .logFormat) }}
{{- include "storage-element.optEnv" (list "SE_DEPHEALTH_CHECK_INTERVAL" .dephealthCheckInterval) }}
{{- include "storage-element.optEnv" (list "SE_DEPHEALTH_NAME" .dephealthName) }}
{{- include "storage-element.optEnv" (list "SE_DEPHEALTH_GROUP" .dephealthGroup) }}
{{- include "storage-element.optEnv" (list "SE_DEPHEALTH_DEP_NAME" .dephealthDepName) }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "storage-element.probe" -}}
httpGet:
  path: {{ .path }}
  port: https
  scheme: HTTPS
periodSeconds: {{ .cfg.periodSeconds }}
timeoutSeconds: {{ .cfg.timeoutSeconds }}
failureThreshold: {{ .cfg.failureThreshold }}
{{- end }}

{{/*
Pod template spec. The data and WAL volumes are defined by the caller (Deployment: PVCs;
StatefulSet: shared data PVC + per-pod WAL volumeClaimTemplate), this adds the rest.
*/}}
{{- define "storage-element.podTemplate" -}}
metadata:
  labels:
    {{- include "storage-element.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "storage-element.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  enableServiceLinks: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: storage-element
      image: {{ include "storage-element.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: https
          containerPort: {{ .Values.port }}
          protocol: TCP
      env:
        {{- include "storage-element.env" . | nindent 8 }}
      livenessProbe:
        {{- include "storage-element.probe" (dict "path" "/health/live" "cfg" .Values.probes.liveness) | nindent 8 }}
      readinessProbe:
        {{- include "storage-element.probe" (dict "path" "/health/ready" "cfg" .Values.probes.readiness) | nindent 8 }}
      startupProbe:
        {{- include "storage-element.probe" (dict "path" "/health/ready" "cfg" .Values.probes.startup) | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: wal
          mountPath: /wal
        - name: tls
          mountPath: /etc/se/tls
          readOnly: true
        {{- if .Values.jwks.caSecret.name }}
        - name: jwks-ca
          mountPath: /etc/se/jwks-ca
          readOnly: true
        {{- end }}
        {{- if and (include "storage-element.replicated" .) .Values.peerTLS.caSecret.name }}
        - name: peer-ca
          mountPath: /etc/se/peer-ca
          readOnly: true
        {{- end }}
  volumes:
    - name: tls
      secret:
        secretName: {{ include "storage-element.tlsSecretName" . }}
        defaultMode: 0440
    {{- if .Values.jwks.caSecret.name }}
    - name: jwks-ca
      secret:
        secretName: {{ .Values.jwks.caSecret.name }}
        items:
          - key: {{ .Values.jwks.caSecret.key }}
            path: {{ .Values.jwks.caSecret.key }}
    {{- end }}
    {{- if and (include "storage-element.replicated" .) .Values.peerTLS.caSecret.name }}
    - name: peer-ca
      secret:
        secretName: {{ .Values.peerTLS.caSecret.name }}
        items:
          - key: {{ .Values.peerTLS.caSecret.key }}
            path: {{ .Values.peerTLS.caSecret.key }}
    {{- end }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ include "storage-element.dataClaimName" . }}
    {{- if not (include "storage-element.replicated" .) }}
    - name: wal
      persistentVolumeClaim:
        claimName: {{ include "storage-element.walClaimName" . }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- tpl (toYaml .) $ | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- tpl (toYaml .) $ | nindent 4 }}
  {{- end }}
{{- end }}
