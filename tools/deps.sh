#!/usr/bin/env bash
# tools/deps.sh [--bench|--aarch64] — installs the Debian packages greenhub
# needs that are missing (as root, or through sudo).  --bench adds the
# peers' toolchains (Go, Boost.Context, Boost.Fiber, g++, gevent).  --aarch64 adds
# the AArch64 cross compiler, qemu-user and the arm64 libraries (Debian multiarch)
# for tools/test.sh aarch64; not jemalloc's or libpq's, whose -dev packages
# cannot be installed for two architectures at once (that build uses glibc
# malloc and leaves out the PostgreSQL test).
set -euo pipefail
pkgs=(gcc make cmake pkg-config libuv1-dev libhwloc-dev libjemalloc-dev libcmocka-dev valgrind
      libncurses-dev tmux libcurl4-openssl-dev redis-server libhiredis-dev postgresql libpq-dev)
case "${1:-}" in
--bench) pkgs+=(g++ golang-go libboost-context-dev libboost-fiber-dev gnuplot-nox python3-gevent) ;;
--aarch64)
    pkgs+=(gcc-aarch64-linux-gnu qemu-user libc6:arm64 libuv1-dev:arm64
           libhwloc-dev:arm64 libcmocka-dev:arm64 libncurses-dev:arm64
           libcurl4-openssl-dev:arm64 libhiredis-dev:arm64)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        [[ $(id -u) -ne 0 ]] && s=sudo || s=""
        $s dpkg --add-architecture arm64
    fi ;;
esac
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
