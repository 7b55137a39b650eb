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
- apiGroups: [""]
  resources: ["pods", "pods/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch"]
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
