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

{{- define "cninfra-sidecar.labels" -}}
helm.sh/chart: {{ include "cninfra-sidecar.chart" . }}
{{ include "cninfra-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
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

{{- define "cninfra-sidecar.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
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
Values that the schema cannot check on their own; each failure says what to change.
*/}}
{{- define "cninfra-sidecar.validate" -}}
{{- if and .Values.readinessGate.enabled (not .Values.k8s.enabled) }}
{{- fail "readinessGate.enabled needs k8s.enabled: the k8s plugin is what sets the cninfra.io/ready condition, and without it the pods would never become Ready" }}
{{- end }}
{{- range $name := list "supervisor" "k8s" }}
{{- if hasKey $.Values.config $name }}
{{- fail (printf "config.%s: %s.conf is written from the %s.* values, set them there" $name $name $name) }}
{{- end }}
{{- end }}
{{- if and .Values.adminToken.existingSecret (hasKey (.Values.config.http | default dict) "admin-token-file") }}
{{- fail "config.http.admin-token-file and adminToken.existingSecret are both set: keep one" }}
{{- end }}
{{- if and .Values.workload.enabled (eq .Values.workload.name .Values.sidecar.name) }}
{{- fail (printf "workload.name and sidecar.name are both %q: containers of a pod need distinct names" .Values.sidecar.name) }}
{{- end }}
{{- end }}
