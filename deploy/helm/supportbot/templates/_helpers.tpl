{{/* Names and labels shared by the templates. */}}
{{- define "supportbot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "supportbot.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "supportbot.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "supportbot.secret" -}}
{{- required "existingSecret: the name of the Secret with DATABASE_URL, REDIS_URL and the tokens (deploy/README.md)" .Values.existingSecret -}}
{{- end -}}

{{- define "supportbot.gatewayImage" -}}
{{ .Values.gateway.image.repository }}:{{ .Values.gateway.image.tag }}
{{- end -}}

{{/* A variable from the Secret: name, key. */}}
{{- define "supportbot.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "supportbot.secret" .root }}
      key: {{ .key }}
{{- if .optional }}
      optional: true
{{- end }}
{{- end -}}

{{/* What every gateway-image container needs to reach PostgreSQL and Redis. */}}
{{- define "supportbot.storeEnv" -}}
{{ include "supportbot.secretEnv" (dict "root" . "name" "DATABASE_URL" "key" "DATABASE_URL") }}
{{ include "supportbot.secretEnv" (dict "root" . "name" "REDIS_URL" "key" "REDIS_URL") }}
{{- end -}}

{{/* The knowledge-base index's claim: yours (gateway.knowledgeBase.existingClaim) or the chart's. */}}
{{- define "supportbot.kbClaim" -}}
{{- .Values.gateway.knowledgeBase.existingClaim | default (printf "%s-kb" (include "supportbot.fullname" .)) -}}
{{- end -}}
