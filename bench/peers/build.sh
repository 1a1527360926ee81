#!/usr/bin/env bash
# Build the peer benchmarks (Go, Boost.Context, libuv, pthread/serial C) into
# $1 (default: bench/peers/out). Skips Go / Boost / libuv with a message when
# missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
fail=0

build() { # name, command...
    local name="$1"; shift
    if "$@"; then
        echo "peer $name: built $out/$name"
    else
        echo "peer $name: BUILD FAILED" >&2
        fail=1
    fi
}

build pthread_parked "$CC" -O2 -pthread -o "$out/pthread_parked" "$here/pthread/parked.c"
build serial_cpu     "$CC" -O2 -o "$out/serial_cpu" "$here/pthread/cpu_serial.c"
build pthread_sync   "$CC" -O2 -pthread -o "$out/pthread_sync" "$here/pthread/sync.c"

if echo '#include <boost/context/fiber.hpp>' | "$CXX" -std=c++14 -x c++ -fsyntax-only - >/dev/null 2>&1; then
    build boost_switch "$CXX" -O2 -std=c++14 -o "$out/boost_switch" "$here/boost/switch.cpp" -lboost_context
else
    echo "peer boost: unavailable (install libboost-context-dev)"
fi

if pkg-config --exists libuv 2>/dev/null; then
    # shellcheck disable=SC2046  # pkg-config prints several flags
    build uv_echo "$CC" -O2 -o "$out/uv_echo" "$here/uv/echo.c" $(pkg-config --cflags --libs libuv)
else
    echo "peer libuv: unavailable (install libuv1-dev)"
fi

if command -v go >/dev/null 2>&1; then
    # CGO_ENABLED=0: static binaries, as Go servers are usually shipped (the
    # net package would otherwise link glibc for its resolver).
    export GO111MODULE=off CGO_ENABLED=0 GOCACHE="${GOCACHE:-/tmp/gh-gocache}"
    for p in switch spawn skynet parked cpu echo sync; do
        build "go_$p" go build -o "$out/go_$p" "$here/go/$p.go"
    done
else
    echo "peer go: unavailable (install golang-go)"
fi

exit "$fail"
