#!/usr/bin/env python3
"""sync.py: gevent's queue ping-pong and its lock, contended and not (peer
of bench/sync.c and bench/peers/go/sync.go).  Modes:

    sync.py pingpong [N=200000]
        Greenlets A and B (gevent.spawn) bounce a token through two
        gevent.queue.Queue(maxsize=1): A puts i on q1 and gets the reply
        from q2; B gets from q1 and puts x + 1 on q2.  ns per round trip
        (timed inside A, first put to last get).
        Self-check: every reply is the request + 1, B handled exactly N
        tokens, the replies sum to N(N+1)/2 and both queues end empty.

    sync.py mutex [G=100] [K=10000]
        The mutex is gevent.lock.BoundedSemaphore() (value 1; the class
        gevent's own threading.Lock replacement, gevent.thread.LockType,
        derives from), taken with `with lock:`.  The main greenlet spawns G
        greenlets that each do K lock-protected increments of a plain
        counter, then joins them (gevent.joinall).  ns per lock+unlock =
        elapsed / (G*K), spawns and joins included, as in bench/sync.c.
        Self-check: counter == G*K exactly.
        NB gevent never preempts a greenlet and nothing in the critical
        section blocks, so each greenlet runs its K increments in one go:
        the lock is never found taken, and this measures the uncontended
        path (plus spawns and joins) on one thread, where the C and Go
        versions contend on every core.  An INFO line counts the greenlets
        whose increments were interleaved with another's (0 expected).

    sync.py uncontended [N=2000000]
        One greenlet does N `with lock:` (BoundedSemaphore) acquire+release
        pairs, incrementing a counter inside.  ns per lock+unlock.
        Self-check: counter == N exactly and the lock ends unlocked.

    sync.py xping [N]
        bench/sync.c's cross-hub event ping-pong has no gevent version:
        gevent runs its greenlets on one thread.  Prints one line,
        `gevent: one thread only, no cross-hub ping-pong`, and exits 0.

Defaults are smaller than the C and Go ones (10,000,000 uncontended pairs,
1,000,000 round trips): Python runs the loops, so each step costs
hundreds of ns to microseconds; these keep a mode near 1-2 s.  Every mode
runs once untimed first with 1/20 of the work, as bench/sync.c does.
Prints RESULT bench=pingpong|mutex|uncontended impl=gevent threads=1
value=<ns> unit=ns_per_roundtrip|ns_per_lock check=ok|FAIL (exit 1 on FAIL).
"""
import sys
import time

import _peer

_peer.need_gevent()
import gevent
from gevent.lock import BoundedSemaphore
from gevent.queue import Queue


def pingpong(n):
    q1, q2 = Queue(maxsize=1), Queue(maxsize=1)
    st = {"bad": 0, "sum": 0, "handled": 0, "ns": 0}

    def a():
        bad = total = 0
        t0 = time.perf_counter_ns()
        for i in range(n):
            q1.put(i)
            r = q2.get()
            if r != i + 1:
                bad += 1
            total += r
        st["ns"] = time.perf_counter_ns() - t0
        st["bad"], st["sum"] = bad, total

    def b():
        handled = 0
        for _ in range(n):
            x = q1.get()
            q2.put(x + 1)
            handled += 1
        st["handled"] = handled

    gevent.joinall([gevent.spawn(a), gevent.spawn(b)], raise_error=True)
    want = n * (n + 1) // 2
    ok = (st["bad"] == 0 and st["handled"] == n and st["sum"] == want
          and q1.qsize() == 0 and q2.qsize() == 0)
    if not ok:
        sys.stderr.write("sync pingpong: bad replies %d, B handled %d of %d, sum %d (want %d)\n"
                         % (st["bad"], st["handled"], n, st["sum"], want))
    return st["ns"] / n, ok


def mutex(g, k):
    lock = BoundedSemaphore()
    st = {"counter": 0, "interleaved": 0}

    def incrementer():
        first = st["counter"]
        for _ in range(k):
            with lock:
                st["counter"] += 1
        if st["counter"] - first != k:  # another greenlet ran meanwhile
            st["interleaved"] += 1

    t0 = time.perf_counter_ns()
    gs = [gevent.spawn(incrementer) for _ in range(g)]
    gevent.joinall(gs, raise_error=True)
    ns = (time.perf_counter_ns() - t0) / (g * k)
    ok = st["counter"] == g * k and not lock.locked()
    if not ok:
        sys.stderr.write("sync mutex: counter %d, want %d\n" % (st["counter"], g * k))
    return ns, ok, st["interleaved"]


def uncontended(n):
    lock = BoundedSemaphore()
    counter = 0
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with lock:
            counter += 1
    ns = (time.perf_counter_ns() - t0) / n
    ok = counter == n and not lock.locked()
    if not ok:
        sys.stderr.write("sync uncontended: counter %d, want %d\n" % (counter, n))
    return ns, ok


USAGE = ("usage: sync.py pingpong [N>0] | sync.py mutex [G>0] [K>0] | "
         "sync.py uncontended [N>0] | sync.py xping")


def usage():
    sys.stderr.write(USAGE + "\n")
    sys.exit(2)


def arg(i, default):
    return _peer.pos_arg(i, default, USAGE)


def warm(n):
    return max(n // 20, 1)


def main():
    if len(sys.argv) < 2:
        usage()
    mode = sys.argv[1]
    if mode == "pingpong":
        n = arg(2, 200000)
        _, ok1 = pingpong(warm(n))
        ns, ok = pingpong(n)
        ok = ok and ok1
        unit = "ns_per_roundtrip"
    elif mode == "mutex":
        g, k = arg(2, 100), arg(3, 10000)
        _, ok1, _ = mutex(g, warm(k))
        ns, ok, interleaved = mutex(g, k)
        ok = ok and ok1
        unit = "ns_per_lock"
        print("INFO bench=mutex greenlets=%d increments=%d interleaved_greenlets=%d"
              % (g, k, interleaved))
    elif mode == "uncontended":
        n = arg(2, 2000000)
        _, ok1 = uncontended(warm(n))
        ns, ok = uncontended(n)
        ok = ok and ok1
        unit = "ns_per_lock"
    elif mode == "xping":
        print("gevent: one thread only, no cross-hub ping-pong")
        return 0
    else:
        usage()
    print("RESULT bench=%s impl=gevent threads=1 value=%.2f unit=%s check=%s"
          % (mode, ns, unit, "ok" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
