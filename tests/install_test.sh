#!/usr/bin/env bash
# tests/install_test.sh BUILD_DIR SOURCE_DIR — installs greenhub into a
# temporary prefix and builds a program outside the tree against it, once
# with pkg-config and once with find_package(greenhub CONFIG) (with and
# without greenhub::hooks); all must run, and the interposition layer is
# there exactly where it was linked or preloaded.
set -euo pipefail
build="$1" src="$2"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name greenhub.pc | head -1)")
libdir=$(dirname "$(find "$prefix" -name 'libgreenhub.so' | head -1)")
# Every function the installed headers declare is exported by the library.
declared=$(grep -ohE '\bgh_[a-z_]+\(' "$prefix"/include/greenhub/*.h | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$libdir/libgreenhub.so" | awk '{print $3}' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
if [[ -n "$missing" ]]; then
    echo "declared in the headers but not exported: $missing" >&2
    exit 1
fi
# shellcheck disable=SC2046
cc "$src/tests/install/consumer.c" -o "$prefix/by_pkgconfig" \
   $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs greenhub) -Wl,-rpath,"$libdir"
"$prefix/by_pkgconfig"
cmake -S "$src/tests/install" -B "$prefix/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/cm" >/dev/null
LD_LIBRARY_PATH="$libdir" "$prefix/cm/consumer"
LD_LIBRARY_PATH="$libdir" "$prefix/cm/consumer_hooks"
# shellcheck disable=SC2046
cc -DWANT_INTERPOSED=1 "$src/tests/install/consumer.c" -o "$prefix/hooks_by_pkgconfig" \
   $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs greenhub-hooks) -Wl,-rpath,"$libdir"
"$prefix/hooks_by_pkgconfig"
# LD_PRELOAD instead of linking the hooks: the pkg-config consumer again.
# It was built expecting no layer, so it must fail its check and say why.
[[ -f "$libdir/libgreenhub_preload.so" ]]
out=$(LD_PRELOAD="$libdir/libgreenhub_preload.so" "$prefix/by_pkgconfig" || echo "exit=$?")
echo "$out"
if [[ "$out" != *"interposed=1"* || "$out" != *"exit=1"* ]]; then
    echo "the preloaded consumer should report interposed=1 (and fail its check)" >&2
    exit 1
fi
echo "install test: pkg-config, find_package (with and without greenhub::hooks) and LD_PRELOAD consumers ran"
