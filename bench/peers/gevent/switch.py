#!/usr/bin/env python3
"""switch.py: gevent greenlet switch cost (peer of bench/switch.c and
bench/peers/go/switch.go).

    switch.py [N=300000]

Two greenlets (gevent.spawn) each call gevent.sleep(0) N times and count
their iterations.  gevent.sleep(0) is gevent's documented way to yield to
the other runnable greenlets: it queues the caller's wake-up as a loop
callback and switches to the hub, which runs the queued callbacks in order,
so each yield resumes the other greenlet (greenlet -> hub -> greenlet: two
greenlet.switch() calls under the hood, one "switch" as the C and Go
versions count it).  Result: elapsed / (2N) ns per switch, spawns and
joins included as in bench/switch.c.

The default N is 300,000, not 10,000,000: Python runs the loops, so one
switch costs microseconds, and this keeps the timed run near 1-2 s.  One
untimed warm-up run of N/20 first, as bench/switch.c does.
Self-check: both loops must report exactly N completed iterations.
Prints RESULT bench=switch impl=gevent threads=1 value=<ns> unit=ns_per_switch
check=ok|FAIL (exit 1 on FAIL).
"""
import sys
import time

import _peer

_peer.need_gevent()
import gevent


def yielder(n, done, k):
    sleep = gevent.sleep
    for _ in range(n):
        sleep(0)
        done[k] += 1


def pingpong(n):
    """Two yielders of n iterations; returns (elapsed ns, [count0, count1])."""
    done = [0, 0]
    t0 = time.perf_counter_ns()
    a = gevent.spawn(yielder, n, done, 0)
    b = gevent.spawn(yielder, n, done, 1)
    gevent.joinall([a, b], raise_error=True)
    return time.perf_counter_ns() - t0, done


def main():
    n = _peer.pos_arg(1, 300000, "usage: switch.py [N>0]")
    pingpong(max(n // 20, 1))  # warm-up
    el, done = pingpong(n)
    ns = el / (2 * n)
    ok = done[0] == n and done[1] == n
    if not ok:
        sys.stderr.write("switch: loops completed %d and %d iterations, want %d\n"
                         % (done[0], done[1], n))
    print("RESULT bench=switch impl=gevent threads=1 value=%.2f unit=ns_per_switch check=%s"
          % (ns, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
