/* bench/switch.c — ns per switch: two greenlets yielding to each other on
 * one hub (both pinned to hub 0).  Each gh_yield is one switch.
 * Checks that both loops completed.  Usage: switch [N=10000000] */
#include "bench.h"

static long n_iter;
static long done[2];

static void *yielder(void *arg)
{
    long *d = arg;
    for (long i = 0; i < n_iter; i++) {
        gh_yield();
        (*d)++;
    }
    return NULL;
}

static void *bench_main(void *arg)
{
    double *ns = arg;
    gh_spawn_opts o = { .hub = 0, .pinned = 1 };
    long total = n_iter;
    n_iter = total / 20;   /* warm-up */
    for (int round = 0; round < 2; round++) {
        done[0] = done[1] = 0;
        uint64_t t0 = bench_now_ns();
        gh_greenlet *a = gh_spawn_with(&o, yielder, &done[0]);
        gh_greenlet *b = gh_spawn_with(&o, yielder, &done[1]);
        gh_join(a, NULL);
        gh_join(b, NULL);
        *ns = (double)(bench_now_ns() - t0) / (2.0 * (double)n_iter);
        n_iter = total;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_iter = bench_arg(argc, argv, 1, 10000000);
    double ns = 0;
    gh_config cfg = { .hubs = 1 };
    if (gh_run(&cfg, bench_main, &ns, NULL) != 0)
        return 2;
    int ok = done[0] == n_iter && done[1] == n_iter;
    printf("RESULT bench=switch impl=greenhub threads=1 value=%.2f unit=ns_per_switch check=%s\n",
           ns, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
