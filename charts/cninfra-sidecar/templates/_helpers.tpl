{{/*
Names, labels and checks shared by the templates. Every template here takes the
chart's own context: `.` inside this chart, `(index .Subcharts "cninfra-sidecar")`
from a parent chart.
*/}}

{{- define "cninfra-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects are named after it (max 63 characters). */}}
{{- define "cninfra-sidecar.fullname" -}}
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

{{- define "cninfra-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Every object's labels: the chart's own, then commonLabels. */}}
{{- define "cninfra-sidecar.labels" -}}
helm.sh/chart: {{ include "cninfra-sidecar.chart" . }}
{{ include "cninfra-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
An object's `annotations:` block: commonAnnotations, then the object's own
(a dict; they win). Nothing when both are empty. Call with
(dict "ctx" . "annotations" $own).
*/}}
{{- define "cninfra-sidecar.annotations" -}}
{{- $all := merge (deepCopy (.annotations | default dict)) (.ctx.Values.commonAnnotations | default dict) }}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "cninfra-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cninfra-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cninfra-sidecar.configMapName" -}}
{{- printf "%s-config" (include "cninfra-sidecar.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cninfra-sidecar.programsConfigMapName" -}}
{{- printf "%s-programs" (include "cninfra-sidecar.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cninfra-sidecar.metricsServiceName" -}}
{{- printf "%s-metrics" (include "cninfra-sidecar.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ServiceAccount the pods run as. Include it as the pod's serviceAccountName. */}}
{{- define "cninfra-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cninfra-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image repository with global.imageRegistry in place of its registry (the
first path component when it has a dot or a colon, or is localhost, as
container runtimes read it). Call with (dict "ctx" . "repository" $repo).
*/}}
{{- define "cninfra-sidecar.repository" -}}
{{- $registry := ((.ctx.Values.global | default dict).imageRegistry | default "") | trimSuffix "/" }}
{{- if $registry }}
{{- $parts := splitList "/" .repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $parts = rest $parts }}
{{- end }}
{{- printf "%s/%s" $registry (join "/" $parts) }}
{{- else }}
{{- .repository }}
{{- end }}
{{- end }}

{{- define "cninfra-sidecar.image" -}}
{{- $repository := include "cninfra-sidecar.repository" (dict "ctx" . "repository" .Values.image.repository) }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "cninfra-sidecar.workloadImage" -}}
{{- $w := .Values.workload.image }}
{{- printf "%s:%s" (include "cninfra-sidecar.repository" (dict "ctx" . "repository" $w.repository)) $w.tag }}
{{- end }}

{{/* "true" when the sidecar is a native sidecar (a restartable init container), else "". */}}
{{- define "cninfra-sidecar.native" -}}
{{- $mode := .Values.nativeSidecar }}
{{- if eq (toString $mode) "auto" }}
{{- if semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version }}true{{ end }}
{{- else if $mode }}true
{{- end }}
{{- end }}

{{/* Mount paths inside the sidecar container (the image's CONFIG_DIR is /etc/sidecar). */}}
{{- define "cninfra-sidecar.paths" -}}
config: /etc/sidecar
{{- /* Not below /etc/sidecar: a mount point inside another ConfigMap volume is
fragile, and the kubelet's atomic swap of this directory must stay visible. */}}
programs: /etc/sidecar-programs
podinfo: /etc/podinfo
adminToken: /var/run/secrets/cninfra
serviceAccount: /var/run/secrets/kubernetes.io/serviceaccount
{{- end }}

{{/*
Values that the schema cannot check on their own: each failure names the
values and says what to do. Rendered by configmap.yaml (always) and by the
sidecar container, so that both modes are checked.
*/}}
{{- define "cninfra-sidecar.validate" -}}
{{- $v := .Values }}
{{- if and $v.readinessGate.enabled (not $v.k8s.enabled) }}
{{- fail "readinessGate.enabled needs k8s.enabled: the k8s plugin is what sets the cninfra.io/ready condition, and without it the pods would never become Ready. Set k8s.enabled=true, or readinessGate.enabled=false" }}
{{- end }}
{{- range $name := list "supervisor" "k8s" }}
{{- if hasKey $v.config $name }}
{{- fail (printf "config.%s: %s.conf is written from the %s.* values, set them there" $name $name $name) }}
{{- end }}
{{- end }}
{{- $http := $v.config.http | default dict }}
{{- $chartToken := "" }}
{{- if $v.adminToken.existingSecret }}{{ $chartToken = "existingSecret" }}
{{- else if $v.adminToken.required }}{{ $chartToken = "required" }}
{{- end }}
{{- range $key := list "admin-token-file" "admin-token" }}
{{- if and $chartToken (hasKey $http $key) }}
{{- fail (printf "config.http.%s and adminToken.%s are both set: the chart mounts the token's Secret and points admin-token-file at it; keep one" $key $chartToken) }}
{{- end }}
{{- end }}
{{- if $v.adminToken.required }}
{{- $allow := get $http "admin-allow" | default list }}
{{- if and $allow (ne (toJson $allow) (toJson (list "127.0.0.0/8" "::1/128"))) }}
{{- fail (printf "adminToken.required asks for the token from every caller, but config.http.admin-allow=%s admits those networks without it: drop config.http.admin-allow (the chart sets it to [] when the token is required), or set adminToken.required=false" (toJson $allow)) }}
{{- end }}
{{- end }}
{{- with $v.metrics.service }}
{{- if and .enabled (has .type (list "NodePort" "LoadBalancer")) (not .allowExternal) }}
{{- fail (printf "metrics.service.type=%s would publish the sidecar's REST port (status, metrics, and the admin routes to whoever holds the token) outside the cluster. Keep metrics.service.type=ClusterIP (Prometheus scrapes from inside), or set metrics.service.allowExternal=true to publish it on purpose (see SECURITY.md)" .type) }}
{{- end }}
{{- end }}
{{- if $v.workload.enabled }}
{{- if eq $v.workload.name $v.sidecar.name }}
{{- fail (printf "workload.name and sidecar.name are both %q: containers of a pod need distinct names" $v.sidecar.name) }}
{{- end }}
{{- if eq (int $v.sidecar.probePort) (int $v.sidecar.httpPort) }}
{{- fail (printf "sidecar.probePort and sidecar.httpPort are both %d: the probe listener needs a port of its own. Set sidecar.probePort to a free port (the default is 9192)" (int $v.sidecar.httpPort)) }}
{{- end }}
{{- range $i, $port := $v.workload.ports }}
{{- range $key := list "httpPort" "probePort" }}
{{- $own := int (get $v.sidecar $key) }}
{{- if eq (int $port.containerPort) $own }}
{{- fail (printf "sidecar.%s=%d is also workload.ports[%d].containerPort (%s): the sidecar and the workload share the pod's network, so only one of them could listen on it. Set sidecar.%s to a free port (the default is %s), or move the workload's port" $key $own $i ($port.name | default "unnamed") $key (ternary "9191" "9192" (eq $key "httpPort"))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.podDisruptionBudget }}
{{- if .enabled }}
{{- if not $v.workload.enabled }}
{{- fail "podDisruptionBudget.enabled needs workload.enabled: with workload.enabled=false the pods are your chart's, and so is their PodDisruptionBudget" }}
{{- end }}
{{- $min := toString .minAvailable | replace "<nil>" "" }}
{{- $max := toString .maxUnavailable | replace "<nil>" "" }}
{{- if and $min $max }}
{{- fail (printf "podDisruptionBudget.minAvailable=%s and podDisruptionBudget.maxUnavailable=%s are both set: a PodDisruptionBudget takes one of them; keep one" $min $max) }}
{{- end }}
{{- $replicas := int $v.workload.replicas }}
{{- if or (has $max (list "0" "0%")) (eq $min "100%") (and (regexMatch "^[0-9]+$" $min) (ge (atoi $min) $replicas) (gt $replicas 0)) }}
{{- fail (printf "podDisruptionBudget (minAvailable=%q, maxUnavailable=%q) with workload.replicas=%d lets no pod be evicted: every node drain would wait forever. Let at least one pod go (for example podDisruptionBudget.maxUnavailable=1), or set podDisruptionBudget.enabled=false" $min $max $replicas) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.workload.enabled) (not $v.networkPolicy.extraIngress) }}
{{- fail "networkPolicy.enabled with workload.enabled=false: the policy selects your pods (label cninfra.io/sidecar) and would close your workload's ports. List the ingress rules for them in networkPolicy.extraIngress (NetworkPolicyIngressRule objects, e.g. [{ports: [{port: 8080}]}])" }}
{{- end }}
{{- end }}

{{/* "true" when the helm test pod is rendered (it needs the metrics Service). */}}
{{- define "cninfra-sidecar.testEnabled" -}}
{{- if and .Values.tests.enabled .Values.metrics.service.enabled }}true{{ end }}
{{- end }}

{{/* The helm test pod's labels (the NetworkPolicy admits it by them). */}}
{{- define "cninfra-sidecar.testLabels" -}}
cninfra.io/sidecar-test: {{ include "cninfra-sidecar.fullname" . }}
{{- end }}
