/* sched/park.c — the one park/unpark mechanism every blocking call uses.
 *
 * Two questions decide a wakeup, and two words answer them:
 *
 *   Who wakes it?  g->wait = (generation << 8) | reason.  A greenlet that is
 *   about to wait opens a new generation with reason NONE (gh__wait_open).
 *   Each possible waker (the primitive, its timer, gh_kill) remembers the
 *   generation it was registered for, and wakes the greenlet only if its
 *   CAS (gen, NONE) -> (gen, reason) succeeds.  Exactly one waker wins per
 *   wait; a late timer or a stale waker of an older wait loses harmlessly.
 *   Control blocks are type-stable while the runtime runs (greenlet.c), so
 *   a stale waker may always read g->wait.
 *
 *   When may it run?  g->state.  The winner calls gh__unpark(): PARKED ->
 *   RUNNABLE and onto a run queue; or, if the greenlet is still RUNNING
 *   (between opening its wait and leaving its stack), RUNNING -> WOKEN, and
 *   the hub that completes the park re-queues it (park_complete in hub.c).
 *   So a greenlet is never resumed before it is off its stack, and never
 *   twice: a second unpark of the same wait cannot happen (lost CAS), and a
 *   RUNNABLE greenlet taken twice aborts in set_running().
 *
 * Waiters on primitives are either greenlets (g, gen) or plain threads
 * (a mutex/condvar "thread parker").  A waiter lives on the waiting side's
 * stack, so a waker touches it only while it holds the primitive's lock.
 * A waiter leaves the primitive's list only by the waker that won its
 * claim, or by itself, under the lock, on its way out (gh__waiters_claim):
 * so while anyone may still take the primitive's lock for a wait, it is
 * on the list, and _destroy / _free, which look at the list under the
 * lock, say EBUSY.
 *
 *     waiter (greenlet)                    waker (any hub or thread)
 *     gen = gh__wait_open(self)
 *     lock(prim); link w
 *     gh__park(.., unlock(prim))  ----->   lock(prim); unlink w
 *       [off stack; hub unlocks prim]      gh__waiter_wake(w) -> CAS wins
 *     resumes on some hub                   -> gh__unpark(g) -> enqueue
 *                                          unlock(prim)
 *
 *   and when the timer (or gh_kill) wins the claim first:
 *
 *     timer: CAS wins, gh__unpark(g)
 *     resumes on some hub                  lock(prim); unlink w
 *                                          gh__waiter_wake(w) -> CAS lost
 *                                          link w again; unlock(prim)
 *     lock(prim); unlink w  <-- w linked all along: destroy says EBUSY
 *     unlock(prim); return ETIMEDOUT       destroy(prim) -> 0 from here on
 */
#include "internal.h"
#include "../io/real.h"

#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>

void gh__spin_lock_slow(atomic_flag *l)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(l, memory_order_acquire)) {
        if (++spins > 64) {
            sched_yield();   /* the holder may have been preempted */
            spins = 0;
        } else {
            gh__cpu_relax();
        }
    }
}

void gh__spin_unlock_cb(void *l)
{
    gh__spin_unlock(l);
}

uint64_t gh__wait_open(gh_greenlet *g)
{
    uint64_t gen = (atomic_load_explicit(&g->wait, memory_order_relaxed) >> 8) + 1;
    /* seq_cst: pairs with gh_kill(), which stores killed then reads wait. */
    atomic_store_explicit(&g->wait, gen << 8, memory_order_seq_cst);
    gh__store_load_fence();   /* before gh__park reads killed */
    return gen;
}

bool gh__wake(gh_greenlet *g, uint64_t gen, int reason)
{
    uint64_t open = gen << 8;
    if (!atomic_compare_exchange_strong_explicit(&g->wait, &open,
            open | (uint64_t)reason, memory_order_acq_rel, memory_order_relaxed))
        return false;
    gh__unpark(g);
    return true;
}

void gh__unpark(gh_greenlet *g)
{
    int s = atomic_load_explicit(&g->state, memory_order_acquire);
    for (;;) {
        if (s == GH_G_PARKED) {
            if (atomic_compare_exchange_weak_explicit(&g->state, &s, GH_G_RUNNABLE,
                    memory_order_acq_rel, memory_order_acquire)) {
                gh__enqueue(g);
                return;
            }
        } else if (s == GH_G_RUNNING) {
            if (atomic_compare_exchange_weak_explicit(&g->state, &s, GH_G_WOKEN,
                    memory_order_acq_rel, memory_order_acquire))
                return;
        } else {
            gh__die(__func__, "greenlet #%llu unparked in state %d (double wakeup)",
                    (unsigned long long)g->id, s);
        }
    }
}

/* ---- deadline scopes ------------------------------------------------------ */

static __thread struct gh__dlscope thread_dl;   /* a plain thread's scopes */

struct gh__dlscope *gh__dlscope_self(void)
{
    gh_greenlet *g = gh_self();
    return g ? &g->dl : &thread_dl;
}

void gh__dlscope_free(struct gh__dlscope *d)
{
    if (d->open) {   /* every exit comes here; free(NULL) is ~45 instructions */
        free(d->open);
        d->open = NULL;
    }
    d->deadline_ns = 0;
    d->depth = d->cap = 0;   /* next_token goes on: see internal.h */
}

int gh_timeout_begin(int64_t ms)
{
    struct gh__dlscope *d = gh__dlscope_self();
    if (ms < 0) {
        errno = EINVAL;
        return -1;
    }
    if (d->depth == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 4;
        struct gh__dlscope_ent *a = cap > d->cap ? realloc(d->open, cap * sizeof *a) : NULL;
        if (!a) {
            errno = ENOMEM;
            return -1;
        }
        d->open = a;
        d->cap = cap;
    }
    uint64_t at = gh__deadline_after(ms);
    int token = (int)(d->next_token++ & INT32_MAX);
    d->open[d->depth++] = (struct gh__dlscope_ent){ d->deadline_ns, token };
    if (d->deadline_ns == 0 || at < d->deadline_ns)
        d->deadline_ns = at;   /* nested scopes: the earliest deadline wins */
    return token;
}

void gh_timeout_end(int token)
{
    struct gh__dlscope *d = gh__dlscope_self();
    uint32_t i = d->depth;
    while (i > 0 && d->open[i - 1].token != token)
        i--;
    if (i == 0)
        return;   /* not open (ended already, or with an outer scope) */
    d->deadline_ns = d->open[i - 1].prev_deadline_ns;
    d->depth = i - 1;   /* and every scope opened inside it */
    if (d->depth == 0)
        gh__dlscope_free(d);
}

/* Deadlines this far away (~292 years) mean "never": a timeout that
 * large (INT64_MAX ms included) must not wrap around into the past. */
#define GH_NEVER UINT64_MAX

uint64_t gh__deadline_after(int64_t ms)
{
    uint64_t now = gh__now_ns();
    if (ms < 0 || (uint64_t)ms > (GH_NEVER - now) / 1000000u)
        return GH_NEVER;
    return now + (uint64_t)ms * 1000000u;
}

/* The deadline (absolute ns, 0 none) a wait of timeout_ms must respect,
 * and whether the scope (not timeout_ms) sets it. */
static uint64_t wait_deadline(const struct gh__dlscope *d, int64_t timeout_ms,
                              bool *by_scope)
{
    uint64_t at = timeout_ms > 0 ? gh__deadline_after(timeout_ms) : GH_NEVER;
    uint64_t scope = d->deadline_ns ? d->deadline_ns : GH_NEVER;
    *by_scope = scope < at;
    at = *by_scope ? scope : at;
    return at == GH_NEVER ? 0 : at;
}

uint64_t gh__wait_end(int64_t timeout_ms)
{
    return timeout_ms < 0 ? 0 : gh__deadline_after(timeout_ms);
}

int64_t gh__ms_left(uint64_t end)
{
    if (!end)
        return -1;
    uint64_t now = gh__now_ns();
    return now >= end ? 0 : (int64_t)((end - now + 999999u) / 1000000u);
}

uint64_t gh__scope_deadline(int64_t timeout_ms, bool *by_scope)
{
    return wait_deadline(gh__dlscope_self(), timeout_ms, by_scope);
}

/* Greenlet context: parks self in wait `gen` (already opened) until a
 * waker wins the claim; unlock_fn(arg) runs once self is off its stack.
 * timeout_ms: -1 none, 0 claim a timeout at once, > 0 arm a timer; the
 * greenlet's deadline scope may cut it shorter (reason DEADLINE).
 * Returns the winning reason. */
int gh__park(gh_greenlet *self, uint64_t gen, int64_t timeout_ms,
             void (*unlock_fn)(void *), void *arg)
{
    struct gh__hub *h = gh__hub_self();
    bool by_scope = false;
    uint64_t at = timeout_ms ? wait_deadline(&self->dl, timeout_ms, &by_scope) : 0;
    if (atomic_load(&self->killed))
        gh__wake(self, gen, GH_WAKE_CANCEL);
    else if (timeout_ms == 0)
        gh__wake(self, gen, GH_WAKE_TIMEOUT);
    else if (by_scope && at <= gh__now_ns())
        gh__wake(self, gen, GH_WAKE_DEADLINE);
    else if (at && gh__timer_add(h, at, self, gen) != 0)
        gh__wake(self, gen, GH_WAKE_NOMEM);
    self->unlock_fn = unlock_fn;
    self->unlock_arg = arg;
    gh__switch_out(h, self, GH_ACT_PARK);
    int r = (int)(atomic_load_explicit(&self->wait, memory_order_acquire) & 0xff);
    return r == GH_WAKE_TIMEOUT && by_scope ? GH_WAKE_DEADLINE : r;
}

/* gh__park for a wait only its waker may end: no timer, no deadline
 * scope, and a kill that came before is not acted on (one that comes
 * during the wait still claims it: the caller loops). */
int gh__park_until_woken(gh_greenlet *self, void (*unlock_fn)(void *), void *arg)
{
    struct gh__hub *h = gh__hub_self();
    self->unlock_fn = unlock_fn;
    self->unlock_arg = arg;
    gh__switch_out(h, self, GH_ACT_PARK);
    return (int)(atomic_load_explicit(&self->wait, memory_order_acquire) & 0xff);
}

int gh__reason_errno(int reason)
{
    switch (reason) {
    case GH_WAKE_EVENT: return 0;
    case GH_WAKE_TIMEOUT: return ETIMEDOUT;
    case GH_WAKE_CANCEL: return ECANCELED;
    case GH_WAKE_NOMEM: return ENOMEM;
    case GH_WAKE_CLOSED: return EBADF;
    case GH_WAKE_DEADLINE: return ETIMEDOUT;
    default: gh__die(__func__, "bad wake reason %d", reason);
    }
}

/* ---- waiters: a greenlet or a plain thread ------------------------------ */

void gh__waiter_init(struct gh__waiter *w, gh_greenlet *self, struct gh__tparker *tp)
{
    w->next = w->prev = NULL;
    w->linked = false;
    w->g = self;
    w->tp = NULL;
    w->gen = 0;
    if (self)
        return;   /* the wait opens in gh__waiter_arm(), under the lock */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tp->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&tp->mu, NULL);
    tp->reason = GH_WAKE_NONE;
    w->tp = tp;
}

/* Under the primitive's lock, right before w is linked: from here on the
 * caller must wait (gh__waiter_wait), never return early, or a waker
 * (gh_kill included) could claim a wait nobody parks in. */
void gh__waiter_arm(struct gh__waiter *w)
{
    if (w->g)
        w->gen = gh__wait_open(w->g);
    else
        w->tp->reason = GH_WAKE_NONE;   /* unlinked: no waker can touch tp */
}

/* A primitive's waiters, oldest first: a doubly linked list whose head's
 * prev points at the tail (the tail's next is NULL), so appending, taking
 * the oldest and unlinking any one are all O(1) through the one pointer a
 * primitive keeps.  Caller holds the primitive's lock. */
void gh__waiters_push(struct gh__waiter **head, struct gh__waiter *w)
{
    struct gh__waiter *h = *head;
    w->next = NULL;
    if (!h) {
        w->prev = w;
        *head = w;
    } else {
        w->prev = h->prev;
        h->prev->next = w;
        h->prev = w;
    }
    w->linked = true;
}

void gh__waiters_push_front(struct gh__waiter **head, struct gh__waiter *w)
{
    struct gh__waiter *h = *head;
    w->next = h;
    w->prev = h ? h->prev : w;
    if (h)
        h->prev = w;
    *head = w;
    w->linked = true;
}

void gh__waiters_unlink(struct gh__waiter **head, struct gh__waiter *w)
{
    struct gh__waiter *h = *head;
    if (w == h) {
        *head = w->next;
        if (w->next)
            w->next->prev = w->prev;
    } else {
        w->prev->next = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            h->prev = w->prev;   /* w was the tail */
    }
    w->next = w->prev = NULL;
    w->linked = false;
}

/* Takes the oldest waiter off; only gh__waiters_claim may (see there). */
static struct gh__waiter *waiters_pop(struct gh__waiter **head)
{
    struct gh__waiter *w = *head;
    if (w)
        gh__waiters_unlink(head, w);
    return w;
}

/* Caller holds the lock: puts `front` (a list of waiters, oldest first)
 * before every waiter of *head. */
static void waiters_splice_front(struct gh__waiter **head, struct gh__waiter *front)
{
    struct gh__waiter *h = *head;
    if (!front)
        return;
    if (h) {
        struct gh__waiter *front_tail = front->prev;
        front_tail->next = h;
        front->prev = h->prev;   /* the tail of the whole list */
        h->prev = front_tail;
    }
    *head = front;
}

/* The one way a waker takes waiters off a list.  Caller holds the
 * primitive's lock.  Claims waiters oldest first with `reason` until `max`
 * claims are won or every waiter was tried; prep(w, arg), if given, runs
 * on each right before its claim (to hand it an item, say).  Returns the
 * claims won.
 *
 * Invariant: a waiter leaves the list only by the waker that won its
 * claim, or by itself (under the lock, on its way out: gh__waiter_leave).
 * The winner unlinks w before it wakes w, since a woken waiter returns and
 * its stack (w) may be gone.  A lost claim means the wait ended some other
 * way (timer, gh_kill, deadline) and the waiter is on its way to the lock
 * to unlink itself: it goes back on the list, so that _destroy and _free
 * still see it and say EBUSY until it has let go of the lock.  A later
 * waker may take it again; its claim fails again (the wait word, or the
 * thread parker's reason, is no longer NONE). */
size_t gh__waiters_claim(struct gh__waiter **head, size_t max, int reason,
                         void (*prep)(struct gh__waiter *, void *), void *arg)
{
    struct gh__waiter *lost = NULL, *w;
    size_t won = 0;
    while (won < max && (w = waiters_pop(head))) {
        if (prep)
            prep(w, arg);
        if (gh__waiter_wake(w, reason))
            won++;   /* w is the waiter's now: not to be touched again */
        else
            gh__waiters_push(&lost, w);
    }
    waiters_splice_front(head, lost);   /* older than the rest: in front */
    return won;
}

bool gh__waiters_wake_one(struct gh__waiter **head, int reason)
{
    return gh__waiters_claim(head, 1, reason, NULL, NULL) == 1;
}

void gh__waiters_wake_all(struct gh__waiter **head, int reason)
{
    gh__waiters_claim(head, SIZE_MAX, reason, NULL, NULL);
}

void gh__waiter_fini(struct gh__waiter *w)
{
    if (w->tp) {
        pthread_cond_destroy(&w->tp->cv);
        pthread_mutex_destroy(&w->tp->mu);
        w->tp = NULL;
    }
}

/* Caller holds the lock of the primitive w is queued on (or was just
 * taken off by gh__waiters_claim): w is alive. */
bool gh__waiter_wake(struct gh__waiter *w, int reason)
{
    if (w->g)
        return gh__wake(w->g, w->gen, reason);
    struct gh__tparker *tp = w->tp;
    bool won = false;
    pthread_mutex_lock(&tp->mu);
    if (tp->reason == GH_WAKE_NONE) {
        tp->reason = reason;
        pthread_cond_signal(&tp->cv);
        won = true;
    }
    pthread_mutex_unlock(&tp->mu);
    return won;
}

/* Waits until a waker (or the timeout, or the thread's deadline scope)
 * claims w; unlock_fn(arg) releases the primitive's lock.  Returns the
 * reason. */
int gh__waiter_wait(struct gh__waiter *w, int64_t timeout_ms,
                    void (*unlock_fn)(void *), void *arg)
{
    if (w->g)
        return gh__park(w->g, w->gen, timeout_ms, unlock_fn, arg);
    struct gh__tparker *tp = w->tp;
    bool by_scope = false;
    uint64_t at = timeout_ms ? wait_deadline(&thread_dl, timeout_ms, &by_scope) : 0;
    struct timespec dl = { (time_t)(at / 1000000000u), (long)(at % 1000000000u) };
    pthread_mutex_lock(&tp->mu);
    unlock_fn(arg);
    while (tp->reason == GH_WAKE_NONE) {
        /* A waker may take tp->mu between the timeout and our getting it
         * back, and claim the wait (EVENT): pthread_cond_timedwait then
         * still says ETIMEDOUT, and the claim must stand, or what the
         * waker handed over (an item, a permit, the mutex) is dropped.
         * Like a greenlet's wait, the timeout claims only an open wait. */
        if (timeout_ms == 0 ||
            (at && pthread_cond_timedwait(&tp->cv, &tp->mu, &dl) == ETIMEDOUT &&
             tp->reason == GH_WAKE_NONE))
            tp->reason = by_scope ? GH_WAKE_DEADLINE : GH_WAKE_TIMEOUT;
        else if (!at)
            pthread_cond_wait(&tp->cv, &tp->mu);
    }
    int r = tp->reason;
    pthread_mutex_unlock(&tp->mu);
    return r;
}

/* Caller holds `lock`: arms w and queues it at the back, or at the front
 * for a waiter that comes back to a queue it was taken from. */
static void waiter_enqueue(struct gh__waiter **list, struct gh__waiter *w, bool front)
{
    gh__waiter_arm(w);
    if (front)
        gh__waiters_push_front(list, w);
    else
        gh__waiters_push(list, w);
}

/* Tests only (GREENHUB_TEST_WAIT_EXIT_DELAY_US): holds a waiter between
 * the end of its wait and its taking the lock back, the window in which a
 * waker may find it still queued and lose its claim.  A test counts the
 * waiters held so far (relaxed: a test polls it) to know one is there. */
_Atomic unsigned long gh__test_wait_exit_holds;

__attribute__((noinline, cold)) static void test_wait_exit_delay(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    atomic_fetch_add_explicit(&gh__test_wait_exit_holds, 1, memory_order_relaxed);
    GH_REAL(nanosleep)(&ts, NULL);
}

/* The way out of a wait that ended other than by a waker (timeout,
 * cancellation): takes `lock` back and unlinks w if it is still queued
 * (a waker that lost its claim leaves it there, see gh__waiters_claim).
 * Returns with `lock` held; once the caller releases it, the waiter
 * touches the primitive no more. */
void gh__waiter_leave(struct gh__waiter **list, atomic_flag *lock, struct gh__waiter *w)
{
    struct gh__runtime *rt = gh__rt;
    if (rt && rt->test_wait_exit_delay_ns)
        test_wait_exit_delay(rt->test_wait_exit_delay_ns);
    gh__spin_lock(lock);
    if (w->linked)
        gh__waiters_unlink(list, w);
}

/* The wait of a primitive, in one place: the caller holds `lock` and has
 * initialised w; w is armed and queued (see waiter_enqueue), the caller
 * waits, and a wait that ends other than by a waker (timeout,
 * cancellation) takes w off the queue again.  Returns the reason; `lock`
 * is released, except that a wait that did not end by a waker returns
 * with it held, w unlinked, if `relock` (the caller may look at the
 * primitive once more).  After a waker's claim the caller must not touch
 * the primitive: the waker unlinked w, and _destroy may already say 0. */
static int wait_on(struct gh__waiter **list, atomic_flag *lock,
                   struct gh__waiter *w, int64_t timeout_ms, bool front, bool relock)
{
    waiter_enqueue(list, w, front);
    int r = gh__waiter_wait(w, timeout_ms, gh__spin_unlock_cb, lock);
    if (r != GH_WAKE_EVENT) {
        gh__waiter_leave(list, lock, w);
        if (!relock)
            gh__spin_unlock(lock);
    }
    return r;
}

int gh__wait_on(struct gh__waiter **list, atomic_flag *lock,
                struct gh__waiter *w, int64_t timeout_ms, bool front)
{
    return wait_on(list, lock, w, timeout_ms, front, false);
}

int gh__wait_on_relock(struct gh__waiter **list, atomic_flag *lock,
                       struct gh__waiter *w, int64_t timeout_ms)
{
    return wait_on(list, lock, w, timeout_ms, false, true);
}

/* gh__wait_on for a wait only a waker ends (no timeout, no deadline
 * scope, and a kill that came before is not acted on): for what must
 * happen whatever else does, such as gh_cond_wait taking its mutex back.
 * A kill that lands during the wait still ends it (reason CANCEL, w taken
 * off the queue): the caller re-checks its condition and waits again. */
int gh__wait_on_uninterruptible(struct gh__waiter **list, atomic_flag *lock,
                                struct gh__waiter *w, bool front)
{
    waiter_enqueue(list, w, front);
    int r;
    if (w->g) {
        r = gh__park_until_woken(w->g, gh__spin_unlock_cb, lock);
    } else {
        pthread_mutex_lock(&w->tp->mu);
        gh__spin_unlock(lock);
        while (w->tp->reason == GH_WAKE_NONE)
            pthread_cond_wait(&w->tp->cv, &w->tp->mu);
        r = w->tp->reason;   /* EVENT: a thread cannot be killed */
        pthread_mutex_unlock(&w->tp->mu);
    }
    if (r != GH_WAKE_EVENT) {
        gh__waiter_leave(list, lock, w);
        gh__spin_unlock(lock);
    }
    return r;
}
