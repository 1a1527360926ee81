/* io/real.h — the real libc functions, resolved once into one table.
 *
 * With the interposition layer loaded (libgreenhub_hooks or
 * libgreenhub_preload, see io/interpose.c), the names read, write, close...
 * are greenhub's own wrappers for every caller in the process, greenhub
 * included.  So greenhub's own code calls the libc functions it would
 * otherwise intercept through GH_REAL(name), never by name: a green read
 * made by gh_read must not re-enter the layer.
 *
 * The table is filled from libc itself (dlopen of LIBC_SO with
 * RTLD_NOLOAD, then dlsym), not with RTLD_NEXT, whose answer depends on
 * where libgreenhub sits in the search order relative to the hooks.  It
 * is filled once, by gh__real_init() (a constructor, and the first hook
 * that runs if it runs earlier); an entry read before that falls back to
 * the raw system call (gh__real_boot, io/real.c).  gh_syscall_override()
 * (<greenhub/interpose.h>) replaces an entry for fault injection: every
 * entry is an atomic pointer, read with a relaxed load (a plain mov). */
#ifndef GH_REAL_H
#define GH_REAL_H

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* X(return type, name, parameter list, argument list): every function the
 * layer intercepts (those whose hooks io/hooks.c writes out by hand, the
 * variadic fcntl and ioctl and the void closefrom, in
 * GH_REAL_LIST_VARIADIC).  The order is the table's; nothing depends on it. */
#define GH_REAL_LIST(X) GH_REAL_LIST_PLAIN(X) GH_REAL_LIST_VARIADIC(X) GH_REAL_LIST_INTERNAL(X)
/* Functions greenhub calls through the table without hooking them: only
 * so that tests can make them fail (gh_syscall_override). */
#define GH_REAL_LIST_INTERNAL(X)                                                \
    X(int, epoll_ctl, (int ep, int op, int fd, struct epoll_event *e), (ep, op, fd, e))
#define GH_REAL_LIST_VARIADIC(X)                                                \
    X(int, fcntl, (int fd, int cmd, ...), (fd, cmd, arg))                       \
    X(int, ioctl, (int fd, unsigned long req, ...), (fd, req, arg))             \
    X(void, closefrom, (int low), (low))   /* void: its hook is written out too */
#define GH_REAL_LIST_PLAIN(X)                                                   \
    X(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n))               \
    X(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n))        \
    X(ssize_t, readv, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt)) \
    X(ssize_t, writev, (int fd, const struct iovec *iov, int cnt), (fd, iov, cnt)) \
    X(ssize_t, pread, (int fd, void *buf, size_t n, off_t off), (fd, buf, n, off)) \
    X(ssize_t, pwrite, (int fd, const void *buf, size_t n, off_t off), (fd, buf, n, off)) \
    X(ssize_t, recv, (int fd, void *buf, size_t n, int fl), (fd, buf, n, fl))   \
    X(ssize_t, recvfrom, (int fd, void *buf, size_t n, int fl, struct sockaddr *a, \
                          socklen_t *al), (fd, buf, n, fl, a, al))              \
    X(ssize_t, recvmsg, (int fd, struct msghdr *m, int fl), (fd, m, fl))        \
    X(ssize_t, send, (int fd, const void *buf, size_t n, int fl), (fd, buf, n, fl)) \
    X(ssize_t, sendto, (int fd, const void *buf, size_t n, int fl,              \
                        const struct sockaddr *a, socklen_t al), (fd, buf, n, fl, a, al)) \
    X(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl))  \
    X(int, accept, (int fd, struct sockaddr *a, socklen_t *al), (fd, a, al))    \
    X(int, accept4, (int fd, struct sockaddr *a, socklen_t *al, int fl), (fd, a, al, fl)) \
    X(int, connect, (int fd, const struct sockaddr *a, socklen_t al), (fd, a, al)) \
    X(int, close, (int fd), (fd))                                               \
    X(int, shutdown, (int fd, int how), (fd, how))                              \
    X(int, poll, (struct pollfd *p, nfds_t n, int ms), (p, n, ms))              \
    X(int, ppoll, (struct pollfd *p, nfds_t n, const struct timespec *ts,       \
                   const sigset_t *mask), (p, n, ts, mask))                     \
    X(int, select, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv), \
      (n, r, w, e, tv))                                                         \
    X(int, pselect, (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, \
                     const sigset_t *mask), (n, r, w, e, ts, mask))             \
    X(unsigned, sleep, (unsigned s), (s))                                       \
    X(int, usleep, (useconds_t us), (us))                                       \
    X(int, nanosleep, (const struct timespec *req, struct timespec *rem), (req, rem)) \
    X(int, clock_nanosleep, (clockid_t c, int fl, const struct timespec *req,   \
                             struct timespec *rem), (c, fl, req, rem))          \
    X(int, getaddrinfo, (const char *node, const char *svc,                     \
                         const struct addrinfo *hints, struct addrinfo **res),  \
      (node, svc, hints, res))                                                  \
    X(int, setsockopt, (int fd, int lvl, int opt, const void *v, socklen_t vl), \
      (fd, lvl, opt, v, vl))                                                    \
    X(int, dup, (int fd), (fd))                                                 \
    X(int, dup2, (int fd, int fd2), (fd, fd2))                                  \
    X(int, dup3, (int fd, int fd2, int fl), (fd, fd2, fl))                      \
    X(int, socket, (int dom, int type, int proto), (dom, type, proto))          \
    X(int, socketpair, (int dom, int type, int proto, int sv[2]), (dom, type, proto, sv)) \
    X(int, pipe, (int p[2]), (p))                                               \
    X(int, pipe2, (int p[2], int fl), (p, fl))                                  \
    X(int, close_range, (unsigned first, unsigned last, int fl), (first, last, fl)) \
    X(int, fclose, (FILE *f), (f))                                              \
    X(int, pclose, (FILE *f), (f))                                              \
    X(FILE *, fdopen, (int fd, const char *mode), (fd, mode))                   \
    X(int, recvmmsg, (int fd, struct mmsghdr *v, unsigned n, int fl, struct timespec *ts), \
      (fd, v, n, fl, ts))                                                       \
    X(int, sendmmsg, (int fd, struct mmsghdr *v, unsigned n, int fl), (fd, v, n, fl)) \
    X(int, epoll_wait, (int ep, struct epoll_event *ev, int max, int ms), (ep, ev, max, ms)) \
    X(int, epoll_pwait, (int ep, struct epoll_event *ev, int max, int ms,       \
                         const sigset_t *m), (ep, ev, max, ms, m))              \
    X(int, epoll_pwait2, (int ep, struct epoll_event *ev, int max,              \
                          const struct timespec *ts, const sigset_t *m), (ep, ev, max, ts, m)) \
    X(struct hostent *, gethostbyname, (const char *name), (name))              \
    X(struct hostent *, gethostbyname2, (const char *name, int af), (name, af)) \
    X(struct hostent *, gethostbyaddr, (const void *a, socklen_t len, int type), (a, len, type)) \
    X(int, gethostbyname_r, (const char *name, struct hostent *ret, char *buf, size_t buflen, \
                             struct hostent **res, int *herr),                  \
      (name, ret, buf, buflen, res, herr))                                      \
    X(int, gethostbyname2_r, (const char *name, int af, struct hostent *ret, char *buf, \
                              size_t buflen, struct hostent **res, int *herr),  \
      (name, af, ret, buf, buflen, res, herr))                                  \
    X(int, gethostbyaddr_r, (const void *a, socklen_t len, int type, struct hostent *ret, \
                             char *buf, size_t buflen, struct hostent **res, int *herr), \
      (a, len, type, ret, buf, buflen, res, herr))                              \
    X(int, getnameinfo, (const struct sockaddr *sa, socklen_t salen, char *host, \
                         socklen_t hostlen, char *serv, socklen_t servlen, int fl), \
      (sa, salen, host, hostlen, serv, servlen, fl))                            \
    GH_REAL_LIST_SIGNALS(X)

/* sigaction and signal (io/interpose_signal.c), except under
 * ThreadSanitizer: its runtime calls sigaction while it initialises,
 * before anything instrumented may run, and it runs the program's
 * handlers from its own code anyway, where no wrapper of ours can be. */
#ifdef __SANITIZE_THREAD__
#define GH_REAL_LIST_SIGNALS(X)
#else
#define GH_REAL_LIST_SIGNALS(X)                                                 \
    X(int, sigaction, (int sig, const struct sigaction *act, struct sigaction *old), \
      (sig, act, old))                                                          \
    X(sighandler_t, signal, (int sig, sighandler_t h), (sig, h))
#endif

/* The function types: gh__real_read_fn, ... */
#define GH_REAL_TYPE(ret, name, params, args) typedef ret (*gh__real_##name##_fn) params;
GH_REAL_LIST(GH_REAL_TYPE)
#undef GH_REAL_TYPE

struct gh__real_table {
#define GH_REAL_FIELD(ret, name, params, args) _Atomic(gh__real_##name##_fn) name;
    GH_REAL_LIST(GH_REAL_FIELD)
#undef GH_REAL_FIELD
};

/* Any thread.  Entries start as the raw-system-call fallbacks of
 * io/real.c and are replaced once by gh__real_init() (constructor). */
extern struct gh__real_table gh__real;

/* How many entries an override replaces now (gh_syscall_override).  The
 * waits look before they park while it is not 0: an overridden call's
 * EAGAIN may be a lie, and an edge-triggered wait after a lie would wait
 * for an edge that already came (poll.c). */
extern _Atomic int gh__real_overrides;

/* The function to call for `name` now (libc's, or an override). */
#define GH_REAL(name) \
    (atomic_load_explicit(&gh__real.name, memory_order_relaxed))

/* The layer's side of each hook (io/interpose.c): exported from
 * libgreenhub for io/hooks.c, not part of the public API. */
#define GH_IP_DECL(ret, name, params, args) \
    __attribute__((visibility("default"))) ret gh__ip_##name params;
GH_REAL_LIST_PLAIN(GH_IP_DECL)
GH_REAL_LIST_VARIADIC(GH_IP_DECL)
#undef GH_IP_DECL
/* The hooks' constructor: the layer is loaded (gh_interposed). */
__attribute__((visibility("default"))) void gh__ip_loaded(void);

/* Above 0 while greenhub's own code, on this thread, calls into a library
 * that makes intercepted calls itself: libuv's uv_poll_init sets O_NONBLOCK
 * with ioctl(FIONBIO), which the layer would otherwise take for the
 * caller's wish.  The hooks then pass everything through.  Never held
 * across a switch (a greenlet may resume on another thread). */
extern __thread int gh__ip_bypass __attribute__((tls_model("initial-exec")));
#define GH_IP_BYPASS(stmt) \
    do { gh__ip_bypass++; stmt; gh__ip_bypass--; } while (0)

/* Resolves the table from libc, once; any thread, idempotent. */
void gh__real_init(void);
/* True once gh__real_init() has completed. */
bool gh__real_ready(void);

#endif
