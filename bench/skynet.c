/* bench/skynet.c — skynet: a 10-ary tree of greenlets with 1,000,000
 * leaves; leaf i returns i, every node spawns its 10 children and sums
 * what they return.  Checks the sum 499999500000.  Reports ms for one run
 * (after one warm-up run).  Hubs from GREENHUB_HUBS. */
#include "bench.h"

struct node { uint64_t num, size; };

static void *skynet(void *arg)
{
    struct node *n = arg;
    if (n->size == 1)
        return (void *)(uintptr_t)n->num;
    struct node kids[10];
    gh_greenlet *g[10];
    uint64_t step = n->size / 10, sum = 0;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct node){ n->num + (uint64_t)i * step, step };
        g[i] = gh_spawn(skynet, &kids[i]);
        if (!g[i])
            abort();
    }
    for (int i = 0; i < 10; i++) {
        void *r;
        gh_join(g[i], &r);
        sum += (uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

static void *bench_main(void *arg)
{
    (void)arg;
    struct node root = { 0, 1000000 };
    uint64_t sum = (uintptr_t)skynet(&root);   /* warm-up */
    uint64_t t0 = bench_now_ns();
    sum = (uintptr_t)skynet(&root);
    double ms = (double)(bench_now_ns() - t0) / 1e6;
    return (void *)(intptr_t)bench_result("skynet", ms, "ms", sum == 499999500000ull);
}

int main(void)
{
    return (int)(intptr_t)bench_run(bench_main, NULL);
}
