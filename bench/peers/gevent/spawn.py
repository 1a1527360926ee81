#!/usr/bin/env python3
"""spawn.py: cost of one gevent greenlet spawn + join, strictly sequential
(peer of bench/spawn.c and bench/peers/go/spawn.go).

    spawn.py [N=20000]

For N iterations, gevent.spawn(child, i) and then .get() it (join, and
return its value or re-raise its exception) before the next spawn; the
child returns its index and the main greenlet sums what came back.
Result: elapsed / N ns per spawn+join.  One untimed warm-up of N/10 first,
as bench/spawn.c does.

The default N is 20,000, not 1,000,000: under CPython 3.11 every new
greenlet maps a fresh 16 KiB frame-stack chunk (greenlet 2 gives each its
own) and unmaps it when it ends, so each spawn pays a fault on fresh
memory; one spawn+join cost 70-100 us on the 2-core VM this was written on
(where such a fault costs about 55 us), and 20,000 keeps the run near
1-2 s there.
Self-check: the sum of the returned indices must equal N*(N-1)/2.
Prints RESULT bench=spawn impl=gevent threads=1 value=<ns> unit=ns_per_spawn
check=ok|FAIL (exit 1 on FAIL).
"""
import sys
import time

import _peer

_peer.need_gevent()
import gevent


def child(i):
    return i


def run(n):
    spawn = gevent.spawn
    total = 0
    for i in range(n):
        total += spawn(child, i).get()
    return total


def main():
    n = _peer.pos_arg(1, 20000, "usage: spawn.py [N>0]")
    run(n // 10)  # warm-up
    t0 = time.perf_counter_ns()
    total = run(n)
    ns = (time.perf_counter_ns() - t0) / n
    want = n * (n - 1) // 2
    ok = total == want
    if not ok:
        sys.stderr.write("spawn: sum of indices %d, want %d\n" % (total, want))
    print("RESULT bench=spawn impl=gevent threads=1 value=%.2f unit=ns_per_spawn check=%s"
          % (ns, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
