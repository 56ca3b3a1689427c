{{/*
Name of every resource. Fixed (not derived from the release name), as upstream's chart does, so
that an upgrade from upstream's release keeps the same DaemonSet, ServiceAccount and RBAC objects.
*/}}
{{- define "csi-driver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource. */}}
{{- define "csi-driver.labels" -}}
app.kubernetes.io/name: {{ include "csi-driver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The DaemonSet's selector. A DaemonSet's selector cannot change, so this stays `app: <name>`, the
one upstream's chart uses: upgrading a release from upstream's chart then works in place.
*/}}
{{- define "csi-driver.selectorLabels" -}}
app: {{ include "csi-driver.name" . }}
{{- end -}}

{{/*
An image reference from {registry, repository, tag, digest}: `[registry/]repository` then
`@digest` if a digest is set, else `:tag` (the chart's appVersion when the tag is empty).
Call with (list <image values> <default tag>).
*/}}
{{- define "csi-driver.image" -}}
{{- $image := index . 0 -}}
{{- $defaultTag := index . 1 -}}
{{- $repository := $image.repository -}}
{{- with $image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- $tag := toString (default $defaultTag $image.tag) -}}
{{- if not $tag -}}
{{- fail (printf "image %s: set a tag or a digest" $repository) -}}
{{- end -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Directory on the node (and in the containers) that holds the driver's CSI socket. */}}
{{- define "csi-driver.pluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.app.kubeletRootDir) .Values.app.driver.name -}}
{{- end -}}

{{/* Whether to grant `use` of an OpenShift SecurityContextConstraints. */}}
{{- define "csi-driver.openshiftSCC" -}}
{{- $enabled := .Values.openshift.securityContextConstraint.enabled -}}
{{- if eq (toString $enabled) "detect" -}}
{{- if .Capabilities.APIVersions.Has "security.openshift.io/v1" -}}true{{- end -}}
{{- else if eq (toString $enabled) "true" -}}
true
{{- end -}}
{{- end -}}

{{/* Whether the driver adopts the Go driver's volumes: "true" or empty. */}}
{{- define "csi-driver.adoptUpstreamVolumes" -}}
{{- if .Values.app.driver.adoptUpstreamVolumes -}}true{{- end -}}
{{- end -}}

{{/*
Fails on a data root that would lose the driver's volume records: one under /tmp or /var/tmp
(systemd-tmpfiles empties them), or, while adopting, one that is, contains or lies inside the Go
driver's data directory (whose contents the driver takes over and unmounts).
*/}}
{{- define "csi-driver.checkDataDirs" -}}
{{- $dataRoot := clean .Values.app.driver.dataRoot -}}
{{- if and .Values.app.driver.publishInGoDriverLayout (not (include "csi-driver.adoptUpstreamVolumes" .)) -}}
{{- fail "app.driver.publishInGoDriverLayout=true needs app.driver.adoptUpstreamVolumes=true: new volumes go into the Go driver's data directory (app.driver.csiDataDir), which is only mounted while adopting" -}}
{{- end -}}
{{- range list "/tmp" "/var/tmp" -}}
{{- if or (eq $dataRoot .) (hasPrefix (printf "%s/" .) $dataRoot) -}}
{{- fail (printf "app.driver.dataRoot=%s is under %s, which systemd-tmpfiles may empty, losing the driver's volume records: choose a directory such as /var/lib/cert-manager-csi-driver" $.Values.app.driver.dataRoot .) -}}
{{- end -}}
{{- end -}}
{{- if include "csi-driver.adoptUpstreamVolumes" . -}}
{{- $goDataDir := clean .Values.app.driver.csiDataDir -}}
{{- if or (eq $dataRoot $goDataDir) (hasPrefix (printf "%s/" (trimSuffix "/" $goDataDir)) $dataRoot) (hasPrefix (printf "%s/" (trimSuffix "/" $dataRoot)) $goDataDir) -}}
{{- fail (printf "app.driver.dataRoot=%s and app.driver.csiDataDir=%s overlap: csiDataDir is the Go driver's data directory, whose volumes this driver adopts; move app.driver.dataRoot out of it, e.g. to /var/lib/cert-manager-csi-driver-state (or set app.driver.adoptUpstreamVolumes=false once no node has the Go driver's volumes)" .Values.app.driver.dataRoot .Values.app.driver.csiDataDir) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Seconds in a duration written as Prometheus writes them in a rule's `for:` (one number and one
unit: 90s, 15m, 6h, 7d), for thresholds that PromQL compares with time() arithmetic, which has
no duration literals. Fails on anything else, naming the value.
*/}}
{{- define "csi-driver.seconds" -}}
{{- $duration := toString . -}}
{{- if not (regexMatch "^[0-9]+[smhd]$" $duration) -}}
{{- fail (printf "%q is not a duration of one number and one unit s, m, h or d (e.g. 90s, 15m, 6h, 7d)" $duration) -}}
{{- end -}}
{{- $unit := regexFind "[smhd]$" $duration -}}
{{- $number := atoi (trimSuffix $unit $duration) -}}
{{- mul $number (get (dict "s" 1 "m" 60 "h" 3600 "d" 86400) $unit) -}}
{{- end -}}

{{/*
Copies a request series' pod namespace into `volume_namespace`, whichever label holds it: the
driver's `namespace` label arrives as `exported_namespace` when the scrape keeps the target's own
`namespace` (a PodMonitor's default honorLabels: false), and as `namespace` with honorLabels: true.
Call with the PromQL expression to wrap.
*/}}
{{- define "csi-driver.volumeNamespace" -}}
label_replace(
  label_replace(
    {{ . | nindent 4 | trim }},
    "volume_namespace", "$1", "namespace", "(.*)"
  ),
  "volume_namespace", "$1", "exported_namespace", "(.+)"
)
{{- end -}}
