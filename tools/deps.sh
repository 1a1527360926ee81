#!/usr/bin/env bash
# tools/deps.sh [--bench] — installs the Debian packages greenhub needs that
# are missing (as root, or through sudo).  --bench adds the peers' toolchains
# (Go, Boost.Context, g++) and gnuplot.
set -euo pipefail
pkgs=(gcc make cmake pkg-config libuv1-dev libhwloc-dev libjemalloc-dev libcmocka-dev valgrind)
if [[ "${1:-}" == "--bench" ]]; then
    pkgs+=(g++ golang-go libboost-context-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
