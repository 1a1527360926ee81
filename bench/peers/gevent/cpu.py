#!/usr/bin/env python3
"""cpu.py: the core-scaling CPU-bound workload with gevent greenlets, on its
one thread (peer of bench/cpu.c and bench/peers/go/cpu.go).

    cpu.py [--threads H] [T=4000] [ITERS=1000]

The main greenlet spawns T greenlets (gevent.spawn); greenlet i runs ITERS
(divisible by 4) xorshift64 steps (x ^= x << 13; x ^= x >> 7;
x ^= x << 17, modulo 2**64) from seed i+1 in 4 equal chunks, with
gevent.sleep(0) (gevent's yield) between chunks: 3 yields each.  The main
greenlet joins them all (gevent.joinall) and sums the final x of every
task modulo 2**64 into a checksum.  Reports tasks/s and the elapsed ms.

Scale.  The suite's workload is T=4000 ITERS=100000; in Python one
xorshift64 step costs about 0.25 us, so that would take about 100 s.  The
default keeps T=4000 (the same spawns, yields and joins) with ITERS=1000,
1/100 of the steps; tasks/s is therefore NOT comparable with the C and Go
figures at ITERS=100000.  The INFO line states the scale (tasks=, iters=,
and steps_per_s=, xorshift steps per second).
Self-check: the checksum must equal a serial recomputation of the same
work, done after the timed part; for T=4000 ITERS=100000 and T=100
ITERS=1000 it must also equal the suite's published checksums
(4745450445450876050 and 3325742150919743974).

Threads.  gevent runs all its greenlets on one thread, so it has no core
scaling: with --threads H for H > 1 (bench/run.sh's core-scaling rows) it
prints the one line `gevent: one thread only, no core scaling` and exits 0,
doing no work.  --threads 1 (the default) runs the workload.

Prints RESULT bench=cpu impl=gevent threads=1 value=<tasks/s>
unit=tasks_per_s check=ok|FAIL (exit 1 on FAIL) and
INFO checksum=.. elapsed_ms=.. tasks=.. iters=.. steps_per_s=..
"""
import sys
import time

import _peer

_peer.need_gevent()
import gevent

MASK = (1 << 64) - 1
KNOWN = {(4000, 100000): 4745450445450876050, (100, 1000): 3325742150919743974}


def work(x, n):
    for _ in range(n):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def task(i, chunk):
    x = i + 1
    for c in range(4):
        if c > 0:
            gevent.sleep(0)
        x = work(x, chunk)
    return x


def usage():
    sys.stderr.write("usage: cpu.py [--threads H>0] [T>0] [ITERS>0, divisible by 4]\n")
    sys.exit(2)


def posint(s):
    try:
        v = int(s)
    except ValueError:
        v = 0
    if v <= 0:
        usage()
    return v


def main():
    args = sys.argv[1:]
    threads = 1
    if args[:1] == ["--threads"]:
        if len(args) < 2:
            usage()
        threads = posint(args[1])
        args = args[2:]
    elif args and args[0].startswith("--threads="):
        threads = posint(args[0].split("=", 1)[1])
        args = args[1:]
    if len(args) > 2:
        usage()
    t = posint(args[0]) if len(args) > 0 else 4000
    iters = posint(args[1]) if len(args) > 1 else 1000
    if iters % 4:
        sys.stderr.write("cpu: ITERS must be divisible by 4\n")
        return 2
    if threads > 1:
        print("gevent: one thread only, no core scaling")
        return 0
    chunk = iters // 4

    t0 = time.perf_counter_ns()
    gs = [gevent.spawn(task, i, chunk) for i in range(t)]
    gevent.joinall(gs, raise_error=True)
    total = 0
    for g in gs:
        total = (total + g.value) & MASK
    el = (time.perf_counter_ns() - t0) / 1e9

    want = 0  # serial reference, not timed
    for i in range(t):
        x = i + 1
        for _ in range(4):
            x = work(x, chunk)
        want = (want + x) & MASK

    ok = total == want
    if not ok:
        sys.stderr.write("cpu: checksum %d, serial recomputation gives %d\n" % (total, want))
    known = KNOWN.get((t, iters))
    if known is not None and want != known:
        sys.stderr.write("cpu: checksum %d, the suite's published one is %d\n" % (want, known))
        ok = False
    print("RESULT bench=cpu impl=gevent threads=1 value=%.1f unit=tasks_per_s check=%s"
          % (t / el, "ok" if ok else "FAIL"))
    print("INFO checksum=%d elapsed_ms=%.2f tasks=%d iters=%d steps_per_s=%.0f"
          % (total, el * 1e3, t, iters, t * iters / el))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
