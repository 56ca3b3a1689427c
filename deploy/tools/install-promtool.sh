#!/usr/bin/env bash
# Makes sure promtool (Prometheus' rule checker) is installed and prints its path on the last line.
# The chart's alert and dashboard tests need it; `cargo xtask test` on a fresh machine gets it here.
#
#   deploy/tools/install-promtool.sh
#
# promtool ships in Debian's `prometheus` package, the one source of it these machines reach (no
# PyPI or npm package carries it). Installing it needs root and apt-get; without them this says
# what to install and fails.
set -euo pipefail

if promtool="$(command -v promtool)"; then
  echo "$promtool"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool is missing: install Debian's prometheus package (apt-get install -y --no-install-recommends prometheus) or set PROMTOOL" >&2
  exit 1
fi
echo "installing promtool (Debian's prometheus package)" >&2
# (Where systemd runs, Debian also starts the Prometheus server it packages: `systemctl disable
# --now prometheus` stops it; build containers have no init, so nothing starts there.)
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
fi
command -v promtool
