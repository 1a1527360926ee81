/* bench/parked.c — resident bytes per parked greenlet: N greenlets wait on
 * one gh_event; once all have arrived, the RSS growth since before the
 * spawns, divided by N.  Then all are released and joined; checks that
 * every one came back.  Usage: parked [N=1000000]. */
#include "bench.h"

#include <stdatomic.h>

static gh_event gate;
static _Atomic long arrived;

static void *waiter(void *arg)
{
    atomic_fetch_add(&arrived, 1);
    gh_event_wait(&gate, -1);
    return arg;
}

static void *bench_main(void *arg)
{
    long n = *(long *)arg;
    gh_event_init(&gate);
    gh_greenlet **g = malloc((size_t)n * sizeof *g);
    long rss0 = bench_rss_bytes();
    for (long i = 0; i < n; i++) {
        g[i] = gh_spawn(waiter, (void *)(uintptr_t)1);
        if (!g[i])
            return (void *)(intptr_t)bench_result("parked", 0, "bytes_per_task", 0);
    }
    while (atomic_load(&arrived) < n)
        gh_sleep_ms(5);
    gh_sleep_ms(20);
    double per = (double)(bench_rss_bytes() - rss0) / (double)n;
    gh_event_set(&gate);
    long back = 0;
    for (long i = 0; i < n; i++) {
        void *r;
        gh_join(g[i], &r);
        back += (long)(uintptr_t)r;
    }
    free(g);
    printf("INFO tasks=%ld guard=%s\n", n, gh_stack_guard_mode());
    return (void *)(intptr_t)bench_result("parked", per, "bytes_per_task", back == n);
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    return (int)(intptr_t)bench_run(bench_main, &n);
}
