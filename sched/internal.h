/* sched/internal.h — structures shared by the scheduler's files.
 *
 * Every field says who may touch it.  The scheduler's design (hub loop,
 * hub sleep/wakeup, parking) is explained at the top of sched/hub.c. */
#ifndef GH_SCHED_INTERNAL_H
#define GH_SCHED_INTERNAL_H

#include "greenhub.h"
#include "deque.h"
#include "context.h"
#include "stack_cache.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <errno.h>

/* errno in library code: glibc declares __errno_location const, so the
 * compiler may compute &errno once per function and keep it across a
 * call that switches greenlets; a greenlet that resumed on another hub
 * would then read and write the old thread's errno (another greenlet's).
 * TSan caught budget_yield doing so (save errno, yield, restore).  Every
 * errno access here goes through gh_errno_location() instead (noinline,
 * not const: see "errno" in runtime.h).  hub.c defines that function
 * with libc's __errno_location. */
#undef errno
#define errno (*gh_errno_location())

#define GH_CACHELINE 64
#define GH_NAME_MAX 32

/* Broken internal invariant: print "greenhub: <fn>: <msg>" and abort. */
_Noreturn void gh__die(const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- greenlet state machine ----------------------------------------------
 * The state says who owns the greenlet's stack and where the greenlet is:
 *   RUNNABLE  in exactly one run queue (a next slot, a deque, the inject
 *             queue, a mailbox or a pinned list); nobody runs on its stack.
 *   RUNNING   a hub runs on its stack (or is switching away from it).
 *   WOKEN     RUNNING, and a wakeup arrived before it finished parking: the
 *             hub that completes the park re-queues it instead.
 *   PARKED    off its stack, in no queue; exactly one waker may make it
 *             RUNNABLE (the one that wins the wait claim, see park.c).
 *   DEAD      its function returned; the stack is released.
 * Transitions: RUNNABLE->RUNNING (a hub takes it), RUNNING->RUNNABLE (yield),
 * RUNNING->PARKED (park completes), RUNNING->WOKEN (early unpark),
 * WOKEN->RUNNABLE (park completes), PARKED->RUNNABLE (unpark),
 * RUNNING->DEAD.  Any other transition aborts with both states. */
enum gh__gstate {
    GH_G_RUNNABLE = 1,
    GH_G_RUNNING,
    GH_G_WOKEN,
    GH_G_PARKED,
    GH_G_DEAD,
};

/* Why a parked greenlet was woken: the low byte of the wait word. */
enum gh__wake_reason {
    GH_WAKE_NONE = 0,    /* still waiting: the claim is open */
    GH_WAKE_EVENT = 1,   /* the thing it waited for happened */
    GH_WAKE_TIMEOUT = 2, /* its timer fired */
    GH_WAKE_CANCEL = 3,  /* gh_kill */
    GH_WAKE_NOMEM = 4,   /* its timer could not be armed (no memory) */
    GH_WAKE_CLOSED = 5,  /* the fd it waited on was closed (gh_close) */
    GH_WAKE_DEADLINE = 6,/* its deadline scope expired (gh_timeout_begin) */
};

struct gh__hub;
struct gh__waiter;

/* Deadline scopes of a greenlet or a plain thread: deadline_ns is the
 * earliest deadline of the open scopes (0: none); open[i] is scope i: its
 * token and the deadline in force before it opened (heap, freed when the
 * last scope ends).  Tokens come from a counter that is never reset while
 * the owner lives, so a token already ended cannot close a newer scope. */
struct gh__dlscope_ent {
    uint64_t prev_deadline_ns;
    int token;
};
struct gh__dlscope {
    uint64_t deadline_ns;
    struct gh__dlscope_ent *open;
    uint32_t depth, cap;
    uint32_t next_token;
};
/* The caller's scopes: its greenlet's, or its thread's. */
struct gh__dlscope *gh__dlscope_self(void);
void gh__dlscope_free(struct gh__dlscope *d);
/* Absolute deadline (CLOCK_MONOTONIC ns, 0 none) for a wait of timeout_ms
 * by the caller, cut short by its deadline scope (*by_scope then true). */
uint64_t gh__scope_deadline(int64_t timeout_ms, bool *by_scope);
/* now + ms as CLOCK_MONOTONIC ns, saturating at UINT64_MAX ("never"). */
uint64_t gh__deadline_after(int64_t ms);

/* A greenlet's control block.  The fields a request-driven greenlet
 * touches on every wait, wake and switch come first and fill the first two
 * cache lines (x86-64 and AArch64, outside sanitizer builds: asserted
 * below); control blocks are 64-byte aligned (slabs in greenlet.c).  A
 * server resumes each of thousands of greenlets once per request with its
 * control block long out of the cache: spread over 304 unaligned bytes,
 * those fields cost 4-6 line misses per request, now 2.  Cold fields
 * (join, identity, groups, locals) follow. */
struct gh_greenlet {
    /* ---- hot: every wait, wake and switch ---- */
    /* Saved context.  Owner: the hub running it, or nobody while queued
     * (then the state's release/acquire hands it over). */
    struct gh__ctx ctx;
    int saved_errno;

    _Atomic int state;          /* enum gh__gstate; acq/rel */

    /* Link for the lock-protected lists (inject queue, mailbox, pinned
     * list, slab free lists).  Owner: whoever holds that list. */
    gh_greenlet *qnext;

    /* Wait claim word: (generation << 8) | reason.  A wait opens with
     * reason NONE under a fresh generation; the single CAS that sets a
     * reason is the one wakeup that counts.  Stays monotonic across reuse
     * of this control block (control blocks are type-stable). */
    _Atomic uint64_t wait;
    _Atomic int killed;         /* set once by gh_kill; seq_cst */
    int stack_kind;             /* enum gh__stack_kind, see stack.c */

    /* Park request: written by the greenlet, read by the context that
     * receives the switch on the same thread (see gh__after_switch). */
    void (*unlock_fn)(void *);
    void *unlock_arg;

    int pinned_hub;             /* -1: may run on any hub; immutable */
    /* -1, or the hub this greenlet must resume on for now: set by the
     * greenlet itself around a park the interposition layer makes for
     * unmodified code (io/interpose.c, "Staying"), which may keep
     * thread-local addresses (&errno) across the call.  Written only by
     * the greenlet while it runs; read by wakers and its hub's scheduler
     * after the park published it (the park's release/acquire). */
    int stay_hub;

    /* Hub it last ran on, for the per-hub "greenlets" gauge.  Written only
     * by the hub that switches it in. */
    struct gh__hub *last_hub;

    /* Deadline scopes (gh_timeout_begin).  Owner: the greenlet itself.
     * Every park reads dl.deadline_ns. */
    struct gh__dlscope dl;

    /* ---- cold ---- */
    _Atomic int refs;           /* handle + running; last one frees */

    /* Join state, under join_lock. */
    atomic_flag join_lock;
    bool done;
    bool detached;
    struct gh__waiter *joiner;

    /* Immutable after spawn. */
    gh_fn fn;
    void *arg;
    void *result;               /* written before done is set */
    uint64_t id;
    bool is_main;
    char name[GH_NAME_MAX];

    /* Group membership (sync.h's gh_group): set before the greenlet is
     * first queued, immutable after; the links are under group->lock. */
    struct gh_group *group;
    gh_greenlet *grp_next, *grp_prev;

    /* Greenlet-local values (local.c), indexed by key.  Owner: the
     * greenlet itself; freed when it ends. */
    void **locals;
    unsigned nlocals;
} __attribute__((aligned(64)));
#if !defined(GH_ASAN) && !defined(GH_TSAN)
_Static_assert(offsetof(struct gh_greenlet, dl) + sizeof(uint64_t) <= 128,
               "the hot fields of struct gh_greenlet fit two cache lines");
#endif

/* ---- waiting -------------------------------------------------------------
 * A waiter is what a primitive queues: a greenlet (g, gen) or a plain thread
 * (tp).  It lives on the waiting side's stack; a waker must use it only
 * while holding the primitive's lock (see park.c).  It leaves the list
 * only by the waker that won its claim or by itself, under the lock: a
 * waiter that may still take the lock is on the list. */
struct gh__tparker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reason;                 /* under mu; NONE until claimed */
};

struct gh__waiter {
    struct gh__waiter *next, *prev;  /* the primitive's list, under its lock */
    gh_greenlet *g;                  /* NULL for a plain thread */
    uint64_t gen;
    struct gh__tparker *tp;
    bool linked;
};

/* Tiny spin lock for primitive-internal state; never held across a switch
 * except that park() releases it from the next context (same thread).
 * The uncontended take is inline (one xchg); spinning is out of line. */
void gh__spin_lock_slow(atomic_flag *l);
static inline void gh__spin_lock(atomic_flag *l)
{
    if (atomic_flag_test_and_set_explicit(l, memory_order_acquire))
        gh__spin_lock_slow(l);
}
void gh__spin_unlock_cb(void *l);
static inline void gh__spin_unlock(atomic_flag *l)
{
    atomic_flag_clear_explicit(l, memory_order_release);
}

/* park.c */
uint64_t gh__wait_open(gh_greenlet *g);            /* new generation */
bool gh__wake(gh_greenlet *g, uint64_t gen, int reason);
void gh__unpark(gh_greenlet *g);
int gh__park(gh_greenlet *self, uint64_t gen, int64_t timeout_ms,
             void (*unlock_fn)(void *), void *arg);
int gh__park_until_woken(gh_greenlet *self, void (*unlock_fn)(void *), void *arg);
void gh__waiter_init(struct gh__waiter *w, gh_greenlet *self,
                     struct gh__tparker *tp);
void gh__waiter_arm(struct gh__waiter *w);
/* A primitive's list of waiters, oldest first (caller holds the
 * primitive's lock): append, put back at the front, unlink (only the
 * waiter itself: wakers go through gh__waiters_claim). */
void gh__waiters_push(struct gh__waiter **head, struct gh__waiter *w);
void gh__waiters_push_front(struct gh__waiter **head, struct gh__waiter *w);
void gh__waiters_unlink(struct gh__waiter **head, struct gh__waiter *w);
/* The one way a waker takes waiters off a list (caller holds the lock):
 * claims them oldest first with `reason` until `max` are won, calling
 * prep(w, arg) on each right before its claim; a waiter whose claim is
 * lost stays queued (it unlinks itself: see park.c).  Returns the number
 * won; the winners are woken and must not be touched again. */
size_t gh__waiters_claim(struct gh__waiter **head, size_t max, int reason,
                         void (*prep)(struct gh__waiter *, void *), void *arg);
/* gh__waiters_claim of one, of all, with no prep; wake_one: true if won. */
bool gh__waiters_wake_one(struct gh__waiter **head, int reason);
void gh__waiters_wake_all(struct gh__waiter **head, int reason);
/* For waits that may wait more than once (a primitive woken to compete):
 * the absolute end (ns) of a wait of timeout_ms (0 for -1: none), and what
 * is left of it in ms (-1 none, 0 over, else rounded up). */
uint64_t gh__wait_end(int64_t timeout_ms);
int64_t gh__ms_left(uint64_t end);
int gh__wait_on(struct gh__waiter **list, atomic_flag *lock,
                struct gh__waiter *w, int64_t timeout_ms, bool front);
/* gh__wait_on (at the back), but a wait that ends other than by a waker
 * returns with `lock` held, w unlinked: the caller looks, then unlocks. */
int gh__wait_on_relock(struct gh__waiter **list, atomic_flag *lock,
                       struct gh__waiter *w, int64_t timeout_ms);
/* Waiters the GREENHUB_TEST_WAIT_EXIT_DELAY_US hook has held (tests). */
extern _Atomic unsigned long gh__test_wait_exit_holds;
/* After a wait that ended other than by a waker: takes `lock` back and
 * unlinks w if still queued; returns with `lock` held. */
void gh__waiter_leave(struct gh__waiter **list, atomic_flag *lock,
                      struct gh__waiter *w);
int gh__wait_on_uninterruptible(struct gh__waiter **list, atomic_flag *lock,
                                struct gh__waiter *w, bool front);
void gh__waiter_fini(struct gh__waiter *w);
bool gh__waiter_wake(struct gh__waiter *w, int reason);
int gh__waiter_wait(struct gh__waiter *w, int64_t timeout_ms,
                    void (*unlock_fn)(void *), void *arg);
int gh__reason_errno(int reason);

/* ---- hubs ---------------------------------------------------------------- */

/* The global inject queue and the per-hub mailbox: a locked FIFO. */
struct gh__fifo {
    pthread_mutex_t mu;
    gh_greenlet *head, *tail;    /* under mu */
    _Atomic size_t len;          /* written under mu; read racily as a hint */
};

struct gh__timer_ent {
    uint64_t deadline_ns;
    gh_greenlet *g;
    uint64_t gen;
};

struct gh__stats_cells {             /* written by the owner hub, relaxed */
    _Atomic uint64_t switches, steals, parks, sleeps, wakeups;
    /* Greenlets that came to run here (new, or last ran on another hub)
     * and that ended here; sh.departed counts those that moved on to
     * another hub.  Alive here = arrived - ended - departed. */
    _Atomic uint64_t arrived, ended;
    _Atomic uint64_t stacks_trimmed;
    _Atomic uint64_t io_waits;       /* fd waits that parked here */
    _Atomic uint64_t timers;         /* now: timer_len (timer.c) */
    _Atomic uint64_t woke;           /* back from a sleep; release store
                                      * (read before sleeps: see
                                      * gh_stats_hubs) */
    _Atomic uint64_t spawned;        /* greenlets spawned by this hub's
                                      * greenlets (monitor.c's census) */
};
struct gh__stats_shared {            /* written by other hubs, relaxed RMW */
    _Atomic uint64_t stolen;
    _Atomic uint64_t departed;       /* see stats_cells.arrived */
};

struct gh__hub {
    /* ---- Owner: this hub's thread only. ---- */
    gh_greenlet *current;        /* running greenlet, NULL in the scheduler;
                                  * written with gh__hub_set_current (the
                                  * monitor thread reads it) */
    gh_greenlet *next;           /* runnext slot: runs next, never stolen;
                                  * atomic stores (read by stats) */
    /* Local list: a FIFO no other hub may touch or steal from.  Holds
     * greenlets pinned here, yielders, and greenlets this hub's scheduler
     * woke (timers); local_share() moves unpinned ones to the deque when
     * another hub is idle (see "Run queues" in hub.c). */
    gh_greenlet *local_head, *local_tail;
    size_t local_len;            /* also read by other threads (stats) */
    gh_greenlet *prev;           /* switched out; handled by after_switch */
    int prev_action;             /* enum gh__action */
    uint32_t tick;               /* atomic stores: the monitor reads it */
    int *errno_loc;              /* this hub thread's &errno (no call per switch) */
    uint64_t rng;
    bool searching;              /* counted in rt->nr_searching */
    bool poll_now;               /* gh__yield_poll: run the loop at the next
                                  * find_runnable (owner thread only) */
    bool in_sleep;               /* inside hub_sleep's uv_run: counted once,
                                  * in nr_sleeping or (woken by wakep) in
                                  * nr_searching */
    uv_loop_t loop;
    uv_timer_t timer;            /* armed for the earliest timer_heap entry */
    struct gh__timer_ent *timer_heap;
    size_t timer_len, timer_cap, timer_compact_at;
    struct gh__ctx sched_ctx;    /* the hub loop's own context */
    struct gh__stack_cache *stacks;
    gh_greenlet *g_free;         /* free control blocks */
    uint64_t id_next, id_end;    /* block of greenlet ids */
    unsigned *victims;           /* steal order: near hubs first */
    unsigned nvictims;
    unsigned near_count;         /* victims[0..near_count) share a cache */
    void *altstack;              /* the overflow handler's signal stack, */
    stack_t altstack_before;     /* and the thread's own before it (hub 0
                                  * may be gh_run's caller: restored) */
    pthread_t thread;            /* unset for hub 0 on gh_run's thread */
    int tid;                     /* its thread's id and CPU clock, for */
    clockid_t cpuclock;          /* monitor.c; set before the hubs start */
    unsigned index;
    struct gh__stats_cells st;
    struct gh__io_hub *io;       /* io/poll.c: this hub's fd watches */

    /* ---- Shared with other threads. ---- */
    _Alignas(GH_CACHELINE) gh__deque dq;   /* owner pushes/takes; all steal */
    struct gh__fifo mailbox;     /* pinned greenlets sent from elsewhere */
    uv_async_t async;            /* the only way to wake this hub */
    bool sleeping;               /* in rt->idle stack; rt->idle_mu */
    int core;                    /* immutable after start; -1 unpinned */
    /* Calls other threads ask this hub to make on its loop (io/hubcall.c),
     * FIFO, under io_req_mu; io_closed: the hub has stopped taking them. */
    pthread_mutex_t io_req_mu;
    struct gh__hubcall *io_reqs, *io_reqs_tail;
    bool io_closed;
    _Alignas(GH_CACHELINE) struct gh__stats_shared sh;
};

enum gh__action {
    GH_ACT_NONE = 0, /* nothing left to do (yield_fast queued prev itself) */
    GH_ACT_YIELD,    /* prev goes back to a run queue */
    GH_ACT_PARK,     /* prev parks: unlock_fn, then RUNNING -> PARKED */
    GH_ACT_EXIT,     /* prev is dead: release its stack */
};

extern const uint64_t gh__spin_ns_default;   /* hub.c: SPIN_NS */

struct gh__runtime {
    unsigned nhubs;
    size_t stack_size;
    bool pin;
    bool sched_batch;            /* hub threads SCHED_BATCH (gh_config) */
    struct gh__hub *hubs;        /* immutable after start */
    /* gh_run's thread as it came: CPU affinity and scheduling policy, put
     * back on it after hub 0 ran there and lent to libuv's thread pool
     * (gh__pool_ensure).  Written before the hubs start, then read only. */
    cpu_set_t caller_cpus;
    int caller_policy;
    struct sched_param caller_param;
    bool caller_cpus_ok, caller_policy_ok;

    struct gh__fifo inject;      /* from plain threads */

    /* Hub sleep/wakeup (see "Hub sleep" in hub.c). */
    _Alignas(GH_CACHELINE) _Atomic unsigned nr_searching;
    _Atomic unsigned nr_sleeping;
    pthread_mutex_t idle_mu;
    struct gh__hub **idle;       /* stack of sleeping hubs, under idle_mu */
    unsigned nidle;

    uint64_t spin_ns;              /* GREENHUB_SPIN_US, default below */
    uint64_t test_sleep_delay_ns;  /* GREENHUB_TEST_SLEEP_DELAY_US; 0 outside tests */
    uint64_t test_wait_exit_delay_ns; /* GREENHUB_TEST_WAIT_EXIT_DELAY_US (park.c) */
    /* Monitor thread (monitor.c): configured here, immutable after start. */
    uint64_t block_ns;           /* GREENHUB_BLOCK_MS; 0: detector off */
    bool block_report;           /* GREENHUB_BLOCK_REPORT: print reports */
    bool publish;                /* GREENHUB_PUBLISH (default 1): shm segment */
    char name[32];               /* gh_config.name, for tools */
    struct gh__monitor *monitor; /* NULL when neither of the above runs */
    /* 1: the monitor waits long (all hubs slept); the first hub to wake
     * sets 2 and signals it (gh__monitor_kick).  seq_cst, see monitor.c. */
    _Atomic int monitor_idle;
    _Atomic uint64_t spawned_ext;  /* greenlets spawned by plain threads */

    _Alignas(GH_CACHELINE) _Atomic int stopping;
    _Atomic uint64_t id_counter;
    void *main_result;

    /* Greenlet control-block slabs (type-stable until the runtime ends). */
    pthread_mutex_t slab_mu;
    void **slabs;                /* under slab_mu */
    size_t nslabs, slabs_cap;
    gh_greenlet *g_free;         /* shared free list, under slab_mu */

    pthread_mutex_t start_mu;    /* start handshake (runtime.c) */
    pthread_cond_t start_cv;
    unsigned ready;              /* hubs initialised, under start_mu */
    bool go;                     /* under start_mu */
};

extern struct gh__runtime *gh__rt;   /* set while a runtime runs */

/* Hub thread, before anything that may be libuv's thread pool's first use
 * (uv_queue_work, uv_getaddrinfo): starts the pool with the affinity and
 * policy of gh_run's thread, not this hub's pinned core (runtime.c). */
void gh__pool_ensure(void);
/* The calling thread takes gh_run's thread's CPU affinity and scheduling
 * policy as they were before hub 0 ran there (runtime.c). */
void gh__thread_as_caller(const struct gh__runtime *rt);
/* pthread_create for greenhub's own threads: born on those same CPUs,
 * never for an instant on hub 0's pinned core (runtime.c). */
int gh__thread_create(const struct gh__runtime *rt, pthread_t *t, void *(*fn)(void *),
                      void *arg);

/* Hub the calling thread runs, NULL on a plain thread.  Never cached across
 * a switch: a greenlet may resume on another hub (use the hub the switch
 * returns).
 *
 * The compiler may keep a thread-local address across a call that
 * switches (see "Migration" in DESIGN.md), so the read must be one it
 * cannot reuse.  On x86-64 it is an asm volatile with a memory clobber,
 * never merged with another nor moved across a call: two instructions
 * inline.  It replaced a noinline function, kept for other CPUs; with the
 * call gone from the ~7 reads per spawn+join, that went from 104 to
 * 100.6 ns (same run, medians of 7). */
extern __thread struct gh__hub *gh__tls_hub
    __attribute__((tls_model("initial-exec"), visibility("hidden")));
#if defined(__x86_64__)
static inline __attribute__((always_inline)) struct gh__hub *gh__hub_self(void)
{
    struct gh__hub *h;
    __asm__ volatile("movq gh__tls_hub@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0"
                     : "=r"(h) : : "memory");
    return h;
}
#else
struct gh__hub *gh__hub_self(void);
#endif
void gh__hub_set_self(struct gh__hub *h);

/* The hub's running greenlet changes.  The monitor thread reads
 * h->current from another thread, and then g's id and name: release here
 * and acquire there carry everything that happened before g was queued
 * (its control block's allocation and set-up) to the monitor.  A plain
 * mov on x86-64. */
static inline void gh__hub_set_current(struct gh__hub *h, gh_greenlet *g)
{
    __atomic_store_n(&h->current, g, __ATOMIC_RELEASE);
}

/* The hub g must run on now, or -1 (pinned, or staying: see stay_hub). */
static inline int gh__home_hub(const gh_greenlet *g)
{
    return g->pinned_hub >= 0 ? g->pinned_hub : g->stay_hub;
}

/* hub.c */
void gh__hub_main(struct gh__hub *h);
void gh__after_switch_slow(struct gh__hub *h);
/* First thing after every switch lands: finishes what the previous
 * greenlet asked for (h->prev, h->prev_action), if anything. */
static inline void gh__after_switch(struct gh__hub *h)
{
    if (h->prev)
        gh__after_switch_slow(h);
}
/* Greenlet context: yields through the scheduler, which runs the hub's
 * libuv loop once (without blocking) before it picks the next greenlet.
 * For a greenlet whose I/O calls never wait (io/sys.c's budget): the fds
 * other greenlets of its hub wait on are polled every budget, not every
 * LOOK_EVERY * POLL_EVERY yields.  Outside a greenlet: gh_yield. */
void gh__yield_poll(void);
struct gh__hub *gh__switch_out(struct gh__hub *h, gh_greenlet *self,
                               int action);
void gh__enqueue(gh_greenlet *g);
/* Any thread: greenlets queued on h now (its next slot, local list, deque
 * and mailbox), sampled without locks: a snapshot, not an instant. */
size_t gh__hub_runnable(struct gh__hub *h);
/* Any thread: alive greenlets that last ran on h (same kind of sample). */
uint64_t gh__hub_alive(struct gh__hub *h);
void gh__wake_all_hubs(void);
void gh__fifo_init(struct gh__fifo *f);
void gh__fifo_destroy(struct gh__fifo *f);

/* greenlet.c */
void gh__greenlet_exited(struct gh__hub *h, gh_greenlet *g);
void gh__greenlet_release_ref(struct gh__hub *h, gh_greenlet *g);
/* group.c: the greenlet's function returned; on its own stack. */
void gh__group_leave(gh_greenlet *g);
/* local.c: runs g's local destructors (on its stack) and frees them. */
void gh__locals_run_destructors(gh_greenlet *g);
void gh__locals_free(gh_greenlet *g);
/* greenlet.c: validates opts and makes a greenlet, not yet queued. */
gh_greenlet *gh__spawn_prepare(const gh_spawn_opts *opts, gh_fn fn, void *arg);
gh_greenlet *gh__greenlet_new(struct gh__hub *h, const gh_spawn_opts *o,
                              gh_fn fn, void *arg);
void gh__greenlets_destroy_all(struct gh__runtime *rt);

/* timer.c */
int gh__timer_init(struct gh__hub *h);
int gh__timer_add(struct gh__hub *h, uint64_t deadline_ns, gh_greenlet *g,
                  uint64_t gen);
void gh__timers_run(struct gh__hub *h);
void gh__timer_destroy(struct gh__hub *h);
uint64_t gh__now_ns(void);

/* stack.c */
enum gh__stack_kind { GH_STACK_NONE = 0, GH_STACK_CACHED, GH_STACK_OWN };
#define GH_STACK_CANARY 0x100   /* or'ed into stack_kind: guarded by a canary */
#define GH_STACK_NOBODY (-1)    /* gh__stack_slot.owner: no hub */
/* One default-size stack of a segment (see "Owners" in stack.c).  Made
 * with its segment, freed with it at runtime end, never moved. */
struct gh__stack_slot {
    char *lo;                /* lowest usable byte; immutable */
    int kind;                /* GH_STACK_CACHED [| GH_STACK_CANARY]: set
                              * when first carved (S.mu), immutable after */
    /* The hub whose memory the stack counts as: the hub its greenlet last
     * ran on (before its first run: the hub that spawned it), the hub whose
     * cache holds it, or GH_STACK_NOBODY (on the global free list, never
     * carved, or spawned by a plain thread and not run yet).  Written with
     * relaxed stores by the one thread that holds the stack (the hub
     * running or caching it, a spawner, a trimmer); read relaxed by the
     * monitor (gh__stack_resident_by_hub), which needs no ordering: it
     * attributes pages, it does not touch them. */
    _Atomic int32_t owner;
};
/* Hub thread: the stack of ctx now counts as hub `index`'s (set_running,
 * when a greenlet runs on a hub other than the one it last ran on). */
static inline void gh__stack_owner_set(struct gh__ctx *ctx, unsigned index)
{
    if (ctx->slot)
        atomic_store_explicit(&ctx->slot->owner, (int32_t)index, memory_order_relaxed);
}
int gh__stack_global_init(size_t default_size);
void gh__stack_global_destroy(void);
int gh__stack_alloc(struct gh__hub *h, size_t size, struct gh__ctx *ctx,
                    int *kind);
void gh__stack_free(struct gh__hub *h, struct gh__ctx *ctx, int kind);
void gh__stack_check_canary(const gh_greenlet *g);
int gh__stack_hub_init(struct gh__hub *h);
/* Hub thread, with nothing to run: trims up to a batch of the stacks
 * released while it was busy.  True if it trimmed any (look for work
 * again before trimming more). */
bool gh__stack_trim_idle(struct gh__hub *h);
void gh__stack_hub_destroy(struct gh__hub *h);
/* Frees the hub's stack cache (runtime_free, after the monitor stopped). */
void gh__stack_hub_free(struct gh__hub *h);
/* For the monitor thread, from any thread while the runtime runs: bytes of
 * stack in h's cache, bytes of stack address space mapped in all, and the
 * default stack size (page-rounded). */
size_t gh__stack_cached(const struct gh__hub *h);
uint64_t gh__stack_mapped(void);
/* Bytes of default-size stack pages resident now (mincore over every
 * segment: one system call per 64 stacks; the monitor calls it rarely),
 * split by owner: per_hub[i] for hub i (nhubs entries, overwritten),
 * *unowned for stacks of no hub.  Returns the total, which is their sum.
 * Stacks of their own size are not counted.  Any thread. */
uint64_t gh__stack_resident_by_hub(uint64_t *per_hub, unsigned nhubs, uint64_t *unowned);
size_t gh__stack_default_size(void);

/* monitor.c: the monitor thread (shm segment for schedtop, blocking
 * detector).  Open (the segment) before the hubs start, start (the thread)
 * once they all have, stop after they were joined (also after a failed
 * start).  None can fail the runtime: without /dev/shm, or memory, it runs
 * unpublished and unwatched. */
void gh__monitor_open(struct gh__runtime *rt);
void gh__monitor_start(struct gh__runtime *rt);
void gh__monitor_stop(struct gh__runtime *rt);
/* A hub back from a sleep: wakes the monitor if it waits long. */
void gh__monitor_kick(struct gh__runtime *rt);
/* Removes the published segment; signal-safe, for paths that abort(). */
void gh__monitor_on_death(void);
void gh__overflow_handler_install(void);
void gh__overflow_handler_remove(void);

/* topology.c */
int gh__topology_plan(struct gh__runtime *rt, bool pin);
int gh__topology_pin_self(int cpu);
int gh__topology_ncores(void);

/* io/poll.c: each hub's fd watches, driven from its loop. */
int gh__io_hub_init(struct gh__hub *h);
void gh__io_hub_fini(struct gh__hub *h);     /* before the loop closes */
void gh__io_hub_requests(struct gh__hub *h); /* from the hub's uv_async */

void gh__io_runtime_start(void);

/* Stats: single-writer counters; a relaxed load+store, never a lock. */
static inline void gh__stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void gh__stat_inc(_Atomic uint64_t *c)
{
    gh__stat_add(c, 1);
}

#endif
