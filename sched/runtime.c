/* sched/runtime.c — gh_run: configuration, hub threads, start and stop.
 *
 * Start: plan the hubs (topology.c), create the main greenlet on the inject
 * queue, start one thread per hub but the first: hub 0 runs on the thread
 * that called gh_run (see "Hub 0 on the caller's thread" below).  Each hub
 * pins itself, builds its libuv loop, and waits at a barrier until every
 * hub can be woken (so no uv_async_send ever targets a half-built hub)
 * before entering the hub loop.
 * Stop: when the main greenlet returns, `stopping` is set and every hub is
 * woken; each leaves its loop at its next scheduling point, and closes it
 * once every hub has left its own (stop_handshake).  gh_run joins
 * the threads, then releases everything, including greenlets that never
 * finished, so it can be called again. */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEFAULT_STACK = 256 * 1024 };
enum { DEQUE_INITIAL = 256 };      /* grows on demand */
enum { DEFAULT_BLOCK_MS = 100 };   /* gh_config.block_ms */

static _Atomic int running;       /* 1 while a gh_run is active */

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return dflt;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return *end ? dflt : v;
}

/* The monitor thread's settings (monitor.c): block threshold, report
 * printing, the shm segment. */
static void configure_monitor(struct gh__runtime *rt, const gh_config *c)
{
    unsigned long block_ms = c->block_ms < 0 ? 0 : c->block_ms ? (unsigned long)c->block_ms
                                                               : DEFAULT_BLOCK_MS;
    block_ms = env_ulong("GREENHUB_BLOCK_MS", block_ms);
    rt->block_ns = block_ms > 86400000ul ? 86400000000000ull : block_ms * 1000000ull;
    rt->block_report = env_ulong("GREENHUB_BLOCK_REPORT", c->block_report != 0) != 0;
    rt->publish = env_ulong("GREENHUB_PUBLISH", c->no_publish == 0) != 0;
    snprintf(rt->name, sizeof rt->name, "%s", c->name ? c->name : "");
}

static int configure(struct gh__runtime *rt, const gh_config *cfg)
{
    gh_config c = cfg ? *cfg : (gh_config){ 0 };
    rt->nhubs = (unsigned)env_ulong("GREENHUB_HUBS", c.hubs);
    rt->stack_size = env_ulong("GREENHUB_STACK_SIZE", c.stack_size);
    rt->pin = env_ulong("GREENHUB_PIN", c.no_pin ? 0 : 1) != 0;
    rt->sched_batch = env_ulong("GREENHUB_SCHED_BATCH", c.sched_batch != 0) != 0;
    rt->spin_ns = env_ulong("GREENHUB_SPIN_US", gh__spin_ns_default / 1000u) * 1000u;
    rt->test_sleep_delay_ns = env_ulong("GREENHUB_TEST_SLEEP_DELAY_US", 0) * 1000u;
    rt->test_wait_exit_delay_ns = env_ulong("GREENHUB_TEST_WAIT_EXIT_DELAY_US", 0) * 1000u;
    configure_monitor(rt, &c);
    if (rt->stack_size == 0)
        rt->stack_size = DEFAULT_STACK;
    if (rt->stack_size < 16 * 1024 || rt->nhubs > 4096)
        return EINVAL;
    if (rt->nhubs == 0)
        rt->nhubs = (unsigned)gh__topology_ncores();
    return rt->nhubs ? 0 : EINVAL;
}

static void on_async(uv_async_t *a)
{
    struct gh__hub *h = a->data;
    gh__stat_inc(&h->st.wakeups);
    gh__io_hub_requests(h);
}

static void close_cb(uv_handle_t *hd)
{
    (void)hd;
}

/* The calling thread's stack: its lowest byte and size.  False (and
 * NULL, 0) if the system does not say. */
static bool thread_stack(void **lo, size_t *sz)
{
    pthread_attr_t a;
    *lo = NULL;
    *sz = 0;
    if (pthread_getattr_np(pthread_self(), &a) != 0)
        return false;
    int r = pthread_attr_getstack(&a, lo, sz);
    pthread_attr_destroy(&a);
    return r == 0;
}

/* The hub's own context is its thread's stack: tell ASan where it is. */
static void sched_ctx_init(struct gh__hub *h)
{
    void *lo;
    size_t sz;
    thread_stack(&lo, &sz);
    memset(&h->sched_ctx, 0, sizeof h->sched_ctx);
    h->sched_ctx.stack_lo = lo;
    h->sched_ctx.stack_size = sz;
    gh__tsan_fiber_current(&h->sched_ctx);
}

/* This thread takes the CPU affinity and scheduling policy gh_run's thread
 * came with (caller_save).  For every thread greenhub starts while hub 0
 * holds gh_run's thread pinned (the other hubs, before they pin
 * themselves; the monitor; the pool's starter), which would otherwise
 * inherit hub 0's policy (its affinity they are born without:
 * gh__thread_create), and for gh_run's thread when hub 0 is done.  Best
 * effort: going back to a realtime policy from SCHED_BATCH needs
 * RLIMIT_RTPRIO or CAP_SYS_NICE. */
void gh__thread_as_caller(const struct gh__runtime *rt)
{
    pthread_t self = pthread_self();
    if (rt->caller_cpus_ok)
        (void)pthread_setaffinity_np(self, sizeof rt->caller_cpus, &rt->caller_cpus);
    if (rt->caller_policy_ok)
        (void)pthread_setschedparam(self, rt->caller_policy, &rt->caller_param);
}

/* pthread_create for the threads greenhub starts while hub 0 may hold
 * gh_run's thread pinned (the other hubs, the monitor, the pool's
 * starter): the new thread is born on the CPUs gh_run's thread came with,
 * so not even its first instant runs on hub 0's core.  Its scheduling
 * policy it takes itself, with gh__thread_as_caller (an explicit realtime
 * policy in the attributes would make pthread_create fail without
 * privilege). */
int gh__thread_create(const struct gh__runtime *rt, pthread_t *t, void *(*fn)(void *),
                      void *arg)
{
    pthread_attr_t a;
    if (!rt->caller_cpus_ok || pthread_attr_init(&a) != 0)
        return pthread_create(t, NULL, fn, arg);
    int err = pthread_attr_setaffinity_np(&a, sizeof rt->caller_cpus, &rt->caller_cpus);
    if (!err)
        err = pthread_create(t, &a, fn, arg);
    pthread_attr_destroy(&a);
    if (err == EINVAL)   /* the set no longer fits the machine (cpuset change) */
        err = pthread_create(t, NULL, fn, arg);
    return err;
}

/* The hub's thread takes the hub's scheduling policy. */
static void hub_policy(void)
{
    if (gh__rt->sched_batch) {
        /* Best effort, like the pinning: where a sandbox refuses it the
         * hub runs under the default policy. */
        struct sched_param sp = { .sched_priority = 0 };
        (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    }
}

static int hub_init(struct gh__hub *h)
{
    gh__hub_set_self(h);
    h->tid = (int)gettid();   /* before the start handshake: the monitor reads them */
    if (pthread_getcpuclockid(pthread_self(), &h->cpuclock) != 0)
        h->cpuclock = CLOCK_THREAD_CPUTIME_ID;   /* the monitor's own: harmless */
    h->errno_loc = __errno_location();   /* this hub thread's */
    if (h->core >= 0 && gh__topology_pin_self(h->core) != 0)
        h->core = -1;
    hub_policy();
    sched_ctx_init(h);
    int err = gh__stack_hub_init(h);
    if (!err && uv_loop_init(&h->loop) != 0)
        err = ENOMEM;
    if (!err && uv_async_init(&h->loop, &h->async, on_async) != 0)
        err = ENOMEM;
    h->async.data = h;
    if (!err)
        err = gh__timer_init(h);
    if (!err)
        err = gh__io_hub_init(h);
    return err;
}

static void close_leftover(uv_handle_t *hd, void *arg)
{
    (void)arg;
    if (!uv_is_closing(hd))
        uv_close(hd, NULL);
}

static void hub_fini(struct gh__hub *h)
{
    gh__io_hub_fini(h);
    uv_close((uv_handle_t *)&h->async, close_cb);
    uv_close((uv_handle_t *)&h->timer, close_cb);
    /* A handle still open here (none is expected: each io/ part closes its
     * own in gh__io_hub_fini) would keep the uv_run below from returning. */
    uv_walk(&h->loop, close_leftover, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);   /* runs the close callbacks */
    uv_loop_close(&h->loop);
    gh__timer_destroy(h);
    gh__stack_hub_destroy(h);
    gh__hub_set_self(NULL);
}

/* Hub thread: reports readiness, then waits for the go (or stop) signal. */
static void start_handshake(struct gh__runtime *rt)
{
    pthread_mutex_lock(&rt->start_mu);
    rt->ready++;
    pthread_cond_broadcast(&rt->start_cv);
    while (!rt->go)
        pthread_cond_wait(&rt->start_cv, &rt->start_mu);
    pthread_mutex_unlock(&rt->start_mu);
}

/* Hubs of this run that have left their loop, under start_mu (one runtime
 * at a time, so one counter). */
static unsigned hubs_out;

/* Hub thread, out of its loop: waits until every hub is, before its loop
 * (and the uv_async other hubs wake it by) goes away.  The hub that stops
 * the runtime wakes every hub (gh__wake_all_hubs) from inside its loop; a
 * hub that was awake sees `stopping` at once and, without this, closed its
 * loop while that loop of sends had not reached it yet: the uv_async_send
 * then wrote to a closed eventfd and libuv aborted (seen with 8 hubs). */
static void stop_handshake(struct gh__runtime *rt)
{
    pthread_mutex_lock(&rt->start_mu);
    if (++hubs_out == rt->ready)
        pthread_cond_broadcast(&rt->start_cv);
    while (hubs_out < rt->ready)
        pthread_cond_wait(&rt->start_cv, &rt->start_mu);
    pthread_mutex_unlock(&rt->start_mu);
}

static void *hub_thread(void *arg)
{
    struct gh__hub *h = arg;
    gh__thread_as_caller(gh__rt);   /* not hub 0's core, if pinning fails */
    int err = hub_init(h);
    if (err)
        gh__die(__func__, "hub %u could not start: %s", h->index, strerror(err));
    start_handshake(gh__rt);
    gh__hub_main(h);
    stop_handshake(gh__rt);
    hub_fini(h);
    return NULL;
}

static int runtime_alloc(struct gh__runtime **out, const gh_config *cfg)
{
    struct gh__runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return ENOMEM;
    int err = configure(rt, cfg);
    if (!err) {
        rt->hubs = aligned_alloc(GH_CACHELINE, rt->nhubs * sizeof *rt->hubs);
        rt->idle = calloc(rt->nhubs, sizeof *rt->idle);
        if (!rt->hubs || !rt->idle)
            err = ENOMEM;
    }
    if (err) {
        free(rt->hubs);
        free(rt->idle);
        free(rt);
        return err;
    }
    memset(rt->hubs, 0, rt->nhubs * sizeof *rt->hubs);
    gh__fifo_init(&rt->inject);
    pthread_mutex_init(&rt->idle_mu, NULL);
    pthread_mutex_init(&rt->slab_mu, NULL);
    pthread_mutex_init(&rt->start_mu, NULL);
    pthread_cond_init(&rt->start_cv, NULL);
    for (unsigned i = 0; i < rt->nhubs; i++) {
        struct gh__hub *h = &rt->hubs[i];
        h->index = i;
        gh__fifo_init(&h->mailbox);
        pthread_mutex_init(&h->io_req_mu, NULL);
        if (gh__deque_init(&h->dq, DEQUE_INITIAL) != 0)
            err = ENOMEM;
    }
    if (!err)
        err = gh__topology_plan(rt, rt->pin);
    *out = rt;
    return err;
}

static void runtime_free(struct gh__runtime *rt)
{
    gh__greenlets_destroy_all(rt);
    gh__stack_global_destroy();
    for (unsigned i = 0; i < rt->nhubs; i++) {
        gh__stack_hub_free(&rt->hubs[i]);
        gh__deque_destroy(&rt->hubs[i].dq);
        gh__fifo_destroy(&rt->hubs[i].mailbox);
        pthread_mutex_destroy(&rt->hubs[i].io_req_mu);
        free(rt->hubs[i].victims);
    }
    gh__fifo_destroy(&rt->inject);
    pthread_mutex_destroy(&rt->idle_mu);
    pthread_mutex_destroy(&rt->slab_mu);
    pthread_mutex_destroy(&rt->start_mu);
    pthread_cond_destroy(&rt->start_cv);
    free(rt->hubs);
    free(rt->idle);
    free(rt);
}

/* ---- Hub 0 on the caller's thread --------------------------------------------
 *
 * gh_run's caller would otherwise only wait, so hub 0 runs on it: one
 * thread fewer, and a one-hub runtime is then a process whose descriptor
 * table a single thread uses (the monitor keeps a table of its own,
 * monitor.c; libuv's thread pool, once something starts it, shares the
 * process's).  The kernel takes its fast path for such a table: read(2),
 * write(2) and the rest look a descriptor up without taking a reference to
 * its file (two atomic operations per call).  Measured on the echo
 * benchmark (1 hub, 1000 connections, 10 interleaved pairs before/after):
 * 4313 -> 3983 ns of system time per message, 212.2k -> 223.0k msgs/s
 * (bench/README.md, "Where greenhub is behind").
 *
 * What hub 0 changes on the caller's thread is put back before gh_run
 * returns: the CPU affinity (pinning), the scheduling policy
 * (sched_batch), the alternate signal stack (stack.c) and the thread's hub
 * pointer.  Its name and signal mask are never changed.  The hub loop runs
 * on the caller's stack; a caller whose stack has less than
 * CALLER_STACK_MIN left (a thread made with a small stack) gets a thread
 * for hub 0 as for the others. */
enum { CALLER_STACK_MIN = 256 * 1024 };

/* Can hub 0's loop run on this thread's stack? */
static bool caller_stack_ok(void)
{
    void *lo;
    size_t sz;
    char here;
    return thread_stack(&lo, &sz) && (uintptr_t)&here > (uintptr_t)lo &&
           (uintptr_t)&here - (uintptr_t)lo >= CALLER_STACK_MIN;
}

static void caller_save(struct gh__runtime *rt)
{
    pthread_t self = pthread_self();
    rt->caller_cpus_ok = pthread_getaffinity_np(self, sizeof rt->caller_cpus, &rt->caller_cpus) == 0;
    rt->caller_policy_ok = pthread_getschedparam(self, &rt->caller_policy, &rt->caller_param) == 0;
}

/* libuv's thread pool is process-wide and starts at the first
 * uv_queue_work, on the thread that queues it, with threads that inherit
 * that thread's CPU affinity and scheduling policy.  From a pinned hub
 * every pool thread would run on that hub's one core (a gh_blocking load
 * then used one core; found 2026-12-06), and under sched_batch it would
 * stay SCHED_BATCH for the rest of the process (found in review).  So the
 * first hub to need the pool has it started by a short-lived thread that
 * takes gh_run's thread's affinity and policy first, and waits for it.
 * A thread, not the hub itself: starting the pool runs a libuv loop (12
 * KiB of epoll events on the stack), most of a greenlet's smallest stack,
 * and the hub keeps its own affinity throughout.  Once per process (libuv
 * restarts the pool in a forked child; so does this).  If no thread can be
 * made, the pool starts where it is first used, as libuv does.
 * pool_started: any hub thread reads it (acquire) and the one that holds
 * pool_mu sets it (release) once the starter is joined; pool_mu
 * serialises the start, so a second hub waits for the first. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool pool_started;
static pthread_once_t pool_fork_once = PTHREAD_ONCE_INIT;

static void pool_forked(void)
{
    atomic_store(&pool_started, false);
    pthread_mutex_init(&pool_mu, NULL);   /* a hub may have held it */
}

static void pool_fork_hook(void)
{
    (void)pthread_atfork(NULL, NULL, pool_forked);
}

static void pool_noop(uv_work_t *w)
{
    (void)w;
}

/* The starter thread: as gh_run's thread, one no-op job on a loop of its
 * own, waited for. */
static void *pool_starter(void *arg)
{
    gh__thread_as_caller(arg);
    uv_loop_t loop;
    uv_work_t w;
    if (uv_loop_init(&loop) != 0)
        return NULL;
    if (uv_queue_work(&loop, &w, pool_noop, NULL) == 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    return NULL;
}

void gh__pool_ensure(void)
{
    if (atomic_load_explicit(&pool_started, memory_order_acquire))
        return;
    pthread_once(&pool_fork_once, pool_fork_hook);
    struct gh__runtime *rt = gh__rt;
    pthread_mutex_lock(&pool_mu);
    if (!atomic_load_explicit(&pool_started, memory_order_relaxed) && rt) {
        /* Its signal mask, and so the pool's, is the hubs': gh_run's
         * thread's, as before. */
        pthread_t t;
        if (gh__thread_create(rt, &t, pool_starter, rt) == 0)
            pthread_join(t, NULL);
        atomic_store_explicit(&pool_started, true, memory_order_release);
    }
    pthread_mutex_unlock(&pool_mu);
}

/* Starts threads for hubs first..n-1 (first is 1 when hub 0 runs on the
 * caller, which counts itself ready) and lets every hub run once all can
 * be woken.  If a thread cannot be created, the hubs are told to stop at
 * once; *nthreads says how many threads were started, for gh_run to join. */
static int hubs_start(struct gh__runtime *rt, unsigned first, unsigned *nthreads)
{
    unsigned started = first;
    int err = 0;
    pthread_mutex_lock(&rt->start_mu);
    hubs_out = 0;
    rt->ready += first;
    pthread_mutex_unlock(&rt->start_mu);
    for (; started < rt->nhubs && !err; started++)
        err = gh__thread_create(rt, &rt->hubs[started].thread, hub_thread, &rt->hubs[started]);
    if (err)
        started--;
    pthread_mutex_lock(&rt->start_mu);
    while (rt->ready < started)
        pthread_cond_wait(&rt->start_cv, &rt->start_mu);
    if (err)
        atomic_store(&rt->stopping, 1);
    rt->go = true;
    pthread_cond_broadcast(&rt->start_cv);
    pthread_mutex_unlock(&rt->start_mu);
    *nthreads = started;
    return err ? EAGAIN : 0;
}

/* Runs the hubs until the runtime stops: hub 0 here when the caller's
 * stack allows, the others on their own threads. */
static int hubs_run(struct gh__runtime *rt)
{
    struct gh__hub *h0 = &rt->hubs[0];
    unsigned first = caller_stack_ok() ? 1 : 0, nthreads = 0;
    if (first) {
        int err = hub_init(h0);
        if (err)
            gh__die(__func__, "hub 0 could not start: %s", strerror(err));
    }
    int err = hubs_start(rt, first, &nthreads);
    if (!err)
        gh__monitor_start(rt);
    if (first) {
        gh__hub_main(h0);   /* at once if a thread could not be made */
        stop_handshake(rt);
        hub_fini(h0);
        gh__thread_as_caller(rt);
    }
    for (unsigned i = first; i < nthreads; i++)
        pthread_join(rt->hubs[i].thread, NULL);
    return err;
}

int gh_run(const gh_config *cfg, gh_fn main_fn, void *arg, void **result)
{
    if (!main_fn)
        return EINVAL;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&running, &expect, 1))
        return EBUSY;
    struct gh__runtime *rt = NULL;
    int err = runtime_alloc(&rt, cfg);
    if (!err)
        err = gh__stack_global_init(rt->stack_size);
    if (err) {
        if (rt)
            runtime_free(rt);
        atomic_store(&running, 0);
        return err;
    }
    gh__io_runtime_start();   /* no fd watch of an earlier run counts */
    gh__rt = rt;
    gh__overflow_handler_install();
    gh_spawn_opts mo = { .name = "main" };
    gh_greenlet *m = gh__greenlet_new(NULL, &mo, main_fn, arg);
    if (!m) {
        err = errno;
        runtime_free(rt);
        gh__overflow_handler_remove();
        gh__rt = NULL;
        atomic_store(&running, 0);
        return err;
    }
    m->is_main = true;
    atomic_store(&m->refs, 1);   /* nobody holds a handle to main */
    gh__enqueue(m);              /* a plain thread: onto the inject queue */
    gh__monitor_open(rt);
    caller_save(rt);
    err = hubs_run(rt);
    gh__monitor_stop(rt);
    if (!err && result)
        *result = rt->main_result;
    runtime_free(rt);
    gh__overflow_handler_remove();
    gh__rt = NULL;
    atomic_store(&running, 0);
    return err;
}

int gh_hub_index(void)
{
    struct gh__hub *h = gh__hub_self();
    return h ? (int)h->index : -1;
}

unsigned gh_hub_count(void)
{
    struct gh__runtime *rt = gh__rt;
    return rt ? rt->nhubs : 0;
}

int gh_stats_hubs(gh_hub_stats *out, unsigned max)
{
    struct gh__runtime *rt = gh__rt;
    if (!rt || !out)
        return 0;
    unsigned n = rt->nhubs < max ? rt->nhubs : max;
    for (unsigned i = 0; i < n; i++) {
        struct gh__hub *h = &rt->hubs[i];
        /* woke first, with acquire (the hub stores it, at least release,
         * after its sleeps increment): the sleeps read after it is at least as
         * new, so sleeps >= woke, and sleeps > woke means the hub slept at
         * some point during these two loads. */
        uint64_t woke = atomic_load_explicit(&h->st.woke, memory_order_acquire);
        uint64_t sleeps = atomic_load_explicit(&h->st.sleeps, memory_order_relaxed);
        out[i] = (gh_hub_stats){
            .core = h->core,
            .switches = atomic_load_explicit(&h->st.switches, memory_order_relaxed),
            .steals = atomic_load_explicit(&h->st.steals, memory_order_relaxed),
            .stolen = atomic_load_explicit(&h->sh.stolen, memory_order_relaxed),
            .parks = atomic_load_explicit(&h->st.parks, memory_order_relaxed),
            .runnable = gh__hub_runnable(h),
            .greenlets = gh__hub_alive(h),
            .sleeps = sleeps,
            .wakeups = atomic_load_explicit(&h->st.wakeups, memory_order_relaxed),
            .stacks_trimmed = atomic_load_explicit(&h->st.stacks_trimmed, memory_order_relaxed),
            .io_waits = atomic_load_explicit(&h->st.io_waits, memory_order_relaxed),
            .timers = atomic_load_explicit(&h->st.timers, memory_order_relaxed),
            .woke = woke,
            .sleeping = sleeps > woke,
        };
    }
    return (int)n;
}
