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

# render FILE DESCRIPTION [helm template flags...]
render() {
  local file="$1" description="$2"
  shift 2
  {
    echo "# cert-manager CSI driver: ${description}."
    echo "# Generated from ${chart} by deploy/render-manifests.sh; do not edit by hand."
    echo "# Needs cert-manager and the cert-manager namespace: kubectl apply -n cert-manager -f <this file>"
    "$helm" template cert-manager-csi-driver "$chart" --namespace cert-manager "$@"
  } >"$out_dir/$file"
}

render cert-manager-csi-driver.yaml "the chart's default values"
render cert-manager-csi-driver-token-request.yaml \
  "default values with app.driver.useTokenRequest=true (CertificateRequests created as each pod's ServiceAccount)" \
  --set app.driver.useTokenRequest=true
