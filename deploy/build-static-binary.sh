#!/usr/bin/env bash
# Builds cert-manager-csi-driver as one statically linked executable: the exact steps the
# Dockerfile runs, so CI can build and check them without a Docker engine.
#
#   deploy/build-static-binary.sh [--out DIR]
#
# The build is native: glibc's target for the machine's own architecture, with the C runtime linked
# in (`+crt-static`). aws-lc-rs compiles its C code with the system's cc, so nothing beyond a Rust
# toolchain, a C compiler and glibc's static libraries (libc6-dev) is needed. For a multi-arch image,
# buildx runs the Dockerfile's builder stage once per platform, so each build is native there too.
# TARGETARCH (amd64 / arm64, as buildx names it) is checked against the machine when set.
#
# Prints the binary's path on the last line; with --out DIR it is also copied to
# DIR/cert-manager-csi-driver.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out_dir="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) out_dir="${1#--out=}"; shift ;;
    *) echo "usage: $0 [--out DIR]" >&2; exit 2 ;;
  esac
done

machine="$(uname -m)"
case "${TARGETARCH:-}" in
  "") arch="$machine" ;;
  amd64) arch=x86_64 ;;
  arm64) arch=aarch64 ;;
  *) echo "unsupported TARGETARCH ${TARGETARCH}: amd64 or arm64" >&2; exit 2 ;;
esac
if [ "$arch" != "$machine" ]; then
  echo "TARGETARCH=${TARGETARCH} but this machine is ${machine}: the build is native" >&2
  echo "(run the Dockerfile with buildx --platform, which builds on each platform)" >&2
  exit 2
fi
target="${arch}-unknown-linux-gnu"

# An explicit --target keeps RUSTFLAGS off build scripts and proc-macros, which must stay dynamic.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
# The release profile keeps line tables; in the image they would be ~80 of ~100 MB. Symbols stay,
# so backtraces still name functions.
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-debuginfo}"
# Whole-program LTO in one codegen unit: 14% less text (17.3 instead of 20.0 MB), and most of an
# idle driver's RSS is the code it has run (file-backed pages the kernel maps with fault-around):
# VmRSS idle on the cert-manager backend 11.1 instead of 13.2 MiB (`cargo bench --bench footprint`
# with FOOTPRINT_BINARY). Only here, not in the release profile, so test and bench builds stay fast.
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}"
cargo build --release --locked --target "$target" \
  --package cert-manager-csi-driver --bin cert-manager-csi-driver

binary="${CARGO_TARGET_DIR:-target}/${target}/release/cert-manager-csi-driver"

# Refuse to hand over a binary that would need a dynamic loader (a distroless/static image has none).
if command -v file >/dev/null 2>&1; then
  description="$(file -L "$binary")"
  case "$description" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "not a static executable: $description" >&2; exit 1 ;;
  esac
else
  if ldd "$binary" 2>&1 | grep -q '=>'; then
    echo "not a static executable:" >&2
    ldd "$binary" >&2
    exit 1
  fi
fi

if [ -n "$out_dir" ]; then
  mkdir -p "$out_dir"
  cp "$binary" "$out_dir/cert-manager-csi-driver"
  binary="$out_dir/cert-manager-csi-driver"
fi
echo "$binary"
