#!/usr/bin/env bash
# Renders the static manifests in deploy/manifests/ from the Helm chart (release
# cert-manager-csi-driver, namespace cert-manager). Run it after every change to the chart;
# tests/chart/ (the `chart` test) fails while the committed files differ from what this prints.
#
#   deploy/render-manifests.sh [OUT_DIR]     (default: deploy/manifests)
#
# helm: $HELM, else helm on PATH, else the one deploy/tools/install-helm.sh caches.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir="${1:-deploy/manifests}"
helm="${HELM:-}"
if [ -z "$helm" ]; then
  helm="$(command -v helm || true)"
fi
if [ -z "$helm" ]; then
  helm="$(deploy/tools/install-helm.sh | tail -n 1)"
fi

chart=deploy/charts/cert-manager-csi-driver
mkdir -p "$out_dir"

# render FILE DESCRIPTION NEEDS [helm template flags...]
render() {
  local file="$1" description="$2" needs="$3"
  shift 3
  {
    echo "# cert-manager CSI driver: ${description}."
    echo "# Generated from ${chart} by deploy/render-manifests.sh; do not edit by hand."
    echo "# Needs ${needs}"
    "$helm" template cert-manager-csi-driver "$chart" --namespace cert-manager "$@"
  } >"$out_dir/$file"
}

driver_needs="cert-manager and the cert-manager namespace: kubectl apply -n cert-manager -f <this file>"
render cert-manager-csi-driver.yaml "the chart's default values" "$driver_needs"
render cert-manager-csi-driver-token-request.yaml \
  "default values with app.driver.useTokenRequest=true (CertificateRequests created as each pod's ServiceAccount)" \
  "$driver_needs" \
  --set app.driver.useTokenRequest=true
# The alerts alone, for clusters that install the driver from the manifests above.
render cert-manager-csi-driver-prometheusrule.yaml \
  "the alerts (metrics.prometheusRule.enabled=true), for the driver scraped as the chart's PodMonitor does (job cert-manager-csi-driver)" \
  "the Prometheus Operator (monitoring.coreos.com/v1): kubectl apply -n cert-manager -f <this file>" \
  --set metrics.prometheusRule.enabled=true --show-only templates/prometheusrule.yaml
