/* io/interpose.c — the interposition layer's logic: what read, write,
 * poll, sleep... do when the hooks library routes them here.
 *
 * libgreenhub exports one gh__ip_<name> per intercepted function, with
 * libc's signature; the hooks (io/hooks.c, built as libgreenhub_hooks and
 * libgreenhub_preload) define the libc names and only call these.  So
 * linking libgreenhub alone interposes nothing.
 *
 * Which calls go green.  A call on a descriptor the layer saw being made
 * (socket, socketpair, accept, accept4, pipe, pipe2, dup*: `managed` in
 * the fd's state) that the caller left in blocking mode:
 *   - on a greenlet: the fd is made non-blocking underneath (once) and the
 *     call parks the greenlet until it can complete (sys.c's green calls);
 *   - on a plain thread, once the fd is non-blocking underneath: the same
 *     calls block the thread in poll(2), so the caller still sees
 *     blocking semantics; before that, the plain libc call.
 * Everything else is exactly the libc call: a descriptor the caller made
 * non-blocking (EAGAIN as usual), one made by other means (open, eventfd,
 * epoll, libuv's own), any call off a greenlet that could block.  poll,
 * select and the sleeps go green on a greenlet whatever their fds are.
 *
 * What the caller sees is what libc would give: fcntl(F_GETFL) and
 * ioctl(FIONBIO) report and set the caller's view of O_NONBLOCK, not the
 * kernel's; SO_RCVTIMEO and SO_SNDTIMEO end a green call with EAGAIN
 * (connect: EINPROGRESS).  Beyond libc: a deadline scope ends any green
 * call with ETIMEDOUT and gh_kill with ECANCELED, also poll, select and
 * the sleeps (not EINTR: a caller that retries on EINTR would spin).
 *
 * Descriptors closed inside libc (fclose, pclose, close_range, closefrom)
 * retire the hubs' watches first; fdopen hands a managed descriptor back
 * blocking (its stream's calls are libc's own).  Signal handlers run with
 * the layer bypassed (interpose_signal.c); name lookups other than
 * getaddrinfo are in interpose_dns.c.  What is not covered: io/README.md. */
#include "io_internal.h"
#include "real.h"
#include "interpose_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <greenhub/interpose.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define GH_IP __attribute__((visibility("default")))

/* ---- the layer's switch -------------------------------------------------------- */

static _Atomic bool loaded;
__thread int gh__ip_bypass __attribute__((tls_model("initial-exec")));

/* Set in the child of a fork() made while a runtime ran: its hub threads
 * were not copied, so nothing can park there and every call is libc's,
 * even on the thread that forked from inside a greenlet (whose hub pointer
 * was copied).  A fork with no runtime running leaves a process like any
 * other, and a runtime the child starts itself has real hubs: the layer
 * works for it (gh__ip_runtime_start).  Before that rule a program that
 * forks and runs greenhub in the child (bench/crawl.c does, to measure
 * each side's memory) had the layer off there: curl's poll() blocked the
 * hub, 127 s for what takes 0.4 s. */
static bool forked_child;

static void atfork_child(void)
{
    forked_child = gh__rt != NULL;
}

void gh__ip_runtime_start(void)
{
    forked_child = false;
}

GH_IP void gh__ip_loaded(void)
{
    gh__real_init();
    pthread_atfork(NULL, NULL, atfork_child);
    atomic_store_explicit(&loaded, true, memory_order_relaxed);
}

bool gh_interposed(void)
{
    return atomic_load_explicit(&loaded, memory_order_relaxed);
}

/* ---- per-fd decisions ------------------------------------------------------------- */

bool gh__ip_on_greenlet(void)
{
    struct gh__hub *h = gh__hub_self();
    return h && h->current && !gh__ip_bypass && !forked_child && !gh__ip_in_handler();
}
#define on_greenlet gh__ip_on_greenlet

/* fd's state if the layer made it (and is not bypassed), else NULL.
 * Inlined, as green_fd: every hook asks on every call, and as calls they
 * made each hook save five registers first (57 instructions a pass-through
 * read, callgrind). */
static inline __attribute__((always_inline)) struct gh__fdstate *managed_fd(int fd)
{
    struct gh__fdstate *st = fd >= 0 && fd < GH_FD_MAX && !gh__ip_bypass && !forked_child &&
                             !gh__ip_in_handler() ? gh__fdstate_get(fd) : NULL;
    return st && atomic_load_explicit(&st->managed, memory_order_relaxed) ? st : NULL;
}

/* ---- staying on the hub: see interpose_internal.h ----------------------------------- */

int gh__ip_stay_begin(void)
{
    struct gh__hub *h = gh__hub_self();
    if (!h || !h->current)
        return -2;
    int old = h->current->stay_hub;
    h->current->stay_hub = (int)h->index;
    return old;
}

void gh__ip_stay_end(int old)
{
    if (old == -2)
        return;
    struct gh__hub *h = gh__hub_self();   /* the same hub: it stayed */
    h->current->stay_hub = old;
}

/* fd's state if a call on it should take the green path (see the top of
 * the file), else NULL. */
static inline __attribute__((always_inline)) struct gh__fdstate *green_fd(int fd)
{
    struct gh__fdstate *st = managed_fd(fd);
    if (!st || atomic_load_explicit(&st->user_nb, memory_order_relaxed))
        return NULL;
    if (on_greenlet() || atomic_load_explicit(&st->nb, memory_order_relaxed))
        return st;
    return NULL;
}

/* Records a descriptor made through the layer; nonblock: the caller asked
 * for O_NONBLOCK (then the kernel has it too). */
static void track(int fd, bool nonblock)
{
    struct gh__fdstate *st = fd >= 0 && !gh__ip_bypass && !forked_child ?
                             gh__fdstate_get(fd) : NULL;
    if (!st)
        return;   /* beyond the table, no memory, or greenhub's own */
    /* Hubs still watching the number: its last file was closed where the
     * layer could not see it (a raw system call, libc inside), and their
     * watches describe that file, not this one (a wait on this one would
     * never be woken: libuv believes it registered already). */
    if (gh__fd_hubmask(st))
        gh__close_with(fd, NULL, NULL);
    atomic_store_explicit(&st->user_nb, nonblock, memory_order_relaxed);
    atomic_store_explicit(&st->nb, nonblock, memory_order_relaxed);
    atomic_store_explicit(&st->rcv_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&st->snd_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&st->managed, 1, memory_order_relaxed);
}

/* The time limit of a call on st (SO_RCVTIMEO or SO_SNDTIMEO): absolute
 * ns, 0 for none. */
static uint64_t limit_at(const _Atomic int32_t *ms)
{
    int32_t v = atomic_load_explicit(ms, memory_order_relaxed);
    return v > 0 ? gh__now_ns() + (uint64_t)v * 1000000u : 0;
}

/* ---- reads and writes ---------------------------------------------------------------- */

GH_IP ssize_t gh__ip_read(int fd, void *buf, size_t n)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_read(fd, buf, n, limit_at(&st->rcv_ms))) : GH_REAL(read)(fd, buf, n);
}

GH_IP ssize_t gh__ip_write(int fd, const void *buf, size_t n)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_write(fd, buf, n, limit_at(&st->snd_ms))) : GH_REAL(write)(fd, buf, n);
}

GH_IP ssize_t gh__ip_readv(int fd, const struct iovec *iov, int cnt)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_readv(fd, iov, cnt, limit_at(&st->rcv_ms)))
              : GH_REAL(readv)(fd, iov, cnt);
}

GH_IP ssize_t gh__ip_writev(int fd, const struct iovec *iov, int cnt)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_writev(fd, iov, cnt, limit_at(&st->snd_ms)))
              : GH_REAL(writev)(fd, iov, cnt);
}

GH_IP ssize_t gh__ip_recv(int fd, void *buf, size_t n, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_recvfrom(fd, buf, n, fl, NULL, NULL, limit_at(&st->rcv_ms)))
              : GH_REAL(recv)(fd, buf, n, fl);
}

GH_IP ssize_t gh__ip_recvfrom(int fd, void *buf, size_t n, int fl, struct sockaddr *a,
                              socklen_t *al)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_recvfrom(fd, buf, n, fl, a, al, limit_at(&st->rcv_ms)))
              : GH_REAL(recvfrom)(fd, buf, n, fl, a, al);
}

GH_IP ssize_t gh__ip_recvmsg(int fd, struct msghdr *m, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_recvmsg(fd, m, fl, limit_at(&st->rcv_ms)))
              : GH_REAL(recvmsg)(fd, m, fl);
}

GH_IP ssize_t gh__ip_send(int fd, const void *buf, size_t n, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_sendto(fd, buf, n, fl, NULL, 0, limit_at(&st->snd_ms)))
              : GH_REAL(send)(fd, buf, n, fl);
}

GH_IP ssize_t gh__ip_sendto(int fd, const void *buf, size_t n, int fl,
                            const struct sockaddr *a, socklen_t al)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_sendto(fd, buf, n, fl, a, al, limit_at(&st->snd_ms)))
              : GH_REAL(sendto)(fd, buf, n, fl, a, al);
}

GH_IP ssize_t gh__ip_sendmsg(int fd, const struct msghdr *m, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(ssize_t, gh__green_sendmsg(fd, m, fl, limit_at(&st->snd_ms)))
              : GH_REAL(sendmsg)(fd, m, fl);
}

GH_IP int gh__ip_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int fl, struct timespec *ts)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(int, gh__green_recvmmsg(fd, v, n, fl, ts, limit_at(&st->rcv_ms)))
              : GH_REAL(recvmmsg)(fd, v, n, fl, ts);
}

GH_IP int gh__ip_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(int, gh__green_sendmmsg(fd, v, n, fl, limit_at(&st->snd_ms)))
              : GH_REAL(sendmmsg)(fd, v, n, fl);
}

/* pread/pwrite: regular files, which never wait for readiness; on a
 * greenlet they run on libuv's thread pool (gh_blocking) so a slow disk
 * stalls the greenlet, not its hub. */
struct pio {
    int fd;
    void *buf;
    size_t n;
    off_t off;
    bool write;
    ssize_t r;
    int err;
};

static void *pio_run(void *arg)
{
    struct pio *p = arg;
    p->r = p->write ? GH_REAL(pwrite)(p->fd, p->buf, p->n, p->off)
                    : GH_REAL(pread)(p->fd, p->buf, p->n, p->off);
    p->err = p->r < 0 ? errno : 0;
    return NULL;
}

static ssize_t pio(int fd, void *buf, size_t n, off_t off, bool write)
{
    struct pio p = { fd, buf, n, off, write, -1, 0 };
    int err = STAYING(int, gh_blocking(pio_run, &p, NULL));
    if (err) {
        errno = err;
        return -1;
    }
    if (p.r < 0)
        errno = p.err;
    return p.r;
}

GH_IP ssize_t gh__ip_pread(int fd, void *buf, size_t n, off_t off)
{
    return on_greenlet() ? pio(fd, buf, n, off, false) : GH_REAL(pread)(fd, buf, n, off);
}

GH_IP ssize_t gh__ip_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    return on_greenlet() ? pio(fd, (void *)buf, n, off, true) : GH_REAL(pwrite)(fd, buf, n, off);
}

/* ---- descriptors made and closed ------------------------------------------------------- */

GH_IP int gh__ip_socket(int dom, int type, int proto)
{
    int fd = GH_REAL(socket)(dom, type, proto);
    if (fd >= 0)
        track(fd, type & SOCK_NONBLOCK);
    return fd;
}

GH_IP int gh__ip_socketpair(int dom, int type, int proto, int sv[2])
{
    int r = GH_REAL(socketpair)(dom, type, proto, sv);
    if (r == 0) {
        track(sv[0], type & SOCK_NONBLOCK);
        track(sv[1], type & SOCK_NONBLOCK);
    }
    return r;
}

GH_IP int gh__ip_pipe2(int p[2], int fl)
{
    int r = GH_REAL(pipe2)(p, fl);
    if (r == 0) {
        track(p[0], fl & O_NONBLOCK);
        track(p[1], fl & O_NONBLOCK);
    }
    return r;
}

GH_IP int gh__ip_pipe(int p[2])
{
    return gh__ip_pipe2(p, 0);
}

GH_IP int gh__ip_accept4(int fd, struct sockaddr *a, socklen_t *al, int fl)
{
    struct gh__fdstate *st = green_fd(fd);
    int c = st ? STAYING(int, gh__green_accept4(fd, a, al, fl, limit_at(&st->rcv_ms)))
               : GH_REAL(accept4)(fd, a, al, fl);
    if (c >= 0) {
        track(c, fl & SOCK_NONBLOCK);
        if (st)   /* gh__green_accept4 made it non-blocking underneath */
            gh__fd_mark_nonblock(gh__fdstate_get(c));
    }
    return c;
}

GH_IP int gh__ip_accept(int fd, struct sockaddr *a, socklen_t *al)
{
    return gh__ip_accept4(fd, a, al, 0);
}

GH_IP int gh__ip_connect(int fd, const struct sockaddr *a, socklen_t al)
{
    struct gh__fdstate *st = green_fd(fd);
    return st ? STAYING(int, gh__green_connect(fd, a, al, limit_at(&st->snd_ms)))
              : GH_REAL(connect)(fd, a, al);
}

GH_IP int gh__ip_close(int fd)
{
    /* gh_close wakes the fd's waiters and retires its watches on every
     * hub before the number can be reused, on any thread; for an fd no
     * hub watches it costs a lock and the close.  Not in a forked child:
     * there are no hubs to retire anything. */
    return forked_child ? GH_REAL(close)(fd) : STAYING(int, gh_close(fd));
}

/* ---- descriptors closed inside libc ------------------------------------------------
 * fclose and pclose close their descriptor with libc's internal close,
 * which no hook sees; close_range and closefrom close many at once.  Each
 * first retires what the hubs watch on the numbers (as gh_close does),
 * so a descriptor that gets one of them next is watched afresh. */

static int fclose_closer(int fd, void *f)
{
    (void)fd;
    return GH_REAL(fclose)(f);
}

GH_IP int gh__ip_fclose(FILE *f)
{
    int fd = f && !forked_child ? fileno(f) : -1;   /* -1 too for memory streams */
    return fd >= 0 ? STAYING(int, gh__close_with(fd, fclose_closer, f)) : GH_REAL(fclose)(f);
}

/* pclose waits for the command to end: on a greenlet, on the thread pool
 * (the greenlet parks, its hub runs on). */
struct pclose_call {
    FILE *f;
    int r, err;
};

static void *pclose_run(void *arg)
{
    struct pclose_call *c = arg;
    c->r = GH_REAL(pclose)(c->f);
    c->err = errno;
    return NULL;
}

static int pclose_closer(int fd, void *f)
{
    (void)fd;
    struct pclose_call c = { f, -1, 0 };
    int err = on_greenlet() ? gh_blocking(pclose_run, &c, NULL) : (pclose_run(&c), 0);
    if (err) {   /* no pool: here, blocking the hub, rather than not at all */
        pclose_run(&c);
    }
    errno = c.err;
    return c.r;
}

GH_IP int gh__ip_pclose(FILE *f)
{
    int fd = f && !forked_child ? fileno(f) : -1;
    return fd >= 0 ? STAYING(int, gh__close_with(fd, pclose_closer, f)) : GH_REAL(pclose)(f);
}

/* Retires the watches on [first, last] that hubs or plain threads have. */
static void retire_range(unsigned first, unsigned last)
{
    if (last >= GH_FD_MAX)
        last = GH_FD_MAX - 1;
    for (unsigned fd = first; fd <= last && fd >= first; fd++) {
        struct gh__fdstate *c = atomic_load_explicit(&gh__fd_chunks[fd / GH__FD_CHUNK],
                                                     memory_order_acquire);
        if (!c) {   /* a whole chunk no descriptor ever used */
            fd |= GH__FD_CHUNK - 1;
            continue;
        }
        struct gh__fdstate *st = &c[fd % GH__FD_CHUNK];
        if (gh__fd_hubmask(st) || st->twaiters ||
            atomic_load_explicit(&st->managed, memory_order_relaxed))
            gh__close_with((int)fd, NULL, NULL);
    }
}

GH_IP int gh__ip_close_range(unsigned first, unsigned last, int fl)
{
    if (!(fl & CLOSE_RANGE_CLOEXEC) && !forked_child && first <= last)
        STAYING(int, (retire_range(first, last), 0));
    return GH_REAL(close_range)(first, last, fl);
}

GH_IP void gh__ip_closefrom(int low)
{
    if (low >= 0 && !forked_child)
        STAYING(int, (retire_range((unsigned)low, ~0u), 0));
    GH_REAL(closefrom)(low);
}

/* fdopen: the stream's reads and writes are libc's internal ones, which no
 * hook sees, so the descriptor must really be what the caller believes.
 * A managed one the caller left blocking is handed back to the kernel
 * blocking and no longer managed: its stream then blocks the thread it
 * runs on (the hub, on a greenlet: the blocking detector will name it), as
 * it would without the layer, rather than fail with EAGAIN. */
static void unmanage(int fd)
{
    struct gh__fdstate *st = managed_fd(fd);
    if (!st || atomic_load_explicit(&st->user_nb, memory_order_relaxed))
        return;
    gh__spin_lock(&st->lock);
    bool nb = atomic_load_explicit(&st->nb, memory_order_relaxed);
    atomic_store_explicit(&st->managed, 0, memory_order_relaxed);
    atomic_store_explicit(&st->nb, 0, memory_order_relaxed);
    gh__spin_unlock(&st->lock);
    int fl;
    if (nb && (fl = GH_REAL(fcntl)(fd, F_GETFL)) >= 0)
        GH_REAL(fcntl)(fd, F_SETFL, fl & ~O_NONBLOCK);
}

GH_IP FILE *gh__ip_fdopen(int fd, const char *mode)
{
    int e = errno;
    FILE *f = GH_REAL(fdopen)(fd, mode);
    if (f) {
        unmanage(fd);
        errno = e;
    }
    return f;
}

GH_IP int gh__ip_shutdown(int fd, int how)
{
    /* Nothing to wait for; waiters see the shutdown as readiness. */
    return GH_REAL(shutdown)(fd, how);
}

/* dup*: the new descriptor shares the open file description, O_NONBLOCK
 * included, so it inherits the caller's view of it. */
static void track_dup(int from, int to)
{
    struct gh__fdstate *a = managed_fd(from);
    if (a) {
        track(to, atomic_load_explicit(&a->user_nb, memory_order_relaxed));
        struct gh__fdstate *b = gh__fdstate_get(to);
        if (b && atomic_load_explicit(&a->nb, memory_order_relaxed))
            gh__fd_mark_nonblock(b);
    }
}

GH_IP int gh__ip_dup(int fd)
{
    int r = GH_REAL(dup)(fd);
    if (r >= 0)
        track_dup(fd, r);
    return r;
}

/* dup2/dup3 replace fd2 if it is open: what hubs (and plain threads) wait
 * on it is retired first, as gh_close does, without closing it, so the
 * replacement stays the one atomic step it is (closing first left the
 * number free for another thread's new fd, which dup2 then replaced;
 * found in review). */
static void dup_target_close(int fd, int fd2)
{
    struct gh__fdstate *b = fd2 != fd ? gh__fdstate_get(fd2) : NULL;
    if (b && (gh__fd_hubmask(b) || b->twaiters ||
              atomic_load_explicit(&b->managed, memory_order_relaxed)))
        gh__close_with(fd2, NULL, NULL);
}

GH_IP int gh__ip_dup3(int fd, int fd2, int fl)
{
    dup_target_close(fd, fd2);
    int r = GH_REAL(dup3)(fd, fd2, fl);
    if (r >= 0)
        track_dup(fd, r);
    return r;
}

GH_IP int gh__ip_dup2(int fd, int fd2)
{
    dup_target_close(fd, fd2);
    int r = GH_REAL(dup2)(fd, fd2);
    if (r >= 0 && r != fd)
        track_dup(fd, r);
    return r;
}

/* ---- what the caller believes about O_NONBLOCK --------------------------------------- */

/* fcntl's argument: an int for the commands that take one, a pointer for
 * the lock and owner commands; both fit the long read here, which is what
 * libc's own fcntl does with its variadic argument. */
GH_IP int gh__ip_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    struct gh__fdstate *st = managed_fd(fd);
    bool managed = st != NULL;
    if (managed && cmd == F_GETFL) {
        int fl = GH_REAL(fcntl)(fd, cmd, arg);
        if (fl >= 0 && !atomic_load_explicit(&st->user_nb, memory_order_relaxed))
            fl &= ~O_NONBLOCK;
        return fl;
    }
    if (managed && cmd == F_SETFL) {
        bool want_nb = arg & O_NONBLOCK;
        /* Keep O_NONBLOCK underneath once the layer has set it. */
        long karg = atomic_load_explicit(&st->nb, memory_order_relaxed) ? arg | O_NONBLOCK : arg;
        int r = GH_REAL(fcntl)(fd, cmd, karg);
        if (r == 0) {
            atomic_store_explicit(&st->user_nb, want_nb, memory_order_relaxed);
            if (want_nb)
                gh__fd_mark_nonblock(st);
        }
        return r;
    }
    int r = GH_REAL(fcntl)(fd, cmd, arg);
    if (r >= 0 && managed && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        track_dup(fd, r);
    return r;
}

GH_IP int gh__ip_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct gh__fdstate *st = managed_fd(fd);
    if (req == FIONBIO && arg && st) {
        bool want_nb = *(const int *)arg != 0;
        int r = 0;
        /* Clearing it would undo the layer's O_NONBLOCK: keep the kernel's. */
        if (want_nb || !atomic_load_explicit(&st->nb, memory_order_relaxed))
            r = GH_REAL(ioctl)(fd, req, arg);
        if (r == 0) {
            atomic_store_explicit(&st->user_nb, want_nb, memory_order_relaxed);
            if (want_nb)
                gh__fd_mark_nonblock(st);
        }
        return r;
    }
    return GH_REAL(ioctl)(fd, req, arg);
}

/* SO_RCVTIMEO/SO_SNDTIMEO: recorded (milliseconds, rounded up) for the
 * green calls, and passed on (the kernel's copy serves getsockopt). */
GH_IP int gh__ip_setsockopt(int fd, int lvl, int opt, const void *v, socklen_t vl)
{
    int r = GH_REAL(setsockopt)(fd, lvl, opt, v, vl);
    struct gh__fdstate *st;
    if (r == 0 && lvl == SOL_SOCKET && (opt == SO_RCVTIMEO || opt == SO_SNDTIMEO) &&
        vl >= sizeof(struct timeval) && (st = managed_fd(fd))) {
        const struct timeval *tv = v;
        int64_t ms = (int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000;
        int32_t m = ms > INT32_MAX ? INT32_MAX : ms < 0 ? 0 : (int32_t)ms;
        atomic_store_explicit(opt == SO_RCVTIMEO ? &st->rcv_ms : &st->snd_ms, m,
                              memory_order_relaxed);
    }
    return r;
}

/* ---- poll and select ----------------------------------------------------------------- */

/* What a pollfd's events wait for.  Hang-ups and errors are reported
 * whatever events asks, even none: such an entry waits for reading, whose
 * edges they wake (a data edge wakes it for nothing, and the real poll()
 * that follows says so). */
static int gh_events(short ev)
{
    int e = ((ev & (POLLIN | POLLPRI | POLLRDHUP)) ? GH_READ : 0) |
            ((ev & POLLOUT) ? GH_WRITE : 0);
    return e ? e : GH_READ;
}

/* ms left until `at` (0: none -> -1), never early. */
static int64_t ms_left(uint64_t at)
{
    if (!at)
        return -1;
    uint64_t now = gh__now_ns();
    return at > now ? (int64_t)((at - now + 999999) / 1000000) : 0;
}

/* A timespec timeout in ms, rounded up (never early); NULL: -1, forever. */
static int64_t ts_ms(const struct timespec *ts)
{
    if (!ts)
        return -1;
    return ts->tv_sec > INT64_MAX / 1000 - 1 ? INT64_MAX
           : (int64_t)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
}

/* poll on a greenlet: the libc poll without waiting, then a green wait on
 * every fd at once, and again, until one is ready or time runs out. */
static int poll_green(struct pollfd *p, nfds_t n, int64_t timeout_ms)
{
    uint64_t at = timeout_ms >= 0 ? gh__deadline_after(timeout_ms) : 0;
    int small_fd[16], small_ev[16], *fds = small_fd, *evs = small_ev;
    if (n > 16) {
        fds = malloc(n * sizeof *fds);
        evs = malloc(n * sizeof *evs);
        if (!fds || !evs) {
            free(fds == small_fd ? NULL : fds);
            free(evs == small_ev ? NULL : evs);
            errno = ENOMEM;
            return -1;
        }
    }
    for (nfds_t i = 0; i < n; i++) {
        fds[i] = p[i].fd;
        evs[i] = gh_events(p[i].events);
    }
    int r;
    for (;;) {
        if ((r = GH_REAL(poll)(p, n, 0)) != 0)
            break;
        int64_t ms = timeout_ms >= 0 ? ms_left(at) : -1;
        if (ms == 0)
            break;
        int err = STAYING(int, gh__io_wait_many(fds, evs, n, ms));
        if (err == ETIMEDOUT && timeout_ms >= 0 && ms_left(at) == 0 &&
            (r = GH_REAL(poll)(p, n, 0)) >= 0)
            break;   /* poll's own timeout (or the scope's, at the same time) */
        if (err) {
            errno = err;
            r = -1;
            break;
        }
    }
    if (fds != small_fd) {
        free(fds);
        free(evs);
    }
    return r;
}

GH_IP int gh__ip_poll(struct pollfd *p, nfds_t n, int ms)
{
    if (!on_greenlet() || ms == 0)
        return GH_REAL(poll)(p, n, ms);
    return poll_green(p, n, ms < 0 ? -1 : ms);
}

/* The signal mask is not applied on the green path: a greenlet shares its
 * hub's thread, whose mask it must not change while it is parked. */
GH_IP int gh__ip_ppoll(struct pollfd *p, nfds_t n, const struct timespec *ts, const sigset_t *m)
{
    if (!on_greenlet() || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
        return GH_REAL(ppoll)(p, n, ts, m);
    return poll_green(p, n, ts_ms(ts));
}

/* ---- epoll_wait ------------------------------------------------------------------------ *
 * An epoll descriptor is itself readable while events are ready, so on a
 * greenlet the wait is: the call without waiting, then a green wait for
 * the epoll fd to be readable (the hub's loop watches it: nested epoll),
 * and again, until events come or time runs out.  Any epoll set will do:
 * level- or edge-triggered members alike make it readable.  The signal
 * mask of epoll_pwait is not applied on that path (as for ppoll).  The
 * hubs' own loops never come here: they run the scheduler, not a
 * greenlet. */
static int epoll_green(int ep, struct epoll_event *ev, int max, int64_t timeout_ms)
{
    uint64_t at = timeout_ms >= 0 ? gh__deadline_after(timeout_ms) : 0;
    int r;
    for (;;) {
        if ((r = GH_REAL(epoll_wait)(ep, ev, max, 0)) != 0)
            return r;
        int64_t ms = timeout_ms >= 0 ? ms_left(at) : -1;
        if (ms == 0)
            return 0;
        int err = STAYING(int, gh__io_wait(ep, GH_READ, ms));
        if (err == ETIMEDOUT && timeout_ms >= 0 && ms_left(at) == 0)
            return GH_REAL(epoll_wait)(ep, ev, max, 0);   /* its own timeout */
        if (err) {
            errno = err;
            return -1;
        }
    }
}

GH_IP int gh__ip_epoll_wait(int ep, struct epoll_event *ev, int max, int ms)
{
    if (!on_greenlet() || ms == 0)
        return GH_REAL(epoll_wait)(ep, ev, max, ms);
    return epoll_green(ep, ev, max, ms < 0 ? -1 : ms);
}

GH_IP int gh__ip_epoll_pwait(int ep, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
    if (!on_greenlet() || ms == 0)
        return GH_REAL(epoll_pwait)(ep, ev, max, ms, m);
    return epoll_green(ep, ev, max, ms < 0 ? -1 : ms);
}

GH_IP int gh__ip_epoll_pwait2(int ep, struct epoll_event *ev, int max, const struct timespec *ts,
                              const sigset_t *m)
{
    if (!on_greenlet() || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
        return GH_REAL(epoll_pwait2)(ep, ev, max, ts, m);
    return epoll_green(ep, ev, max, ts_ms(ts));
}

/* select through poll_green: fd_sets to a pollfd array and back. */
static int select_green(int n, fd_set *rs, fd_set *ws, fd_set *es, int64_t ms)
{
    if (n < 0 || n > FD_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd *p = calloc((size_t)n + 1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    nfds_t k = 0;
    for (int fd = 0; fd < n; fd++) {
        short ev = (short)((rs && FD_ISSET(fd, rs) ? POLLIN : 0) |
                           (ws && FD_ISSET(fd, ws) ? POLLOUT : 0) |
                           (es && FD_ISSET(fd, es) ? POLLPRI : 0));
        if (ev)
            p[k++] = (struct pollfd){ .fd = fd, .events = ev };
    }
    int r = poll_green(p, k, ms);
    if (r >= 0) {
        r = 0;
        for (nfds_t i = 0; i < k; i++) {
            int fd = p[i].fd;
            if (p[i].revents & POLLNVAL) {
                free(p);
                errno = EBADF;   /* what select says of a closed fd */
                return -1;
            }
            bool rd = rs && FD_ISSET(fd, rs) && (p[i].revents & (POLLIN | POLLHUP | POLLERR));
            bool wr = ws && FD_ISSET(fd, ws) && (p[i].revents & (POLLOUT | POLLERR));
            bool ex = es && FD_ISSET(fd, es) && (p[i].revents & POLLPRI);
            r += rd + wr + ex;
        }
        if (rs) FD_ZERO(rs);
        if (ws) FD_ZERO(ws);
        if (es) FD_ZERO(es);
        for (nfds_t i = 0; i < k; i++) {
            short re = p[i].revents;
            if (re & (POLLIN | POLLHUP | POLLERR) && (p[i].events & POLLIN)) FD_SET(p[i].fd, rs);
            if (re & (POLLOUT | POLLERR) && (p[i].events & POLLOUT)) FD_SET(p[i].fd, ws);
            if ((re & POLLPRI) && (p[i].events & POLLPRI)) FD_SET(p[i].fd, es);
        }
    }
    free(p);
    return r;
}

GH_IP int gh__ip_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    if (!on_greenlet() || (tv && tv->tv_sec == 0 && tv->tv_usec == 0))
        return GH_REAL(select)(n, r, w, e, tv);
    int64_t ms = tv ? (int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000 : -1;
    int res = select_green(n, r, w, e, ms);
    if (res >= 0 && tv)
        *tv = (struct timeval){ 0, 0 };   /* Linux updates it with the time left */
    return res;
}

/* The signal mask is not applied on the green path (as for ppoll). */
GH_IP int gh__ip_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                         const sigset_t *mask)
{
    if (!on_greenlet() || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0))
        return GH_REAL(pselect)(n, r, w, e, ts, mask);
    return select_green(n, r, w, e, ts_ms(ts));
}

/* ---- sleeps ------------------------------------------------------------------------ */

/* A green sleep of ns (rounded up to whole ms, never early).  Returns 0
 * or ETIMEDOUT (deadline scope) / ECANCELED (gh_kill). */
static int sleep_green(uint64_t ns)
{
    uint64_t ms = (ns + 999999) / 1000000;
    return STAYING(int, gh_sleep_ms(ms > INT64_MAX ? INT64_MAX : (int64_t)ms));
}

static uint64_t ts_ns(const struct timespec *ts)
{
    if (ts->tv_sec < 0)
        return 0;
    if ((uint64_t)ts->tv_sec > UINT64_MAX / 1000000000u - 1)
        return UINT64_MAX;
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

GH_IP int gh__ip_nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!on_greenlet() || !req || req->tv_nsec < 0 || req->tv_nsec > 999999999 ||
        req->tv_sec < 0)
        return GH_REAL(nanosleep)(req, rem);   /* its own EFAULT/EINVAL */
    uint64_t start = gh__now_ns(), ns = ts_ns(req);
    int err = sleep_green(ns);
    if (err) {
        if (rem) {
            uint64_t done = gh__now_ns() - start, left = done < ns ? ns - done : 0;
            *rem = (struct timespec){ (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
        }
        errno = err;
        return -1;
    }
    return 0;
}

GH_IP int gh__ip_clock_nanosleep(clockid_t c, int fl, const struct timespec *req,
                                 struct timespec *rem)
{
    struct timespec now;
    if (!on_greenlet() || !req || req->tv_nsec < 0 || req->tv_nsec > 999999999 ||
        clock_gettime(c, &now) != 0)
        return GH_REAL(clock_nanosleep)(c, fl, req, rem);
    uint64_t ns = ts_ns(req);
    if (fl & TIMER_ABSTIME) {
        uint64_t n = ts_ns(&now);
        ns = ns > n ? ns - n : 0;
        rem = NULL;   /* not used for an absolute sleep */
    }
    uint64_t start = gh__now_ns();
    int err = sleep_green(ns);
    if (err && rem) {
        uint64_t done = gh__now_ns() - start, left = done < ns ? ns - done : 0;
        *rem = (struct timespec){ (time_t)(left / 1000000000u), (long)(left % 1000000000u) };
    }
    return err;   /* clock_nanosleep returns the error, errno untouched */
}

GH_IP int gh__ip_usleep(useconds_t us)
{
    if (!on_greenlet())
        return GH_REAL(usleep)(us);
    int err = sleep_green((uint64_t)us * 1000u);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

GH_IP unsigned gh__ip_sleep(unsigned s)
{
    if (!on_greenlet())
        return GH_REAL(sleep)(s);
    uint64_t start = gh__now_ns(), ns = (uint64_t)s * 1000000000u;
    if (sleep_green(ns) == 0)
        return 0;
    uint64_t done = gh__now_ns() - start;
    return done < ns ? (unsigned)((ns - done + 999999999u) / 1000000000u) : 0;
}

/* ---- names --------------------------------------------------------------------------- */

GH_IP int gh__ip_getaddrinfo(const char *node, const char *svc, const struct addrinfo *hints,
                             struct addrinfo **res)
{
    /* gh_getaddrinfo runs libc's getaddrinfo on libuv's thread pool (where
     * this layer passes through); its result is freed by freeaddrinfo. */
    if (!on_greenlet())
        return GH_REAL(getaddrinfo)(node, svc, hints, res);
    return STAYING(int, gh_getaddrinfo(node, svc, hints, res));
}
