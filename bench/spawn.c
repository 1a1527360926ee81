/* bench/spawn.c — ns per spawn+join: the main greenlet spawns one greenlet
 * and joins it, N times in sequence.  Checks the sum of what the children
 * returned.  Usage: spawn [N=1000000]; hubs from GREENHUB_HUBS. */
#include "bench.h"

static void *child(void *arg)
{
    return arg;
}

static void *bench_main(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n / 10; i++)   /* warm-up: fills the stack caches */
        gh_join(gh_spawn(child, NULL), NULL);
    uint64_t sum = 0, t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        void *r;
        gh_join(gh_spawn(child, (void *)(uintptr_t)i), &r);
        sum += (uintptr_t)r;
    }
    double ns = (double)(bench_now_ns() - t0) / (double)n;
    uint64_t expect = (uint64_t)n * (uint64_t)(n - 1) / 2;
    return (void *)(intptr_t)bench_result("spawn", ns, "ns_per_spawn", sum == expect);
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    return (int)(intptr_t)bench_run(bench_main, &n);
}
