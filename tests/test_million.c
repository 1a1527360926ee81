/* tests/test_million.c — a million greenlets parked at once (on one
 * gh_event), on a default kernel (vm.max_map_count 65530), then all
 * released and joined.
 *
 * GREENHUB_TEST_PARKED overrides the count: the ThreadSanitizer build uses
 * a smaller one, because TSan gives every fiber a full thread state of its
 * own (race detection, not capacity, is what that build is for). */
#include "gh_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>

static gh_event gate;
static _Atomic unsigned long arrived, released;

static void *parked_fn(void *arg)
{
    atomic_fetch_add(&arrived, 1);
    int r = gh_event_wait(&gate, -1);
    atomic_fetch_add(&released, 1);
    return (void *)((uintptr_t)arg + (r != 0 ? 1u << 31 : 0));
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned long map_count(void)
{
    unsigned long n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    int c;
    if (f) {
        while ((c = fgetc(f)) != EOF)
            n += c == '\n';
        fclose(f);
    }
    return n;
}

static void *million_main(void *arg)
{
    unsigned long n = *(unsigned long *)arg;
    gh_event_init(&gate);
    gh_greenlet **g = malloc(n * sizeof *g);
    assert_non_null(g);
    long rss0 = rss_kib();
    for (unsigned long i = 0; i < n; i++) {
        g[i] = gh_spawn(parked_fn, (void *)(uintptr_t)i);
        if (!g[i])
            fail_msg("spawn %lu failed: %s", i, strerror(errno));
        if (i % 4096 == 4095)
            gh_yield();   /* let them reach the gate as we go */
    }
    while (atomic_load(&arrived) < n)
        gh_sleep_ms(5);
    /* Every one is parked on the gate now (none can pass it yet). */
    gh_sleep_ms(20);
    assert_int_equal(atomic_load(&released), 0);
    long rss1 = rss_kib();
    unsigned long maps = map_count();
    print_message("%lu parked: %.0f bytes each (RSS), %lu map entries, guard=%s\n", n,
                  (double)(rss1 - rss0) * 1024 / (double)n, maps, gh_stack_guard_mode());
    assert_true(maps < 65530);
    assert_int_equal(gh_event_set(&gate), 0);
    uint64_t sum = 0;
    for (unsigned long i = 0; i < n; i++) {
        void *r;
        assert_int_equal(gh_join(g[i], &r), 0);
        sum += (uintptr_t)r;
    }
    free(g);
    assert_int_equal(atomic_load(&released), n);
    assert_int_equal(sum, (uint64_t)n * (n - 1) / 2);
    return NULL;
}

static void test_million_parked_then_released(void **state)
{
    (void)state;
    const char *env = getenv("GREENHUB_TEST_PARKED");
    unsigned long n = env ? strtoul(env, NULL, 10) : 1000000;
    gh_test_run(2, million_main, &n);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_million_parked_then_released),
};
GH_TEST_MAIN(tests)
