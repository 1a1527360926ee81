/* io/sys.c — the mirrors of the system calls (see <greenhub/io.h>).
 *
 * Each one: make sure the fd is non-blocking (once per fd), make the call,
 * and only on EAGAIN wait for readiness (gh__io_wait: a greenlet parks, a
 * plain thread polls) and make it again.  Errors pass through with the
 * call's own errno; a failed wait sets errno to its reason.
 *
 * The I/O budget: a greenlet whose calls never meet EAGAIN (a fast peer,
 * a file, /dev/zero) would never park and would starve the other
 * greenlets of its hub.  So, as Tokio's cooperative budget does, a
 * greenlet that has made GH_IO_BUDGET successful mirror calls in a row
 * without giving up its hub yields once, after the call succeeded (its
 * data and return value are kept; errno too).  See budget_spend().
 *
 * Reads that wait first: a read of a byte stream that returned short
 * drained it, and the next read on the same fd would meet EAGAIN; so the
 * next read of it on that hub waits before its call instead (poll.c,
 * "Drained").  A request/response connection then costs a read and a
 * write per round trip, not a read, a write and a read that fails.  The wait is only a
 * hint: if it fails (deadline, kill, no memory for its timer) the call is
 * made anyway, and its success wins, so every read returns what a
 * call-first read would have; only a close (EBADF) is final, since the
 * number may already be another fd's. */
#include "io_internal.h"
#include "real.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The call itself: SYS(name, SYS_nr, args...).  On a hub thread the
 * mirrors make the system call directly instead of through libc's
 * wrapper.  In a process with more than one thread (every greenhub
 * process) glibc's read, write, send... are cancellation points that
 * switch the thread's cancel type on and off around the system call with
 * two atomic compare-and-swaps (__pthread_enable/disable_asynccancel):
 * 19 ns of a 157 ns EAGAIN read on this machine (a 2-thread process,
 * libc read against syscall()), 1.2% of the echo server's CPU at 1000
 * connections (perf), two of them per round trip.  A hub thread is
 * greenhub's own and nobody may cancel it, so it loses nothing.  A plain
 * thread keeps libc's call, and with it the cancellation point; so does
 * every call while gh_syscall_override replaces an entry (fault
 * injection must see it), and the sanitizer builds, whose interceptors
 * check the buffers (ASan) and see the synchronisation a socket carries
 * (TSan). */
#if defined(GH_ASAN) || defined(GH_TSAN)
enum { DIRECT_SYSCALLS = 0 };
#else
enum { DIRECT_SYSCALLS = 1 };
#endif
/* Any thread: true on a hub thread (greenlet or scheduler context).  The
 * overrides count is read relaxed, as GH_REAL reads the table. */
static inline bool sys_direct(void)
{
    return DIRECT_SYSCALLS && gh__hub_self() &&
           !atomic_load_explicit(&gh__real_overrides, memory_order_relaxed);
}
#define SYS(name, nr, ...) \
    (sys_direct() ? (ssize_t)syscall(nr, __VA_ARGS__) : (ssize_t)GH_REAL(name)(__VA_ARGS__))

/* Before a call on fd: non-blocking mode (else the call would block the
 * hub) and SIGPIPE ignored.  Returns 0, or -1 with errno. */
static int prepare(int fd)
{
    gh__io_sigpipe_once();
    int err = gh__fd_nonblock(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* Successful mirror calls a greenlet may make in a row, without giving
 * up its hub, before it yields.  Guessed, not measured: Tokio's 128.  The
 * cost is one yield per 128 calls, and nothing at all for a greenlet that
 * parks or yields on its own more often than that. */
enum { GH_IO_BUDGET = 128 };

/* Out of line: the common path stays a few loads and a compare. */
__attribute__((noinline, cold)) static void budget_yield(struct gh__io_hub *io)
{
    io->budget_used = 0;   /* in case nothing else runs meanwhile */
    int e = errno;
    /* Through the scheduler, which polls the hub's fds first: a greenlet
     * whose calls never wait must not keep its hub from noticing the
     * others' I/O (without it: once every 61 * 16 yields). */
    gh__yield_poll();
    errno = e;
}

/* After a mirror call that succeeded: counts it against the running
 * greenlet's budget, and yields when that is spent.  Nothing on a plain
 * thread (or in a hub's scheduler).
 *
 * "In a row" means: since the greenlet last got its hub.  The count is
 * kept per hub, not per greenlet (a greenlet has no io/ field), together
 * with the greenlet and the hub's switch counter it belongs to.  Every
 * switch-in bumps h->st.switches (set_running() in sched/hub.c), so while
 * the greenlet keeps its hub the counter stays put, and a park, a yield,
 * a migration to another hub and back, or another greenlet's calls all
 * show as a different counter (or greenlet) and start a fresh count: a
 * greenlet that parks at least every GH_IO_BUDGET calls never yields
 * here.  The greenlet is compared too, so a counter that stopped counting
 * could only cost extra yields, never starvation between greenlets.
 * Cost: the gh__hub_self() call, a relaxed load, two compares, an add. */
static inline void budget_spend(void)
{
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self;
    if (!h || !(self = h->current))
        return;
    struct gh__io_hub *io = h->io;
    uint64_t sw = atomic_load_explicit(&h->st.switches, memory_order_relaxed);
    if (io->budget_switches != sw || io->budget_g != self) {
        io->budget_switches = sw;
        io->budget_g = self;
        io->budget_used = 0;
    }
    if (++io->budget_used >= GH_IO_BUDGET)
        budget_yield(io);
}

static bool is_eagain(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

/* A call's own time limit (the interposition layer's SO_RCVTIMEO and
 * SO_SNDTIMEO): `at`, absolute CLOCK_MONOTONIC ns, 0 for none (the gh_*
 * mirrors).  A wait ended by it makes the call fail with EAGAIN, as a
 * blocking socket's timeout does; one ended by the deadline scope keeps
 * ETIMEDOUT. */
static int wait_at(int fd, int events, uint64_t at)
{
    if (!at)
        return gh__io_wait(fd, events, -1);
    uint64_t now = gh__now_ns();
    int64_t ms = at > now ? (int64_t)((at - now + 999999) / 1000000) : 0;
    int err = gh__io_wait(fd, events, ms);
    if (err == ETIMEDOUT) {
        const struct gh__dlscope *d = gh__dlscope_self();
        if (!d || !d->deadline_ns || d->deadline_ns > gh__now_ns())
            err = EAGAIN;
    }
    return err;
}

/* After a call failed with errno: 1 if it should be retried once fd is
 * ready for `events` (and the wait succeeded), 0 to return its failure
 * (errno set: the call's, or the wait's). */
static int again(int fd, int events, int flags, uint64_t at)
{
    if (!is_eagain(errno) || (flags & MSG_DONTWAIT))
        return 0;
    int err = wait_at(fd, events, at);
    if (err) {
        errno = err;
        return 0;
    }
    return 1;
}

/* Before a read-side call on fd: if the running greenlet's hub saw the
 * last read of fd drain it, waits for fd to be readable.  Returns 0 (make
 * the call) or the wait's errno. */
static int wait_first(int fd, int flags, uint64_t at)
{
    struct gh__hub *h = gh__hub_self();
    if ((flags & MSG_DONTWAIT) || !h || !h->current || !gh__io_drained_take(h, fd))
        return 0;
    return wait_at(fd, GH_READ, at);
}

/* After a read-side call that succeeded; short: it returned some bytes,
 * fewer than it asked for. */
static void read_done(int fd, bool short_read, int flags)
{
    if (short_read && !(flags & MSG_PEEK)) {
        struct gh__hub *h = gh__hub_self();
        if (h && h->current)
            gh__io_note_short(h, fd);
    }
    budget_spend();
}

/* The read side's loop: GREEN_CALL after wait_first, noting short reads.
 * A failed first wait stands only if the call has nothing to give (see
 * "Reads that wait first" above).  WANT, the bytes asked for, is
 * evaluated only after the call returned some (so its arguments are
 * valid: readv's iov). */
#define GREEN_READ(fd, want, flags, at, CALL)               \
    do {                                                    \
        if (prepare(fd) < 0)                                \
            return -1;                                      \
        int w_ = wait_first(fd, flags, at);                 \
        if (w_ == EBADF) {                                  \
            errno = w_;                                     \
            return -1;                                      \
        }                                                   \
        ssize_t r_ = (CALL);                                \
        if (r_ < 0 && w_ && is_eagain(errno)) {             \
            errno = w_;                                     \
            return -1;                                      \
        }                                                   \
        while (r_ < 0 && again(fd, GH_READ, flags, at))     \
            r_ = (CALL);                                    \
        if (r_ >= 0)                                        \
            read_done(fd, r_ > 0 && (size_t)r_ < (want), flags); \
        return r_;                                          \
    } while (0)

/* The retry loop every mirror shares: CALL is an expression of type
 * ssize_t, re-evaluated after each wait. */
#define GREEN_CALL(fd, events, flags, at, CALL)             \
    do {                                                    \
        if (prepare(fd) < 0)                                \
            return -1;                                      \
        ssize_t r_;                                         \
        while ((r_ = (CALL)) < 0 && again(fd, events, flags, at)) \
            ;                                               \
        if (r_ >= 0)                                        \
            budget_spend();                                 \
        return r_;                                          \
    } while (0)

/* Bytes iov asks for (saturating).  Only after a readv that succeeded:
 * then iov and iovcnt are valid. */
static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++)
        sum = iov[i].iov_len > SIZE_MAX - sum ? SIZE_MAX : sum + iov[i].iov_len;
    return sum;
}

/* The green calls, with a time limit `at` (see wait_at): the gh_*
 * mirrors pass 0, the interposition layer the fd's socket timeout. */
ssize_t gh__green_read(int fd, void *buf, size_t count, uint64_t at)
{
    GREEN_READ(fd, count, 0, at, SYS(read, SYS_read, fd, buf, count));
}

ssize_t gh__green_write(int fd, const void *buf, size_t count, uint64_t at)
{
    GREEN_CALL(fd, GH_WRITE, 0, at, SYS(write, SYS_write, fd, buf, count));
}

ssize_t gh__green_readv(int fd, const struct iovec *iov, int iovcnt, uint64_t at)
{
    GREEN_READ(fd, iov_total(iov, iovcnt), 0, at, SYS(readv, SYS_readv, fd, iov, iovcnt));
}

ssize_t gh__green_writev(int fd, const struct iovec *iov, int iovcnt, uint64_t at)
{
    GREEN_CALL(fd, GH_WRITE, 0, at, SYS(writev, SYS_writev, fd, iov, iovcnt));
}

static ssize_t recvfrom_once(int fd, void *buf, size_t len, int flags,
                             struct sockaddr *addr, socklen_t *addrlen, uint64_t at)
{
    GREEN_READ(fd, len, flags, at,
               SYS(recvfrom, SYS_recvfrom, fd, buf, len, flags, addr, addrlen));
}

/* MSG_WAITALL, which a blocking socket honours by waiting until len bytes
 * came (or EOF, an error, a signal): on the socket made non-blocking
 * underneath the kernel returns what is there, so the rest is waited for
 * here, each wait green.  What came before an error or EOF is returned,
 * as the kernel does.  (Found in review: it returned short.) */
ssize_t gh__green_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen, uint64_t at)
{
    if (!(flags & MSG_WAITALL) || (flags & (MSG_DONTWAIT | MSG_PEEK)))
        return recvfrom_once(fd, buf, len, flags, addr, addrlen, at);
    ssize_t r = recvfrom_once(fd, buf, len, flags, addr, addrlen, at);
    int type = 0;
    socklen_t tl = sizeof type;
    if (r <= 0 || (size_t)r == len ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
        return r;   /* (a datagram is whole in one call: MSG_WAITALL means nothing) */
    size_t got = (size_t)r;
    while (got < len) {
        r = recvfrom_once(fd, (char *)buf + got, len - got, flags, addr, addrlen, at);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

ssize_t gh__green_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen, uint64_t at)
{
    GREEN_CALL(fd, GH_WRITE, flags, at,
               SYS(sendto, SYS_sendto, fd, buf, len, flags | MSG_NOSIGNAL, addr, addrlen));
}

/* recvmsg: a short read is judged on the whole of msg_iov. */
ssize_t gh__green_recvmsg(int fd, struct msghdr *msg, int flags, uint64_t at)
{
    GREEN_READ(fd, iov_total(msg->msg_iov, (int)msg->msg_iovlen), flags, at,
               SYS(recvmsg, SYS_recvmsg, fd, msg, flags));
}

ssize_t gh__green_sendmsg(int fd, const struct msghdr *msg, int flags, uint64_t at)
{
    GREEN_CALL(fd, GH_WRITE, flags, at, SYS(sendmsg, SYS_sendmsg, fd, msg, flags | MSG_NOSIGNAL));
}

/* recvmmsg and sendmmsg as on a blocking socket: all n messages, each
 * wait green (recvmmsg: fewer once MSG_WAITFORONE has one, or when its
 * timeout has passed after one came).  Messages already moved are never
 * lost: a wait or call that fails after some returns their count, as the
 * kernel does with an error after the first message.  recvmmsg's timeout
 * with none received fails with EAGAIN here (the kernel would go on
 * waiting: a known bug of the call).  At most UIO_MAXIOV messages, as the
 * kernel takes. */
enum { MMSG_MAX = 1024 };

int gh__green_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *ts,
                       uint64_t at)
{
    if (prepare(fd) < 0)
        return -1;
    n = n > MMSG_MAX ? MMSG_MAX : n;
    uint64_t until = at, ts_at = 0;
    if (ts) {
        ts_at = gh__now_ns() + (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
        until = until && until < ts_at ? until : ts_at;
    }
    unsigned got = 0;
    for (;;) {
        int r = GH_REAL(recvmmsg)(fd, v + got, n - got, flags, NULL);
        if (r > 0) {
            got += (unsigned)r;
            if (got == n || (flags & MSG_WAITFORONE) || (ts && gh__now_ns() >= ts_at))
                break;
            continue;
        }
        if (r == 0 || !again(fd, GH_READ, flags, until)) {
            if (r < 0 && !got)
                return -1;
            break;
        }
    }
    budget_spend();
    return (int)got;
}

int gh__green_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, uint64_t at)
{
    if (prepare(fd) < 0)
        return -1;
    n = n > MMSG_MAX ? MMSG_MAX : n;
    unsigned sent = 0;
    while (sent < n) {
        int r = GH_REAL(sendmmsg)(fd, v + sent, n - sent, flags | MSG_NOSIGNAL);
        if (r > 0) {
            sent += (unsigned)r;
        } else if (r == 0 || !again(fd, GH_WRITE, flags, at)) {
            if (r < 0 && !sent)
                return -1;
            break;
        }
    }
    budget_spend();
    return (int)sent;
}

ssize_t gh_read(int fd, void *buf, size_t count)
{
    return gh__green_read(fd, buf, count, 0);
}

ssize_t gh_write(int fd, const void *buf, size_t count)
{
    return gh__green_write(fd, buf, count, 0);
}

ssize_t gh_readv(int fd, const struct iovec *iov, int iovcnt)
{
    return gh__green_readv(fd, iov, iovcnt, 0);
}

ssize_t gh_writev(int fd, const struct iovec *iov, int iovcnt)
{
    return gh__green_writev(fd, iov, iovcnt, 0);
}

ssize_t gh_recv(int fd, void *buf, size_t len, int flags)
{
    return gh__green_recvfrom(fd, buf, len, flags, NULL, NULL, 0);
}

ssize_t gh_send(int fd, const void *buf, size_t len, int flags)
{
    return gh__green_sendto(fd, buf, len, flags, NULL, 0, 0);
}

ssize_t gh_recvfrom(int fd, void *buf, size_t len, int flags,
                    struct sockaddr *addr, socklen_t *addrlen)
{
    return gh__green_recvfrom(fd, buf, len, flags, addr, addrlen, 0);
}

ssize_t gh_sendto(int fd, const void *buf, size_t len, int flags,
                  const struct sockaddr *addr, socklen_t addrlen)
{
    return gh__green_sendto(fd, buf, len, flags, addr, addrlen, 0);
}

ssize_t gh_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    GREEN_CALL(out_fd, GH_WRITE, 0, 0, sendfile(out_fd, in_fd, offset, count));
}

/* Out of descriptors, an accept fails at once, and a server that retries
 * (what else can it do) would spin: the connection stays queued and the
 * listener stays readable.  So the failure is returned only after a wait
 * for a gh_close to free a descriptor, or EMFILE_WAIT_MS (descriptors
 * freed by close(2) are only seen that way). */
enum { EMFILE_WAIT_MS = 100 };

/* accept4 with the flags given as they are (the caller adds
 * SOCK_NONBLOCK: the new fd is always non-blocking underneath). */
int gh__green_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                      uint64_t at)
{
    if (prepare(fd) < 0)
        return -1;
    int c;
    while ((c = GH_REAL(accept4)(fd, addr, addrlen, flags | SOCK_NONBLOCK)) < 0 &&
           again(fd, GH_READ, 0, at))
        ;
    if (c < 0 && (errno == EMFILE || errno == ENFILE)) {
        int e = errno;
        gh__fd_freed_wait(EMFILE_WAIT_MS);
        errno = e;
    }
    if (c >= 0) {
        /* made non-blocking above: no fcntl on its first use */
        gh__fd_mark_nonblock(gh__fdstate_get(c));
        budget_spend();
    }
    return c;
}

int gh_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return gh__green_accept4(fd, addr, addrlen, flags | SOCK_CLOEXEC, 0);
}

int gh_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return gh_accept4(fd, addr, addrlen, 0);
}

/* A connect that runs out of `at` fails with EINPROGRESS, as a blocking
 * socket's SO_SNDTIMEO makes it do (the connection goes on). */
int gh__green_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, uint64_t at)
{
    if (prepare(fd) < 0)
        return -1;
    if (GH_REAL(connect)(fd, addr, addrlen) == 0) {
        budget_spend();
        return 0;
    }
    if (errno != EINPROGRESS)
        return -1;
    int err = wait_at(fd, GH_WRITE, at);
    if (err == EAGAIN)
        err = EINPROGRESS;
    socklen_t len = sizeof err;
    if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

int gh_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    return gh__green_connect(fd, addr, addrlen, 0);
}
