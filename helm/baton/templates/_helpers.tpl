{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "baton.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name prefix. */}}
{{- define "baton.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Standard app.kubernetes.io labels; call with (dict "root" $ "component" "sts"). */}}
{{- define "baton.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: baton
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "baton.selectorLabels" . }}
{{- end -}}

{{- define "baton.selectorLabels" -}}
app.kubernetes.io/name: {{ include "baton.name" .root }}-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "baton.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "baton.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "baton.fullname" . }}-redis.{{ .Release.Namespace }}.svc:6379
{{- else -}}
{{ .Values.redis.url }}
{{- end -}}
{{- end -}}

{{- define "baton.stsUrl" -}}
http://{{ include "baton.fullname" . }}-sts.{{ .Release.Namespace }}.svc:{{ .Values.sts.port }}
{{- end -}}

{{- define "baton.policyUrl" -}}
http://{{ include "baton.fullname" . }}-policy-server.{{ .Release.Namespace }}.svc:{{ .Values.policyServer.port }}
{{- end -}}

{{/* The pod-level settings every baton pod shares. */}}
{{- define "baton.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "baton.injectorTlsSecret" -}}
{{- if eq .Values.injector.tls.mode "existingSecret" -}}
{{ .Values.injector.tls.existingSecret }}
{{- else -}}
{{ include "baton.fullname" . }}-injector-tls
{{- end -}}
{{- end -}}
