/* bench/cpu.c — the core-scaling CPU workload: the main greenlet spawns T
 * tasks; task i runs ITERS xorshift64 steps from seed i+1 in 4 chunks with
 * gh_yield() between them.  Every task is spawned from one greenlet on one
 * hub, so only stealing can spread them over the others.  Reports tasks/s;
 * checks the sum of results against a serial recomputation (the same
 * checksum bench/peers/go/cpu.go and pthread/cpu_serial.c compute).
 * Usage: cpu [T=4000] [ITERS=100000]; hubs from GREENHUB_HUBS. */
#include "bench.h"

static long iters;

static uint64_t chunk(uint64_t x, long n)
{
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static void *task(void *arg)
{
    uint64_t x = (uintptr_t)arg + 1;
    for (int c = 0; c < 4; c++) {
        x = chunk(x, iters / 4);
        if (c < 3)
            gh_yield();
    }
    return (void *)(uintptr_t)x;
}

static void *bench_main(void *arg)
{
    long t = *(long *)arg;
    gh_greenlet **g = malloc((size_t)t * sizeof *g);
    uint64_t t0 = bench_now_ns(), sum = 0;
    for (long i = 0; i < t; i++)
        g[i] = gh_spawn(task, (void *)(uintptr_t)i);
    for (long i = 0; i < t; i++) {
        void *r;
        gh_join(g[i], &r);
        sum += (uintptr_t)r;
    }
    double s = (double)(bench_now_ns() - t0) / 1e9;
    free(g);
    if (getenv("GH_BENCH_STATS")) {   /* where the time went, per hub */
        gh_hub_stats st[64];
        int n = gh_stats_hubs(st, 64);
        for (int i = 0; i < n; i++)
            printf("INFO hub=%d switches=%llu steals=%llu stolen=%llu sleeps=%llu wakeups=%llu\n", i,
                   (unsigned long long)st[i].switches, (unsigned long long)st[i].steals,
                   (unsigned long long)st[i].stolen, (unsigned long long)st[i].sleeps,
                   (unsigned long long)st[i].wakeups);
    }
    uint64_t expect = 0;
    for (long i = 0; i < t; i++)
        expect += chunk((uint64_t)i + 1, (iters / 4) * 4);
    printf("INFO checksum=%llu elapsed_ms=%.2f\n", (unsigned long long)sum, s * 1e3);
    return (void *)(intptr_t)bench_result("cpu", (double)t / s, "tasks_per_s", sum == expect);
}

int main(int argc, char **argv)
{
    long t = bench_arg(argc, argv, 1, 4000);
    iters = bench_arg(argc, argv, 2, 100000);
    if (iters % 4 || t <= 0) {
        fprintf(stderr, "usage: cpu [T] [ITERS divisible by 4]\n");
        return 2;
    }
    return (int)(intptr_t)bench_run(bench_main, &t);
}
