/* sync.c: channel ping-pong and a contended mutex with plain pthreads, the
 * peer of bench/sync.c.  Two modes:
 *
 *   pthread_sync pingpong [N=1000000]
 *       Two threads (the main one is A) bounce a token through two
 *       capacity-1 queues, each a pthread_mutex_t and two pthread_cond_t
 *       (not empty, not full); A puts i on q1, B gets it and puts i + 1 on
 *       q2, A gets that.  ns per round trip.  The threads are NOT pinned:
 *       the kernel places them (on a machine with 2+ CPUs usually on two
 *       CPUs, so every hand-over is a futex wake of a thread on another
 *       CPU).  Self-check: every reply is the request + 1, B handled
 *       exactly N tokens, the replies sum to N(N+1)/2.
 *
 *   pthread_sync mutex [G=100] [K=10000] [T=4*nproc]
 *       The same total work as G greenlets x K increments, G*K
 *       pthread_mutex_t-protected increments of a plain counter (default
 *       mutex type: no adaptive spinning), but spread over T threads (not
 *       G: a thread per greenlet would measure thread creation), each
 *       doing its share (G*K/T, the first G*K%T one more).  ns per
 *       lock+unlock = elapsed / (G*K), thread creation and joins included.
 *       Self-check: counter == G*K exactly.  Prints threads=T.
 *
 *   pthread_sync xping [N=100000]
 *       Cross-CPU ping-pong, the peer of greenhub's cross-hub event
 *       ping-pong: two threads (the main one is A), A pinned to CPU 0 and
 *       B to CPU 1 (pthread_setaffinity_np; precisely, to the first two
 *       CPUs the process may run on, CPUs 0 and 1 unless a cpuset says
 *       otherwise; with only one CPU both stay unpinned, said on stderr),
 *       hand a token over through one pthread_mutex_t and two
 *       pthread_cond_t, one per direction: A writes
 *       token i and raises "ping", waits for "pong"; B waits for "ping",
 *       writes reply token + 1 and raises "pong".  us per round trip.
 *       Self-check: every reply is the request + 1, B handled exactly N
 *       tokens, the replies sum to N(N+1)/2.
 *
 *   pthread_sync uncontended [N=10000000]
 *       One thread does N pthread_mutex_lock + pthread_mutex_unlock pairs
 *       on one default pthread_mutex_t, incrementing a counter inside.  ns
 *       per lock+unlock.  Self-check: counter == N, every lock returned 0.
 *       A no-op thread is created and joined first: while a process has
 *       never had a second thread, glibc (2.34+, __libc_single_threaded)
 *       locks a default mutex without an atomic instruction, a shortcut
 *       no multithreaded program (nor greenhub, nor Go) gets.
 *
 * All run once untimed first (1/20 of the work), as bench/sync.c does.
 * Build: gcc -O2 -pthread. */
#define _GNU_SOURCE   /* pthread_setaffinity_np, CPU_SET */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "pthread_sync: %s: %s\n", what, strerror(err));
    exit(2);
}

/* ---- pingpong ---------------------------------------------------------------- */

struct chan1 {   /* a queue of capacity 1 */
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    int full;
    long item;
};

static void chan_init(struct chan1 *c)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->not_empty, NULL);
    pthread_cond_init(&c->not_full, NULL);
    c->full = 0;
}

static void chan_destroy(struct chan1 *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->not_empty);
    pthread_cond_destroy(&c->not_full);
}

static void chan_put(struct chan1 *c, long v)
{
    pthread_mutex_lock(&c->mu);
    while (c->full)
        pthread_cond_wait(&c->not_full, &c->mu);
    c->item = v;
    c->full = 1;
    pthread_cond_signal(&c->not_empty);
    pthread_mutex_unlock(&c->mu);
}

static long chan_get(struct chan1 *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->full)
        pthread_cond_wait(&c->not_empty, &c->mu);
    long v = c->item;
    c->full = 0;
    pthread_cond_signal(&c->not_full);
    pthread_mutex_unlock(&c->mu);
    return v;
}

struct pp {
    struct chan1 q1, q2;
    long n, handled;
};

static void *pp_b(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->n; i++) {
        chan_put(&p->q2, chan_get(&p->q1) + 1);
        p->handled++;
    }
    return NULL;
}

static int pp_round(long n, double *ns)
{
    struct pp p = { .n = n };
    chan_init(&p.q1);
    chan_init(&p.q2);
    pthread_t b;
    int err = pthread_create(&b, NULL, pp_b, &p);
    if (err)
        die("pthread_create", err);
    long bad = 0;
    uint64_t sum = 0, t0 = now_ns();
    for (long i = 0; i < n; i++) {
        chan_put(&p.q1, i);
        long r = chan_get(&p.q2);
        bad += r != i + 1;
        sum += (uint64_t)r;
    }
    *ns = (double)(now_ns() - t0) / (double)n;
    pthread_join(b, NULL);
    int ok = !bad && p.handled == n && !p.q1.full && !p.q2.full &&
             sum == (uint64_t)n * (uint64_t)(n + 1) / 2;
    if (!ok)
        fprintf(stderr, "pthread_sync pingpong: bad replies %ld, B handled %ld of %ld\n",
                bad, p.handled, n);
    chan_destroy(&p.q1);
    chan_destroy(&p.q2);
    return ok;
}

/* ---- mutex ------------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter;   /* plain: only mu protects it */

static void *incrementer(void *arg)
{
    long k = (long)(intptr_t)arg;
    for (long i = 0; i < k; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static int mutex_round(long total, long t, double *ns)
{
    pthread_t *th = calloc((size_t)t, sizeof *th);
    if (!th)
        die("calloc", 12);
    counter = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < t; i++) {
        long share = total / t + (i < total % t);
        int err = pthread_create(&th[i], NULL, incrementer, (void *)(intptr_t)share);
        if (err)
            die("pthread_create", err);
    }
    for (long i = 0; i < t; i++)
        pthread_join(th[i], NULL);
    *ns = (double)(now_ns() - t0) / (double)total;
    free(th);
    if (counter != total) {
        fprintf(stderr, "pthread_sync mutex: counter %ld, want %ld\n", counter, total);
        return 0;
    }
    return 1;
}

/* ---- xping ------------------------------------------------------------------ */

struct xp {
    pthread_mutex_t mu;
    pthread_cond_t ping_cv, pong_cv;
    int ping, pong;         /* under mu: a token (reply) waits to be taken */
    long token, reply;      /* under mu */
    long n, handled;
    int pin;                /* pin A to cpus[0] and B to cpus[1] */
};

static int cpus[2];         /* the first two CPUs the process may use */

/* Fills cpus[]; 0 if the process may use fewer than two CPUs. */
static int find_two_cpus(void)
{
    cpu_set_t set;
    int k = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[k++] = c;
    return k == 2;
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (err)
        die("pthread_setaffinity_np", err);
}

static void *xp_b(void *arg)
{
    struct xp *p = arg;
    if (p->pin)
        pin_to(cpus[1]);
    for (long i = 0; i < p->n; i++) {
        pthread_mutex_lock(&p->mu);
        while (!p->ping)
            pthread_cond_wait(&p->ping_cv, &p->mu);
        p->ping = 0;
        p->reply = p->token + 1;
        p->pong = 1;
        pthread_cond_signal(&p->pong_cv);
        pthread_mutex_unlock(&p->mu);
        p->handled++;
    }
    return NULL;
}

static int xp_round(long n, int pin, double *us)
{
    struct xp p = { .n = n, .pin = pin };
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.ping_cv, NULL);
    pthread_cond_init(&p.pong_cv, NULL);
    pthread_t b;
    int err = pthread_create(&b, NULL, xp_b, &p);
    if (err)
        die("pthread_create", err);
    long bad = 0;
    uint64_t sum = 0, t0 = now_ns();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&p.mu);
        p.token = i;
        p.ping = 1;
        pthread_cond_signal(&p.ping_cv);
        while (!p.pong)
            pthread_cond_wait(&p.pong_cv, &p.mu);
        p.pong = 0;
        long r = p.reply;
        pthread_mutex_unlock(&p.mu);
        bad += r != i + 1;
        sum += (uint64_t)r;
    }
    *us = (double)(now_ns() - t0) / (double)n / 1000.0;
    pthread_join(b, NULL);
    int ok = !bad && p.handled == n && !p.ping && !p.pong &&
             sum == (uint64_t)n * (uint64_t)(n + 1) / 2;
    if (!ok)
        fprintf(stderr, "pthread_sync xping: bad replies %ld, B handled %ld of %ld\n",
                bad, p.handled, n);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.ping_cv);
    pthread_cond_destroy(&p.pong_cv);
    return ok;
}

/* ---- uncontended ------------------------------------------------------------- */

static pthread_mutex_t umu = PTHREAD_MUTEX_INITIALIZER;
static long ucounter;   /* plain: only umu protects it */

static void *noop(void *arg)
{
    return arg;
}

/* Makes the process multithreaded for good (see the header comment). */
static void leave_single_threaded(void)
{
    pthread_t t;
    int err = pthread_create(&t, NULL, noop, NULL);
    if (err)
        die("pthread_create", err);
    pthread_join(t, NULL);
}

static int unc_round(long n, double *ns)
{
    long errors = 0;
    ucounter = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (pthread_mutex_lock(&umu) != 0) {
            errors++;
            continue;
        }
        ucounter++;
        pthread_mutex_unlock(&umu);
    }
    *ns = (double)(now_ns() - t0) / (double)n;
    if (ucounter != n || errors) {
        fprintf(stderr, "pthread_sync uncontended: counter %ld, want %ld; %ld lock errors\n",
                ucounter, n, errors);
        return 0;
    }
    return 1;
}

static long arg(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

static int usage(void)
{
    fprintf(stderr, "usage: pthread_sync pingpong [N>0] | pthread_sync mutex [G>0] [K>0] [T>0] | "
            "pthread_sync xping [N>0] | pthread_sync uncontended [N>0]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *bench, *unit;
    long threads;
    double ns = 0;
    int ok;
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "pingpong") == 0) {
        long n = arg(argc, argv, 2, 1000000);
        if (n <= 0)
            return usage();
        ok = pp_round(n / 20 > 0 ? n / 20 : 1, &ns);   /* warm-up */
        ok = pp_round(n, &ns) && ok;
        bench = "pingpong", unit = "ns_per_roundtrip", threads = 2;
    } else if (strcmp(argv[1], "mutex") == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        long g = arg(argc, argv, 2, 100), k = arg(argc, argv, 3, 10000);
        threads = arg(argc, argv, 4, 4 * (ncpu > 0 ? ncpu : 1));
        if (g <= 0 || k <= 0 || threads <= 0)
            return usage();
        if (threads > g * k)
            threads = g * k;
        ok = mutex_round(g * (k / 20 > 0 ? k / 20 : 1), threads, &ns);   /* warm-up */
        ok = mutex_round(g * k, threads, &ns) && ok;
        bench = "mutex", unit = "ns_per_lock";
    } else if (strcmp(argv[1], "xping") == 0) {
        long n = arg(argc, argv, 2, 100000);
        if (n <= 0)
            return usage();
        int pin = find_two_cpus();
        if (pin)
            pin_to(cpus[0]);
        else
            fprintf(stderr, "pthread_sync xping: only 1 usable CPU, threads left unpinned\n");
        ok = xp_round(n / 20 > 0 ? n / 20 : 1, pin, &ns);   /* warm-up */
        ok = xp_round(n, pin, &ns) && ok;
        bench = "xping", unit = "us_per_roundtrip", threads = 2;
    } else if (strcmp(argv[1], "uncontended") == 0) {
        long n = arg(argc, argv, 2, 10000000);
        if (n <= 0)
            return usage();
        leave_single_threaded();
        ok = unc_round(n / 20 > 0 ? n / 20 : 1, &ns);   /* warm-up */
        ok = unc_round(n, &ns) && ok;
        bench = "uncontended", unit = "ns_per_lock", threads = 1;
    } else {
        return usage();
    }
    printf("RESULT bench=%s impl=pthread threads=%ld value=%.2f unit=%s check=%s\n",
           bench, threads, ns, unit, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
