{{/* Names, labels and small decisions shared by the templates. */}}

{{- define "mailcluster-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name alone when it already contains the chart name. */}}
{{- define "mailcluster-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mailcluster-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailcluster-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailcluster-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mailcluster-operator.labels" -}}
helm.sh/chart: {{ include "mailcluster-operator.chart" . }}
{{ include "mailcluster-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailcluster
{{- end -}}

{{/* The helm test objects: their own name label, so no operator selector (Deployment, metrics Service, PDB) takes them. */}}
{{- define "mailcluster-operator.testLabels" -}}
helm.sh/chart: {{ include "mailcluster-operator.chart" . }}
app.kubernetes.io/name: {{ include "mailcluster-operator.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: test
{{- end -}}

{{- define "mailcluster-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mailcluster-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mailcluster-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "mailcluster-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "mailcluster-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mailcluster-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace -}}
{{- end -}}

{{/* The watched namespaces, de-duplicated, in the given order. */}}
{{- define "mailcluster-operator.watchNamespaces" -}}
{{- uniq .Values.watchNamespaces | join "," -}}
{{- end -}}

{{- define "mailcluster-operator.masterKeySecretName" -}}
{{- default (printf "%s-master-key" (include "mailcluster-operator.fullname" .)) .Values.masterKey.secretName | trunc 253 -}}
{{- end -}}

{{/* A matchLabels map as the operator's k=v,k=v flag form, keys sorted. */}}
{{- define "mailcluster-operator.selectorFlag" -}}
{{- $items := list -}}
{{- range $k := keys . | sortAlpha -}}
{{- $items = append $items (printf "%s=%s" $k (index $ $k)) -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}
