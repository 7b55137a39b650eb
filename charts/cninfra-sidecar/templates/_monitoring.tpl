{{/*
What the Prometheus Operator's objects share (servicemonitor.yaml, podmonitor.yaml,
prometheusrule.yaml): the scrape endpoint, and one alerting rule.
*/}}

{{/*
The scrape endpoint's fields after `port:` (an Endpoint of a ServiceMonitor or a
PodMetricsEndpoint of a PodMonitor). Call with (dict "ctx" . "monitor" $values).
*/}}
{{- define "cninfra-sidecar.scrapeEndpoint" -}}
{{- $http := .ctx.Values.config.http | default dict -}}
path: {{ (.ctx.Values.config.metrics | default dict).path | default "/metrics" }}
{{- /* The sidecar serves HTTPS when http.conf has a certificate: so must the scrape. */}}
{{- if or (get $http "server-cert-file") .monitor.tlsConfig }}
scheme: https
{{- with .monitor.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- else }}
scheme: http
{{- end }}
{{- with .monitor.interval }}
interval: {{ . }}
{{- end }}
{{- with .monitor.scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
{{- if .monitor.honorLabels }}
honorLabels: true
{{- end }}
{{- with .monitor.relabelings }}
relabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .monitor.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A monitor's metadata: its name, namespace, the chart's labels and its own.
Call with (dict "ctx" . "monitor" $values).
*/}}
{{- define "cninfra-sidecar.monitorMetadata" -}}
name: {{ include "cninfra-sidecar.fullname" .ctx }}
namespace: {{ .monitor.namespace | default .ctx.Release.Namespace }}
labels:
  {{- include "cninfra-sidecar.labels" .ctx | nindent 2 }}
  {{- with .monitor.labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with include "cninfra-sidecar.annotations" (dict "ctx" .ctx "annotations" .monitor.annotations) }}
{{ . }}
{{- end }}
{{- end }}

{{/*
`namespaceSelector:` when the monitor lives in another namespace than the pods.
Call with (dict "ctx" . "monitor" $values).
*/}}
{{- define "cninfra-sidecar.monitorNamespaceSelector" -}}
{{- if and .monitor.namespace (ne .monitor.namespace .ctx.Release.Namespace) -}}
namespaceSelector:
  matchNames:
    - {{ .ctx.Release.Namespace }}
{{- end }}
{{- end }}

{{/*
One alerting rule (an item of a rule group), unless its values say enabled: false.
Call with (dict "ctx" . "name" "CninfraX" "expr" $promql "summary" $text
"description" $text). The alert's values (metrics.prometheusRule.alerts.<name>)
give `for` and `severity`; summary and description are Prometheus templates.
*/}}
{{- define "cninfra-sidecar.alertRule" -}}
{{- $rule := .ctx.Values.metrics.prometheusRule }}
{{- $alert := index $rule.alerts .name }}
{{- if $alert.enabled -}}
- alert: {{ .name }}
  expr: |-
    {{- .expr | nindent 4 }}
  {{- with $alert.for }}
  for: {{ . }}
  {{- end }}
  labels:
    severity: {{ $alert.severity }}
    {{- with $rule.additionalAlertLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | toJson }}
    description: {{ .description | toJson }}
    runbook_url: {{ printf "%s#%s" (include "cninfra-sidecar.runbookUrl" .ctx) (lower .name) | toJson }}
{{- end }}
{{- end }}

{{/* The runbook page the alerts link to (metrics.prometheusRule.runbookUrl). */}}
{{- define "cninfra-sidecar.runbookUrl" -}}
{{- .Values.metrics.prometheusRule.runbookUrl | default (printf "%soperations/alerts/" .Chart.Home) }}
{{- end }}

{{/* The label matchers every alert selects the sidecars' series with. */}}
{{- define "cninfra-sidecar.ruleSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "namespace=%q" .Release.Namespace) }}
{{- end }}
