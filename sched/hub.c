/* sched/hub.c — the hub loop: run queues, switching, stealing, hub sleep.
 *
 * Glossary
 *   greenlet   a function on its own stack, switched cooperatively.
 *   hub        one OS thread pinned to one core: runs greenlets, owns a
 *              libuv loop (timers, cross-thread wakeups, later I/O).
 *   next slot  the greenlet to run next on a hub (the one just woken or
 *              spawned there): message passing keeps its locality.
 *   deque      a hub's Chase–Lev deque of runnable greenlets (deque.c).
 *   local list a hub's owner-only FIFO: greenlets pinned to it, and
 *              greenlets that yielded.
 *   mailbox    a locked FIFO through which other threads hand a hub the
 *              greenlets pinned to it.
 *   inject     the global locked FIFO through which plain threads hand work
 *              to the hubs.
 *   park       a greenlet gives up its hub until a waker makes it runnable
 *              (park.c); unpark makes it RUNNABLE on the waker's hub.
 *
 * Run queues
 *   A runnable greenlet is in exactly one of: a next slot, a local list, a
 *   deque, a mailbox, the inject queue.
 *
 *   A hub pops its own deque at the bottom (LIFO, newest first) and thieves
 *   take from the top (oldest first): Cilk's work-first order.  For
 *   fork-join work (a greenlet spawns children and joins them) this runs
 *   the tree depth-first on each hub, so the greenlets alive at once, and
 *   with them the stacks in use, stay near branching x depth per hub, while
 *   thieves take the oldest entries, which are the biggest subtrees.
 *   Rejected: taking our own deque FIFO, as Go and Tokio take their run
 *   queues.  It expands a fork-join tree breadth-first: skynet then had a
 *   million greenlets alive, each needing a fresh stack (page faults, trims
 *   with TLB shootdowns), and took 6.2 s instead of well under one.
 *   Fairness under LIFO comes from three rules: every LOOK_EVERY ticks the
 *   hub takes its *oldest* deque entry instead of the newest, so no entry
 *   waits forever; thieves always take the oldest; and yielders never go to
 *   the deque.  They go to the local list, a FIFO, so a yield lets every
 *   other runnable greenlet of the hub run first.  A yield is then a switch
 *   and two plain list operations, with no atomic read-modify-write.  A
 *   yielder cannot be stolen until it runs again.  The hub alternates
 *   between its local list and its deque so that neither starves the
 *   other.
 *
 * Switching
 *   A greenlet that blocks or yields picks the next greenlet itself
 *   (pick_fast) and switches straight to it; only when its hub has nothing
 *   local to run, or it is time to look around (every LOOK_EVERY ticks),
 *   does it switch to the hub's scheduler context, which runs
 *   find_runnable().  Whoever receives a switch first runs after_switch(),
 *   which finishes what the previous greenlet asked for (re-queue after a
 *   yield, complete a park, release a dead greenlet).  That is what makes
 *   parking safe: the lock of the primitive a greenlet parks on is released
 *   only after its registers are saved and it is off its stack.
 *   One exception, the commonest switch of all: a yield whose next
 *   greenlet is the head of the local list queues itself first and leaves
 *   nothing for after_switch (yield_fast; safe because the local list is
 *   this thread's alone).
 *
 * Hub sleep (no lost wakeups, no thundering herd; Go's spinning-M rule)
 *   A hub with no work may *search* (steal); rt->nr_searching counts
 *   searchers, and at most half the awake hubs search at once.  A hub that
 *   makes work runnable (pushes on its deque or the inject queue) calls
 *   wakep(): if no hub is searching and some hub sleeps, it wakes exactly
 *   one, which starts out searching.  A searcher that finds work stops
 *   searching, and if it was the last searcher and more work is visible in
 *   the inject queue or a deque (after a full barrier: pushers skipped
 *   wakep() while it searched), it calls wakep() in turn, so a burst of
 *   work wakes hubs one at a time, only as long as there is something left
 *   for them, and one lone greenlet wakes one hub.  (Go's resetspinning()
 *   wakes another unconditionally; that hub finds nothing and sleeps again,
 *   a wasted ~12 us round trip per lone wakeup here.)  To sleep, a hub:
 *     1. stops searching; if it was the last searcher, issues a full
 *        barrier and re-checks every queue (a pusher may have skipped
 *        wakep() because it saw us searching);
 *     2. announces itself: pushes itself on rt->idle, nr_sleeping++;
 *     3. full barrier (pairs with the one in wakep(): either the pusher
 *        sees nr_sleeping > 0, or we see its work);
 *     4. re-checks every queue, and cancels the sleep if anything is there;
 *     5. sleeps in uv_run(UV_RUN_ONCE): epoll until its timer, its uv_async
 *        (wakep, a mailbox delivery, shutdown) or, later, I/O.
 *   Never check first and announce after: a push in between would be lost.
 *   Step 5 has one more trap.  libuv (1.44, Debian 12's) runs due timers at
 *   the *top* of uv_run, before it computes the poll timeout: a greenlet
 *   timer that falls due between step 4 and uv_run wakes its greenlets onto
 *   the local list, the next deadline is far off or none, and epoll would
 *   block with runnable work queued.  So a greenlet made runnable from a
 *   callback while in_sleep calls uv_stop(), which makes that uv_run poll
 *   with timeout 0 and return (test_timer_due_as_hub_falls_asleep_is_not_lost
 *   widens the window with GREENHUB_TEST_SLEEP_DELAY_US).
 *
 * Threads and ownership: everything in struct gh__hub above its "shared"
 * line is touched only by the hub's own thread (see internal.h). */
#include "internal.h"
#include "../io/real.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Every LOOK_EVERY ticks a hub looks beyond its own queues: the inject
 * queue first (so plain threads' work is not starved by a busy hub), and its
 * timers.  Go uses 61 for its global queue; a power of two makes the test
 * one instruction on the yield path (3 for % 61; gh_yield 6.9 -> 6.5 ns
 * with the switch's FPU skip). */
enum { LOOK_EVERY = 64 };
/* Every POLL_EVERY look-arounds a busy hub also runs its libuv loop once
 * without blocking (it always does when its queues run dry).  A guess. */
enum { POLL_EVERY = 16 };
/* Greenlets taken from the inject queue at once, at most: bounds how long
 * the inject lock is held.  A guess. */
enum { INJECT_BATCH = 32 };
/* Passes over all victims per steal attempt.  A guess. */
enum { STEAL_ROUNDS = 2 };
/* How long a searching hub keeps looking before it sleeps.  Waking a hub
 * costs ~12 us per round trip on these machines (DESIGN.md); a hub that
 * slept at once was woken 1,168 times in one 0.45 s core-scaling run.
 * Spinning a few wakeups' worth first lets the other hubs hand it work
 * without a wakeup.  Measured: sleeps per run fell from ~1,168 to ~400
 * with the spin alone, and to 2 together with local_share(); an idle
 * runtime still uses ~0.0002 s of CPU per second (tests/test_sched.c).
 * It was 50 us; now 10.  On a 16-core machine the 50 us spin cost an
 * I/O-bound echo server 3.0-3.3 cores where 10 us used 2.3-2.6 (Go: ~2)
 * for the same throughput, and the CPU-bound benchmark did not move.  On
 * 2 cores, after stack trimming stopped costing TLB shootdowns (stack.c),
 * 10 and 50 us measure the same on core scaling, skynet, the contended
 * mutex and cross-hub ping-pong (2.4 us a round trip; with no spin 27 us:
 * every hand-over then wakes a sleeping hub).  GREENHUB_SPIN_US overrides
 * it (rt->spin_ns). */
enum { SPIN_NS = 10 * 1000 };
const uint64_t gh__spin_ns_default = SPIN_NS;

struct gh__runtime *gh__rt;

__thread struct gh__hub *gh__tls_hub
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
#define tls_hub gh__tls_hub

/* noinline/noipa: the compiler must not reuse a thread-local address across
 * a switch (see "Migration" in DESIGN.md).  x86-64 reads it inline
 * (internal.h). */
#if !defined(__x86_64__)
__attribute__((noinline, noipa)) struct gh__hub *gh__hub_self(void)
{
    return tls_hub;
}
#endif

void gh__hub_set_self(struct gh__hub *h)
{
    tls_hub = h;
}

/* Not const (unlike __errno_location): see "errno" in runtime.h. */
__attribute__((noinline, noipa)) int *gh_errno_location(void)
{
    return __errno_location();
}

void gh__die(const char *fn, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "greenhub: %s: ", fn);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    gh__monitor_on_death();
    abort();
}

/* ---- locked FIFOs (inject queue, mailboxes) ------------------------------- */

void gh__fifo_init(struct gh__fifo *f)
{
    pthread_mutex_init(&f->mu, NULL);
    f->head = f->tail = NULL;
    atomic_init(&f->len, 0);
}

void gh__fifo_destroy(struct gh__fifo *f)
{
    pthread_mutex_destroy(&f->mu);
}

static void fifo_push(struct gh__fifo *f, gh_greenlet *g)
{
    g->qnext = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->tail)
        f->tail->qnext = g;
    else
        f->head = g;
    f->tail = g;
    atomic_store_explicit(&f->len, atomic_load_explicit(&f->len, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    pthread_mutex_unlock(&f->mu);
}

/* Takes up to max greenlets; returns the first, chains the rest via qnext. */
static gh_greenlet *fifo_take(struct gh__fifo *f, size_t max)
{
    if (atomic_load_explicit(&f->len, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&f->mu);
    gh_greenlet *first = f->head, *last = NULL;
    size_t n = 0;
    for (gh_greenlet *g = first; g && n < max; g = g->qnext) {
        last = g;
        n++;
    }
    if (last) {
        f->head = last->qnext;
        if (!f->head)
            f->tail = NULL;
        last->qnext = NULL;
        atomic_store_explicit(&f->len, atomic_load_explicit(&f->len, memory_order_relaxed) - n,
                              memory_order_relaxed);
    }
    pthread_mutex_unlock(&f->mu);
    return first;
}

/* ---- local queues (hub thread only) --------------------------------------- */

static void wakep(void);

/* local_len is read by gh_stats_hubs and the monitor thread: relaxed atomic
 * stores (plain movs) by the owner. */
static inline void local_len_set(struct gh__hub *h, size_t n)
{
    __atomic_store_n(&h->local_len, n, __ATOMIC_RELAXED);
}

/* h->tick counts scheduling decisions, including a gh_yield that found
 * nothing else to run; the monitor's blocking detector reads it (a
 * greenlet that yields is not blocking its hub even when no switch
 * follows), so the owner writes it with relaxed atomic stores. */
static inline void tick_set(struct gh__hub *h, uint32_t t)
{
    __atomic_store_n(&h->tick, t, __ATOMIC_RELAXED);
}

static void local_push(struct gh__hub *h, gh_greenlet *g)
{
    g->qnext = NULL;
    if (h->local_tail)
        h->local_tail->qnext = g;
    else
        h->local_head = g;
    h->local_tail = g;
    local_len_set(h, h->local_len + 1);
}

/* Warms what the switch to g, the next greenlet of the local list, will
 * touch: the top of its stack (the resumed code pops its registers there
 * and pushes below), and the control block of the one after it, whose
 * stack pointer the next call reads.  A server's local list is the batch of
 * greenlets its last poll woke, each resumed once per request with its
 * stack long out of the cache: at 1000 echo connections the first touch of
 * the resumed stack was 4-5% of the server's CPU samples.  With this, 3 of 3
 * alternating runs served 3% more messages/s; at 100 connections, where
 * the stacks stay cached, no change.
 * Hub thread only, like the local list it reads.  g->ctx.sp may be stale
 * (yield_fast queues a yielder before its switch saves it) and sp + 56 may
 * lie past a new stack's top: harmless, a prefetch never faults. */
static inline void prefetch_next_run(gh_greenlet *g)
{
    char *sp = g->ctx.sp;
    __builtin_prefetch(sp - 8, 1, 3);
    __builtin_prefetch(sp + 56, 1, 3);
    if (g->qnext)
        __builtin_prefetch(g->qnext, 1, 3);
}

static gh_greenlet *local_pop(struct gh__hub *h)
{
    gh_greenlet *g = h->local_head;
    if (g) {
        h->local_head = g->qnext;
        if (h->local_head)
            prefetch_next_run(h->local_head);
        else
            h->local_tail = NULL;
        g->qnext = NULL;
        local_len_set(h, h->local_len - 1);
    }
    return g;
}

/* Moves half of the local list's unpinned greenlets (the oldest first) to
 * the deque, where idle hubs can steal them.  Pinned ones keep their
 * order.  A hub running nothing keeps the odd one: a lone greenlet woken
 * by its timer stays to run here next, instead of waking another hub that
 * would only take it away (measured: 50 sleeps of 5 ms on 8 hubs cost 90-100
 * hub wakeups, 50 of them cross-thread; 53 and 0 with this). */
__attribute__((noinline, cold)) static void local_share(struct gh__hub *h)
{
    size_t n = (h->local_len + (h->current != NULL)) / 2, moved = 0;
    gh_greenlet *keep_h = NULL, *keep_t = NULL, *g = h->local_head;
    size_t kept = 0;
    while (g) {
        gh_greenlet *nx = g->qnext;
        g->qnext = NULL;
        if (moved < n && gh__home_hub(g) < 0 && gh__deque_push(&h->dq, g) == 0) {
            moved++;
        } else {
            if (keep_t)
                keep_t->qnext = g;
            else
                keep_h = g;
            keep_t = g;
            kept++;
        }
        g = nx;
    }
    h->local_head = keep_h;
    h->local_tail = keep_t;
    local_len_set(h, kept);
    if (moved)
        wakep();
}

static gh_greenlet *deque_take(struct gh__hub *h)
{
    if (h->tick % LOOK_EVERY != 0)
        return gh__deque_pop(&h->dq);
    void *x;
    while ((x = gh__deque_steal(&h->dq)) == GH_DEQUE_ABORT)
        ;
    return x;
}

/* Hub thread only: g (RUNNABLE) joins h's queues at the back.  Out of
 * line: inlined into gh__enqueue it costs every spawn and wakeup a bigger
 * frame (4 instructions per call, 12 per spawn+join in callgrind) for a
 * path only a full next slot takes. */
__attribute__((noinline)) static void push_back(struct gh__hub *h, gh_greenlet *g)
{
    if (gh__home_hub(g) >= 0) {   /* on its home hub: callers see to it */
        local_push(h, g);
        return;
    }
    if (gh__deque_push(&h->dq, g) != 0) {
        /* The deque cannot grow (no memory): the inject queue needs none. */
        fifo_push(&gh__rt->inject, g);
    }
    wakep();
}

/* Hub thread only: g (RUNNABLE) runs next on h; the previous occupant of
 * the next slot moves to the back. */
static void push_next(struct gh__hub *h, gh_greenlet *g)
{
    gh_greenlet *old = h->next;
    __atomic_store_n(&h->next, g, __ATOMIC_RELAXED);   /* read by stats */
    if (old)
        push_back(h, old);
}

static void share_if_idle(struct gh__hub *h);

/* Any thread: makes g (already RUNNABLE) runnable somewhere.  Woken by a
 * greenlet, it goes to that hub's next slot (locality: the wakee runs right
 * after its waker).  Woken by a hub's scheduler itself (timers, later I/O),
 * there is no waker to stay near, and several may wake at once: they queue
 * FIFO on the local list, so they run in the order they woke (deadline
 * order for timers).  Pinned greenlets go to their hub; plain threads use
 * the inject queue. */
void gh__enqueue(gh_greenlet *g)
{
    struct gh__hub *h = gh__hub_self();
    int home = gh__home_hub(g);
    if (home >= 0 && (!h || h->index != (unsigned)home)) {
        struct gh__hub *t = &gh__rt->hubs[home];
        fifo_push(&t->mailbox, g);
        /* Always, even when t is awake and would find the mail itself.
         * Skipping it then (a may_sleep flag paired with hub_sleep's step-3
         * fence) was tried: cross-hub pinned event ping-pong went from 2.5
         * to 6.5 us per round trip, the hubs sleeping 0.29 times per round
         * trip instead of 0.001, whatever the spin length (so the hub that
         * slept was the non-searching one).  Why the async kept it awake
         * is not understood yet; measure that before trying again. */
        uv_async_send(&t->async);
        return;
    }
    if (!h) {
        fifo_push(&gh__rt->inject, g);
        wakep();
        return;
    }
    if (!h->current) {
        local_push(h, g);
        share_if_idle(h);
        if (h->in_sleep)        /* a callback inside hub_sleep's uv_run */
            uv_stop(&h->loop);  /* poll with timeout 0; see "Hub sleep" */
        return;
    }
    push_next(h, g);
}

static void mailbox_drain(struct gh__hub *h)
{
    gh_greenlet *g = fifo_take(&h->mailbox, SIZE_MAX);
    while (g) {
        gh_greenlet *n = g->qnext;
        local_push(h, g);
        g = n;
    }
}

/* The next greenlet from h's own queues, or NULL. */
static gh_greenlet *local_take(struct gh__hub *h)
{
    gh_greenlet *g;
    if (atomic_load_explicit(&h->mailbox.len, memory_order_relaxed))
        mailbox_drain(h);
    if ((g = h->next)) {
        __atomic_store_n(&h->next, NULL, __ATOMIC_RELAXED);
        return g;
    }
    if (h->tick & 1) {
        if ((g = local_pop(h)) || (g = deque_take(h)))
            return g;
    } else {
        if ((g = deque_take(h)) || (g = local_pop(h)))
            return g;
    }
    return NULL;
}

static gh_greenlet *inject_take(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    size_t len = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    if (len == 0)
        return NULL;
    size_t n = len / rt->nhubs + 1;
    gh_greenlet *g = fifo_take(&rt->inject, n < INJECT_BATCH ? n : INJECT_BATCH);
    if (!g)
        return NULL;
    for (gh_greenlet *x = g->qnext; x;) {
        gh_greenlet *nx = x->qnext;
        x->qnext = NULL;
        if (gh__deque_push(&h->dq, x) != 0)
            local_push(h, x);
        x = nx;
    }
    g->qnext = NULL;
    return g;
}

/* ---- switching -------------------------------------------------------------- */

/* Hub thread: g (RUNNABLE, taken from a queue by this hub) becomes h's
 * current greenlet.  A greenlet taken twice would abort here. */
static inline void set_running(struct gh__hub *h, gh_greenlet *g)
{
    int s = atomic_load_explicit(&g->state, memory_order_acquire);
    if (s != GH_G_RUNNABLE)
        gh__die(__func__, "greenlet #%llu resumed in state %d (double resume)",
                (unsigned long long)g->id, s);
    atomic_store_explicit(&g->state, GH_G_RUNNING, memory_order_relaxed);
    if (g->last_hub != h) {
        if (g->last_hub)   /* a migration: rare, so the RMW may stay */
            atomic_fetch_add_explicit(&g->last_hub->sh.departed, 1, memory_order_relaxed);
        gh__stat_inc(&h->st.arrived);
        g->last_hub = h;
        gh__stack_owner_set(&g->ctx, h->index);   /* "Owners" in stack.c */
    }
    gh__hub_set_current(h, g);
    gh__stat_inc(&h->st.switches);
}

/* A greenlet to switch to directly, or NULL: go through the scheduler,
 * which looks around (inject queue, timers, libuv, `stopping`) at least
 * every LOOK_EVERY switches. */
static gh_greenlet *pick_fast(struct gh__hub *h)
{
    tick_set(h, h->tick + 1);
    if (h->tick % LOOK_EVERY == 0)
        return NULL;
    return local_take(h);
}

/* Greenlet context: leaves self's stack with `action` for after_switch, to
 * `next` or (if NULL) the scheduler.  Returns the hub self resumes on.
 * Always inlined: one call level less on every park and exit path (each
 * level is a return the CPU mispredicts after a switch; spawn+join went
 * from 107.5 to 106 ns). */
static inline __attribute__((always_inline)) struct gh__hub *
switch_to(struct gh__hub *h, gh_greenlet *self, gh_greenlet *next, int action)
{
    self->saved_errno = *h->errno_loc;
    if (action != GH_ACT_NONE) {   /* constant at every (inlined) call */
        h->prev = self;
        h->prev_action = action;
    }
    struct gh__ctx *to = &h->sched_ctx;
    if (next) {
        set_running(h, next);
        to = &next->ctx;
    } else {
        gh__hub_set_current(h, NULL);
    }
    h = gh__ctx_jump(&self->ctx, to, h, action == GH_ACT_EXIT);
    gh__after_switch(h);
    /* Self is h->current again (whoever switched here set it): read it
     * back rather than keep self in a register across the switch, which
     * costs the caller a callee-saved register push and pop per switch. */
    *h->errno_loc = h->current->saved_errno;   /* the thread we resumed on */
    return h;
}

struct gh__hub *gh__switch_out(struct gh__hub *h, gh_greenlet *self, int action)
{
    return switch_to(h, self, pick_fast(h), action);
}

size_t gh__hub_runnable(struct gh__hub *h)
{
    return gh__deque_size(&h->dq) +
           atomic_load_explicit(&h->mailbox.len, memory_order_relaxed) +
           __atomic_load_n(&h->local_len, __ATOMIC_RELAXED) +
           (__atomic_load_n(&h->next, __ATOMIC_RELAXED) != NULL);
}

uint64_t gh__hub_alive(struct gh__hub *h)
{
    /* Three counters written at different times: the sum can be off by a
     * greenlet in flight, never wrong for long; below 0 reads 0. */
    int64_t alive = (int64_t)(atomic_load_explicit(&h->st.arrived, memory_order_relaxed) -
                              atomic_load_explicit(&h->st.ended, memory_order_relaxed) -
                              atomic_load_explicit(&h->sh.departed, memory_order_relaxed));
    return alive > 0 ? (uint64_t)alive : 0;
}

/* Any hub idle (sleeping or searching)?  Then work should be shared.
 * For a running greenlet's hub, which is neither, as good as
 * other_hubs_idle() and cheaper. */
static inline bool hubs_idle(void)
{
    struct gh__runtime *rt = gh__rt;
    return atomic_load_explicit(&rt->nr_sleeping, memory_order_relaxed) |
           atomic_load_explicit(&rt->nr_searching, memory_order_relaxed);
}

/* The greenlet a yield may rotate to without the general machinery, or
 * NULL.  Exactly the greenlet pick_fast() would choose, in the one common
 * case where the choice is the head of the local list: not a look-around
 * tick, nothing in the next slot or mailbox, and on a deque-first tick an
 * empty deque.  No hub may be idle, or the yielder must be shared
 * (share_if_idle), which the general path does. */
static inline gh_greenlet *yield_fast_pick(struct gh__hub *h)
{
    gh_greenlet *g = h->local_head;
    uint32_t t = h->tick + 1;
    if (!g || h->next || t % LOOK_EVERY == 0 ||
        atomic_load_explicit(&h->mailbox.len, memory_order_relaxed) ||
        (!(t & 1) && gh__deque_size(&h->dq)) || hubs_idle())
        return NULL;
    tick_set(h, t);
    return g;
}

/* gh_yield's fast path: self goes to the back of the local list and the
 * head (next) runs, in one switch with nothing left for after_switch.
 * Queuing self while it still runs on its stack is safe here, unlike
 * anywhere else: the local list belongs to this thread, which does
 * nothing but this switch until self's registers are saved, and a deque
 * push by whoever runs next (local_share) publishes them to thieves. */
static inline void yield_fast(struct gh__hub *h, gh_greenlet *self, gh_greenlet *next)
{
    h->local_head = next->qnext;
    next->qnext = NULL;
    self->qnext = NULL;
    if (h->local_head)
        h->local_tail->qnext = self;
    else
        h->local_head = self;
    h->local_tail = self;
    atomic_store_explicit(&self->state, GH_G_RUNNABLE, memory_order_relaxed);
    switch_to(h, self, next, GH_ACT_NONE);
}

/* gh_yield's general path.  Out of line, so that the fast path keeps
 * nothing in callee-saved registers across its switch. */
__attribute__((noinline)) static void yield_slow(struct gh__hub *h, gh_greenlet *self)
{
    gh_greenlet *next = pick_fast(h);
    if (!next && h->tick % LOOK_EVERY != 0)
        return;  /* nothing else is runnable here: keep running */
    switch_to(h, self, next, GH_ACT_YIELD);
}

void gh_yield(void)
{
    /* tls_hub read directly (not through gh__hub_self()): nothing below
     * reads it again after a switch. */
    struct gh__hub *h = tls_hub;
    gh_greenlet *self;
    if (!h || !(self = h->current)) {
        sched_yield();
        return;
    }
    /* A canary-guarded greenlet takes the general path: its red zone must
     * be checked after the switch, from a stack that is not the suspect
     * one (see after_switch). */
    gh_greenlet *next;
    if (!(self->stack_kind & GH_STACK_CANARY) && (next = yield_fast_pick(h)))
        yield_fast(h, self, next);
    else
        yield_slow(h, self);
}

void gh__yield_poll(void)
{
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (!self) {
        gh_yield();
        return;
    }
    h->poll_now = true;
    switch_to(h, self, NULL, GH_ACT_YIELD);   /* self is requeued after */
}

/* Completes a park on the hub thread, after the greenlet left its stack.
 * (Out of line: keeps the yield path's after_switch free of its frame.) */
__attribute__((noinline)) static void park_complete(struct gh__hub *h, gh_greenlet *p)
{
    if (p->unlock_fn) {
        p->unlock_fn(p->unlock_arg);
        p->unlock_fn = NULL;
    }
    int s = GH_G_RUNNING;
    /* acq_rel: publishes the saved context to the waker that will read
     * PARKED; pairs with the CAS in gh__unpark(). */
    if (atomic_compare_exchange_strong_explicit(&p->state, &s, GH_G_PARKED,
            memory_order_acq_rel, memory_order_acquire)) {
        gh__stat_inc(&h->st.parks);
        return;
    }
    if (s != GH_G_WOKEN)
        gh__die(__func__, "greenlet #%llu parked in state %d",
                (unsigned long long)p->id, s);
    /* Woken before it was off its stack: it is runnable right away. */
    atomic_store_explicit(&p->state, GH_G_RUNNABLE, memory_order_release);
    push_back(h, p);
}

/* Any hub other than h idle?  h itself counts as idle while it searches
 * or runs callbacks inside hub_sleep (timers fire there), and sharing with
 * itself would only reorder: the deque gives back LIFO what the local list
 * keeps FIFO (timer wakeups came out of deadline order). */
static inline bool other_hubs_idle(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    unsigned idle = atomic_load_explicit(&rt->nr_sleeping, memory_order_relaxed) +
                    atomic_load_explicit(&rt->nr_searching, memory_order_relaxed);
    return idle > (unsigned)h->searching + (unsigned)h->in_sleep;
}

/* Where a yielder goes: the local list (cheap, FIFO, unstealable) unless
 * another hub has nothing to do, in which case an unpinned yielder goes to
 * the deque, where that hub can steal it.  Without this, greenlets that
 * yield pile up on the hub that first ran them while another hub sleeps:
 * the core-scaling workload got 1.58x from 2 hubs instead of ~2x. */
static void share_if_idle(struct gh__hub *h)
{
    if (other_hubs_idle(h))
        local_share(h);
}

static void yield_requeue(struct gh__hub *h, gh_greenlet *p)
{
    local_push(h, p);
    share_if_idle(h);
}

void gh__after_switch_slow(struct gh__hub *h)
{
    gh_greenlet *p = h->prev;
    h->prev = NULL;
    if (p->stack_kind & GH_STACK_CANARY)
        gh__stack_check_canary(p);
    switch (h->prev_action) {
    case GH_ACT_YIELD:
        atomic_store_explicit(&p->state, GH_G_RUNNABLE, memory_order_relaxed);
        yield_requeue(h, p);
        break;
    case GH_ACT_PARK:
        park_complete(h, p);
        break;
    case GH_ACT_EXIT:
        gh__greenlet_exited(h, p);
        break;
    default:
        gh__die(__func__, "unknown action %d", h->prev_action);
    }
}

/* ---- wakeups and sleep ---------------------------------------------------- */

/* Any thread, after making work runnable: wakes one sleeping hub if no hub
 * is searching (see "Hub sleep" above). */
static void wakep(void)
{
    struct gh__runtime *rt = gh__rt;
    /* seq_cst fence: pairs with the fence in hub_sleep() step 3. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rt->nr_searching, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&rt->nr_sleeping, memory_order_relaxed) == 0)
        return;
    unsigned zero = 0;
    if (!atomic_compare_exchange_strong(&rt->nr_searching, &zero, 1))
        return;  /* someone else just started searching: they will look */
    struct gh__hub *t = NULL;
    pthread_mutex_lock(&rt->idle_mu);
    if (rt->nidle) {
        t = rt->idle[--rt->nidle];
        t->sleeping = false;
        atomic_fetch_sub(&rt->nr_sleeping, 1);
    }
    pthread_mutex_unlock(&rt->idle_mu);
    if (!t) {
        atomic_fetch_sub(&rt->nr_searching, 1);
        return;
    }
    /* t now counts as searching (we took nr_searching 0 -> 1 for it); it
     * learns so in cancel_sleep(). */
    uv_async_send(&t->async);
}

void gh__wake_all_hubs(void)
{
    for (unsigned i = 0; i < gh__rt->nhubs; i++)
        uv_async_send(&gh__rt->hubs[i].async);
}

/* Any runnable work any hub could take right now: the inject queue or a
 * deque? */
static bool shared_work_visible(void)
{
    struct gh__runtime *rt = gh__rt;
    if (atomic_load_explicit(&rt->inject.len, memory_order_relaxed))
        return true;
    for (unsigned i = 0; i < rt->nhubs; i++)
        if (gh__deque_size(&rt->hubs[i].dq))
            return true;
    return false;
}

/* Any runnable work h could take right now? */
static bool work_visible(struct gh__hub *h)
{
    return h->next || h->local_head ||
           atomic_load_explicit(&h->mailbox.len, memory_order_relaxed) ||
           shared_work_visible();
}

/* Stops searching.  Returns true if h should keep looking because it was
 * the last searcher and work appeared meanwhile.  The last searcher must
 * look again either way: pushers skipped wakep() while it searched.  The
 * fence pairs with the one in wakep(): a pusher that saw it searching
 * pushed before, so the work is visible here. */
static bool searching_stop(struct gh__hub *h, bool found)
{
    struct gh__runtime *rt = gh__rt;
    h->searching = false;
    if (atomic_fetch_sub(&rt->nr_searching, 1) != 1)
        return false;
    atomic_thread_fence(memory_order_seq_cst);
    if (found) {
        /* The last searcher found work: it wakes a hub to take over the
         * search only if there is more for another hub to take.  (Go's
         * resetspinning() wakes one unconditionally; that hub then finds
         * nothing and sleeps again: two wakeups per lone greenlet,
         * tests/test_sched.c.) */
        if (shared_work_visible())
            wakep();
        return false;
    }
    if (work_visible(h)) {
        atomic_fetch_add(&rt->nr_searching, 1);
        h->searching = true;
        return true;
    }
    return false;
}

/* Leaves the idle stack after a sleep or a cancelled sleep. */
static void cancel_sleep(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    pthread_mutex_lock(&rt->idle_mu);
    if (h->sleeping) {
        for (unsigned i = 0; i < rt->nidle; i++) {
            if (rt->idle[i] == h) {
                rt->idle[i] = rt->idle[--rt->nidle];
                break;
            }
        }
        h->sleeping = false;
        atomic_fetch_sub(&rt->nr_sleeping, 1);
    } else {
        h->searching = true;  /* wakep() took us off the stack, searching */
    }
    pthread_mutex_unlock(&rt->idle_mu);
}

__attribute__((noinline, cold)) static void test_sleep_delay(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    GH_REAL(nanosleep)(&ts, NULL);
}

static void hub_sleep(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    /* 1. */
    if (h->searching && searching_stop(h, false))
        return;
    /* 2. */
    pthread_mutex_lock(&rt->idle_mu);
    rt->idle[rt->nidle++] = h;
    h->sleeping = true;
    atomic_fetch_add(&rt->nr_sleeping, 1);
    pthread_mutex_unlock(&rt->idle_mu);
    /* 3. pairs with the fence in wakep() */
    atomic_thread_fence(memory_order_seq_cst);
    /* 4. */
    if (!work_visible(h) && !atomic_load(&rt->stopping)) {
        if (rt->test_sleep_delay_ns)   /* tests: widens the 4-5 window */
            test_sleep_delay(rt->test_sleep_delay_ns);
        /* 5. */
        gh__stat_inc(&h->st.sleeps);
        h->in_sleep = true;
        uv_run(&h->loop, UV_RUN_ONCE);
        h->in_sleep = false;
        /* After the sleeps increment (gh_stats_hubs); seq_cst: Dekker
         * with the monitor going idle (see monitor.c), then the check. */
        atomic_store(&h->st.woke, atomic_load_explicit(&h->st.woke, memory_order_relaxed) + 1);
        if (atomic_load(&rt->monitor_idle) == 1)
            gh__monitor_kick(rt);
    }
    cancel_sleep(h);
}

/* ---- stealing --------------------------------------------------------------- */

static uint64_t rng_next(struct gh__hub *h)
{
    uint64_t x = h->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return h->rng = x;
}

/* Takes half of v's deque (rounded up) into h's; returns one of them. */
static gh_greenlet *steal_from(struct gh__hub *h, struct gh__hub *v)
{
    size_t n = (gh__deque_size(&v->dq) + 1) / 2;
    gh_greenlet *first = NULL;
    uint64_t got = 0;
    for (size_t i = 0; i < n; i++) {
        void *x = gh__deque_steal(&v->dq);
        if (x == GH_DEQUE_ABORT)
            continue;
        if (!x)
            break;
        got++;
        if (!first)
            first = x;
        else if (gh__deque_push(&h->dq, x) != 0)
            local_push(h, x);   /* cannot grow: keep it unstealable */
    }
    if (got) {
        atomic_store_explicit(&h->st.steals,
            atomic_load_explicit(&h->st.steals, memory_order_relaxed) + got,
            memory_order_relaxed);
        atomic_fetch_add_explicit(&v->sh.stolen, got, memory_order_relaxed);
    }
    return first;
}

/* Tries victims near ones first, each group from a random start. */
static gh_greenlet *steal_work(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    if (!h->searching) {
        unsigned awake = rt->nhubs - atomic_load(&rt->nr_sleeping);
        if (2 * atomic_load(&rt->nr_searching) >= awake)
            return NULL;  /* enough hubs are searching already */
        atomic_fetch_add(&rt->nr_searching, 1);
        h->searching = true;
    }
    for (int round = 0; round < STEAL_ROUNDS; round++) {
        unsigned lo = 0, hi = h->near_count;
        for (int group = 0; group < 2; group++) {
            unsigned n = hi - lo;
            unsigned start = n ? (unsigned)(rng_next(h) % n) : 0;
            for (unsigned k = 0; k < n; k++) {
                struct gh__hub *v = &rt->hubs[h->victims[lo + (start + k) % n]];
                gh_greenlet *g = steal_from(h, v);
                if (g)
                    return g;
            }
            lo = h->near_count;
            hi = h->nvictims;
        }
    }
    return NULL;
}

/* Searching hub: waits up to rt->spin_ns for work to appear anywhere. */
static bool spin_for_work(struct gh__hub *h)
{
    if (!gh__rt->spin_ns)
        return false;
    uint64_t until = gh__now_ns() + gh__rt->spin_ns;
    do {
        for (int i = 0; i < 64; i++)
            gh__cpu_relax();
        if (work_visible(h) || atomic_load_explicit(&gh__rt->stopping, memory_order_relaxed))
            return true;
    } while (gh__now_ns() < until);
    return false;
}

/* ---- the hub loop ------------------------------------------------------------ */

/* The next greenlet to run on h; sleeps while there is none; NULL when the
 * runtime stops.  Sources of work in priority order. */
static gh_greenlet *find_runnable(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    for (;;) {
        gh_greenlet *g;
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
            return NULL;
        bool look = h->tick % LOOK_EVERY == 0;
        tick_set(h, h->tick + 1);
        if (look) {
            /* Fairness: the inject queue, then due timers, before our own
             * queues; now and then the libuv loop too. */
            if ((g = inject_take(h)))
                goto found;
            gh__timers_run(h);
            if ((h->tick / LOOK_EVERY) % POLL_EVERY == 0)
                uv_run(&h->loop, UV_RUN_NOWAIT);
        }
        if (h->poll_now) {   /* asked by gh__yield_poll */
            h->poll_now = false;
            uv_run(&h->loop, UV_RUN_NOWAIT);
        }
        /* 1-3. mailbox, next slot, local list and own deque. */
        if ((g = local_take(h)))
            goto found;
        /* 4. the inject queue. */
        if ((g = inject_take(h)))
            goto found;
        /* 5. timers and libuv (I/O later), without blocking. */
        gh__timers_run(h);
        uv_run(&h->loop, UV_RUN_NOWAIT);
        if ((g = local_take(h)))
            goto found;
        /* 6. steal from other hubs. */
        if ((g = steal_work(h)))
            goto found;
        /* 7. idle: trim a batch of the stacks released while busy (see
         * "Caching" in stack.c), then look again. */
        if (gh__stack_trim_idle(h))
            continue;
        /* 8. while searching, spin a little: work may appear without a
         * wakeup (see SPIN_NS). */
        if (h->searching && spin_for_work(h))
            continue;
        /* 9. sleep in epoll until something happens. */
        hub_sleep(h);
        continue;
    found:
        if (h->searching)
            searching_stop(h, true);
        return g;
    }
}

void gh__hub_main(struct gh__hub *h)
{
    gh_greenlet *g;
    h->rng = 0x9e3779b97f4a7c15ULL * (h->index + 1);
    while ((g = find_runnable(h))) {
        set_running(h, g);
        h = gh__ctx_jump(&h->sched_ctx, &g->ctx, h, 0);
        gh__after_switch(h);
    }
}
