/* io/poll.c — fd readiness on each hub's libuv loop, and the close protocol.
 *
 * Waiting (a greenlet on hub h, after its call returned EAGAIN)
 *   Each hub has an epoll set of its own, edge-triggered, behind one
 *   uv_poll on its libuv loop (the set's descriptor is readable while
 *   events are pending).  The first wait on fd on hub h adds fd to h's set
 *   for everything at once (in, out, hang-up, EPOLLET), and it stays there
 *   while greenlets keep waiting on it there: no epoll_ctl per wait,
 *   whatever a connection waits for next (struct gh__fdpoll, "a watch",
 *   holds the registrations (g, gen, events) of the greenlets waiting on
 *   fd on h).  The greenlet marks h in the fd's process-wide hub mask
 *   (fdtab.c), opens a wait generation, registers, and parks.  Everything
 *   from the call's EAGAIN to the park runs on h's thread without a
 *   switch, and the dispatch runs there too (inside uv_run, in the
 *   scheduler), so no lock guards a watch, and no edge can be taken by the
 *   dispatch between the EAGAIN and the registration: one that comes in
 *   between is still pending in the set and wakes the registration.
 *
 * Waking
 *   The dispatch (on_epoll) takes the set's events and, for each, claims
 *   every live registration that wants what fired (gh__wake, reason EVENT)
 *   and drops it.  A timeout, the deadline scope or gh_kill may win the
 *   claim instead; the greenlet then drops its registration itself if it
 *   resumed on h, and otherwise leaves it stale: any hub may have resumed
 *   it, and a watch belongs to its hub's thread.  Stale registrations are
 *   harmless (their claim fails) and are purged when the list fills up or
 *   the fd fires.  An edge that wakes nobody is dropped: whoever waits
 *   next makes its call (or looks) first.
 *
 * Leaving a set
 *   A watch that fires IDLE_FIRES_MAX times in a row for nobody leaves its
 *   hub's set (epoll_ctl DEL; the next wait there adds it again): its
 *   greenlet has most likely moved to another hub, and every edge would
 *   otherwise wake this one too (a cross-core wakeup each: 5,000 round
 *   trips served on hub 1 woke hub 0 7,517 times when watches never left).
 *   Not at the first: a greenlet often gets its data while it is busy.
 *
 * Why edge-triggered (measured)
 *   The watches were level-triggered uv_polls.  A greenlet woken by
 *   readiness often has not run (and read) by the loop's next poll, so its
 *   fd was reported again for nobody; a watch that fired twice so had to
 *   shrink to what was wanted, and grow back at the next wait.  At 5,000
 *   echo connections on one hub that was 3.1 epoll_ctl per round trip, and
 *   0.54x a libuv callback server's messages/s.  Edges report each change
 *   once, and the set does not change while a connection lives on a hub.
 *
 * Looking first: every wait follows a look at the fd's state, the call's
 * own EAGAIN or, where there is none, a poll(2) with a zero timeout
 * (gh_wait_fd, whose caller may not have made a call; poll() and
 * epoll_wait, which look with the real call).  The one exception is
 * "Drained" below.  While a test overrides a real function
 * (gh_syscall_override), every wait looks: an injected EAGAIN is a lie no
 * edge will answer.
 *
 * Drained (a hint for the next read; sys.c)
 *   A green read of a TCP stream that returned fewer bytes than asked
 *   left the fd empty, so the next read would almost surely meet EAGAIN:
 *   a system call per round trip of a request/response connection for
 *   nothing.  The watch remembers such a short read (`drained`) and the
 *   next read on this hub waits first, without a look.  Safe: data that
 *   came in after the short read made an edge, which either is pending in
 *   the set (it ends the wait at the next dispatch) or was dispatched while
 *   the greenlet did something else, which cleared the mark (a readable
 *   fire clears it).  Only TCP: a short read of other descriptors does not
 *   mean empty (a pipe in packet mode, a tty in canonical mode, a unix
 *   socket at a message carrying descriptors or credentials, a datagram
 *   socket), and the edge of what is left came before the read.  Not
 *   after a hang-up, an error or urgent data was reported (`lasting`):
 *   such a state lasts, and its edge may have come with the data the short
 *   read took (the peer wrote, then shut down), so no edge would end the
 *   wait; every read then makes the call (and gets its 0).  The first
 *   version without this hung test_io's 64 MiB case at its end.
 *
 * Closing (gh_close, on any thread)
 *   A hub's watch on fd must be gone before close(2) frees the number: a
 *   new fd with the same number would be taken for the one in the set
 *   already (never added, never reported ready).  So:
 *     1. under the fd's lock: closing = true, wake the plain threads that
 *        wait on fd (see "plain threads" below), read the hub mask;
 *     2. retire the watch on every hub in the mask: on its own hub directly,
 *        elsewhere by a request the hub serves from its uv_async callback;
 *        retiring wakes every registered greenlet with reason CLOSED
 *        (EBADF), takes fd out of the hub's set (epoll_ctl DEL) and frees
 *        the watch;
 *     3. wait until every hub has answered, then close(2);
 *     4. under the lock: closing = false, mask and O_NONBLOCK flag reset.
 *   A wait that starts during 1-4 finds `closing` and yields until it ends
 *   (then its fd is closed, or a new one with the same number).  A wait
 *   cannot slip in unseen: it sets its hub's bit under the same lock that
 *   step 1 takes (or finds it already set, see gh__fd_mark_hub). */
#include "io_internal.h"
#include "real.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct gh__fdreg {
    gh_greenlet *g;
    uint64_t gen;
    int events;                  /* GH_READ | GH_WRITE */
};

/* One hub's watch on one fd: fd is in the hub's epoll set.  Owner: that
 * hub's thread.  One line (64-byte aligned: poll_get) with room for
 * one registration inside: a connection's wait and the wake that ends it
 * touch this line and no other of the watch's (a separate registration
 * array was one more cache miss per request at 5000 connections). */
struct gh__fdpoll {
    int fd;
    bool in_set;                 /* fd is in the hub's epoll set */
    bool tcp;                    /* a short read drains it (see "Drained") */
    bool drained;                /* a short read since the last readable fire */
    bool lasting;                /* hang-up, error or urgent data reported: for good */
    unsigned idle_fires;         /* fires in a row that woke nobody */
    unsigned n, cap;
    struct gh__fdreg *regs;      /* &one, or a heap array when more wait */
    struct gh__fdreg one;
};
_Static_assert(sizeof(struct gh__fdpoll) <= 64, "a watch fits one cache line");

static void watch_free(struct gh__fdpoll *p)
{
    if (p->regs != &p->one)
        free(p->regs);
    free(p);
}

/* The uv_poll that watches a hub's epoll set, and the set's fd (closed
 * with the handle). */
struct gh__epwatch {
    uv_poll_t handle;            /* handle.data = the hub */
    int epfd;
};

/* One gh_close waiting for the hubs that had to retire a watch.  Lives on
 * the closer's stack: the closer returns only when no hub can touch it
 * any more (touching == 0).  At runtime stop an unfinished closer's stack
 * outlives the hubs, which answer what is pending before they exit. */
struct gh__close_op {
    _Atomic unsigned pending;    /* answers still due (hubs + the closer) */
    _Atomic unsigned touching;   /* hubs that may still touch this op */
    gh_event done;               /* set with the last answer */
};

/* A request for a hub to retire its watch on fd; the hub frees it. */
struct gh__retire_req {
    struct gh__hubcall call;
    int fd;
    struct gh__close_op *op;
};

/* ---- registrations ---------------------------------------------------------- */

static bool reg_live(const struct gh__fdreg *r)
{
    return atomic_load_explicit(&r->g->wait, memory_order_acquire) == r->gen << 8;
}

static void regs_purge(struct gh__fdpoll *p)
{
    unsigned k = 0;
    for (unsigned i = 0; i < p->n; i++)
        if (reg_live(&p->regs[i]))
            p->regs[k++] = p->regs[i];
    p->n = k;
}

/* Room for one more registration.  Returns 0 or ENOMEM. */
static int regs_reserve(struct gh__fdpoll *p)
{
    if (p->n < p->cap)
        return 0;
    regs_purge(p);
    if (p->n < p->cap)
        return 0;
    unsigned cap = p->cap * 2 < 4 ? 4 : p->cap * 2;
    struct gh__fdreg *a = malloc(cap * sizeof *a);
    if (!a)
        return ENOMEM;
    memcpy(a, p->regs, p->n * sizeof *a);
    if (p->regs != &p->one)
        free(p->regs);
    p->regs = a;
    p->cap = cap;
    return 0;
}

/* Removes (g, gen) from p, if there. */
static void regs_remove(struct gh__fdpoll *p, const gh_greenlet *g, uint64_t gen)
{
    for (unsigned i = 0; i < p->n; i++) {
        if (p->regs[i].g == g && p->regs[i].gen == gen) {
            p->regs[i] = p->regs[--p->n];
            return;
        }
    }
}

/* ---- watches ------------------------------------------------------------------ */

/* What an epoll event means for waiters. */
static int ev_of(uint32_t e)
{
    return ((e & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? GH_READ : 0) |
           ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ? GH_WRITE : 0);
}

/* A watch fires this many times in a row for nobody: it leaves the set
 * (see "Leaving a set"). */
enum { IDLE_FIRES_MAX = 2 };

/* An edge on p (events e), on hub io: wakes every live registration that
 * wants it. */
static void fire(struct gh__io_hub *io, struct gh__fdpoll *p, uint32_t e)
{
    int ev = ev_of(e);
    if (ev & GH_READ)
        p->drained = false;   /* data came (or an error, a hang-up) */
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI))
        p->lasting = true;
    bool woke = false;
    unsigned k = 0;
    for (unsigned i = 0; i < p->n; i++) {
        struct gh__fdreg r = p->regs[i];
        if (!reg_live(&r))
            continue;
        if (r.events & ev) {
            woke |= gh__wake(r.g, r.gen, GH_WAKE_EVENT);
            continue;
        }
        p->regs[k++] = r;
    }
    p->n = k;
    if (woke || k) {
        p->idle_fires = 0;
    } else if (++p->idle_fires >= IDLE_FIRES_MAX) {
        GH_REAL(epoll_ctl)(io->epfd, EPOLL_CTL_DEL, p->fd, NULL);
        p->in_set = false;
        p->idle_fires = 0;
    }
}

enum { EP_BATCH = 256 };

/* The hub's set has events: takes them all (batches until one is not
 * full) and fires each fd's watch. */
static void on_epoll(uv_poll_t *hd, int status, int uvev)
{
    (void)status, (void)uvev;
    struct gh__io_hub *io = ((struct gh__hub *)hd->data)->io;
    struct epoll_event evs[EP_BATCH];
    int n;
    do {
        n = GH_REAL(epoll_wait)(io->epfd, evs, EP_BATCH, 0);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            struct gh__fdpoll *p = (size_t)fd < io->cap ? io->polls[fd] : NULL;
            if (p && p->in_set)
                fire(io, p, evs[i].events);
        }
    } while (n == EP_BATCH);
}

static void epwatch_closed(uv_handle_t *hd)
{
    struct gh__epwatch *w = (struct gh__epwatch *)hd;
    GH_REAL(close)(w->epfd);
    free(w);
}

/* h's epoll set, made at the first wait on h.  Returns 0 or an errno. */
static int epset_open(struct gh__hub *h)
{
    struct gh__io_hub *io = h->io;
    if (io->epfd >= 0)
        return 0;
    struct gh__epwatch *w = malloc(sizeof *w);
    if (!w)
        return ENOMEM;
    if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        int err = errno;
        free(w);
        return err;
    }
    int err;
    GH_IP_BYPASS(err = -uv_poll_init(&h->loop, &w->handle, w->epfd));
    if (err) {
        GH_REAL(close)(w->epfd);
        free(w);
        return err;
    }
    w->handle.data = h;
    if ((err = -uv_poll_start(&w->handle, UV_READABLE, on_epoll))) {
        uv_close((uv_handle_t *)&w->handle, epwatch_closed);   /* closes the set, frees w */
        return err;
    }
    io->epfd = w->epfd;
    io->epw = w;
    return 0;
}

/* Does a short read drain fd?  Only a TCP stream (see "Drained").  One
 * getsockopt per watch. */
static bool fd_is_tcp(int fd)
{
    int proto;
    socklen_t len = sizeof proto;
    return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_TCP;
}

/* Room in h's table for fd.  Returns 0 or ENOMEM. */
static int polls_reserve(struct gh__io_hub *io, int fd)
{
    if ((size_t)fd < io->cap)
        return 0;
    size_t cap = io->cap ? io->cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct gh__fdpoll **a = realloc(io->polls, cap * sizeof *a);
    if (!a)
        return ENOMEM;
    memset(a + io->cap, 0, (cap - io->cap) * sizeof *a);
    io->polls = a;
    io->cap = cap;
    return 0;
}

/* Puts p's fd into io's set, for every event, edge-triggered.  Returns 0
 * or an errno (EPERM: a file epoll cannot watch, a regular file).
 * EEXIST: still in the set under this number (its file closed where no
 * hook saw it, yet alive in a duplicate): taken over.  The fd's flags are
 * left alone: a watch needs no O_NONBLOCK. */
static int set_add(struct gh__io_hub *io, struct gh__fdpoll *p)
{
    struct epoll_event e = {
        .events = EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDHUP | EPOLLET,
        .data.fd = p->fd,
    };
    if (GH_REAL(epoll_ctl)(io->epfd, EPOLL_CTL_ADD, p->fd, &e) < 0 &&
        (errno != EEXIST || GH_REAL(epoll_ctl)(io->epfd, EPOLL_CTL_MOD, p->fd, &e) < 0))
        return errno;
    p->in_set = true;
    p->idle_fires = 0;
    return 0;
}

/* h's watch on fd, created on first use, its fd in h's set.  Returns 0,
 * EPERM for a file epoll cannot watch (a regular file: always ready), or
 * an errno. */
static int poll_get(struct gh__hub *h, int fd, struct gh__fdpoll **out)
{
    struct gh__io_hub *io = h->io;
    int err = polls_reserve(io, fd);
    if (err)
        return err;
    struct gh__fdpoll *p = io->polls[fd];
    if (p) {
        *out = p;
        return p->in_set ? 0 : set_add(io, p);
    }
    if ((err = epset_open(h)))
        return err;
    if (!(p = aligned_alloc(64, 64)))
        return ENOMEM;
    memset(p, 0, sizeof *p);
    p->fd = fd;
    p->regs = &p->one;
    p->cap = 1;
    if ((err = set_add(io, p))) {
        free(p);
        return err;
    }
    p->tcp = fd_is_tcp(fd);
    *out = io->polls[fd] = p;
    return 0;
}

/* h's watch on fd, or NULL if h has none. */
static struct gh__fdpoll *poll_find(struct gh__hub *h, int fd)
{
    struct gh__io_hub *io = h->io;
    return (size_t)fd < io->cap ? io->polls[fd] : NULL;
}

void gh__io_note_short(struct gh__hub *h, int fd)
{
    struct gh__fdpoll *p = poll_find(h, fd);
    if (p && p->tcp && !p->lasting)
        p->drained = true;
}

bool gh__io_drained_take(struct gh__hub *h, int fd)
{
    struct gh__fdpoll *p = poll_find(h, fd);
    if (!p || !p->drained)
        return false;
    p->drained = false;
    return true;
}

/* Hub thread: wakes fd's waiters on h with EBADF, takes fd out of h's set
 * (while fd is still open) and frees h's watch. */
static void poll_retire(struct gh__hub *h, int fd)
{
    struct gh__io_hub *io = h->io;
    if (!io || (size_t)fd >= io->cap || !io->polls[fd])
        return;
    struct gh__fdpoll *p = io->polls[fd];
    io->polls[fd] = NULL;
    for (unsigned i = 0; i < p->n; i++)
        gh__wake(p->regs[i].g, p->regs[i].gen, GH_WAKE_CLOSED);
    if (p->in_set)   /* (ENOENT: closed behind our back) */
        GH_REAL(epoll_ctl)(io->epfd, EPOLL_CTL_DEL, fd, NULL);
    watch_free(p);
}

/* ---- waiting ------------------------------------------------------------------ */

static short poll_events(int events)
{
    return (short)(((events & GH_READ) ? POLLIN : 0) | ((events & GH_WRITE) ? POLLOUT : 0));
}

/* ---- plain threads: poll(2), and gh_close wakes them ------------------------
 * Linux does not end a poll(2) on an fd that another thread closes, so a
 * plain thread that waits on fd also polls its own eventfd, registered in
 * fd's state (gh__fd_twait) for the wait; gh_close marks every registered
 * waiter closed and writes its eventfd, under the fd's lock, before
 * close(2).  Under that lock the waiter is still registered, so its
 * eventfd is still open.  A count left from a close that raced with the
 * end of an earlier wait is drained and ignored (`closed` decides).
 * Without an eventfd (none could be made) the wait is poll(2) alone. */

static pthread_key_t efd_key;        /* destructor closes the thread's eventfd */
static bool efd_key_ok;
static pthread_once_t efd_once = PTHREAD_ONCE_INIT;
static __thread int t_efd = -1;      /* plain threads only: never migrates */

static void efd_close(void *v)
{
    GH_REAL(close)((int)(intptr_t)v - 1);     /* stored + 1: NULL means none */
}

static void efd_key_make(void)
{
    efd_key_ok = pthread_key_create(&efd_key, efd_close) == 0;
}

/* The calling thread's eventfd, made on first use; -1 if none can be. */
static int thread_efd(void)
{
    if (t_efd >= 0)
        return t_efd;
    pthread_once(&efd_once, efd_key_make);
    if (!efd_key_ok)
        return -1;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -1;
    if (pthread_setspecific(efd_key, (void *)(intptr_t)(fd + 1)) != 0) {
        GH_REAL(close)(fd);
        return -1;
    }
    return t_efd = fd;
}

/* Registers tw on st.  False (nothing registered) if a gh_close of the fd
 * is under way. */
static bool twait_add(struct gh__fdstate *st, struct gh__fd_twait *tw)
{
    gh__spin_lock(&st->lock);
    bool closing = atomic_load_explicit(&st->closing, memory_order_relaxed);
    if (!closing) {
        tw->prev = NULL;
        tw->next = st->twaiters;
        if (tw->next)
            tw->next->prev = tw;
        st->twaiters = tw;
    }
    gh__spin_unlock(&st->lock);
    return !closing;
}

static void twait_unlink(struct gh__fdstate *st, struct gh__fd_twait *tw)
{
    if (tw->prev)
        tw->prev->next = tw->next;
    else
        st->twaiters = tw->next;
    if (tw->next)
        tw->next->prev = tw->prev;
}

static void twait_remove(struct gh__fdstate *st, struct gh__fd_twait *tw)
{
    gh__spin_lock(&st->lock);
    if (!atomic_load_explicit(&tw->closed, memory_order_relaxed))
        twait_unlink(st, tw);   /* else gh_close took it off */
    gh__spin_unlock(&st->lock);
}

/* gh_close, under st->lock: wakes every plain thread waiting on the fd. */
static void twaiters_wake(struct gh__fdstate *st)
{
    for (struct gh__fd_twait *tw = st->twaiters; tw; tw = tw->next) {
        atomic_store_explicit(&tw->closed, true, memory_order_release);
        uint64_t one = 1;
        /* Cannot fail but by a counter at its maximum: then it is readable. */
        ssize_t w = GH_REAL(write)(tw->efd, &one, sizeof one);
        (void)w;
    }
    st->twaiters = NULL;
}

/* poll(2)'s timeout for a wait ending at `at` (0: none). */
static int poll_ms(int64_t timeout_ms, uint64_t at)
{
    if (timeout_ms == 0)
        return 0;
    if (!at)
        return -1;
    uint64_t now = gh__now_ns();
    uint64_t left = at > now ? at - now : 0;
    uint64_t lms = (left + 999999) / 1000000;   /* never early */
    return lms > INT_MAX ? INT_MAX : (int)lms;
}

/* The poll(2) loop; pfd[1] (if n == 2) is tw's eventfd.  A count in it
 * that is not for this wait (the close of an earlier wait's fd, racing
 * with that wait's end) is drained and the loop goes on. */
static int poll_loop(struct pollfd *pfd, nfds_t n, struct gh__fd_twait *tw,
                     int64_t timeout_ms, uint64_t at)
{
    for (;;) {
        int ms = poll_ms(timeout_ms, at);
        int r = GH_REAL(poll)(pfd, n, ms);
        if (r > 0 && n == 2 && pfd[1].revents) {   /* drained, whoever wrote */
            uint64_t c;
            ssize_t got = GH_REAL(read)(pfd[1].fd, &c, sizeof c);
            (void)got;
        }
        if (n == 2 && atomic_load_explicit(&tw->closed, memory_order_acquire))
            return EBADF;   /* before pfd[0]: its number may be reused */
        if (r > 0 && pfd[0].revents)
            return (pfd[0].revents & POLLNVAL) ? EBADF : 0;
        if (r < 0 && errno != EINTR)
            return errno;
        if (r == 0 && ms == 0)
            return ETIMEDOUT;   /* the call's timeout or the scope's */
    }
}

/* A plain thread (or a zero timeout): poll(2), within the deadline
 * scope; a gh_close of fd ends it with EBADF. */
static int wait_thread(int fd, int events, int64_t timeout_ms)
{
    bool by_scope;
    uint64_t at = timeout_ms ? gh__scope_deadline(timeout_ms, &by_scope) : 0;
    struct gh__fd_twait tw = { .efd = -1 };
    struct gh__fdstate *st = NULL;
    if (timeout_ms != 0 && (tw.efd = thread_efd()) >= 0 &&
        (st = gh__fdstate_get(fd)) && !twait_add(st, &tw))
        return EBADF;   /* being closed by another thread */
    struct pollfd pfd[2] = {
        { .fd = fd, .events = poll_events(events) },
        { .fd = tw.efd, .events = POLLIN },
    };
    int err = poll_loop(pfd, st ? 2 : 1, &tw, timeout_ms, at);
    if (st)
        twait_remove(st, &tw);
    return err;
}

/* A greenlet on hub h: registers on h's watch and parks. */
static int wait_green(struct gh__hub *h, gh_greenlet *self, int fd, int events,
                      int64_t timeout_ms)
{
    struct gh__fdpoll *p;
    int err = poll_get(h, fd, &p);
    if (err)
        return err == EPERM ? 0 : err;
    /* Under fault injection the caller's EAGAIN may be a lie: look. */
    if (atomic_load_explicit(&gh__real_overrides, memory_order_relaxed) &&
        wait_thread(fd, events, 0) == 0)
        return 0;
    if ((err = regs_reserve(p)))
        return err;
    /* From the wait's opening to the park, nothing may fail: a gh_kill may
     * already have claimed it (see gh__waiter_arm). */
    uint64_t gen = gh__wait_open(self);
    p->regs[p->n++] = (struct gh__fdreg){ self, gen, events };
    gh__stat_inc(&h->st.io_waits);
    int r = gh__park(self, gen, timeout_ms, NULL, NULL);
    if (r == GH_WAKE_EVENT)
        return 0;   /* the callback dropped the registration */
    if (r != GH_WAKE_CLOSED && gh__hub_self() == h) {
        struct gh__io_hub *io = h->io;
        if ((size_t)fd < io->cap && io->polls[fd])
            regs_remove(io->polls[fd], self, gen);
    }
    return gh__reason_errno(r);
}

int gh__io_wait(int fd, int events, int64_t timeout_ms)
{
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (!self || timeout_ms == 0)
        return wait_thread(fd, events, timeout_ms);
    struct gh__fdstate *st = gh__fdstate_get(fd);
    if (!st)
        return errno;
    int err;
    while ((err = gh__fd_mark_hub(st, h->index)) == EAGAIN) {
        gh_yield();   /* a gh_close of fd is under way: let it finish */
        h = gh__hub_self();
    }
    return err ? err : wait_green(h, self, fd, events, timeout_ms);
}

/* h's watches for the n fds, each with room for a registration: 0, EPERM
 * (one is a regular file: ready now) or an errno. */
static int many_prepare(struct gh__hub *h, const int *fds, const int *events,
                        size_t n, struct gh__fdpoll **ps)
{
    for (size_t i = 0; i < n; i++) {
        ps[i] = NULL;
        if (fds[i] < 0 || !events[i])
            continue;
        int err = poll_get(h, fds[i], &ps[i]);
        if (!err)
            err = regs_reserve(ps[i]);
        if (err)
            return err;
    }
    return 0;
}

/* Marks h in each fd's hub mask, yielding while one is being closed.
 * Returns the hub the caller is on by then, or NULL (errno set). */
static struct gh__hub *many_mark(const int *fds, const int *events, size_t n)
{
    struct gh__hub *h = gh__hub_self();
    for (size_t i = 0; i < n; i++) {
        if (fds[i] < 0 || !events[i])
            continue;
        struct gh__fdstate *st = gh__fdstate_get(fds[i]);
        if (!st)
            return NULL;
        int err = gh__fd_mark_hub(st, h->index);
        if (err == EAGAIN) {   /* a gh_close of it is under way: let it end */
            gh_yield();
            h = gh__hub_self();
            i = (size_t)-1;    /* maybe on another hub now: mark all again */
            continue;
        }
        if (err) {
            errno = err;
            return NULL;
        }
    }
    return h;
}

int gh__io_wait_many(const int *fds, const int *events, size_t n, int64_t timeout_ms)
{
    struct gh__fdpoll *small[16], **ps = small;
    if (n > 16 && !(ps = malloc(n * sizeof *ps)))
        return ENOMEM;
    struct gh__hub *h = many_mark(fds, events, n);
    int err = h ? many_prepare(h, fds, events, n, ps) : errno;
    if (err) {
        if (ps != small)
            free(ps);
        return err == EPERM ? 0 : err;
    }
    gh_greenlet *self = h->current;
    /* From the wait's opening to the park, nothing may fail (as in
     * wait_green). */
    uint64_t gen = gh__wait_open(self);
    for (size_t i = 0; i < n; i++) {
        struct gh__fdpoll *p = ps[i];
        if (!p)
            continue;
        /* One registration per watch (room for one was reserved): an fd
         * listed twice merges its events into the first. */
        struct gh__fdreg *last = p->n ? &p->regs[p->n - 1] : NULL;
        if (last && last->g == self && last->gen == gen)
            last->events |= events[i];
        else
            p->regs[p->n++] = (struct gh__fdreg){ self, gen, events[i] };
    }
    gh__stat_inc(&h->st.io_waits);
    int r = gh__park(self, gen, timeout_ms, NULL, NULL);
    /* The registrations the wake left (all but the one that fired): gone
     * now if still on h; elsewhere they are stale and purged later. */
    if (r != GH_WAKE_CLOSED && gh__hub_self() == h) {
        for (size_t i = 0; i < n; i++) {
            struct gh__fdpoll *p = fds[i] >= 0 && events[i] ? poll_find(h, fds[i]) : NULL;
            if (p)
                regs_remove(p, self, gen);
        }
    }
    if (ps != small)
        free(ps);
    return r == GH_WAKE_EVENT ? 0 : gh__reason_errno(r);
}

int gh_wait_fd(int fd, int events, int64_t timeout_ms)
{
    if (fd < 0 || fd >= GH_FD_MAX || events == 0 ||
        (events & ~(GH_READ | GH_WRITE)) || timeout_ms < -1)
        return EINVAL;
    /* Its caller has not necessarily met EAGAIN: look first (see
     * "Looking first" at the top). */
    struct gh__hub *h = gh__hub_self();
    if (h && h->current && timeout_ms != 0) {
        int err = wait_thread(fd, events, 0);
        if (err != ETIMEDOUT)
            return err;
    }
    return gh__io_wait(fd, events, timeout_ms);
}

/* ---- closing ------------------------------------------------------------------ */

static void op_answer(struct gh__close_op *op)
{
    if (atomic_fetch_sub(&op->pending, 1) == 1)
        gh_event_set(&op->done);
}

/* A hub's answer; its last touch of op is the release below. */
static void op_answer_hub(struct gh__close_op *op)
{
    op_answer(op);
    atomic_fetch_sub_explicit(&op->touching, 1, memory_order_release);
}

static void retire_call(struct gh__hub *h, struct gh__hubcall *call)
{
    struct gh__retire_req *req = (struct gh__retire_req *)call;
    poll_retire(h, req->fd);
    op_answer_hub(req->op);
    free(req);
}

/* Waits for every hub's answer, and for the hubs to let go of op; a kill
 * or a deadline cannot cut this short (the requests point at op). */
static void op_wait(struct gh__close_op *op)
{
    while (!gh_event_is_set(&op->done))
        if (gh_event_wait(&op->done, -1) != 0)
            gh_yield();
    /* The last answer set `done` just before its release: a few
     * instructions away. */
    while (atomic_load_explicit(&op->touching, memory_order_acquire) != 0)
        gh__cpu_relax();
    gh_event_destroy(&op->done);
}

static bool hub_in_mask(unsigned i, uint64_t mask)
{
    return mask & (1ull << (i % 64));
}

/* Retires fd's watch on every hub in mask.  Returns 0 or ENOMEM (then
 * nothing was asked of other hubs). */
static int retire_everywhere(struct gh__runtime *rt, int fd, uint64_t mask)
{
    struct gh__hub *self = gh__hub_self();
    unsigned n = 0;
    for (unsigned i = 0; i < rt->nhubs; i++)
        n += hub_in_mask(i, mask) && &rt->hubs[i] != self;
    struct gh__retire_req **reqs = NULL;
    if (n && !(reqs = calloc(n, sizeof *reqs)))
        return ENOMEM;
    for (unsigned k = 0; k < n; k++) {
        if (!(reqs[k] = malloc(sizeof **reqs))) {
            while (k--)
                free(reqs[k]);
            free(reqs);
            return ENOMEM;
        }
    }
    if (self && hub_in_mask(self->index, mask))
        poll_retire(self, fd);
    if (!n)
        return 0;
    struct gh__close_op op;
    /* + 1: the closer's own answer, given once every request is posted,
     * so `done` cannot be set while requests are still going out. */
    atomic_init(&op.pending, n + 1);
    atomic_init(&op.touching, n);
    gh_event_init(&op.done);
    unsigned k = 0;
    for (unsigned i = 0; i < rt->nhubs; i++) {
        if (!hub_in_mask(i, mask) || &rt->hubs[i] == self)
            continue;
        struct gh__retire_req *req = reqs[k++];
        *req = (struct gh__retire_req){ { NULL, retire_call }, fd, &op };
        if (!gh__hub_call(&rt->hubs[i], &req->call)) {
            free(req);
            op_answer_hub(&op);   /* that hub has stopped: nothing to retire */
        }
    }
    free(reqs);
    op_answer(&op);
    op_wait(&op);
    return 0;
}

/* gh_close's protocol (see "Closing" at the top) with `closer` in step 3:
 * close(2) itself, or a libc function that closes fd inside libc where
 * the layer cannot see it (fclose, pclose: interpose.c).  closer NULL:
 * retire only, for a number whose file was already closed behind the
 * layer's back.  Returns closer's result (0 for NULL), negative for a
 * failure with errno set (pclose's positive status is a success). */
int gh__close_with(int fd, int (*closer)(int fd, void *arg), void *arg)
{
    struct gh__fdstate *st = gh__fdstate_get(fd);
    if (!st)
        return closer ? closer(fd, arg) : 0;   /* beyond the table: never waited on */
    struct gh__runtime *rt = gh__rt;
    gh__spin_lock(&st->lock);
    if (atomic_load_explicit(&st->closing, memory_order_relaxed)) {
        gh__spin_unlock(&st->lock);
        errno = EBADF;
        return -1;
    }
    atomic_store_explicit(&st->closing, true, memory_order_relaxed);
    twaiters_wake(st);
    /* Forget O_NONBLOCK (and what the interposition layer knew) now, not
     * after close(2): a blocking fd that gets the number in between must
     * not be taken for non-blocking. */
    atomic_store_explicit(&st->nb, 0, memory_order_relaxed);
    atomic_store_explicit(&st->managed, 0, memory_order_relaxed);
    atomic_store_explicit(&st->user_nb, 0, memory_order_relaxed);
    atomic_store_explicit(&st->rcv_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&st->snd_ms, 0, memory_order_relaxed);
    uint64_t mask = gh__fd_hubmask(st);
    gh__spin_unlock(&st->lock);

    int err = mask ? retire_everywhere(rt, fd, mask) : 0;
    int r = -1;
    if (!err) {
        r = closer ? closer(fd, arg) : 0;
        err = r < 0 ? errno : 0;
    }
    gh__spin_lock(&st->lock);
    if (r >= 0 || err != ENOMEM)
        atomic_store_explicit(&st->hubmask, 0, memory_order_relaxed);
    atomic_store_explicit(&st->closing, false, memory_order_release);
    gh__spin_unlock(&st->lock);
    if (r >= 0 && closer)
        gh__fd_freed_notify();
    else if (r < 0)
        errno = err;   /* on success errno is left alone, as close(2) does */
    return r;
}

static int real_close(int fd, void *arg)
{
    (void)arg;
    return GH_REAL(close)(fd);
}

int gh_close(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    return gh__close_with(fd, real_close, NULL);
}

/* ---- hub start and stop -------------------------------------------------------- */

int gh__io_hub_init(struct gh__hub *h)
{
    h->io = calloc(1, sizeof *h->io);
    h->io_reqs = h->io_reqs_tail = NULL;
    h->io_closed = false;
    if (!h->io)
        return ENOMEM;
    h->io->epfd = -1;
    return 0;
}

/* Hub thread, its loop about to close: frees every watch (their greenlets
 * will not run again: the runtime is stopping) and closes the set. */
void gh__poll_hub_fini(struct gh__hub *h)
{
    struct gh__io_hub *io = h->io;
    if (!io)
        return;
    for (size_t fd = 0; fd < io->cap; fd++) {
        struct gh__fdpoll *p = io->polls[fd];
        if (p)
            watch_free(p);
    }
    if (io->epw)
        uv_close((uv_handle_t *)&io->epw->handle, epwatch_closed);
    free(io->polls);
    free(io);
    h->io = NULL;
}
