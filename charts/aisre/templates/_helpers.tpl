{{- /* Names, labels and the derived settings every template shares. */ -}}

{{- define "aisre.fullname" -}}
{{- if contains "aisre" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-aisre" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aisre.labels" -}}
app.kubernetes.io/name: aisre
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aisre.selectorLabels" -}}
app.kubernetes.io/name: aisre
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- /* The operator's (the investigator's) ServiceAccount. */ -}}
{{- define "aisre.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "aisre.fullname" .) -}}
{{- end -}}

{{- /* The executor's ServiceAccount, the identity remediation changes are made as. */ -}}
{{- define "aisre.executorServiceAccountName" -}}
{{- .Values.remediation.executor.serviceAccount | default (printf "%s-executor" (include "aisre.fullname" .)) -}}
{{- end -}}

{{- define "aisre.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "aisre.peeringName" -}}
{{- .Values.peering.name | default (include "aisre.fullname" .) -}}
{{- end -}}

{{- /* Peering is on with more than one replica (one operator acts, the others stand by). */ -}}
{{- define "aisre.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end -}}
{{- end -}}

{{- /*
The namespaces the operator watches, as a JSON list. Namespace scope: the listed ones
(default: the release's namespace), which must be plain names (Roles are per namespace).
Cluster scope: the listed ones, which may be globs and !exclusions; empty is all.
*/ -}}
{{- define "aisre.namespaces" -}}
{{- $names := .Values.watch.namespaces | default list -}}
{{- if eq .Values.rbac.scope "namespace" -}}
{{- if not $names }}{{ $names = list .Release.Namespace }}{{ end -}}
{{- range $names -}}
{{- if regexMatch "[*?\\[!]" . -}}
{{- fail (printf "watch.namespaces: %q is a pattern; rbac.scope=namespace needs plain namespace names (Roles are created in each)" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson ($names | uniq) -}}
{{- end -}}

{{- /* Namespaces that get the operator's namespaced rules: the watched ones and its own. */ -}}
{{- define "aisre.roleNamespaces" -}}
{{- $watched := include "aisre.namespaces" . | fromJsonArray -}}
{{- toJson (append $watched .Release.Namespace | uniq) -}}
{{- end -}}
