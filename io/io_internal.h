/* io/io_internal.h — what the io/ files share.
 *
 * Two tables:
 *   - process-wide, per fd (fdtab.c): whether the fd is known to be
 *     O_NONBLOCK, whether a gh_close of it is in progress, and which hubs
 *     may hold a readiness watch on it (a bitmask, hub index mod 64: a
 *     superset, so gh_close asks a few hubs too many at worst);
 *   - per hub, per fd (poll.c): the hub's uv_poll watch and the greenlets
 *     registered on it.  Owner: the hub's thread only.
 * See poll.c for the wait and close protocols. */
#ifndef GH_IO_INTERNAL_H
#define GH_IO_INTERNAL_H

#include "../sched/internal.h"

/* A plain thread waiting in poll(2) on an fd (poll.c): gh_close wakes
 * it through its eventfd, since Linux does not end a poll on an fd that
 * another thread closes. */
struct gh__fd_twait {
    struct gh__fd_twait *next, *prev;   /* under the fdstate's lock */
    int efd;                            /* the thread's eventfd */
    _Atomic bool closed;                /* set by gh_close, under the lock;
                                         * then tw is off the list */
};

/* Process-wide state of one fd number. */
struct gh__fdstate {
    atomic_flag lock;          /* protects closing, epoch, hubmask writes,
                                * twaiters */
    _Atomic bool closing;      /* a gh_close is retiring the watches */
    _Atomic unsigned char nb;  /* 1: known O_NONBLOCK (reset by gh_close) */
    _Atomic uint32_t epoch;    /* runtime run the hubmask belongs to */
    _Atomic uint64_t hubmask;  /* bit i % 64: hub i may watch this fd */
    struct gh__fd_twait *twaiters;   /* plain threads in poll(2) on it */
    /* The interposition layer (interpose.c).  managed: the fd was made
     * through the layer (socket, accept, pipe, dup...), so the layer
     * gives it blocking semantics without blocking the hub; user_nb: the
     * caller's own view of O_NONBLOCK; rcv_ms, snd_ms: its SO_RCVTIMEO and
     * SO_SNDTIMEO (0: none).  Written by whoever makes, configures or
     * closes the fd (relaxed: a race between two threads configuring one
     * fd is the caller's, as with fcntl itself); reset by gh_close. */
    _Atomic unsigned char managed, user_nb;
    _Atomic int32_t rcv_ms, snd_ms;
};

/* A hub's io state (h->io), allocated with the hub.  Owner: that hub's
 * thread. */
struct gh__fdpoll;
struct gh__io_hub {
    /* poll.c: the hub's watches, indexed by fd, and its epoll set (-1
     * until the first wait), watched by one uv_poll on the hub's loop. */
    struct gh__fdpoll **polls;
    size_t cap;
    int epfd;
    struct gh__epwatch *epw;
    /* sys.c: the I/O budget of the greenlet running here (see budget_spend
     * there): budget_used mirror calls of budget_g completed without
     * parking while h->st.switches was budget_switches. */
    gh_greenlet *budget_g;
    uint64_t budget_switches;
    uint32_t budget_used;
};

/* fds at or above this get EINVAL from the green calls (16M). */
#define GH_FD_MAX (1 << 24)

/* The table (fdtab.c): GH__FD_CHUNK states per chunk, each chunk
 * allocated on first use and published with a CAS, never freed. */
enum { GH__FD_CHUNK = 4096 };
extern _Atomic(struct gh__fdstate *) gh__fd_chunks[GH_FD_MAX / GH__FD_CHUNK];
/* gh__fdstate_get when fd's chunk is not there yet (or fd is out of
 * range). */
struct gh__fdstate *gh__fdstate_make(int fd);

/* The state of fd, created on first use; NULL (errno EINVAL or ENOMEM) if
 * fd < 0, fd >= GH_FD_MAX or out of memory.  Inline: every green call
 * looks its fd up. */
static inline struct gh__fdstate *gh__fdstate_get(int fd)
{
    unsigned u = (unsigned)fd;   /* a negative fd wraps beyond GH_FD_MAX */
    struct gh__fdstate *c = u < GH_FD_MAX ?
        atomic_load_explicit(&gh__fd_chunks[u / GH__FD_CHUNK], memory_order_acquire) : NULL;
    return c ? &c[u % GH__FD_CHUNK] : gh__fdstate_make(fd);
}
/* The current runtime run (bumped by gh__io_runtime_start). */
uint32_t gh__io_epoch(void);
/* The hubs that may watch fd in this run (0 if none, or only in an
 * earlier run).  A relaxed read: exact under st->lock. */
static inline uint64_t gh__fd_hubmask(struct gh__fdstate *st)
{
    return gh__rt && atomic_load_explicit(&st->epoch, memory_order_relaxed) == gh__io_epoch() ?
           atomic_load_explicit(&st->hubmask, memory_order_relaxed) : 0;
}
/* Records that hub `hub` will watch fd.  Returns 0, or EAGAIN while a
 * gh_close of fd is in progress. */
int gh__fd_mark_hub(struct gh__fdstate *st, unsigned hub);
/* gh__fd_nonblock when fd is not known to be non-blocking. */
int gh__fd_nonblock_slow(int fd);

/* Makes fd non-blocking (once per fd; remembered).  Returns 0 or errno.
 * Inline: the common case is one flag already set. */
static inline int gh__fd_nonblock(int fd)
{
    struct gh__fdstate *st;
    if (fd >= 0 && fd < GH_FD_MAX && (st = gh__fdstate_get(fd)) &&
        atomic_load_explicit(&st->nb, memory_order_relaxed))
        return 0;
    return gh__fd_nonblock_slow(fd);
}
/* Remembers that st's fd is non-blocking (one we made so). */
void gh__fd_mark_nonblock(struct gh__fdstate *st);
/* The wait behind every green call: gh_wait_fd without argument checks,
 * bounded by the caller's deadline scope.  Returns 0 or an errno. */
int gh__io_wait(int fd, int events, int64_t timeout_ms);
/* A greenlet only: waits until one of the n fds (events GH_READ and/or
 * GH_WRITE each; entries with fd < 0 or no events are skipped) may be
 * ready, the timeout, the deadline scope, gh_kill or a close of one of
 * them.  Returns 0 (ready, or one is a regular file epoll cannot watch:
 * always ready) or an errno.  The interposition layer's poll(). */
int gh__io_wait_many(const int *fds, const int *events, size_t n, int64_t timeout_ms);
/* gh_close with `closer` doing the closing (NULL: nothing to close, only
 * the watches to retire); see poll.c. */
int gh__close_with(int fd, int (*closer)(int fd, void *arg), void *arg);

/* The green calls with a time limit `at` (absolute CLOCK_MONOTONIC ns, 0:
 * none; sys.c): gh_read... are these with 0.  A wait that runs out of
 * `at` fails the call with EAGAIN (EINPROGRESS for connect), as a blocking
 * socket's SO_RCVTIMEO/SO_SNDTIMEO does. */
ssize_t gh__green_read(int fd, void *buf, size_t count, uint64_t at);
ssize_t gh__green_write(int fd, const void *buf, size_t count, uint64_t at);
ssize_t gh__green_readv(int fd, const struct iovec *iov, int iovcnt, uint64_t at);
ssize_t gh__green_writev(int fd, const struct iovec *iov, int iovcnt, uint64_t at);
ssize_t gh__green_recvfrom(int fd, void *buf, size_t len, int flags,
                           struct sockaddr *addr, socklen_t *addrlen, uint64_t at);
ssize_t gh__green_sendto(int fd, const void *buf, size_t len, int flags,
                         const struct sockaddr *addr, socklen_t addrlen, uint64_t at);
ssize_t gh__green_recvmsg(int fd, struct msghdr *msg, int flags, uint64_t at);
ssize_t gh__green_sendmsg(int fd, const struct msghdr *msg, int flags, uint64_t at);
int gh__green_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *ts,
                       uint64_t at);
int gh__green_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, uint64_t at);
int gh__green_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                      uint64_t at);
int gh__green_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, uint64_t at);
/* Hub thread, after a green read of fd on h returned fewer bytes than it
 * asked for (not 0): the fd is likely drained (poll.c, "Drained"). */
void gh__io_note_short(struct gh__hub *h, int fd);
/* Hub thread: true (and the note forgotten) if the last green read of fd
 * on h was short and h's watch has not seen fd readable since; the next
 * read then waits before its call. */
bool gh__io_drained_take(struct gh__hub *h, int fd);
/* gh_close says a descriptor was freed; an accept that ran out of them
 * waits for that, at most ms. */
void gh__fd_freed_notify(void);
void gh__fd_freed_wait(int64_t ms);
/* Set once gh__io_sigpipe_slow has run (fdtab.c). */
extern _Atomic bool gh__sigpipe_done;
void gh__io_sigpipe_slow(void);

/* SIGPIPE ignored process-wide if its disposition is the default (once).
 * Inline: every green call makes sure of it first. */
static inline void gh__io_sigpipe_once(void)
{
    if (!atomic_load_explicit(&gh__sigpipe_done, memory_order_acquire))
        gh__io_sigpipe_slow();
}

/* ---- hub calls (hubcall.c) ----------------------------------------------------
 * A libuv loop may be touched only by its own thread.  Another thread that
 * needs something done on hub h's loop (close a watch, a signal handle, a
 * process handle) embeds a gh__hubcall in its request and posts it: h runs
 * fn(h, call) from its uv_async callback, in its scheduler, in posting
 * order.  fn owns the request from then on. */
struct gh__hubcall {
    struct gh__hubcall *next;
    void (*fn)(struct gh__hub *h, struct gh__hubcall *call);
};
/* Posts call to h.  Returns false if h has stopped (then nothing of h's
 * loop is left to act on, and the caller keeps the request). */
bool gh__hub_call(struct gh__hub *h, struct gh__hubcall *call);
/* Hub thread, before its loop closes: runs what is pending, then refuses
 * further calls. */
void gh__hub_calls_close(struct gh__hub *h);

/* offload.c: is node an IPv4 or IPv6 address literal (inet_pton's forms)? */
bool gh__io_addr_literal(const char *node);

/* ---- per-hub parts, started and stopped with the hub ------------------------------ */
void gh__poll_hub_fini(struct gh__hub *h);
void gh__signal_hub_fini(struct gh__hub *h);

#endif
