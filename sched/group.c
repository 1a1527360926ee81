/* sched/group.c — gh_group, gh_pool and gh_imap.
 *
 * A group is a counted list of greenlets.  A member is linked before it is
 * first queued and unlinks itself (gh__group_leave, on its own stack, after
 * its function returned and its locals' destructors ran), so every greenlet
 * on the list is alive: gh_group_kill may call gh_kill on it under the
 * group's lock without holding a reference.  The group owns its members
 * (their handles are dropped at spawn).
 *
 * A pool is a group plus a semaphore of `size` permits: spawning takes a
 * permit (waiting while the pool is full) and a leaving member returns it,
 * under the group's lock, so the pool never runs more than `size`.
 *
 * Freeing.  A member's last touch of its group is the unlock in
 * gh__group_leave, and _free takes that lock before it looks at the count:
 * a group can be freed the moment a join returns.  A joiner leaves
 * `joiners` only when a wake wins its claim or by itself under the lock
 * (park.c), so _free says EBUSY while a join that timed out or was
 * cancelled may still take the lock; a pool's spawners are covered the
 * same way by gh_sem_destroy on its permits.  An imap's readers and
 * freers need no such check: the iterator is reference-counted, and its
 * caller's reference is dropped only by gh_imap_free. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

struct gh_group {
    atomic_flag lock;             /* protects the fields below */
    size_t count;                 /* members running */
    size_t feeders;               /* imap feeders still spawning into it */
    gh_greenlet *members;         /* linked by grp_next/grp_prev */
    struct gh__waiter *joiners;   /* woken when count drops to 0 */
    gh_sem *slots;                /* a pool's permits; NULL: no limit (immutable) */
};

struct gh_pool {
    struct gh_group grp;          /* first: a member's g->group is &pool->grp */
    gh_sem slots;
};

static void group_init(struct gh_group *grp, gh_sem *slots)
{
    atomic_flag_clear(&grp->lock);
    grp->count = 0;
    grp->feeders = 0;
    grp->members = NULL;
    grp->joiners = NULL;
    grp->slots = slots;
}

gh_group *gh_group_new(void)
{
    gh_group *grp = malloc(sizeof *grp);
    if (!grp) {
        errno = ENOMEM;
        return NULL;
    }
    group_init(grp, NULL);
    return grp;
}

int gh_group_spawn_with(gh_group *grp, const gh_spawn_opts *opts, gh_fn fn, void *arg)
{
    if (!grp)
        return EINVAL;
    gh_greenlet *g = gh__spawn_prepare(opts, fn, arg);
    if (!g)
        return errno;
    g->group = grp;
    gh__spin_lock(&grp->lock);
    g->grp_prev = NULL;
    g->grp_next = grp->members;
    if (g->grp_next)
        g->grp_next->grp_prev = g;
    grp->members = g;
    grp->count++;
    gh__spin_unlock(&grp->lock);
    gh__greenlet_release_ref(gh__hub_self(), g);   /* the handle: 2 -> 1 */
    gh__enqueue(g);
    return 0;
}

int gh_group_spawn(gh_group *grp, gh_fn fn, void *arg)
{
    return gh_group_spawn_with(grp, NULL, fn, arg);
}

void gh__group_leave(gh_greenlet *g)
{
    struct gh_group *grp = g->group;
    gh__spin_lock(&grp->lock);
    if (g->grp_prev)
        g->grp_prev->grp_next = g->grp_next;
    else
        grp->members = g->grp_next;
    if (g->grp_next)
        g->grp_next->grp_prev = g->grp_prev;
    if (grp->slots)
        gh_sem_release(grp->slots);   /* lock order: group, then sem */
    if (--grp->count == 0 && grp->feeders == 0)
        gh__waiters_wake_all(&grp->joiners, GH_WAKE_EVENT);
    gh__spin_unlock(&grp->lock);
}

/* An imap feeder counts for join and free until it has spawned its last
 * call: between two calls the pool may be empty, yet not done. */
static void group_feeder_add(struct gh_group *grp)
{
    gh__spin_lock(&grp->lock);
    grp->feeders++;
    gh__spin_unlock(&grp->lock);
}

static void group_feeder_done(struct gh_group *grp)
{
    gh__spin_lock(&grp->lock);
    if (--grp->feeders == 0 && grp->count == 0)
        gh__waiters_wake_all(&grp->joiners, GH_WAKE_EVENT);
    gh__spin_unlock(&grp->lock);
}

int gh_group_join(gh_group *grp, int64_t timeout_ms)
{
    if (!grp || timeout_ms < -1)
        return EINVAL;
    gh_greenlet *self = gh_self();
    if (self && self->group == grp)
        return EDEADLK;   /* it would wait for itself */
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, self, &tp);
    gh__spin_lock(&grp->lock);
    int r = GH_WAKE_EVENT;
    if (grp->count == 0 && grp->feeders == 0)
        gh__spin_unlock(&grp->lock);
    else if (timeout_ms == 0) {
        gh__spin_unlock(&grp->lock);
        r = GH_WAKE_TIMEOUT;
    } else {
        r = gh__wait_on(&grp->joiners, &grp->lock, &w, timeout_ms, false);
    }
    gh__waiter_fini(&w);
    return gh__reason_errno(r);
}

int gh_group_kill(gh_group *grp)
{
    if (!grp)
        return EINVAL;
    gh__spin_lock(&grp->lock);
    for (gh_greenlet *g = grp->members; g; g = g->grp_next)
        gh_kill(g);   /* alive while linked; gh_kill never blocks */
    gh__spin_unlock(&grp->lock);
    return 0;
}

size_t gh_group_size(gh_group *grp)
{
    if (!grp)
        return 0;
    gh__spin_lock(&grp->lock);
    size_t n = grp->count;
    gh__spin_unlock(&grp->lock);
    return n;
}

/* 0 when grp is empty and nobody waits on it; the lock is taken, so a
 * member still inside gh__group_leave has finished with grp. */
static int group_idle(struct gh_group *grp)
{
    gh__spin_lock(&grp->lock);
    bool busy = grp->count || grp->feeders || grp->joiners;
    gh__spin_unlock(&grp->lock);
    return busy ? EBUSY : 0;
}

int gh_group_free(gh_group *grp)
{
    if (!grp)
        return EINVAL;
    int err = group_idle(grp);
    if (!err)
        free(grp);
    return err;
}

/* ---- gh_pool ---------------------------------------------------------------------- */

gh_pool *gh_pool_new(size_t size)
{
    if (size == 0 || size > INT_MAX) {
        errno = EINVAL;
        return NULL;
    }
    gh_pool *p = malloc(sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    gh_sem_init(&p->slots, (unsigned)size);
    group_init(&p->grp, &p->slots);
    return p;
}

int gh_pool_spawn_timeout(gh_pool *pool, gh_fn fn, void *arg, int64_t timeout_ms)
{
    if (!pool || !fn || timeout_ms < -1)
        return EINVAL;
    if (!gh__rt)
        return ESRCH;   /* before waiting for room that nothing frees */
    int err = gh_sem_acquire(&pool->slots, timeout_ms);
    if (err)
        return err;
    err = gh_group_spawn(&pool->grp, fn, arg);
    if (err)
        gh_sem_release(&pool->slots);
    return err;
}

int gh_pool_spawn(gh_pool *pool, gh_fn fn, void *arg)
{
    return gh_pool_spawn_timeout(pool, fn, arg, -1);
}

int gh_pool_join(gh_pool *pool, int64_t timeout_ms)
{
    return pool ? gh_group_join(&pool->grp, timeout_ms) : EINVAL;
}

int gh_pool_kill(gh_pool *pool)
{
    return pool ? gh_group_kill(&pool->grp) : EINVAL;
}

size_t gh_pool_running(gh_pool *pool)
{
    return pool ? gh_group_size(&pool->grp) : 0;
}

int gh_pool_free(gh_pool *pool)
{
    if (!pool)
        return EINVAL;
    int err = group_idle(&pool->grp);
    if (!err)
        err = gh_sem_destroy(&pool->slots);   /* EBUSY: a spawner waits */
    if (!err)
        free(pool);
    return err;
}

/* ---- gh_imap ----------------------------------------------------------------------
 * A feeder greenlet spawns call i onto the pool for i = 0, 1, ... (waiting
 * for room); call i stores its result and wakes the reader.  References:
 * the caller's (dropped by gh_imap_free), the feeder's, and one per call
 * running; the last one frees the iterator. */
struct imap_call {
    struct gh_imap *it;
    size_t i;
    void *arg;   /* args[i], copied by imap_new: calls spawned before
                  * gh_imap_free may start after it, when args may be gone */
};

struct gh_imap {
    atomic_flag lock;             /* protects the fields marked (lock) */
    _Atomic unsigned refs;        /* see above; acq_rel */
    gh_pool *pool;                /* immutable */
    gh_fn fn;                     /* immutable */
    size_t n;                     /* immutable */
    bool ordered;                 /* immutable */
    struct imap_call *calls;      /* immutable: n of them */
    void **results;               /* (lock) */
    bool *done;                   /* (lock) ordered: call i finished */
    size_t *finished;             /* (lock) unordered: indices, as they finish */
    size_t nfinished;             /* (lock) */
    size_t next;                  /* (lock) results handed out */
    size_t started;               /* (lock) calls spawned; final once fed */
    bool fed;                     /* (lock) the feeder is done */
    bool stopped;                 /* (lock) gh_imap_free: spawn no more */
    int feed_err;                 /* (lock) why the feeder stopped early */
    gh_greenlet *feeder;          /* (lock) alive while non-NULL */
    struct gh__waiter *readers;   /* (lock) */
    struct gh__waiter *freers;    /* (lock) gh_imap_free, waiting for the feeder */
};

static void imap_unref(gh_imap *it)
{
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(it->calls);
    free(it->results);
    free(it->done);
    free(it->finished);
    free(it);
}

static void *imap_call_run(void *p)
{
    struct imap_call *c = p;
    gh_imap *it = c->it;
    void *r = it->fn(c->arg);
    gh__spin_lock(&it->lock);
    it->results[c->i] = r;
    if (it->ordered)
        it->done[c->i] = true;
    else
        it->finished[it->nfinished++] = c->i;
    gh__waiters_wake_all(&it->readers, GH_WAKE_EVENT);
    gh__spin_unlock(&it->lock);
    imap_unref(it);
    return NULL;
}

static void *imap_feed(void *p)
{
    gh_imap *it = p;
    int err = 0;
    size_t i = 0;
    while (i < it->n) {
        gh__spin_lock(&it->lock);
        bool stop = it->stopped;
        gh__spin_unlock(&it->lock);
        if (stop)
            break;
        atomic_fetch_add_explicit(&it->refs, 1, memory_order_relaxed);
        err = gh_pool_spawn(it->pool, imap_call_run, &it->calls[i]);
        if (err) {
            imap_unref(it);   /* never the last: ours is still held */
            break;
        }
        i++;
    }
    /* Before gh_imap_free can return: a pool_free right after it must not
     * see this feeder still counted.  The pool is alive until this call. */
    group_feeder_done(&it->pool->grp);
    gh__spin_lock(&it->lock);
    it->started = i;
    it->fed = true;
    it->feed_err = err;
    it->feeder = NULL;   /* gh_imap_free may no longer kill us */
    gh__waiters_wake_all(&it->readers, GH_WAKE_EVENT);
    gh__waiters_wake_all(&it->freers, GH_WAKE_EVENT);
    gh__spin_unlock(&it->lock);
    imap_unref(it);
    return NULL;
}

static gh_imap *imap_new(gh_pool *pool, gh_fn fn, void **args, size_t n, bool ordered)
{
    if (!pool || !fn || (!args && n)) {
        errno = EINVAL;
        return NULL;
    }
    if (n > SIZE_MAX / sizeof(struct imap_call)) {   /* the sizes would wrap */
        errno = ENOMEM;
        return NULL;
    }
    gh_imap *it = calloc(1, sizeof *it);
    size_t m = n ? n : 1;
    if (it) {
        it->calls = malloc(m * sizeof *it->calls);
        it->results = malloc(m * sizeof *it->results);
        if (ordered)
            it->done = calloc(m, sizeof *it->done);
        else
            it->finished = malloc(m * sizeof *it->finished);
    }
    if (!it || !it->calls || !it->results || !(ordered ? (void *)it->done : (void *)it->finished)) {
        if (it) {
            atomic_init(&it->refs, 1);
            imap_unref(it);
        }
        errno = ENOMEM;
        return NULL;
    }
    atomic_flag_clear(&it->lock);
    atomic_init(&it->refs, 2);   /* the caller's and the feeder's */
    it->pool = pool;
    it->fn = fn;
    it->n = n;
    it->ordered = ordered;
    for (size_t i = 0; i < n; i++)
        it->calls[i] = (struct imap_call){ it, i, args[i] };
    gh_spawn_opts o = { .name = "imap feeder" };
    gh_greenlet *f = gh__spawn_prepare(&o, imap_feed, it);
    if (f)
        group_feeder_add(&pool->grp);
    if (!f) {
        int err = errno;
        atomic_store(&it->refs, 1);
        imap_unref(it);
        errno = err;
        return NULL;
    }
    it->feeder = f;   /* before it can run; it clears this as it ends */
    gh__greenlet_release_ref(gh__hub_self(), f);   /* no handle: 2 -> 1 */
    gh__enqueue(f);
    return it;
}

gh_imap *gh_pool_imap(gh_pool *pool, gh_fn fn, void **args, size_t n)
{
    return imap_new(pool, fn, args, n, true);
}

gh_imap *gh_pool_imap_unordered(gh_pool *pool, gh_fn fn, void **args, size_t n)
{
    return imap_new(pool, fn, args, n, false);
}

/* Caller holds it->lock.  Takes the next result if there is one: 0;
 * ENOENT when all are out; the feeder's error for one never computed;
 * EAGAIN: wait. */
static int imap_take(gh_imap *it, void **result)
{
    if (it->next == it->n)
        return ENOENT;
    if (it->ordered ? it->done[it->next] : it->next < it->nfinished) {
        size_t i = it->ordered ? it->next : it->finished[it->next];
        *result = it->results[i];
        it->next++;
        return 0;
    }
    if (it->fed && it->next >= it->started)
        return it->feed_err ? it->feed_err : ECANCELED;   /* 0: stopped */
    return EAGAIN;
}

int gh_imap_next_timeout(gh_imap *it, void **result, int64_t timeout_ms)
{
    if (!it || !result || timeout_ms < -1)
        return EINVAL;
    uint64_t end = gh__wait_end(timeout_ms);
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, gh_self(), &tp);
    int err;
    for (;;) {
        gh__spin_lock(&it->lock);
        err = imap_take(it, result);
        if (err != EAGAIN) {
            gh__spin_unlock(&it->lock);
            break;
        }
        int64_t left = gh__ms_left(end);
        if (left == 0) {
            gh__spin_unlock(&it->lock);
            err = ETIMEDOUT;
            break;
        }
        int r = gh__wait_on(&it->readers, &it->lock, &w, left, false);
        if (r != GH_WAKE_EVENT) {
            err = gh__reason_errno(r);
            break;
        }
    }
    gh__waiter_fini(&w);
    return err;
}

int gh_imap_next(gh_imap *it, void **result)
{
    return gh_imap_next_timeout(it, result, -1);
}

int gh_imap_free(gh_imap *it)
{
    if (!it)
        return EINVAL;
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, gh_self(), &tp);
    gh__spin_lock(&it->lock);
    it->stopped = true;
    if (it->feeder)
        gh_kill(it->feeder);   /* its wait for room returns ECANCELED */
    /* Wait for the feeder to stop (soon: it was killed), so that nothing
     * waits on the pool for it once we return.  Uninterruptible: a killed
     * caller must not leave a feeder behind. */
    while (it->feeder) {
        gh__wait_on_uninterruptible(&it->freers, &it->lock, &w, false);
        gh__spin_lock(&it->lock);
    }
    gh__spin_unlock(&it->lock);
    gh__waiter_fini(&w);
    imap_unref(it);
    return 0;
}
