#!/usr/bin/env bash
# bench/build.sh — installs what the benchmarks need (tools/deps.sh --bench)
# and builds greenhub's benchmark programs (Release, -O2) and the peers into
# build-bench/.  Run by bench/run.sh and bench/echo.sh unless --no-build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/deps.sh --bench
echo "== building greenhub (Release, -O2), its benchmarks and the peers"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE=-O2 \
      -DGREENHUB_TESTS=OFF >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
bench/peers/build.sh build-bench/peers >/dev/null
