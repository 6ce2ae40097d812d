{{- define "veche-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "veche-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "veche-operator.labels" -}}
{{ include "veche-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: veche
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "veche-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "veche-operator.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- /*
Labels of the monitoring objects: the chart's, with component "monitoring" (so that
`-l app.kubernetes.io/component=operator` still means the operator), then
monitoring.labels, then the object's own. Call with (dict "root" $ "labels" $own).
*/ -}}
{{- define "veche-operator.monitoringLabels" -}}
{{- $labels := include "veche-operator.labels" .root | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/component" "monitoring" -}}
{{- toYaml (mustMergeOverwrite $labels (.root.Values.monitoring.labels | default dict) (.labels | default dict)) -}}
{{- end -}}

{{- /*
The pods the operator runs for Platforms: every service pod carries these labels
(operator/src/render/mod.rs, `labels`), the operator's own pod does not.
*/ -}}
{{- define "veche-operator.platformPodSelector" -}}
matchLabels:
  app.kubernetes.io/name: veche
  app.kubernetes.io/managed-by: veche-operator
matchExpressions:
  - key: veche.io/service
    operator: Exists
{{- end -}}
