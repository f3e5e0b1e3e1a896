{{/*
Written by hand. The other templates are generated from manifests/ by
`python -m localenv.chart` and use these two names.
*/}}

{{/* The operator's namespace: namespace.name, or the release's namespace. */}}
{{- define "mlmodel-operator.namespace" -}}
{{- .Values.namespace.name | default .Release.Namespace -}}
{{- end }}

{{/*
The name of the operator's Deployment, ServiceAccount and RBAC objects. Not derived from
the release's name, so that the chart and `kubectl apply -k manifests/` install the same
objects, whatever the release is called.
*/}}
{{- define "mlmodel-operator.fullname" -}}
{{- .Values.fullnameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}
