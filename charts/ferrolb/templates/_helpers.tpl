{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object's name: fullnameOverride; else the release name when it already
contains the chart name; else "<release>-<name>". Kept to 52 characters so that
"-controller" (11) still fits a 63-character name.
*/}}
{{- define "ferrolb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferrolb.controller.fullname" -}}
{{- printf "%s-controller" (include "ferrolb.fullname" .) }}
{{- end }}

{{- define "ferrolb.speaker.fullname" -}}
{{- printf "%s-speaker" (include "ferrolb.fullname" .) }}
{{- end }}

{{- define "ferrolb.gossipSecretName" -}}
{{- if .Values.speaker.gossip.existingSecret }}
{{- .Values.speaker.gossip.existingSecret }}
{{- else }}
{{- printf "%s-gossip-key" (include "ferrolb.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Whether the speakers gossip (and so need the key).
*/}}
{{- define "ferrolb.gossip" -}}
{{- if eq .Values.speaker.membership "gossip" }}true{{ end }}
{{- end }}

{{- define "ferrolb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object; call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ include "ferrolb.chart" .ctx }}
{{ include "ferrolb.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: ferrolb
{{- end }}

{{/*
Selector labels; component may be empty for objects of the whole release.
*/}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/*
The image reference: repository:tag, or repository:tag@digest when a digest is given.
*/}}
{{- define "ferrolb.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Scrape job names, shared by the monitors (which set them) and the alert rules.
*/}}
{{- define "ferrolb.controller.job" -}}
{{ include "ferrolb.controller.fullname" . }}
{{- end }}

{{- define "ferrolb.speaker.job" -}}
{{ include "ferrolb.speaker.fullname" . }}
{{- end }}

{{/*
Relabelings of a monitor's endpoint: the job name the alert rules select, and for the
speaker the node the pod runs on. Call with (dict "job" NAME "component" COMPONENT).
*/}}
{{- define "ferrolb.relabelings" -}}
- action: replace
  targetLabel: job
  replacement: {{ .job }}
{{- if eq .component "speaker" }}
- action: replace
  sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
{{- end }}
{{- end }}
