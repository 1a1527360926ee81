#!/usr/bin/env python3
"""skynet.py: the skynet benchmark with gevent greenlets (peer of
bench/skynet.c and bench/peers/go/skynet.go).

    skynet.py [LEAVES=100000]

A 10-ary tree of greenlets: leaf i returns i; every inner node spawns its
10 children (gevent.spawn) and sums what they return (Greenlet.get(), a
join that hands back the value), as bench/skynet.c does with gh_join.
Result: ms for one run, after one untimed warm-up run of the same tree
(as bench/skynet.c does).

Scale.  The default is 100,000 leaves (111,110 greenlets), one tenth of
the 1,000,000 leaves of the C and Go versions: each new greenlet maps and
faults in fresh memory (CPython 3.11 gives every greenlet its own 16 KiB
frame-stack chunk), and the full tree took about 100 s a run on the 2-core
VM this was written on, against about 10 s for 100,000 leaves.
LEAVES=1000000 runs the full tree.  The scale is never implicit: an INFO
line gives the leaves and greenlets, and the unit is `ms` only for
1,000,000 leaves, otherwise `ms_at_<LEAVES>_leaves`.
Self-check: the root sum must be LEAVES*(LEAVES-1)/2 (499999500000 for
1,000,000 leaves).
LEAVES must be a power of 10 (at least 10).
"""
import sys
import time

import _peer

_peer.need_gevent()
import gevent


def skynet(num, size):
    if size == 1:
        return num
    sub = size // 10
    kids = [gevent.spawn(skynet, num + i * sub, sub) for i in range(10)]
    return sum(g.get() for g in kids)


def main():
    leaves = 100000
    if len(sys.argv) > 1:
        try:
            leaves = int(sys.argv[1])
        except ValueError:
            leaves = 0
        p = leaves
        while p >= 10 and p % 10 == 0:
            p //= 10
        if leaves < 10 or p != 1:
            sys.stderr.write("usage: skynet.py [LEAVES, a power of 10 >= 10]\n")
            return 2
    want = leaves * (leaves - 1) // 2
    spawned, level = 0, leaves  # every node but the root, which main calls
    while level > 1:
        spawned += level
        level //= 10

    skynet(0, leaves)  # warm-up
    t0 = time.perf_counter_ns()
    total = skynet(0, leaves)
    ms = (time.perf_counter_ns() - t0) / 1e6

    unit = "ms" if leaves == 1000000 else "ms_at_%d_leaves" % leaves
    note = ""
    if leaves < 1000000:
        note = " why=the_1000000-leaf_tree_took_about_100_s_a_run_here_(fresh_memory_per_greenlet)"
    print("INFO bench=skynet leaves=%d greenlets=%d scale=%g_of_1M%s"
          % (leaves, spawned, leaves / 1e6, note))
    ok = total == want
    if not ok:
        sys.stderr.write("skynet: sum %d, want %d\n" % (total, want))
    print("RESULT bench=skynet impl=gevent threads=1 value=%.2f unit=%s check=%s"
          % (ms, unit, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
