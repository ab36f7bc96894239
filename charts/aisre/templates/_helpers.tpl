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

{{- /* Leader election is on with more than one replica (one operator acts, the others
stand by); the Lease is "<peering name>-leader" in the release's namespace. */ -}}
{{- define "aisre.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end -}}
{{- end -}}

{{- /*
leaderElection's timing, checked here as the operator checks it at start-up
(LeaseSettings), so a bad combination fails `helm install` instead of crash-looping.
Unset values are the operator's defaults (a chart test keeps these equal to them).
*/ -}}
{{- define "aisre.checkLeaderElection" -}}
{{- $le := .Values.leaderElection -}}
{{- $lease := $le.leaseSeconds | default 15.0 | float64 -}}
{{- $renew := $le.renewSeconds | default 5.0 | float64 -}}
{{- $deadline := $le.renewDeadlineSeconds | default 10.0 | float64 -}}
{{- $retry := $le.retrySeconds | default 2.0 | float64 -}}
{{- if not (and (lt 0.0 $renew) (le $renew $deadline) (lt $deadline $lease) (lt 0.0 $retry)) -}}
{{- fail (printf "leaderElection: need 0 < renewSeconds (%v) <= renewDeadlineSeconds (%v) < leaseSeconds (%v) and retrySeconds (%v) > 0" $renew $deadline $lease $retry) -}}
{{- end -}}
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
