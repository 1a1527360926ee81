#!/usr/bin/env bash
# Build the peer benchmarks (Go, Boost.Context, Boost.Fiber, libuv,
# pthread/serial C) into $1 (default: bench/peers/out). Skips Go / Boost /
# Boost.Fiber / libuv with a message when missing.
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

# Boost.Fiber (work_stealing on N threads): the headers come with
# libboost1.74-dev, the library only with libboost-fiber-dev, so try a link.
# Linked with jemalloc when it is there, the allocator greenhub's own
# benchmarks use (fiber stacks come from malloc).
if echo 'int main() { boost::fibers::fiber([] {}).join(); }' |
    "$CXX" -std=c++14 -include boost/fiber/all.hpp -x c++ - -o /dev/null \
        -lboost_fiber -lboost_context -pthread >/dev/null 2>&1; then
    bf_libs=(-lboost_fiber -lboost_context -pthread)
    if pkg-config --exists jemalloc 2>/dev/null; then
        # shellcheck disable=SC2207  # pkg-config prints several flags
        bf_libs+=($(pkg-config --libs jemalloc))
    fi
    for p in cpu spawn skynet; do
        build "boost_fiber_$p" "$CXX" -O2 -std=c++14 -Wall -Wextra -o "$out/boost_fiber_$p" \
            "$here/boost/$p.cpp" "${bf_libs[@]}"
    done
else
    echo "peer boost.fiber: unavailable (install libboost-fiber-dev)"
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

# gevent: Python scripts (gevent/*.py), nothing to build; say whether they
# can run, and with which python3 (Debian's python3-gevent serves
# /usr/bin/python3; another python3 first on PATH may lack it).
gpy=""
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import gevent' 2>/dev/null; then
        gpy=$(command -v "$py"); break
    fi
done
if [[ -n $gpy ]]; then
    echo "peer gevent: $("$gpy" -c 'import gevent; print(gevent.__version__)') with $gpy (scripts in $here/gevent, not built)"
else
    echo "peer gevent: unavailable (install python3-gevent)"
fi

exit "$fail"
