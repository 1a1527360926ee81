/* greenhub/io.h — green I/O: blocking-style calls that park only the
 * calling greenlet while the hub runs others.
 *
 * Each mirror below (gh_read, gh_accept, ...) makes the system call it is
 * named after first, and only when that would block (EAGAIN) parks the
 * greenlet until the descriptor is ready, then tries again.  It returns
 * what the system call returns and sets errno as it does, plus:
 *   ETIMEDOUT  the greenlet's deadline scope (gh_timeout_begin) expired;
 *   ECANCELED  the greenlet was killed (gh_kill);
 *   EBADF      the descriptor was closed with gh_close while it waited.
 * On a plain thread (outside any greenlet) the same calls block the thread
 * (in poll(2)), honouring the thread's deadline scope.
 *
 * One exception to "the call first": after a read-side call (gh_read,
 * gh_readv, gh_recv, gh_recvfrom) on a TCP socket returned fewer bytes
 * than asked, it emptied the descriptor, and the next such call on it
 * from the same hub waits for readiness before its call, saving the read
 * that would fail with EAGAIN (as Tokio clears readiness after a short
 * read; a request/response connection then costs two system calls per
 * round trip, not three).  What it returns is unchanged: if that wait
 * ends with a deadline or a kill, the call is made anyway and its data
 * wins.  MSG_DONTWAIT and MSG_PEEK calls never wait first, nor do calls on
 * other descriptors (whose short reads may leave data queued: a unix
 * socket at a message carrying descriptors, a pipe in packet mode, a
 * pty), nor any call after the peer hung up.  gh_recv and gh_recvfrom
 * with MSG_WAITALL on a stream wait until len bytes came, EOF or an
 * error, as a blocking socket does.
 *
 * Fairness.  A greenlet whose calls never have to wait (a fast peer, a
 * file) would never give up its hub; so after 128 successful mirror calls
 * in a row without parking, a call yields once (gh_yield) before it
 * returns its result, as Tokio's cooperative budget does.
 *
 * Descriptors.  The first green call on a descriptor switches it to
 * O_NONBLOCK underneath (once; the mirrors still wait, whatever the mode:
 * they are the blocking-style API, like Go's net.Conn).  Pass MSG_DONTWAIT
 * to gh_recv/gh_send/gh_recvfrom/gh_sendto for a call that never waits.
 * Descriptors the mirrors create (gh_accept, gh_accept4, gh_tcp_listen,
 * gh_tcp_dial) are non-blocking and close-on-exec.  SIGPIPE never kills
 * the process: gh_send and gh_sendto pass MSG_NOSIGNAL, and the first green
 * call ignores SIGPIPE process-wide if its disposition is still the
 * default (writes to a closed peer then fail with EPIPE, as in Go).
 *
 * Close a descriptor that greenlets have waited on with gh_close, never
 * with close(2) directly: gh_close wakes every greenlet waiting on it (on
 * any hub) with EBADF and retires the readiness watch each hub keeps for
 * it before the number can be reused.  (A descriptor closed behind the
 * library's back leaves a stale watch and a stale "non-blocking" note: a
 * new descriptor that reuses the number may then never report readiness,
 * or block its hub.  Every descriptor given to a green call must be closed
 * with gh_close.)  A plain thread blocked in a green call on the
 * descriptor is woken the same way (EBADF); one that starts to wait while
 * a gh_close of it is under way gets EBADF at once.  (Each such thread
 * keeps one eventfd for this, closed when the thread exits; if none can
 * be made, its waits are plain poll(2), which a close does not end.) */
#ifndef GREENHUB_IO_H
#define GREENHUB_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct addrinfo;

#ifndef GH_API
#define GH_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Events for gh_wait_fd (or'ed). */
#define GH_READ  1   /* readable, or a connection to accept, or hung up */
#define GH_WRITE 2   /* writable, or a connect finished */

/* Parks until fd is ready for one of `events`, for at most timeout_ms (-1
 * forever, 0 polls).  Returns 0 when ready (or when the descriptor reports
 * an error or hang-up: the next call on it tells which); ETIMEDOUT;
 * ECANCELED; EBADF if fd is not open or was closed with gh_close meanwhile;
 * EINVAL for fd < 0, events not within GH_READ|GH_WRITE or empty, or
 * timeout_ms < -1.  A regular file is always ready.  Within a deadline
 * scope, waits no longer than the scope allows (ETIMEDOUT). */
GH_API int gh_wait_fd(int fd, int events, int64_t timeout_ms);

/* Mirrors of the system calls of the same names (see above). */
GH_API ssize_t gh_read(int fd, void *buf, size_t count);
GH_API ssize_t gh_write(int fd, const void *buf, size_t count);
GH_API ssize_t gh_readv(int fd, const struct iovec *iov, int iovcnt);
GH_API ssize_t gh_writev(int fd, const struct iovec *iov, int iovcnt);
GH_API ssize_t gh_recv(int fd, void *buf, size_t len, int flags);
GH_API ssize_t gh_send(int fd, const void *buf, size_t len, int flags);
GH_API ssize_t gh_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen);
GH_API ssize_t gh_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen);
/* Waits for out_fd to be writable when it would block; in_fd is read as
 * sendfile(2) reads it (a regular file does not wait). */
GH_API ssize_t gh_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
/* The new descriptor is non-blocking and close-on-exec.  Out of
 * descriptors (EMFILE, ENFILE) it fails as accept does, but only after
 * waiting up to 100 ms for a gh_close to free one: a server loop that
 * retries then neither spins nor stalls, and serves again as soon as
 * descriptors free up. */
GH_API int gh_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
/* flags as accept4(2); SOCK_NONBLOCK and SOCK_CLOEXEC are always added. */
GH_API int gh_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* Connects, waiting for the handshake: returns 0, or -1 with the error the
 * connection failed with (ECONNREFUSED, ETIMEDOUT from the kernel, ...) or
 * one of the waits' errors above. */
GH_API int gh_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* Closes fd after waking its waiters with EBADF and retiring every hub's
 * watch on it (see above).  Returns what close(2) returns; -1 and EBADF if
 * another gh_close of fd is in progress. */
GH_API int gh_close(int fd);

/* ---- TCP helpers ---------------------------------------------------------- */

/* A listening TCP socket on host:port (host NULL or "" = every address;
 * port is a service string as for getaddrinfo, "0" picks a free port),
 * with SO_REUSEADDR, non-blocking and close-on-exec.  backlog <= 0 means
 * SOMAXCONN.  Returns the fd, or -1 and errno (EINVAL for a NULL port, the
 * errno of the last address tried, ENOENT if host does not resolve). */
GH_API int gh_tcp_listen(const char *host, const char *port, int backlog);
/* As gh_tcp_listen, with SO_REUSEPORT too when reuseport != 0 (several
 * listeners, e.g. one per hub, on one port; the kernel spreads
 * connections over them). */
GH_API int gh_tcp_listen_opts(const char *host, const char *port, int backlog,
                              int reuseport);
/* Connects to host:port, trying every address the name resolves to, each
 * with what remains of timeout_ms (-1: no limit but the kernel's).  Returns
 * a connected non-blocking, close-on-exec fd with TCP_NODELAY set, or -1
 * and errno: the last address's error, ETIMEDOUT, ECANCELED, EINVAL (NULL
 * host or port, timeout_ms < -1), ENOENT when the name does not resolve,
 * EAGAIN when the resolver failed for now.  The lookup counts against
 * timeout_ms. */
GH_API int gh_tcp_dial(const char *host, const char *port, int64_t timeout_ms);

/* ---- work that cannot be made non-blocking -------------------------------- */

/* getaddrinfo(3) run on libuv's thread pool while the greenlet parks (on
 * a plain thread: getaddrinfo itself).  A node that is an IPv4 or IPv6
 * address with a port number (or NULL) for service, and hints without
 * AI_ADDRCONFIG, needs no lookup: it is answered at once, on the hub,
 * without the pool (gh_tcp_listen and gh_tcp_dial ask this way for an
 * address literal, so a server on "0.0.0.0" starts no pool threads).
 * Same arguments and results: 0 and
 * *res (free it with freeaddrinfo), or an EAI_* code; EAI_SYSTEM with
 * errno ETIMEDOUT (deadline scope) or ECANCELED (gh_kill) when the wait
 * was cut short -- the lookup then finishes and is freed on its own. */
GH_API int gh_getaddrinfo(const char *node, const char *service,
                          const struct addrinfo *hints, struct addrinfo **res);

/* Runs fn(arg) on libuv's thread pool while the calling greenlet parks and
 * its hub runs other greenlets: for file I/O and C calls that block and
 * cannot be made not to.  *result (if result is not NULL) receives fn's
 * return value.  On a plain thread fn runs right there.
 *
 * fn may use the caller's memory, so the call always waits for fn to
 * return: a gh_kill or deadline scope does not cut it short (the greenlet
 * sees them at its next wait), and gh_run returns only once every fn
 * started has returned.  The pool has 4 threads unless
 * UV_THREADPOOL_SIZE says otherwise (read once, at its first use); calls
 * beyond that queue.  Returns 0, EINVAL for a NULL fn, or ENOMEM. */
GH_API int gh_blocking(void *(*fn)(void *arg), void *arg, void **result);

/* ---- signals ------------------------------------------------------------------ */

/* Waits until the process receives signal signum, for at most timeout_ms
 * (-1 forever; 0 only polls).  Every greenlet and thread waiting for
 * signum wakes.  For a clean shutdown:
 *
 *     gh_signal_wait(SIGTERM, -1);   // in a greenlet of its own
 *     ... stop accepting, drain, return from main ...
 *
 * From the first wait for signum until the runtime stops, greenhub catches
 * signum (uv_signal): it no longer takes its default action or reaches a
 * handler of the program's, and one that arrives while nobody waits is
 * kept, pending, for the next wait, which returns 0 at once (several that
 * arrive meanwhile count once, as for a pending POSIX signal; a wait with
 * timeout_ms 0 takes it too).  So a loop of short waits with work in
 * between never misses one.  When the runtime stops, the
 * disposition found at the first wait is put back.  (Outside a runtime, a
 * plain thread catches it only during its wait.)  Returns 0; ETIMEDOUT;
 * ECANCELED (also for waiters left when the runtime stops); EINVAL for a
 * signal that cannot be caught (SIGKILL, SIGSTOP) or out of range, or
 * timeout_ms < -1; ENOMEM. */
GH_API int gh_signal_wait(int signum, int64_t timeout_ms);

/* ---- child processes ------------------------------------------------------ */

typedef struct gh_process gh_process;

enum { GH_STDIO_INHERIT = 0, GH_STDIO_PIPE = 1, GH_STDIO_NULL = 2 };

typedef struct gh_process_opts {
    char *const *argv;   /* required; argv[0] is the program (PATH searched) */
    char *const *envp;   /* NULL: this process's environment */
    const char *cwd;     /* NULL: this process's working directory */
    int stdio[3];        /* stdin, stdout, stderr: GH_STDIO_* (0: inherit) */
} gh_process_opts;

/* Starts a child.  For each GH_STDIO_PIPE slot, gh_process_fd gives this
 * side's end of a pipe (non-blocking, close-on-exec) for gh_read/gh_write;
 * those fds are the caller's to gh_close (closing the stdin pipe gives the
 * child EOF).  Returns the process, or NULL and errno: EINVAL (no argv, bad
 * stdio), ENOENT/EACCES (the program), EMFILE, ENOMEM. */
GH_API gh_process *gh_process_spawn(const gh_process_opts *opts);
/* The child's pid (-1 for NULL). */
GH_API int gh_process_pid(const gh_process *p);
/* This side's end of pipe `which` (0 stdin, 1 stdout, 2 stderr), or -1. */
GH_API int gh_process_fd(const gh_process *p, int which);
/* Waits until the child exits, for at most timeout_ms (-1 forever, 0
 * polls); a greenlet parks, a plain thread blocks.  *status (if not NULL)
 * receives waitpid(2)'s status: test it with WIFEXITED, WEXITSTATUS,
 * WIFSIGNALED, WTERMSIG.  May be called again, from anywhere, after it
 * returned 0.  Returns 0; ETIMEDOUT; ECANCELED; ECHILD if the child was
 * reaped behind greenhub's back (SIGCHLD ignored, a waitpid(-1) elsewhere);
 * EINVAL for NULL or timeout_ms < -1.  The child starts with SIGPIPE at
 * its default disposition, whatever this process does with it. */
GH_API int gh_process_wait(gh_process *p, int64_t timeout_ms, int *status);
/* Sends signum to the child (through a pidfd: never to another process
 * that reused its pid).  Returns 0, EINVAL, or the error of
 * pidfd_send_signal (ESRCH once the child has been waited for). */
GH_API int gh_process_kill(gh_process *p, int signum);
/* Releases p (not the pipe fds).  Wait for the child first: one freed
 * while it runs is never reaped by greenhub (a zombie when it exits,
 * unless the program reaps it). */
GH_API void gh_process_free(gh_process *p);

#ifdef __cplusplus
}
#endif
#endif
