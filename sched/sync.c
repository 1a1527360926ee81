/* sched/sync.c — gh_sem, gh_mutex, gh_cond.
 *
 * All three are built on the one park mechanism (park.c): a waiter is
 * queued under the primitive's spin lock (oldest first) and parks through
 * gh__wait_on; a waker claims waiters under that lock with
 * gh__waiters_claim.  Exactly one claim wins per wait, so a waiter that
 * timed out or was killed while being woken is simply skipped and
 * whatever the waker meant to hand it (a permit, the lock) goes to the
 * next waiter: nothing is lost and nothing is given twice.
 *
 * Destroying.  A waiter leaves the queue only by the waker that won its
 * claim, or by itself under the spin lock on its way out; a skipped waiter
 * stays queued until then.  So _destroy, which looks at the queue under
 * the spin lock, says EBUSY while any waiter may still touch the
 * primitive, and 0 only once every wait on it has let go of it (gh_mutex
 * also waits for a woken waiter's retry: M_WOKEN).
 *
 * Handing over.  gh_sem_release with waiters does not raise the count: it
 * hands the permit to the oldest waiter whose claim it wins (reason EVENT
 * means "you hold a permit").  gh_mutex does the same only for a waiter
 * that has waited GH_MUTEX_STARVE_MS; see "Mutex" below. */
#include "internal.h"

#include <errno.h>
#include <limits.h>

/* ---- shared helpers --------------------------------------------------------- */

static int waiters_busy(atomic_flag *lock, struct gh__waiter **list)
{
    gh__spin_lock(lock);
    int busy = *list != NULL;
    gh__spin_unlock(lock);
    return busy;
}

/* ---- gh_sem --------------------------------------------------------------------
 * Invariant (under s->lock): waiters whose claim is open are queued only
 * while count is 0 (a skipped one, on its way out, may stay queued a
 * little longer); a release that wins one's claim hands its permit over
 * instead of counting it. */

int gh_sem_init(gh_sem *s, unsigned n)
{
    if (!s || n > INT_MAX)
        return EINVAL;
    atomic_init(&s->count, n);
    atomic_flag_clear(&s->lock);
    s->waiters = NULL;
    return 0;
}

int gh_sem_destroy(gh_sem *s)
{
    if (!s)
        return EINVAL;
    return waiters_busy(&s->lock, &s->waiters) ? EBUSY : 0;
}

/* Any thread.  Takes a permit if one is free, without the lock. */
static bool sem_try(gh_sem *s)
{
    unsigned c = atomic_load_explicit(&s->count, memory_order_relaxed);
    while (c > 0)
        /* acquire: pairs with the release in gh_sem_release's fetch_add. */
        if (atomic_compare_exchange_weak_explicit(&s->count, &c, c - 1,
                memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

int gh_sem_acquire(gh_sem *s, int64_t timeout_ms)
{
    if (!s || timeout_ms < -1)
        return EINVAL;
    if (sem_try(s))
        return 0;
    if (timeout_ms == 0)
        return ETIMEDOUT;
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, gh_self(), &tp);
    gh__spin_lock(&s->lock);
    int r = GH_WAKE_EVENT;
    if (sem_try(s))   /* a release between the try and the lock */
        gh__spin_unlock(&s->lock);
    else
        r = gh__wait_on(&s->waiters, &s->lock, &w, timeout_ms, false);
    gh__waiter_fini(&w);
    return gh__reason_errno(r);   /* EVENT: the releaser handed us its permit */
}

int gh_sem_release(gh_sem *s)
{
    if (!s)
        return EINVAL;
    int err = 0;
    gh__spin_lock(&s->lock);
    if (!gh__waiters_wake_one(&s->waiters, GH_WAKE_EVENT)) {
        /* Only releases raise the count, all under s->lock: no overshoot. */
        if (atomic_load_explicit(&s->count, memory_order_relaxed) >= INT_MAX)
            err = EOVERFLOW;
        else
            atomic_fetch_add_explicit(&s->count, 1, memory_order_release);
    }
    gh__spin_unlock(&s->lock);
    return err;
}

unsigned gh_sem_value(const gh_sem *s)
{
    return s ? atomic_load_explicit(&s->count, memory_order_relaxed) : 0;
}

/* ---- gh_mutex ------------------------------------------------------------------
 * state, one word:
 *   M_LOCKED    someone holds it.  0 -> 1 only by CAS (any thread), 1 -> 0
 *               only by its holder.
 *   M_QUEUED    waiters may be queued: unlock must look.  Set under m->lock
 *               before a waiter queues; may outlive the queue (a waiter
 *               timed out), and the next slow unlock clears it.
 *   M_WOKEN     an unlock woke a waiter to compete for the lock, and it is
 *               on its way back; until it retries, unlocks wake nobody new
 *               and need no lock at all (the common case under
 *               contention).  Set by that unlock under m->lock, cleared by
 *               the waiter's retry under m->lock.
 *   M_STARVING  a woken waiter lost its retry after waiting
 *               GH_MUTEX_STARVE_MS: the next unlock hands the lock over to
 *               the oldest waiter (M_LOCKED never drops, so nobody barges).
 *               Set by that waiter, cleared by the hand-over, both under
 *               m->lock.
 * Every bit but M_LOCKED changes only under m->lock; so the holder, under
 * m->lock, may store the whole word (nobody can CAS M_LOCKED in then). */
enum { M_LOCKED = 1, M_QUEUED = 2, M_WOKEN = 4, M_STARVING = 8 };

/* Go's starvationThresholdNs: long against a critical section, short
 * against a human.  Not measured here. */
#define MUTEX_STARVE_NS ((uint64_t)GH_MUTEX_STARVE_MS * 1000000u)

struct mutex_waiter {
    struct gh__waiter w;   /* first: the queue holds &mw->w */
    uint64_t since;        /* first park (ns); owner: the waiter */
    bool handoff;          /* set by the unlocker before it claims w */
};

int gh_mutex_init(gh_mutex *m)
{
    if (!m)
        return EINVAL;
    *m = (gh_mutex)GH_MUTEX_INITIALIZER;
    return 0;
}

int gh_mutex_destroy(gh_mutex *m)
{
    if (!m)
        return EINVAL;
    /* Under m->lock: a woken waiter clears M_WOKEN under it, so once we
     * hold it and see M_WOKEN clear, that waiter has let go of the lock
     * word too and touches the mutex no more. */
    gh__spin_lock(&m->lock);
    unsigned s = atomic_load_explicit(&m->state, memory_order_relaxed);
    int busy = (s & (M_LOCKED | M_WOKEN)) || m->waiters;
    gh__spin_unlock(&m->lock);
    return busy ? EBUSY : 0;
}

/* Any thread.  Takes the lock if it is free (queued waiters or not). */
static bool mutex_try(gh_mutex *m)
{
    unsigned s = atomic_load_explicit(&m->state, memory_order_relaxed);
    while (!(s & M_LOCKED))
        /* acquire: pairs with the releases in gh_mutex_unlock. */
        if (atomic_compare_exchange_weak_explicit(&m->state, &s, s | M_LOCKED,
                memory_order_acquire, memory_order_relaxed))
            return true;
    return false;
}

/* Caller holds m->lock, and is the woken waiter if `woken` (then M_WOKEN
 * is its to clear, whatever happens).  Takes the lock (true), or marks it
 * queued, and starving if this woken waiter has waited too long since
 * `since` (false). */
static bool mutex_take_or_mark(gh_mutex *m, bool woken, uint64_t since)
{
    unsigned s = atomic_load_explicit(&m->state, memory_order_relaxed);
    bool starving = false, clock_read = false;
    for (;;) {
        unsigned to = woken ? s & ~(unsigned)M_WOKEN : s;
        if (s & M_LOCKED) {
            if (woken && !clock_read) {   /* the clock only on a lost retry */
                starving = gh__now_ns() - since >= MUTEX_STARVE_NS;
                clock_read = true;
            }
            to |= M_QUEUED | (starving ? M_STARVING : 0);
        } else {
            to |= M_LOCKED;
        }
        if (atomic_compare_exchange_weak_explicit(&m->state, &s, to,
                memory_order_acquire, memory_order_relaxed))
            return !(s & M_LOCKED);
    }
}

/* The slow path of locking.  interruptible: the timeout, the deadline
 * scope and gh_kill end the wait; else only the lock does (for
 * gh_cond_wait taking its mutex back). */
static int mutex_lock_slow(gh_mutex *m, int64_t timeout_ms, bool interruptible)
{
    struct gh__tparker tp;
    struct mutex_waiter mw = { .since = 0 };
    gh__waiter_init(&mw.w, gh_self(), &tp);
    uint64_t end = gh__wait_end(timeout_ms);
    bool woken = false;   /* an unlock woke us to compete (M_WOKEN is ours) */
    bool front = false;   /* we were queued before: back to the front */
    int err = 0;
    for (;;) {
        gh__spin_lock(&m->lock);
        if (mutex_take_or_mark(m, woken, mw.since)) {
            gh__spin_unlock(&m->lock);
            break;
        }
        int64_t left = interruptible ? gh__ms_left(end) : -1;
        if (left == 0) {
            gh__spin_unlock(&m->lock);
            err = ETIMEDOUT;
            break;
        }
        if (!mw.since)
            mw.since = gh__now_ns();
        mw.handoff = false;
        int r = interruptible
            ? gh__wait_on(&m->waiters, &m->lock, &mw.w, left, front)
            : gh__wait_on_uninterruptible(&m->waiters, &m->lock, &mw.w, front);
        if (r == GH_WAKE_EVENT && mw.handoff)
            break;   /* the unlocker handed the lock over: we hold it */
        if (r != GH_WAKE_EVENT && interruptible) {
            err = gh__reason_errno(r);
            break;
        }
        woken = r == GH_WAKE_EVENT;   /* else a kill we do not act on */
        front = true;
    }
    gh__waiter_fini(&mw.w);
    return err;
}

static int mutex_lock(gh_mutex *m, int64_t timeout_ms, bool interruptible)
{
    if (mutex_try(m))
        return 0;
    if (timeout_ms == 0)
        return ETIMEDOUT;
    return mutex_lock_slow(m, timeout_ms, interruptible);
}

int gh_mutex_lock(gh_mutex *m)
{
    return m ? mutex_lock(m, -1, true) : EINVAL;
}

int gh_mutex_timedlock(gh_mutex *m, int64_t timeout_ms)
{
    if (!m || timeout_ms < -1)
        return EINVAL;
    return mutex_lock(m, timeout_ms, true);
}

int gh_mutex_trylock(gh_mutex *m)
{
    if (!m)
        return EINVAL;
    return mutex_try(m) ? 0 : EBUSY;
}

/* gh__waiters_claim's prep: tells w, before its claim, whether it is
 * handed the mutex. */
static void mutex_prep(struct gh__waiter *w, void *handoff)
{
    ((struct mutex_waiter *)w)->handoff = *(bool *)handoff;
}

/* Caller holds m->lock and the mutex, and no woken waiter is on its way
 * unless M_STARVING is set.  Wakes the oldest waiter whose claim it wins, handing
 * it the mutex if one starves, else letting it compete; stores the state
 * that follows. */
static void mutex_wake_next(gh_mutex *m)
{
    unsigned s = atomic_load_explicit(&m->state, memory_order_relaxed);
    bool handoff = s & M_STARVING;
    /* A waiter that timed out or was killed loses its claim and stays
     * queued until it unlinks itself (park.c).  So `queued` may count only
     * such waiters (harmless: the next slow unlock looks in vain and lets
     * go of M_QUEUED); and when nobody was woken, every waiter still
     * queued is such a one, so letting go of M_QUEUED is right. */
    bool woke = gh__waiters_claim(&m->waiters, 1, GH_WAKE_EVENT, mutex_prep, &handoff);
    unsigned queued = m->waiters ? M_QUEUED : 0;
    unsigned to;
    if (woke && handoff)
        to = M_LOCKED | queued | (s & M_WOKEN);   /* still ours: now its */
    else if (woke)
        to = M_WOKEN | queued;
    else
        to = s & M_WOKEN;   /* nobody to wake: let go */
    /* release: publishes the critical section (to the next taker, or
     * through the claim above to the waiter handed the lock). */
    atomic_store_explicit(&m->state, to, memory_order_release);
}

/* gh_mutex_unlock when someone waits, or the mutex was not locked; s: the
 * state the fast path found.  Out of line, so that the fast path saves no
 * registers (inlined, its frame cost the uncontended lock+unlock 6 of its
 * 39 instructions). */
__attribute__((noinline)) static int mutex_unlock_slow(gh_mutex *m, unsigned s)
{
    if (!(s & M_LOCKED))
        return EPERM;
    /* A woken waiter is on its way and nobody starves: just let go. */
    while ((s & M_WOKEN) && !(s & M_STARVING))
        if (atomic_compare_exchange_weak_explicit(&m->state, &s, s & ~(unsigned)M_LOCKED,
                memory_order_release, memory_order_relaxed))
            return 0;
    /* No woken waiter, or one starves; neither changes until we let go
     * (only an unlock sets M_WOKEN, only a hand-over clears M_STARVING). */
    gh__spin_lock(&m->lock);
    mutex_wake_next(m);
    gh__spin_unlock(&m->lock);
    return 0;
}

int gh_mutex_unlock(gh_mutex *m)
{
    if (!m)
        return EINVAL;
    unsigned s = M_LOCKED;
    /* release: publishes the critical section; pairs with the acquire
     * CAS in mutex_try / mutex_take_or_mark. */
    if (atomic_compare_exchange_strong_explicit(&m->state, &s, 0,
            memory_order_release, memory_order_relaxed))
        return 0;
    return mutex_unlock_slow(m, s);
}

/* ---- gh_cond ------------------------------------------------------------------- */

int gh_cond_init(gh_cond *c)
{
    if (!c)
        return EINVAL;
    *c = (gh_cond)GH_COND_INITIALIZER;
    return 0;
}

int gh_cond_destroy(gh_cond *c)
{
    if (!c)
        return EINVAL;
    return waiters_busy(&c->lock, &c->waiters) ? EBUSY : 0;
}

int gh_cond_wait(gh_cond *c, gh_mutex *m, int64_t timeout_ms)
{
    if (!c || !m || timeout_ms < -1)
        return EINVAL;
    if (!(atomic_load_explicit(&m->state, memory_order_relaxed) & M_LOCKED))
        return EPERM;
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, gh_self(), &tp);
    gh__spin_lock(&c->lock);
    gh__waiter_arm(&w);
    gh__waiters_push(&c->waiters, &w);
    /* Queued before the mutex is released, so a signal sent by whoever
     * takes the mutex next finds us.  Lock order: c->lock, then m->lock. */
    gh_mutex_unlock(m);
    int r = gh__waiter_wait(&w, timeout_ms, gh__spin_unlock_cb, &c->lock);
    if (r != GH_WAKE_EVENT) {
        gh__waiter_leave(&c->waiters, &c->lock, &w);
        gh__spin_unlock(&c->lock);   /* c is not touched after this */
    }
    gh__waiter_fini(&w);
    mutex_lock(m, -1, false);   /* held on return, whatever happened */
    return gh__reason_errno(r);
}

int gh_cond_signal(gh_cond *c)
{
    if (!c)
        return EINVAL;
    gh__spin_lock(&c->lock);
    gh__waiters_wake_one(&c->waiters, GH_WAKE_EVENT);
    gh__spin_unlock(&c->lock);
    return 0;
}

int gh_cond_broadcast(gh_cond *c)
{
    if (!c)
        return EINVAL;
    gh__spin_lock(&c->lock);
    gh__waiters_wake_all(&c->waiters, GH_WAKE_EVENT);
    gh__spin_unlock(&c->lock);
    return 0;
}
