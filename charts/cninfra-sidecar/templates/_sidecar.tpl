{{/*
The public named templates: what a pod needs to run the sidecar. This chart's
Deployment uses them, and so can your own chart's pod spec (mode b):

  {{- $sidecar := index .Subcharts "cninfra-sidecar" }}
  template:
    metadata:
      labels:
        {{- include "cninfra-sidecar.podLabels" $sidecar | nindent 8 }}
      annotations:
        {{- include "cninfra-sidecar.podAnnotations" $sidecar | nindent 8 }}
    spec:
      serviceAccountName: {{ include "cninfra-sidecar.serviceAccountName" $sidecar }}
      automountServiceAccountToken: false
      readinessGates:
        {{- include "cninfra-sidecar.readinessGates" $sidecar | nindent 8 }}
      initContainers:    # or containers, with nativeSidecar: false
        {{- include "cninfra-sidecar.container" $sidecar | nindent 8 }}
      volumes:
        {{- include "cninfra-sidecar.volumes" $sidecar | nindent 8 }}
      {{- include "cninfra-sidecar.priorityClassName" $sidecar | nindent 6 }}

The list templates render list items only (nothing when there are none), so
that your own items can follow them.
*/}}

{{/* Pod labels: the metrics Service selects the pods by these. */}}
{{- define "cninfra-sidecar.podLabels" -}}
cninfra.io/sidecar: {{ include "cninfra-sidecar.fullname" . }}
{{- end }}

{{/*
Pod annotations: a checksum of the config files, so that changing them rolls
the pods. The programs ConfigMap is left out on purpose: the k8s plugin applies
its changes to running pods without a restart.
*/}}
{{- define "cninfra-sidecar.podAnnotations" -}}
checksum/cninfra-config: {{ include "cninfra-sidecar.configData" . | sha256sum }}
{{- end }}

{{/* readinessGates items: the condition the k8s plugin sets (nothing when disabled). */}}
{{- define "cninfra-sidecar.readinessGates" -}}
{{- if .Values.readinessGate.enabled -}}
- conditionType: cninfra.io/ready
{{- end }}
{{- end }}

{{/* imagePullSecrets items: global.imagePullSecrets, then imagePullSecrets (names or {name}). */}}
{{- define "cninfra-sidecar.imagePullSecrets" -}}
{{- $global := (.Values.global | default dict).imagePullSecrets | default list }}
{{- range $secret := concat $global (.Values.imagePullSecrets | default list) }}
- name: {{ if kindIs "string" $secret }}{{ $secret }}{{ else }}{{ $secret.name }}{{ end }}
{{- end }}
{{- end }}

{{/* `priorityClassName: ...` for the pod spec (nothing when not set). */}}
{{- define "cninfra-sidecar.priorityClassName" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* The Secret holding the admin token ("" for none): yours, or the generated one. */}}
{{- define "cninfra-sidecar.adminTokenSecret" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else if .Values.adminToken.required }}
{{- printf "%s-admin-token" (include "cninfra-sidecar.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* One probe's settings: every field the kubelet takes, when set. */}}
{{- define "cninfra-sidecar.probeFields" -}}
{{- range $field := list "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "successThreshold" "failureThreshold" "terminationGracePeriodSeconds" }}
{{- if hasKey $ $field }}
{{ $field }}: {{ get $ $field }}
{{- end }}
{{- end }}
{{- end }}

{{/* The sidecar container, as one list item. */}}
{{- define "cninfra-sidecar.container" -}}
{{- include "cninfra-sidecar.validate" . }}
{{- $paths := include "cninfra-sidecar.paths" . | fromYaml }}
{{- $probes := .Values.sidecar.probes -}}
{{- $tokenSecret := include "cninfra-sidecar.adminTokenSecret" . -}}
- name: {{ .Values.sidecar.name }}
  image: {{ include "cninfra-sidecar.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if include "cninfra-sidecar.native" . }}
  # A native sidecar: started before the workload's containers, stopped after them.
  restartPolicy: Always
  {{- end }}
  args:
    - --log-format={{ .Values.sidecar.logFormat }}
    {{- with .Values.sidecar.extraArgs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: CONFIG_DIR
      value: {{ $paths.config }}
    - name: HTTP_PORT
      value: {{ .Values.sidecar.httpPort | quote }}
    - name: PROBE_PORT
      value: {{ .Values.sidecar.probePort | quote }}
    {{- with .Values.sidecar.microserviceLabel }}
    {{- if .value }}
    - name: MICROSERVICE_LABEL
      value: {{ .value | quote }}
    {{- else if .fieldPath }}
    - name: MICROSERVICE_LABEL
      valueFrom:
        fieldRef:
          fieldPath: {{ .fieldPath }}
    {{- end }}
    {{- end }}
    {{- if .Values.supervisor.enabled }}
    - name: SUPERVISOR_CONFIG
      value: {{ $paths.programs }}/supervisor.conf
    {{- end }}
    {{- with .Values.sidecar.logLevel }}
    - name: INITIAL_LOGLVL
      value: {{ . | quote }}
    {{- end }}
    {{- if $tokenSecret }}
    # For `sidecar log` and `sidecar programs` run in this container (kubectl exec).
    - name: SIDECAR_ADMIN_TOKEN_FILE
      value: {{ $paths.adminToken }}/admin-token
    {{- end }}
    {{- with .Values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.sidecar.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: cninfra-http
      containerPort: {{ .Values.sidecar.httpPort }}
      protocol: TCP
    - name: cninfra-probe
      containerPort: {{ .Values.sidecar.probePort }}
      protocol: TCP
  {{- if $probes.startup.enabled }}
  startupProbe:
    httpGet:
      path: /liveness
      port: cninfra-probe
    {{- include "cninfra-sidecar.probeFields" (omit $probes.startup "enabled") | trim | nindent 4 }}
  {{- end }}
  {{- if $probes.liveness.enabled }}
  livenessProbe:
    httpGet:
      path: /liveness
      port: cninfra-probe
    {{- include "cninfra-sidecar.probeFields" (omit $probes.liveness "enabled") | trim | nindent 4 }}
  {{- end }}
  {{- if $probes.readiness.enabled }}
  readinessProbe:
    httpGet:
      path: /readiness
      port: cninfra-probe
    {{- include "cninfra-sidecar.probeFields" (omit $probes.readiness "enabled") | trim | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.sidecar.lifecycle }}
  lifecycle:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # A sidecar that stops on bad config says why in `kubectl describe pod`.
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: cninfra-config
      mountPath: {{ $paths.config }}
      readOnly: true
    {{- if .Values.supervisor.enabled }}
    - name: cninfra-programs
      mountPath: {{ $paths.programs }}
      readOnly: true
    {{- end }}
    - name: cninfra-podinfo
      mountPath: {{ $paths.podinfo }}
      readOnly: true
    - name: cninfra-tmp
      mountPath: /tmp
    {{- if $tokenSecret }}
    - name: cninfra-admin-token
      mountPath: {{ $paths.adminToken }}
      readOnly: true
    {{- end }}
    {{- if .Values.k8s.enabled }}
    - name: cninfra-api-access
      mountPath: {{ $paths.serviceAccount }}
      readOnly: true
    {{- end }}
    {{- with .Values.sidecar.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The sidecar's pod volumes, as list items. */}}
{{- define "cninfra-sidecar.volumes" -}}
- name: cninfra-config
  configMap:
    name: {{ include "cninfra-sidecar.configMapName" . }}
{{- if .Values.supervisor.enabled }}
- name: cninfra-programs
  configMap:
    name: {{ include "cninfra-sidecar.programsConfigMapName" . }}
{{- end }}
- name: cninfra-podinfo
  downwardAPI:
    items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
- name: cninfra-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- with include "cninfra-sidecar.adminTokenSecret" . }}
- name: cninfra-admin-token
  secret:
    secretName: {{ . }}
    {{- /* Root-owned files: 0400 would shut out the sidecar's own non-root user.
    Only the sidecar container mounts this volume. */}}
    defaultMode: 0444
    items:
      - key: {{ $.Values.adminToken.key }}
        path: admin-token
{{- end }}
{{- if .Values.k8s.enabled }}
{{- /* What automountServiceAccountToken would mount, but for the sidecar alone:
the workload's containers get no API credentials from the sidecar's account. */}}
- name: cninfra-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}
{{- with .Values.sidecar.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The config ConfigMap's data: one <name>.conf per entry of .Values.config, plus k8s.conf. */}}
{{- define "cninfra-sidecar.configData" -}}
{{- $paths := include "cninfra-sidecar.paths" . | fromYaml }}
{{- $files := deepCopy (.Values.config | default dict) }}
{{- if include "cninfra-sidecar.adminTokenSecret" . }}
{{- $http := get $files "http" | default dict }}
{{- $_ := set $http "admin-token-file" (printf "%s/admin-token" $paths.adminToken) }}
{{- if .Values.adminToken.required }}
{{- /* The token from every caller, loopback included (see SECURITY.md). */}}
{{- $_ := set $http "admin-allow" list }}
{{- end }}
{{- $_ := set $files "http" $http }}
{{- end }}
{{- if .Values.k8s.enabled }}
{{- $_ := set $files "k8s" (include "cninfra-sidecar.k8sConf" . | fromYaml) }}
{{- end }}
{{- range $name, $content := $files }}
{{- if not (kindIs "invalid" $content) }}
{{ $name }}.conf: |
  # {{ $name }}.conf, from the chart's values ({{ if eq $name "k8s" }}k8s.config{{ else }}config.{{ $name }}{{ end }})
  {{- toYaml $content | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* k8s.conf's content, as YAML: k8s.config, watching the programs ConfigMap unless it names another. */}}
{{- define "cninfra-sidecar.k8sConf" -}}
{{- $k8s := deepCopy (.Values.k8s.config | default dict) }}
{{- if and .Values.supervisor.enabled (not (hasKey $k8s "configmap")) }}
{{- $_ := set $k8s "configmap" (dict "name" (include "cninfra-sidecar.programsConfigMapName" .)) }}
{{- end }}
{{- toYaml $k8s }}
{{- end }}

{{/* The name of the ConfigMap the k8s plugin watches; empty when it watches none. */}}
{{- define "cninfra-sidecar.watchedConfigMap" -}}
{{- if .Values.k8s.enabled }}
{{- $k8s := include "cninfra-sidecar.k8sConf" . | fromYaml }}
{{- ($k8s.configmap | default dict).name | default "" }}
{{- end }}
{{- end }}

{{/* The programs ConfigMap's data: supervisor.conf. */}}
{{- define "cninfra-sidecar.programsData" -}}
supervisor.conf: |
  # Programs and hooks of the sidecar's supervisor. With the k8s plugin on,
  # an edit is applied to the running pods: new programs start, removed ones
  # stop, changed ones restart; a malformed edit changes nothing.
  {{- toYaml (dict "programs" .Values.supervisor.programs "hooks" .Values.supervisor.hooks) | nindent 2 }}
{{- end }}
