{{- define "cninfra-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; objects are named after it (max 63 characters). */}}
{{- define "cninfra-operator.fullname" -}}
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

{{- define "cninfra-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cninfra-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "cninfra-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cninfra-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cninfra-operator.injectionConfigMapName" -}}
{{- printf "%s-injection" (include "cninfra-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The injection spec (spec.yaml): what the operator adds to a pod, rendered by
the cninfra-sidecar chart's named templates with its values. `sidecar inject
--spec` reads the same document.
*/}}
{{- define "cninfra-operator.injectionSpec" -}}
{{- $sidecar := index .Subcharts "cninfra-sidecar" }}
{{- $values := $sidecar.Values }}
{{- $spec := dict
  "native-sidecar" (toString $values.nativeSidecar)
  "pod-labels" (include "cninfra-sidecar.podLabels" $sidecar | fromYaml)
  "pod-annotations" (include "cninfra-sidecar.podAnnotations" $sidecar | fromYaml)
  "readiness-gates" (include "cninfra-sidecar.readinessGates" $sidecar | fromYamlArray)
  "container" (include "cninfra-sidecar.container" $sidecar | fromYamlArray | first)
  "volumes" (include "cninfra-sidecar.volumes" $sidecar | fromYamlArray)
  "config-map" (include "cninfra-sidecar.configMapName" $sidecar)
  "programs-config-map" (ternary (include "cninfra-sidecar.programsConfigMapName" $sidecar) "" $values.supervisor.enabled)
  "role-rules" (ternary (include "cninfra-operator.sidecarRoleRules" . | fromYamlArray) list $values.k8s.enabled)
}}
{{- toYaml $spec }}
{{- end }}

{{/*
The Role the operator keeps in each namespace with injected pods: the same
rules as the cninfra-sidecar chart's Role (a test keeps them equal).
*/}}
{{- define "cninfra-operator.sidecarRoleRules" -}}
{{- $sidecar := index .Subcharts "cninfra-sidecar" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
{{- with include "cninfra-sidecar.watchedConfigMap" $sidecar }}
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: [{{ . | quote }}]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* What both webhooks share; takes (dict "root" . "path" "inject-pod"). */}}
{{- define "cninfra-operator.webhook" -}}
{{- $root := .root }}
{{- $webhook := $root.Values.webhook -}}
admissionReviewVersions: ["v1"]
clientConfig:
  {{- if $webhook.url }}
  url: {{ printf "%s/%s" (trimSuffix "/" $webhook.url) .path | quote }}
  {{- else }}
  service:
    name: {{ include "cninfra-operator.fullname" $root }}
    namespace: {{ $root.Release.Namespace }}
    path: {{ printf "/%s" .path | quote }}
    port: 443
  {{- end }}
rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
    scope: Namespaced
failurePolicy: {{ $webhook.failurePolicy }}
matchPolicy: Equivalent
# Called again if a later webhook changes the pod; an injected pod is left as it is.
reinvocationPolicy: IfNeeded
sideEffects: None
timeoutSeconds: {{ $webhook.timeoutSeconds }}
{{- end }}

{{- define "cninfra-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when cert-manager makes the webhook's certificate, else "". */}}
{{- define "cninfra-operator.certManager" -}}
{{- $mode := .Values.tls.certManager }}
{{- if eq (toString $mode) "auto" }}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" }}true{{ end }}
{{- else if $mode }}true
{{- end }}
{{- end }}

{{- define "cninfra-operator.tlsSecretName" -}}
{{- printf "%s-webhook-tls" (include "cninfra-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The DNS names the API server calls the webhook by. */}}
{{- define "cninfra-operator.hosts" -}}
{{- $svc := include "cninfra-operator.fullname" . }}
{{- $ns := .Release.Namespace }}
- {{ printf "%s.%s.svc" $svc $ns }}
- {{ printf "%s.%s.svc.cluster.local" $svc $ns }}
- {{ printf "%s.%s" $svc $ns }}
- {{ $svc }}
{{- end }}

{{/* operator.conf (sidecar/operator/config.py). */}}
{{- define "cninfra-operator.conf" -}}
spec: /etc/cninfra-operator/spec/spec.yaml
http-port: {{ .Values.service.httpPort }}
webhook:
  port: {{ .Values.webhook.port }}
  configuration: {{ include "cninfra-operator.fullname" . }}
  excluded-namespaces: {{ toJson .Values.webhook.excludedNamespaces }}
tls:
  {{- if include "cninfra-operator.certManager" . }}
  mode: files
  cert-file: /etc/cninfra-operator/tls/tls.crt
  key-file: /etc/cninfra-operator/tls/tls.key
  ca-file: /etc/cninfra-operator/tls/ca.crt
  {{- else }}
  mode: self-signed
  secret: {{ include "cninfra-operator.tlsSecretName" . }}
  hosts:
    {{- include "cninfra-operator.hosts" . | nindent 4 }}
  validity: {{ .Values.tls.validity }}
  ca-validity: {{ .Values.tls.caValidity }}
  {{- end }}
peering:
  name: {{ include "cninfra-operator.fullname" . }}
  standalone: {{ eq (int .Values.replicas) 1 }}
{{- end }}
