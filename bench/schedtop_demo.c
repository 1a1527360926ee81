/* bench/schedtop_demo.c — an uneven workload to watch with tools/schedtop.
 *
 *   bench_schedtop_demo [seconds] [block_every_ms]     (default: 0 = until
 *                                                      SIGINT/SIGTERM; 3000)
 *   then, in another terminal:  schedtop <pid it prints>
 *
 * What it runs, so that every column of schedtop has something to show:
 *   - "feeder": one greenlet that spawns bursts of "cpu" greenlets of
 *     uneven sizes, all on its own hub, so the other hubs must steal them
 *     (steals/s, stolen/s, runnable);
 *   - 8 "ping"/"pong" pairs passing a token through queues (switches/s,
 *     parks/s);
 *   - 200 "sleeper" greenlets waking every 50-250 ms (timers, waiting);
 *   - "blocker": every block_every_ms it calls usleep(300000) — a blocking
 *     libc call greenhub does not know about — so its hub stalls and the
 *     blocking detector names it (the BLOCKED state and the report list).
 * With `seconds` > 0 it stops by itself and checks that the work it handed
 * out was all done (exit status 1 otherwise). */
#define _GNU_SOURCE
#include "bench.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic int stopping;
static _Atomic uint64_t cpu_done, cpu_sum, cpu_want;
static long block_every_ms = 3000;

static uint64_t burn(uint64_t n)
{
    uint64_t x = n * 2654435761u;
    for (uint64_t i = 0; i < n; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

static void *cpu_fn(void *arg)
{
    uint64_t n = (uintptr_t)arg;
    atomic_fetch_add(&cpu_sum, burn(n) & 1);
    atomic_fetch_add(&cpu_done, 1);
    return NULL;
}

static void *feeder_fn(void *arg)
{
    (void)arg;
    uint64_t rng = 88172645463325252u;
    gh_spawn_opts o = { .name = "cpu" };
    while (!atomic_load(&stopping)) {
        unsigned burst = 50 + (unsigned)(rng % 200);
        for (unsigned i = 0; i < burst; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            gh_greenlet *g = gh_spawn_with(&o, cpu_fn, (void *)(uintptr_t)(1000 + rng % 200000));
            if (!g)
                break;
            gh_detach(g);
            atomic_fetch_add(&cpu_want, 1);
        }
        gh_sleep_ms(20 + (int64_t)(rng % 80));
    }
    return NULL;
}

struct pair {
    gh_queue *to, *from;
};

static void *ping_fn(void *arg)
{
    struct pair *p = arg;
    void *tok = (void *)1;
    while (!atomic_load(&stopping)) {
        if (gh_queue_put(p->to, tok, -1) || gh_queue_get(p->from, &tok, -1))
            break;
        if (((uintptr_t)tok & 1023) == 0)
            gh_sleep_ms(1);   /* not a pure spin: let the other work in */
        tok = (void *)((uintptr_t)tok + 1);
    }
    gh_queue_close(p->to);
    return NULL;
}

static void *pong_fn(void *arg)
{
    struct pair *p = arg;
    void *tok;
    while (gh_queue_get(p->to, &tok, -1) == 0)
        if (gh_queue_put(p->from, tok, -1))
            break;
    gh_queue_close(p->from);
    return NULL;
}

static void *sleeper_fn(void *arg)
{
    int64_t ms = 50 + (int64_t)((uintptr_t)arg % 200);
    while (!atomic_load(&stopping))
        gh_sleep_ms(ms);
    return NULL;
}

static void *blocker_fn(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        gh_sleep_ms(block_every_ms);
        if (!atomic_load(&stopping))
            usleep(300000);   /* blocks the hub: what schedtop should catch */
    }
    return NULL;
}

/* Stops the run after arg seconds (or earlier, when a signal did). */
static void *timer_fn(void *arg)
{
    uint64_t end = bench_now_ns() + (uint64_t)(intptr_t)arg * 1000000000u;
    while (!atomic_load(&stopping) && bench_now_ns() < end)
        gh_sleep_ms(100);
    atomic_store(&stopping, 1);
    return NULL;
}

/* One per signal: waits for it (in 200 ms slices, to notice `stopping`). */
static void *signal_fn(void *arg)
{
    int sig = (int)(intptr_t)arg;
    while (!atomic_load(&stopping))
        if (gh_signal_wait(sig, 200) == 0)
            atomic_store(&stopping, 1);
    return NULL;
}

static int spawn_named(const char *name, gh_fn fn, void *arg, gh_greenlet **out)
{
    gh_spawn_opts o = { .name = name };
    *out = gh_spawn_with(&o, fn, arg);
    return *out ? 0 : -1;
}

enum { PAIRS = 8, SLEEPERS = 200 };

static void *main_fn(void *arg)
{
    long seconds = (long)(intptr_t)arg;
    /* A first wait (a poll) for each signal catches it from here on, so a
     * SIGTERM sent once the line below is out stops the demo cleanly even
     * before the signal greenlets first run. */
    if (gh_signal_wait(SIGINT, 0) == 0 || gh_signal_wait(SIGTERM, 0) == 0)
        atomic_store(&stopping, 1);
    printf("schedtop demo: pid %d, %u hubs; watch it with:  schedtop %d\n",
           (int)getpid(), gh_hub_count(), (int)getpid());
    fflush(stdout);
    static struct pair pairs[PAIRS];
    gh_greenlet *gs[2 * PAIRS + SLEEPERS + 5];
    size_t n = 0;
    int err = 0;
    for (int i = 0; i < PAIRS && !err; i++) {
        pairs[i].to = gh_queue_new(1);
        pairs[i].from = gh_queue_new(1);
        if (!pairs[i].to || !pairs[i].from)
            return (void *)1;
        err |= spawn_named("ping", ping_fn, &pairs[i], &gs[n++]);
        err |= spawn_named("pong", pong_fn, &pairs[i], &gs[n++]);
    }
    for (uintptr_t i = 0; i < SLEEPERS && !err; i++)
        err |= spawn_named("sleeper", sleeper_fn, (void *)(i * 7919), &gs[n++]);
    err |= spawn_named("feeder", feeder_fn, NULL, &gs[n++]);
    err |= spawn_named("blocker", blocker_fn, NULL, &gs[n++]);
    if (seconds > 0)
        err |= spawn_named("timer", timer_fn, (void *)(intptr_t)seconds, &gs[n++]);
    err |= spawn_named("sigint", signal_fn, (void *)(intptr_t)SIGINT, &gs[n++]);
    err |= spawn_named("sigterm", signal_fn, (void *)(intptr_t)SIGTERM, &gs[n++]);
    if (err) {
        fprintf(stderr, "schedtop demo: spawn failed\n");
        return (void *)1;
    }
    for (size_t i = 0; i < n; i++)
        gh_join(gs[i], NULL);
    /* The detached cpu greenlets may still run: wait until all are done. */
    while (atomic_load(&cpu_done) < atomic_load(&cpu_want))
        gh_sleep_ms(5);
    for (int i = 0; i < PAIRS; i++) {
        gh_queue_free(pairs[i].to);
        gh_queue_free(pairs[i].from);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long seconds = bench_arg(argc, argv, 1, 0);
    block_every_ms = bench_arg(argc, argv, 2, 3000);
    if (seconds < 0 || block_every_ms < 1) {
        fprintf(stderr, "usage: %s [seconds (0: until SIGINT)] [block_every_ms]\n", argv[0]);
        return 2;
    }
    gh_config cfg = { .name = "schedtop-demo" };
    void *res = NULL;
    int err = gh_run(&cfg, main_fn, (void *)(intptr_t)seconds, &res);
    if (err || res) {
        fprintf(stderr, "schedtop demo: %s\n", err ? strerror(err) : "failed");
        return 1;
    }
    printf("schedtop demo: done, %llu cpu greenlets ran\n",
           (unsigned long long)atomic_load(&cpu_done));
    return 0;
}
