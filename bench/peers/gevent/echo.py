#!/usr/bin/env python3
"""echo.py: the echo benchmark's gevent peer: gevent.server.StreamServer,
one greenlet per connection, blocking-style recv/sendall on gevent's
cooperative socket (the greenlet parks in the hub's libev loop until the
socket is ready), one thread.  The peer of bench/echo_server.c
(--greenlets) and bench/peers/go/echo.go, with their command line:

    echo.py [--port P] [--duration S]

Listens on 127.0.0.1:P (default 7000; backlog socket.SOMAXCONN, as the
greenhub server; SO_REUSEADDR, StreamServer's default) and prints

    INFO echo_server listening=127.0.0.1:P pid=<pid>

once it accepts.  Stops on SIGTERM/SIGINT (gevent.signal_handler) or after
S seconds (0, the default: only on a signal): closes the listener, prints

    INFO echo_server mode=gevent hubs=1 accepted=.. closed=.. bytes=.. resets=.. errors=..

and exits 1 if a connection failed with an unexpected error (a reset or a
broken pipe from the peer is counted in resets, not a failure), 0
otherwise, without waiting for connections still open (as go_echo).  The
load generator (bench/echo_load.c) checks the bytes.

The handler, as the greenhub server's handle(): set TCP_NODELAY (the other
servers do too), then recv up to 16384 bytes (the greenhub server's
buffer), sendall them, until EOF; close; add the connection to the totals
once.  gevent's sendall() asks for SO_SNDBUF first (it sends in chunks
of at least 1 MiB), so each echo costs a getsockopt besides its
recvfrom/sendto: part of the idiomatic gevent cost, left in.
`accepted` counts connections whose handler greenlet started
(StreamServer accepts and spawns; its accept loop backs off by itself on
EMFILE and the like).  Raises RLIMIT_NOFILE's soft limit to the hard one
at start, as the greenhub server does.
"""
import argparse
import os
import signal
import socket
import sys

import _peer

_peer.need_gevent()
import gevent
from gevent.event import Event
from gevent.server import StreamServer

BUF_SIZE = 16384  # bytes read at once: the greenhub server's handler buffer

totals = {"accepted": 0, "closed": 0, "bytes": 0, "resets": 0, "errors": 0}


def handle(sock, _address):
    totals["accepted"] += 1
    echoed = 0
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(BUF_SIZE)
            if not data:
                break
            sock.sendall(data)
            echoed += len(data)
    except (ConnectionResetError, BrokenPipeError):
        totals["resets"] += 1
    except OSError as e:
        sys.stderr.write("gevent_echo: connection failed: %s\n" % e)
        totals["errors"] += 1
    finally:
        sock.close()
        totals["bytes"] += echoed
        totals["closed"] += 1


def raise_nofile():
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def main():
    ap = argparse.ArgumentParser(prog="echo.py", description="gevent echo server (bench/echo.sh peer)")
    ap.add_argument("--port", type=int, default=7000, help="TCP port on 127.0.0.1")
    ap.add_argument("--duration", type=int, default=0,
                    help="seconds to serve (0: until SIGTERM/SIGINT)")
    opt = ap.parse_args()
    raise_nofile()

    stop = Event()
    # Kept referenced until cancelled, as gevent.signal_handler's
    # documentation advises.
    handlers = [gevent.signal_handler(s, stop.set) for s in (signal.SIGTERM, signal.SIGINT)]
    server = StreamServer(("127.0.0.1", opt.port), handle, backlog=socket.SOMAXCONN)
    try:
        server.start()
    except OSError as e:
        sys.stderr.write("gevent_echo: listen on 127.0.0.1:%d: %s\n" % (opt.port, e))
        return 2
    print("INFO echo_server listening=127.0.0.1:%d pid=%d" % (opt.port, os.getpid()), flush=True)
    stop.wait(opt.duration if opt.duration > 0 else None)
    server.close()
    for h in handlers:
        h.cancel()
    print("INFO echo_server mode=gevent hubs=1 accepted=%(accepted)d closed=%(closed)d "
          "bytes=%(bytes)d resets=%(resets)d errors=%(errors)d" % totals, flush=True)
    return 1 if totals["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
