{{/* The base name of every resource, as upstream's chart names them. */}}
{{- define "csi-driver-spiffe.name" -}}
cert-manager-csi-driver-spiffe
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "csi-driver-spiffe.labels" -}}
app.kubernetes.io/name: {{ include "csi-driver-spiffe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The approver's pod selector, upstream's. */}}
{{- define "csi-driver-spiffe.approverSelector" -}}
app: {{ include "csi-driver-spiffe.name" . }}-approver
{{- end -}}

{{/*
An image reference: `[registry/]repository` then `@digest` if set, else `:tag` (appVersion when
empty). Call with (list .Values.image "approver" .Chart.AppVersion).
*/}}
{{- define "csi-driver-spiffe.image" -}}
{{- $image := index . 0 -}}
{{- $which := index . 1 -}}
{{- $defaultTag := index . 2 -}}
{{- $repository := index $image.repository $which -}}
{{- with $image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- $digest := "" -}}
{{- with $image.digest -}}{{- $digest = index . $which -}}{{- end -}}
{{- if $digest -}}
{{- printf "%s@%s" $repository $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString (default $defaultTag $image.tag)) -}}
{{- end -}}
{{- end -}}

{{/*
cert-manager's signer name for the issuer (its approval check: `approve` on `signers` in
cert-manager.io): `<kind plural>.<group>/<name>` for a cluster-scoped issuer; a namespaced Issuer's
is `<plural>.<group>/<namespace>.<name>`, and requests come from every namespace, so all of the
group's issuers (`issuers.<group>/*`).
*/}}
{{- define "csi-driver-spiffe.signerName" -}}
{{- if .Values.app.approver.signerName -}}
{{- .Values.app.approver.signerName -}}
{{- else -}}
{{- $issuer := .Values.app.issuer -}}
{{- $plural := printf "%ss" (lower $issuer.kind) -}}
{{- if eq $issuer.kind "Issuer" -}}
{{- printf "%s.%s/*" $plural $issuer.group -}}
{{- else -}}
{{- printf "%s.%s/%s" $plural $issuer.group $issuer.name -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A sidecar image (node-driver-registrar, livenessprobe): `[registry/]repository` then `@digest` if
set, else `:tag`. Call with the image's values.
*/}}
{{- define "csi-driver-spiffe.sidecarImage" -}}
{{- $repository := .repository -}}
{{- with .registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if .digest -}}
{{- printf "%s@%s" $repository .digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString .tag) -}}
{{- end -}}
{{- end -}}
