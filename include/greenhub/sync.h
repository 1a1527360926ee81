/* greenhub/sync.h — synchronisation between greenlets (and plain threads),
 * groups and pools of greenlets, and greenlet-local storage.
 *
 * Conventions (the same as pthreads and gevent):
 *   - Every function returning int returns 0 or a positive errno value.
 *   - Every primitive works across hubs and between greenlets and plain
 *     threads: a greenlet that waits parks (its hub runs other greenlets);
 *     a plain thread that waits blocks.
 *   - A wait fails only by timeout or cancellation: ETIMEDOUT when
 *     timeout_ms (-1 forever, 0 polls) or the caller's deadline scope
 *     (gh_timeout_begin) expires first, ECANCELED when the waiting greenlet
 *     was killed (gh_kill).  A wait that fails leaves the primitive exactly
 *     as if the waiter had never come: nothing it was handed is lost.
 *   - Waiters are served first come, first served.
 *   - gh_sem, gh_mutex and gh_cond are complete types the caller allocates
 *     (static, on the stack, inside a struct), like pthread_mutex_t;
 *     gh_queue, gh_group, gh_pool and gh_imap are opaque handles from
 *     _new, released with _free.
 *   - _destroy and _free say EBUSY while a wait on the primitive is not
 *     over: while a waiter is queued, including one whose wait ended by
 *     its timeout, deadline or gh_kill and that is on its way out (it
 *     stays queued until it has let go of the primitive, even when a wake
 *     found it first and skipped it), and for gh_mutex while it is locked
 *     or a waiter an unlock woke has not yet retried.  Once they return 0,
 *     no waiter that had queued touches the primitive again: its memory
 *     may be reused at once.  EBUSY cannot see a call that has not queued
 *     yet, nor a call that does not wait (a release, an unlock, a signal,
 *     a set, a put with room) while it runs: as with pthreads, destroy a
 *     primitive only when no such call can still be made on it.
 *
 * gh_event (a flag waiters wait for) is in greenhub/event.h. */
#ifndef GREENHUB_SYNC_H
#define GREENHUB_SYNC_H

#include <greenhub/event.h>
#include <greenhub/runtime.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- gh_sem: a counting semaphore ----------------------------------------
 * A release with waiters hands its permit straight to the oldest waiter, so
 * a stream of new acquirers can never starve one that waits. */
typedef struct gh_sem {
    _Atomic unsigned count;       /* free permits */
    atomic_flag lock;             /* protects waiters; never held across a switch */
    struct gh__waiter *waiters;   /* internal, oldest first, under lock */
} gh_sem;

/* Initialises s with n free permits.  0, or EINVAL (NULL, n > INT_MAX). */
GH_API int gh_sem_init(gh_sem *s, unsigned n);
/* 0; EINVAL for NULL; EBUSY if someone waits on it. */
GH_API int gh_sem_destroy(gh_sem *s);
/* Takes a permit, waiting up to timeout_ms for one.  0, ETIMEDOUT,
 * ECANCELED; EINVAL for NULL or timeout_ms < -1. */
GH_API int gh_sem_acquire(gh_sem *s, int64_t timeout_ms);
/* Returns a permit (to the oldest waiter if any).  0; EINVAL for NULL;
 * EOVERFLOW if the count would pass INT_MAX. */
GH_API int gh_sem_release(gh_sem *s);
/* Free permits right now (a snapshot). */
GH_API unsigned gh_sem_value(const gh_sem *s);

/* ---- gh_mutex --------------------------------------------------------------
 * Not recursive.  Fair enough that no waiter starves: an unlock normally
 * frees the lock and wakes the oldest waiter, which competes with greenlets
 * that arrive meanwhile (cheap under contention, no lock convoy); a woken
 * waiter that loses after waiting GH_MUTEX_STARVE_MS in all asks for the
 * lock to be handed straight to it at the next unlock (the rule Go's
 * sync.Mutex follows).
 * gh_mutex_lock waits without a timeout of its own, but the caller's
 * deadline scope and gh_kill still end the wait (ETIMEDOUT, ECANCELED): a
 * greenlet stuck on a lock can always be cancelled. */
#define GH_MUTEX_STARVE_MS 1

typedef struct gh_mutex {
    _Atomic unsigned state;       /* internal: locked, queued, woken, starving */
    atomic_flag lock;             /* protects waiters */
    struct gh__waiter *waiters;   /* internal, oldest first */
} gh_mutex;

/* Static initialiser, like PTHREAD_MUTEX_INITIALIZER. */
#define GH_MUTEX_INITIALIZER { 0, ATOMIC_FLAG_INIT, NULL }

/* 0; EINVAL for NULL. */
GH_API int gh_mutex_init(gh_mutex *m);
/* 0; EINVAL for NULL; EBUSY if it is locked or waited on. */
GH_API int gh_mutex_destroy(gh_mutex *m);
/* 0 with the lock held; ETIMEDOUT (deadline scope), ECANCELED; EINVAL. */
GH_API int gh_mutex_lock(gh_mutex *m);
/* gh_mutex_lock waiting at most timeout_ms (-1 forever, 0 = trylock but
 * ETIMEDOUT instead of EBUSY). */
GH_API int gh_mutex_timedlock(gh_mutex *m, int64_t timeout_ms);
/* 0 with the lock held, EBUSY if it is held; EINVAL for NULL. */
GH_API int gh_mutex_trylock(gh_mutex *m);
/* 0; EINVAL for NULL; EPERM if it is not locked. */
GH_API int gh_mutex_unlock(gh_mutex *m);

/* ---- gh_cond: a condition variable used with a gh_mutex ------------------
 * As with POSIX, a wait may return 0 without a signal (a spurious wakeup):
 * always wait in a loop that re-checks the condition. */
typedef struct gh_cond {
    atomic_flag lock;             /* protects waiters */
    struct gh__waiter *waiters;   /* internal, oldest first */
} gh_cond;

#define GH_COND_INITIALIZER { ATOMIC_FLAG_INIT, NULL }

/* 0; EINVAL for NULL. */
GH_API int gh_cond_init(gh_cond *c);
/* 0; EINVAL for NULL; EBUSY if someone waits on it. */
GH_API int gh_cond_destroy(gh_cond *c);
/* Atomically unlocks m (which the caller holds) and waits for a signal,
 * then locks m again: m is held on return, whatever is returned — also on
 * ETIMEDOUT and ECANCELED.  EPERM (and no wait) if m is not locked; EINVAL
 * for NULL or timeout_ms < -1. */
GH_API int gh_cond_wait(gh_cond *c, gh_mutex *m, int64_t timeout_ms);
/* Wakes the oldest waiter (if any).  0; EINVAL for NULL. */
GH_API int gh_cond_signal(gh_cond *c);
/* Wakes every waiter.  0; EINVAL for NULL. */
GH_API int gh_cond_broadcast(gh_cond *c);

/* ---- gh_queue: a FIFO of void * items --------------------------------------
 * Bounded (put waits while full) or unbounded (capacity 0: put waits only
 * for memory, never for room).  Items go to getters in the order they were
 * put; a getter that waits is handed an item directly.  After gh_queue_close
 * put fails with EPIPE, and get returns what is left, then EPIPE: nothing
 * put before the close is lost. */
typedef struct gh_queue gh_queue;

/* NULL and errno (ENOMEM; EINVAL if capacity > 2^31) on failure. */
GH_API gh_queue *gh_queue_new(size_t capacity);
/* Appends item, waiting up to timeout_ms for room.  0, ETIMEDOUT,
 * ECANCELED (item not queued), EPIPE (closed), ENOMEM (unbounded queue and
 * no memory: item not queued); EINVAL. */
GH_API int gh_queue_put(gh_queue *q, void *item, int64_t timeout_ms);
/* Takes the oldest item into *item, waiting up to timeout_ms for one.
 * 0, ETIMEDOUT, ECANCELED, EPIPE (closed and drained); EINVAL. */
GH_API int gh_queue_get(gh_queue *q, void **item, int64_t timeout_ms);
/* Closes q and wakes every waiter (putters fail with EPIPE; getters take
 * what is left).  0; EINVAL for NULL.  Closing twice is harmless. */
GH_API int gh_queue_close(gh_queue *q);
/* Items queued right now (a snapshot); 0 for NULL. */
GH_API size_t gh_queue_len(gh_queue *q);
/* Frees q.  0; EINVAL for NULL; EBUSY (and nothing freed) while a
 * greenlet or thread waits on it.  Items still queued are the caller's. */
GH_API int gh_queue_free(gh_queue *q);

/* ---- gh_group: greenlets spawned together, joined and killed together ---- 
 * The group owns its greenlets: they are detached (there is no handle to
 * join one by one) and leave the group when their function returns. */
typedef struct gh_group gh_group;

/* NULL and errno (ENOMEM) on failure. */
GH_API gh_group *gh_group_new(void);
/* Spawns fn(arg) into grp (as gh_spawn / gh_spawn_with).  0; EINVAL,
 * ENOMEM, ESRCH (no runtime). */
GH_API int gh_group_spawn(gh_group *grp, gh_fn fn, void *arg);
GH_API int gh_group_spawn_with(gh_group *grp, const gh_spawn_opts *opts,
                               gh_fn fn, void *arg);
/* Waits until every greenlet of grp has finished (0 at once if none).
 * 0, ETIMEDOUT, ECANCELED; EINVAL. */
GH_API int gh_group_join(gh_group *grp, int64_t timeout_ms);
/* gh_kill on every greenlet of grp; does not wait (join for that).
 * 0; EINVAL for NULL. */
GH_API int gh_group_kill(gh_group *grp);
/* Greenlets of grp still running (a snapshot); 0 for NULL. */
GH_API size_t gh_group_size(gh_group *grp);
/* Frees grp.  0; EINVAL for NULL; EBUSY (nothing freed) while greenlets
 * of it still run or a gh_group_join waits on it. */
GH_API int gh_group_free(gh_group *grp);

/* ---- gh_pool: a group with at most `size` greenlets running at once ------ */
typedef struct gh_pool gh_pool;

/* NULL and errno (EINVAL for size 0, ENOMEM) on failure. */
GH_API gh_pool *gh_pool_new(size_t size);
/* Spawns fn(arg) into pool, first waiting while it is full.  0; ETIMEDOUT
 * (deadline scope), ECANCELED, ENOMEM, ESRCH, EINVAL: nothing spawned. */
GH_API int gh_pool_spawn(gh_pool *pool, gh_fn fn, void *arg);
/* gh_pool_spawn waiting at most timeout_ms for room (0 = only if free). */
GH_API int gh_pool_spawn_timeout(gh_pool *pool, gh_fn fn, void *arg,
                                 int64_t timeout_ms);
/* As gh_group_join / gh_group_kill / gh_group_size / gh_group_free.  An
 * imap on the pool counts as running until its feeder has spawned its
 * last call (or gh_imap_free stopped it): gh_pool_join waits for that too,
 * and gh_pool_free returns EBUSY meanwhile.  gh_pool_kill kills the calls
 * running now, not the feeder: stop that with gh_imap_free. */
GH_API int gh_pool_join(gh_pool *pool, int64_t timeout_ms);
GH_API int gh_pool_kill(gh_pool *pool);
GH_API size_t gh_pool_running(gh_pool *pool);
GH_API int gh_pool_free(gh_pool *pool);

/* ---- gh_imap: map a function over inputs on a pool (gevent's pool.imap) --
 *
 *     gh_imap *it = gh_pool_imap(pool, fetch_and_parse, (void **)urls, n);
 *     void *page;
 *     while (gh_imap_next(it, &page) == 0)
 *         use(page);
 *     gh_imap_free(it);
 *
 * fn(args[i]) runs on the pool for every i, at most `size` at once (shared
 * with whatever else runs on the pool); a feeder greenlet spawns the calls
 * as room frees up, so they run while the caller reads.  gh_pool_imap hands
 * out results in input order, each as soon as it and all before it are
 * done; gh_pool_imap_unordered hands them out as they finish.  The array
 * args is copied: it may be freed once gh_pool_imap returns (what its
 * pointers point to must live until the calls given them have run). */
typedef struct gh_imap gh_imap;

/* NULL and errno (EINVAL: NULL pool or fn, NULL args with n > 0; ENOMEM;
 * ESRCH: no runtime) on failure. */
GH_API gh_imap *gh_pool_imap(gh_pool *pool, gh_fn fn, void **args, size_t n);
GH_API gh_imap *gh_pool_imap_unordered(gh_pool *pool, gh_fn fn, void **args,
                                       size_t n);
/* The next result into *result: 0; ENOENT once all n were handed out;
 * ETIMEDOUT/ECANCELED (the wait; call again to go on); EINVAL; or the error
 * that stopped the feeder from spawning the next call (ENOMEM), for every
 * result that was never computed. */
GH_API int gh_imap_next(gh_imap *it, void **result);
GH_API int gh_imap_next_timeout(gh_imap *it, void **result, int64_t timeout_ms);
/* Stops the feeder (returns once it has stopped: nothing more is spawned
 * for it) and releases the iterator.  Calls already spawned (running, or
 * queued to run) still run on the pool and their results are dropped:
 * gh_pool_join waits for them.
 * 0; EINVAL for NULL. */
GH_API int gh_imap_free(gh_imap *it);

/* ---- greenlet-local storage (like pthread keys, per greenlet) -------------
 * A value set by a greenlet is seen only by that greenlet, on whichever hub
 * it runs.  When a greenlet ends, the destructor of each key it holds a
 * non-NULL value for runs on it (up to GH_LOCAL_DESTRUCTOR_ROUNDS rounds,
 * as destructors may set values again).  Outside a greenlet the value is
 * per thread, and destructors run when the thread exits. */
#define GH_LOCAL_KEYS_MAX 256
#define GH_LOCAL_DESTRUCTOR_ROUNDS 4

typedef unsigned gh_local_key;

/* Creates a key (never reused within the process).  0; EINVAL for NULL;
 * EAGAIN once GH_LOCAL_KEYS_MAX keys exist. */
GH_API int gh_local_key_create(gh_local_key *key, void (*destructor)(void *));
/* The caller's value for key; NULL if none was set or key is invalid. */
GH_API void *gh_local_get(gh_local_key key);
/* Sets the caller's value for key.  0; EINVAL (key not created); ENOMEM. */
GH_API int gh_local_set(gh_local_key key, const void *value);

#ifdef __cplusplus
}
#endif
#endif
