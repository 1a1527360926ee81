"""_peer.py: what the gevent peer scripts share (imported from their own
directory, which Python puts first on sys.path).

need_gevent(): exits 2 with a clear line when this python3 cannot import
gevent (Debian's python3-gevent serves /usr/bin/python3 only; another
python3 first on PATH may lack it).
pos_arg(i, default, usage): sys.argv[i] as an int > 0, default when it is
absent; anything else prints `usage` to stderr and exits 2.
"""
import sys


def need_gevent():
    try:
        import gevent  # noqa: F401  (only whether it imports)
    except ImportError:
        sys.stderr.write("gevent: cannot import gevent with %s (install python3-gevent "
                         "and run this with the python3 that has it)\n" % sys.executable)
        sys.exit(2)


def pos_arg(i, default, usage):
    if len(sys.argv) <= i:
        return default
    try:
        v = int(sys.argv[i])
    except ValueError:
        v = 0
    if v <= 0:
        sys.stderr.write(usage if usage.endswith("\n") else usage + "\n")
        sys.exit(2)
    return v
