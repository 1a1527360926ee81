#!/usr/bin/env bash
# bench/portable.sh — makes build-bench/ (built by bench/run.sh) run on
# another x86-64 Linux machine that has neither Debian's packages nor a
# network: for a borrowed many-core machine, where `bench/run.sh --no-build`
# then runs the same benchmarks.
#
# Copies every shared library the benchmark binaries load (libuv, hwloc,
# jemalloc, glibc itself, ...) and glibc's dynamic loader into
# build-bench/lib, and rewrites the binaries (patchelf) to load them from
# there: DT_RPATH $ORIGIN/../lib, which unlike RUNPATH also applies to the
# libraries' own dependencies, so nothing from the other machine's /lib is
# mixed in.  The ELF interpreter must be an absolute path, so it is set to
# /tmp/greenhub-ld/ld-linux-x86-64.so.2; on the other machine run
#     build-bench/lib/install-loader.sh
# once before the benchmarks.  The Go peers are static and need nothing.
# Writes build-bench/BUILT (compiler and peer versions) for run.sh's header.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v patchelf >/dev/null || { echo "portable.sh: needs patchelf (apt-get install patchelf)" >&2; exit 1; }
[[ -x build-bench/bench/bench_cpu ]] || { echo "portable.sh: run bench/run.sh first (builds build-bench)" >&2; exit 1; }
lib=build-bench/lib loader=/tmp/greenhub-ld/ld-linux-x86-64.so.2
mkdir -p "$lib"

# patchelf breaks Go binaries; bench/peers/build.sh builds them static.
dynamic() {
    file -L "$1" 2>/dev/null | grep -q 'dynamically linked' &&
        ! readelf -S "$1" 2>/dev/null | grep -q '\.note\.go\.buildid'
}

bins=()
for f in build-bench/bench/bench_* build-bench/peers/*; do
    [[ -f $f && -x $f ]] && dynamic "$f" && bins+=("$f")
done
for f in "${bins[@]}"; do
    ldd "$f" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'
done | sort -u | while read -r so; do
    # a second run finds the binaries already loading from $lib
    [[ $(realpath "$so") == $(realpath "$lib")/* ]] || cp -L "$so" "$lib/"
done
if [[ ! -f $lib/ld-linux-x86-64.so.2 ]]; then
    cp -L "$(ldd build-bench/bench/bench_cpu | awk '/ld-linux/ { print $1 }')" "$lib/ld-linux-x86-64.so.2"
fi
for f in "${bins[@]}"; do
    patchelf --set-interpreter "$loader" --force-rpath --set-rpath '$ORIGIN/../lib' "$f"
done
for so in "$lib"/*.so*; do
    [[ $so == */ld-linux* ]] || patchelf --force-rpath --set-rpath '$ORIGIN' "$so"
done
cat > "$lib/install-loader.sh" <<EOF
#!/bin/sh
# Puts the bundled glibc loader where the patched binaries look for it.
set -e
mkdir -p "$(dirname "$loader")"
cp "\$(dirname "\$0")/ld-linux-x86-64.so.2" "$loader"
EOF
chmod +x "$lib/install-loader.sh"
echo "gcc $(gcc -dumpversion), $(go version 2>/dev/null | awk '{print $3}'), glibc $(ldd --version | awk 'NR == 1 { print $NF }') bundled, on $(. /etc/os-release && echo "$PRETTY_NAME")" > build-bench/BUILT
echo "portable.sh: ${#bins[@]} binaries now load $(ls "$lib" | wc -l) files from $lib ($(du -sh "$lib" | cut -f1)); on the other machine run $lib/install-loader.sh first"
