#!/usr/bin/env bash
# Builds cert-manager-csi-driver as one statically linked executable, the one file of the
# container image (`cargo xtask image` runs this, then packs the binary; no Docker involved).
#
#   deploy/build-static-binary.sh [--profile dist|ci] [--out DIR]
#
# --profile dist (the default, what `cargo xtask image --release` ships): whole-program LTO in one
# codegen unit (Cargo.toml's [profile.dist]). --profile ci: opt-level 1 without LTO, much faster to
# build; what CI builds, packs and checks. Neither keeps debug info (symbols stay, so backtraces
# still name functions).
#
# The build is native: glibc's target for the machine's own architecture, with the C runtime linked
# in (`+crt-static`). aws-lc-rs compiles its C code with the system's cc, so nothing beyond a Rust
# toolchain, a C compiler and glibc's static libraries (libc6-dev) is needed. For a multi-arch image,
# each platform builds its own binary natively (`cargo xtask image --binary` packs them together).
# TARGETARCH (amd64 / arm64) is checked against the machine when set.
#
# Prints the binary's path on the last line; with --out DIR it is also copied to
# DIR/cert-manager-csi-driver.
set -euo pipefail
cd "$(dirname "$0")/.."

out_dir=""
profile=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out_dir="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) out_dir="${1#--out=}"; shift ;;
    --profile) profile="${2:?--profile needs dist or ci}"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    *) echo "usage: $0 [--profile dist|ci] [--out DIR]" >&2; exit 2 ;;
  esac
done
case "$profile" in
  dist | ci) ;;
  *) echo "--profile ${profile}: dist (shipped) or ci (CI's check)" >&2; exit 2 ;;
esac

machine="$(uname -m)"
case "${TARGETARCH:-}" in
  "") arch="$machine" ;;
  amd64) arch=x86_64 ;;
  arm64) arch=aarch64 ;;
  *) echo "unsupported TARGETARCH ${TARGETARCH}: amd64 or arm64" >&2; exit 2 ;;
esac
if [ "$arch" != "$machine" ]; then
  echo "TARGETARCH=${TARGETARCH} but this machine is ${machine}: the build is native" >&2
  echo "(build on a machine of that platform, then pack with cargo xtask image --binary)" >&2
  exit 2
fi
target="${arch}-unknown-linux-gnu"

# An explicit --target keeps RUSTFLAGS off build scripts and proc-macros, which must stay dynamic.
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
# Paths of this checkout and of the crate sources are written into the binary (panic locations,
# generated code): map them to fixed names, so that the same commit builds the same bytes in any
# directory.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
export RUSTFLAGS="${RUSTFLAGS} --remap-path-prefix=${PWD}=/src --remap-path-prefix=${cargo_home}=/cargo"
# The same for the C that aws-lc-sys compiles (its __FILE__ strings), through cc's CFLAGS.
export CFLAGS="${CFLAGS:+$CFLAGS }-ffile-prefix-map=${PWD}=/src -ffile-prefix-map=${cargo_home}=/cargo"
cargo build --profile "$profile" --locked --target "$target" \
  --package cert-manager-csi-driver --bin cert-manager-csi-driver

binary="${CARGO_TARGET_DIR:-target}/${target}/${profile}/cert-manager-csi-driver"

# Refuse to hand over a binary that would need a dynamic loader (the image has none).
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
