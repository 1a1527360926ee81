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
#   all      the three, one after the other
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-plain}"
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
*) echo "usage: $0 [plain|address|thread|all]" >&2; exit 2 ;;
esac
