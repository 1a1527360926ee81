#!/usr/bin/env bash
# tools/test.sh [plain|address|thread|all] — installs what is missing,
# builds greenhub and runs every test with ctest (each test case in its own
# process, with a timeout).
#   plain    the normal build (default): build/
#   address  AddressSanitizer + UndefinedBehaviorSanitizer: build-asan/
#   thread   ThreadSanitizer: build-tsan/.  The million-greenlet test parks
#            5,000 there, the 100,000-greenlet test 5,000: TSan counts every
#            fiber as a thread and stops at 8,128.  That build is for races;
#            the other two prove capacity at full size.
#   aarch64  cross-built for AArch64 and run under qemu-user: build-aarch64/.
#            Not part of `all` or CI (slow, and emulation is not silicon).
#            Skips test_overflow_madvise: qemu-user accepts MADV_GUARD_INSTALL
#            and drops it, so no guard exists to hit.
#            Also skips test_io's gh_blocking and process tests, which use
#            threads and children the library does not create (libuv's
#            pool, posix_spawn's CLONE_VFORK child): under qemu-user they
#            fail in ctest and hang when run directly.  Not understood yet;
#            to be checked on real AArch64 before those paths are trusted
#            there.
#   all      the three, one after the other
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-plain}"
if [[ "$mode" == aarch64 ]]; then
    tools/deps.sh --aarch64
    echo "== greenhub tests: aarch64 under qemu-user (build-aarch64)"
    cmake -S . -B build-aarch64 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
          -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
          -DGREENHUB_JEMALLOC=OFF -DGREENHUB_BENCH=OFF >/dev/null
    cmake --build build-aarch64 -j"$(nproc)"
    cd build-aarch64 && exec ctest --output-on-failure \
        -E 'test_overflow_madvise|test_io.test_blocking|test_io.test_process'
fi
tools/deps.sh
jobs=$(nproc)

run() { # mode builddir cmake-args...
    local m="$1" dir="$2"; shift 2
    echo "== greenhub tests: $m build ($dir)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    (cd "$dir" && ctest --output-on-failure)
}

case "$mode" in
plain)   run plain build ;;
address) run address build-asan -DGREENHUB_SANITIZE=address -DGREENHUB_BENCH=OFF ;;
thread)  GREENHUB_TEST_PARKED=5000 GREENHUB_TEST_MANY=5000 run thread build-tsan -DGREENHUB_SANITIZE=thread -DGREENHUB_BENCH=OFF ;;
all)     "$0" plain && "$0" address && "$0" thread ;;
*) echo "usage: $0 [plain|address|thread|aarch64|all]" >&2; exit 2 ;;
esac
