/* bench/sync.c — the sync primitives under load.  Two modes:
 *
 *   sync pingpong [N=1000000]
 *       Channel ping-pong on one hub: greenlets A and B, both pinned to
 *       hub 0, bounce a token through two gh_queue of capacity 1 (A puts i
 *       on q1; B gets it and puts i + 1 on q2; A gets that).  ns per round
 *       trip.  Check: every reply is the request + 1, B handled exactly N
 *       tokens, and the sum of the replies is N(N+1)/2.  The runtime is
 *       asked for one hub (GREENHUB_HUBS overrides it, as always).
 *
 *   sync mutex [G=100] [K=10000]
 *       Contended mutex on every hub (hubs from GREENHUB_HUBS, default one
 *       per core): the main greenlet spawns G unpinned greenlets that each
 *       do K gh_mutex-protected increments of a plain counter, then joins
 *       them.  ns per lock+unlock = wall / (G*K), spawns and joins
 *       included.  Check: counter == G*K exactly (a broken mutex loses
 *       increments).
 *
 *   sync xping [N=100000]
 *       Cross-hub event ping-pong: greenlet A pinned to hub 0, B pinned to
 *       hub 1 (the runtime is asked for two hubs; GREENHUB_HUBS overrides
 *       it, and fewer than two is an error).  Through two gh_event: A
 *       writes token i, sets e1, waits for e2, clears e2; B waits for e1,
 *       clears e1, writes reply token + 1, sets e2.  us per round trip.
 *       Check: every reply is the request + 1, B handled exactly N tokens,
 *       the replies sum to N(N+1)/2, and gh_hub_index() is 0 in A and 1 in
 *       B.  Also prints an INFO line: hub sleeps and wakeups per round
 *       trip (gh_stats_hubs, both hubs, over the timed run).  A hub that
 *       sleeps while it waits costs a cross-core wakeup per hand-over; and
 *       waking a greenlet pinned to another hub signals that hub's
 *       uv_async (counted in wakeups) even when it is awake.
 *
 *   sync uncontended [N=10000000]
 *       One greenlet on one hub does N gh_mutex_lock + gh_mutex_unlock
 *       pairs on one mutex, incrementing a counter inside: the fast path
 *       alone.  ns per lock+unlock.  Check: counter == N, every lock
 *       returned 0, and gh_mutex_destroy returns 0 afterwards.
 *
 * All run once untimed first (1/20 of the work) to warm the stack caches.
 * Prints RESULT bench=pingpong|mutex|xping|uncontended impl=greenhub
 * threads=<hubs> ... */
#include "bench.h"

#include <greenhub/sync.h>
#include <stdbool.h>
#include <string.h>

/* ---- pingpong ---------------------------------------------------------------- */

struct pp {
    gh_queue *q1, *q2;
    long n;
    long handled;      /* B: tokens handled */
    long bad;          /* A: replies that were not request + 1, or errors */
    uint64_t sum;      /* A: sum of replies */
    uint64_t ns;       /* A: elapsed, first put to last get */
};

static void *pp_a(void *arg)
{
    struct pp *p = arg;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < p->n; i++) {
        void *r = NULL;
        if (gh_queue_put(p->q1, (void *)(uintptr_t)i, -1) != 0 ||
            gh_queue_get(p->q2, &r, -1) != 0 || (uintptr_t)r != (uintptr_t)i + 1)
            p->bad++;
        p->sum += (uintptr_t)r;
    }
    p->ns = bench_now_ns() - t0;
    return NULL;
}

static void *pp_b(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->n; i++) {
        void *x = NULL;
        if (gh_queue_get(p->q1, &x, -1) != 0 ||
            gh_queue_put(p->q2, (void *)((uintptr_t)x + 1), -1) != 0)
            break;
        p->handled++;
    }
    return NULL;
}

/* One ping-pong of n round trips; true if its check passed. */
static bool pp_round(long n, double *ns_per_rt)
{
    struct pp p = { .q1 = gh_queue_new(1), .q2 = gh_queue_new(1), .n = n };
    if (!p.q1 || !p.q2) {
        fprintf(stderr, "sync pingpong: gh_queue_new: %s\n", strerror(errno));
        exit(2);
    }
    gh_spawn_opts o = { .name = "ping", .hub = 0, .pinned = 1 };
    gh_greenlet *a = gh_spawn_with(&o, pp_a, &p);
    o.name = "pong";
    gh_greenlet *b = gh_spawn_with(&o, pp_b, &p);
    if (!a || !b) {
        fprintf(stderr, "sync pingpong: gh_spawn_with: %s\n", strerror(errno));
        exit(2);
    }
    gh_join(a, NULL);
    gh_join(b, NULL);
    bool ok = gh_queue_len(p.q1) == 0 && gh_queue_len(p.q2) == 0 &&
              gh_queue_free(p.q1) == 0 && gh_queue_free(p.q2) == 0;
    uint64_t expect = (uint64_t)n * (uint64_t)(n + 1) / 2;
    *ns_per_rt = (double)p.ns / (double)n;
    if (p.bad || p.handled != n || p.sum != expect) {
        fprintf(stderr, "sync pingpong: bad replies %ld, B handled %ld of %ld, "
                "sum %llu (want %llu)\n", p.bad, p.handled, n,
                (unsigned long long)p.sum, (unsigned long long)expect);
        ok = false;
    }
    return ok;
}

static void *pingpong_main(void *arg)
{
    long n = *(long *)arg;
    double ns = 0;
    bool ok = pp_round(n / 20 > 0 ? n / 20 : 1, &ns);   /* warm-up */
    ok = pp_round(n, &ns) && ok;
    printf("RESULT bench=pingpong impl=greenhub threads=%u value=%.2f unit=ns_per_roundtrip check=%s\n",
           gh_hub_count(), ns, ok ? "ok" : "FAIL");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

/* ---- mutex ------------------------------------------------------------------- */

static gh_mutex mu = GH_MUTEX_INITIALIZER;
static long counter;              /* plain: only mu protects it */
static _Atomic long lock_errors;

static void *incrementer(void *arg)
{
    long k = *(long *)arg;
    for (long i = 0; i < k; i++) {
        if (gh_mutex_lock(&mu) != 0) {
            atomic_fetch_add(&lock_errors, 1);
            continue;
        }
        counter++;
        gh_mutex_unlock(&mu);
    }
    return NULL;
}

/* G greenlets x K increments; true if the counter came out exact. */
static bool mutex_round(long g, long k, double *ns_per_op)
{
    gh_greenlet **gs = calloc((size_t)g, sizeof *gs);
    if (!gs) {
        fprintf(stderr, "sync mutex: out of memory\n");
        exit(2);
    }
    counter = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < g; i++)
        if (!(gs[i] = gh_spawn(incrementer, &k))) {
            fprintf(stderr, "sync mutex: gh_spawn: %s\n", strerror(errno));
            exit(2);
        }
    for (long i = 0; i < g; i++)
        gh_join(gs[i], NULL);
    *ns_per_op = (double)(bench_now_ns() - t0) / ((double)g * (double)k);
    free(gs);
    bool ok = counter == g * k && atomic_load(&lock_errors) == 0;
    if (!ok)
        fprintf(stderr, "sync mutex: counter %ld, want %ld; %ld lock errors\n",
                counter, g * k, atomic_load(&lock_errors));
    return ok;
}

struct mutex_args {
    long g, k;
};

static void *mutex_main(void *arg)
{
    struct mutex_args *a = arg;
    double ns = 0;
    bool ok = mutex_round(a->g, a->k / 20 > 0 ? a->k / 20 : 1, &ns);   /* warm-up */
    ok = mutex_round(a->g, a->k, &ns) && ok;
    ok = gh_mutex_destroy(&mu) == 0 && ok;
    printf("RESULT bench=mutex impl=greenhub threads=%u value=%.2f unit=ns_per_lock check=%s\n",
           gh_hub_count(), ns, ok ? "ok" : "FAIL");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

/* ---- xping ------------------------------------------------------------------ */

/* Lost sets are impossible: each side clears the event it was woken by
 * before it sets the other one.  A clears e2 before its next set of e1, and
 * B sets e2 again only after that e1; B clears e1 before it sets e2, and A
 * sets e1 again only after that e2.  So a clear can never erase a set the
 * other side has not consumed yet, and neither side can see a stale set.
 * The events' release/acquire order also publishes token and reply. */
struct xp {
    gh_event e1, e2;
    long token;        /* A -> B */
    long reply;        /* B -> A */
    long n;
    long handled;      /* B: tokens handled */
    long bad;          /* A: replies that were not request + 1, or errors */
    int wrong_hub;     /* A or B ran on the wrong hub */
    uint64_t sum;      /* A: sum of replies */
    uint64_t ns;       /* A: elapsed, first set to last reply */
};

static void *xp_a(void *arg)
{
    struct xp *p = arg;
    if (gh_hub_index() != 0)
        p->wrong_hub = 1;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < p->n; i++) {
        p->token = i;
        if (gh_event_set(&p->e1) != 0 || gh_event_wait(&p->e2, -1) != 0 ||
            gh_event_clear(&p->e2) != 0 || p->reply != i + 1)
            p->bad++;
        p->sum += (uint64_t)p->reply;
    }
    p->ns = bench_now_ns() - t0;
    if (gh_hub_index() != 0)
        p->wrong_hub = 1;
    return NULL;
}

static void *xp_b(void *arg)
{
    struct xp *p = arg;
    if (gh_hub_index() != 1)
        p->wrong_hub = 1;
    for (long i = 0; i < p->n; i++) {
        if (gh_event_wait(&p->e1, -1) != 0 || gh_event_clear(&p->e1) != 0)
            break;
        p->reply = p->token + 1;
        if (gh_event_set(&p->e2) != 0)
            break;
        p->handled++;
    }
    if (gh_hub_index() != 1)
        p->wrong_hub = 1;
    return NULL;
}

/* Sleeps and wakeups of hubs 0 and 1 so far. */
static void xp_stats(uint64_t *sleeps, uint64_t *wakeups)
{
    gh_hub_stats hs[2];
    int k = gh_stats_hubs(hs, 2);
    *sleeps = *wakeups = 0;
    for (int i = 0; i < k; i++) {
        *sleeps += hs[i].sleeps;
        *wakeups += hs[i].wakeups;
    }
}

/* One cross-hub ping-pong of n round trips; true if its check passed.
 * *sleeps and *wakeups: those of both hubs during the round. */
static bool xp_round(long n, double *us_per_rt, uint64_t *sleeps, uint64_t *wakeups)
{
    struct xp p = { .n = n };
    if (gh_event_init(&p.e1) != 0 || gh_event_init(&p.e2) != 0) {
        fprintf(stderr, "sync xping: gh_event_init failed\n");
        exit(2);
    }
    uint64_t s0, w0, s1, w1;
    xp_stats(&s0, &w0);
    gh_spawn_opts o = { .name = "xping", .hub = 0, .pinned = 1 };
    gh_greenlet *a = gh_spawn_with(&o, xp_a, &p);
    o.name = "xpong", o.hub = 1;
    gh_greenlet *b = gh_spawn_with(&o, xp_b, &p);
    if (!a || !b) {
        fprintf(stderr, "sync xping: gh_spawn_with: %s\n", strerror(errno));
        exit(2);
    }
    gh_join(a, NULL);
    gh_join(b, NULL);
    xp_stats(&s1, &w1);
    *sleeps = s1 - s0;
    *wakeups = w1 - w0;
    bool ok = !gh_event_is_set(&p.e1) && !gh_event_is_set(&p.e2) &&
              gh_event_destroy(&p.e1) == 0 && gh_event_destroy(&p.e2) == 0;
    uint64_t expect = (uint64_t)n * (uint64_t)(n + 1) / 2;
    *us_per_rt = (double)p.ns / (double)n / 1000.0;
    if (p.bad || p.handled != n || p.sum != expect || p.wrong_hub) {
        fprintf(stderr, "sync xping: bad replies %ld, B handled %ld of %ld, "
                "sum %llu (want %llu)%s\n", p.bad, p.handled, n,
                (unsigned long long)p.sum, (unsigned long long)expect,
                p.wrong_hub ? ", A or B not on its hub" : "");
        ok = false;
    }
    return ok;
}

static void *xping_main(void *arg)
{
    long n = *(long *)arg;
    if (gh_hub_count() < 2) {
        fprintf(stderr, "sync xping: needs 2 hubs, the runtime has %u\n", gh_hub_count());
        exit(2);
    }
    double us = 0;
    uint64_t sleeps = 0, wakeups = 0;
    bool ok = xp_round(n / 20 > 0 ? n / 20 : 1, &us, &sleeps, &wakeups);   /* warm-up */
    ok = xp_round(n, &us, &sleeps, &wakeups) && ok;
    printf("RESULT bench=xping impl=greenhub threads=%u value=%.2f unit=us_per_roundtrip check=%s\n",
           gh_hub_count(), us, ok ? "ok" : "FAIL");
    printf("INFO bench=xping hub_sleeps=%llu hub_wakeups=%llu sleeps_per_roundtrip=%.3f "
           "wakeups_per_roundtrip=%.3f\n", (unsigned long long)sleeps,
           (unsigned long long)wakeups, (double)sleeps / (double)n, (double)wakeups / (double)n);
    return (void *)(intptr_t)(ok ? 0 : 1);
}

/* ---- uncontended ------------------------------------------------------------- */

static gh_mutex umu = GH_MUTEX_INITIALIZER;
static long ucounter;             /* plain: only umu protects it */

/* n lock+unlock pairs on one greenlet; true if the counter came out exact. */
static bool unc_round(long n, double *ns_per_op)
{
    long errors = 0;
    ucounter = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (gh_mutex_lock(&umu) != 0) {
            errors++;
            continue;
        }
        ucounter++;
        gh_mutex_unlock(&umu);
    }
    *ns_per_op = (double)(bench_now_ns() - t0) / (double)n;
    bool ok = ucounter == n && errors == 0;
    if (!ok)
        fprintf(stderr, "sync uncontended: counter %ld, want %ld; %ld lock errors\n",
                ucounter, n, errors);
    return ok;
}

static void *uncontended_main(void *arg)
{
    long n = *(long *)arg;
    double ns = 0;
    bool ok = unc_round(n / 20 > 0 ? n / 20 : 1, &ns);   /* warm-up */
    ok = unc_round(n, &ns) && ok;
    ok = gh_mutex_destroy(&umu) == 0 && ok;
    printf("RESULT bench=uncontended impl=greenhub threads=%u value=%.2f unit=ns_per_lock check=%s\n",
           gh_hub_count(), ns, ok ? "ok" : "FAIL");
    return (void *)(intptr_t)(ok ? 0 : 1);
}

static int usage(void)
{
    fprintf(stderr, "usage: sync pingpong [N>0] | sync mutex [G>0] [K>0] | "
            "sync xping [N>0] | sync uncontended [N>0]\n");
    return 2;
}

int main(int argc, char **argv)
{
    void *r = NULL;
    int err;
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "pingpong") == 0) {
        long n = bench_arg(argc, argv, 2, 1000000);
        if (n <= 0)
            return usage();
        gh_config cfg = { .hubs = 1 };
        err = gh_run(&cfg, pingpong_main, &n, &r);
    } else if (strcmp(argv[1], "mutex") == 0) {
        struct mutex_args a = { bench_arg(argc, argv, 2, 100), bench_arg(argc, argv, 3, 10000) };
        if (a.g <= 0 || a.k <= 0)
            return usage();
        err = gh_run(NULL, mutex_main, &a, &r);
    } else if (strcmp(argv[1], "xping") == 0) {
        long n = bench_arg(argc, argv, 2, 100000);
        if (n <= 0)
            return usage();
        gh_config cfg = { .hubs = 2 };
        err = gh_run(&cfg, xping_main, &n, &r);
    } else if (strcmp(argv[1], "uncontended") == 0) {
        long n = bench_arg(argc, argv, 2, 10000000);
        if (n <= 0)
            return usage();
        gh_config cfg = { .hubs = 1 };
        err = gh_run(&cfg, uncontended_main, &n, &r);
    } else {
        return usage();
    }
    if (err) {
        fprintf(stderr, "gh_run: error %d\n", err);
        return 2;
    }
    return (int)(intptr_t)r;
}
