/* tests/test_park_stress.c — the park/unpark protocol under random races.
 *
 * Waiters on both hubs wait on random events with random timeouts (none,
 * 0, a few ms); setters on both hubs and a plain thread set and clear
 * events at random; a killer cancels random waiters while they wait.  So
 * every wakeup source (event, timer, kill, plain thread) races every other,
 * thousands of times; every fourth waiter is a victim whose last wait only
 * a kill can end, so exactly one ECANCELED per victim is expected.  The
 * library aborts on a double wakeup or a double
 * resume; a lost wakeup leaves a waiter parked, which hangs the run into
 * ctest's timeout.  Beyond that the test checks that each wait returned a
 * legal code, that a killed waiter sees ECANCELED from then on, and that
 * every waiter finished.  The seed is printed (GH_STRESS_SEED repeats it). */
#include "gh_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define WAITERS 64
#define EVENTS 8
#define ROUNDS 400

static gh_event ev[EVENTS], never;
static atomic_int waiters_left;
static _Atomic unsigned long n_ok, n_timeout, n_cancel, n_bad;
static gh_greenlet *waiter_g[WAITERS];
static atomic_int killed_flag[WAITERS];
static unsigned seed0;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *waiter(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t s = seed0 * 2654435761u + (uint64_t)id + 1;
    int saw_cancel = 0;
    for (int r = 0; r < ROUNDS; r++) {
        int e = (int)(rnd(&s) % EVENTS);
        int64_t t;
        switch (rnd(&s) % 4) {
        case 0: t = -1; break;
        case 1: t = 0; break;
        default: t = (int64_t)(rnd(&s) % 4); break;
        }
        int err = gh_event_wait(&ev[e], t);
        if (err == 0)
            atomic_fetch_add(&n_ok, 1);
        else if (err == ETIMEDOUT && t >= 0)
            atomic_fetch_add(&n_timeout, 1);
        else if (err == ECANCELED && atomic_load(&killed_flag[id]))
            atomic_fetch_add(&n_cancel, 1);
        else
            atomic_fetch_add(&n_bad, 1);
        if (err == ECANCELED) {
            saw_cancel = 1;
            break;   /* killed: clean up and return, as a user would */
        }
        if (rnd(&s) % 8 == 0)
            gh_yield();
    }
    /* A victim that was not killed during its rounds now waits on an event
     * nobody sets: only its kill can end that wait. */
    if (id % 4 == 0 && !saw_cancel) {
        int err = gh_event_wait(&never, -1);
        if (err == ECANCELED && atomic_load(&killed_flag[id]))
            atomic_fetch_add(&n_cancel, 1);
        else
            atomic_fetch_add(&n_bad, 1);
    }
    /* Once killed, every later call that has to wait fails at once. */
    if (id % 4 == 0 && gh_sleep_ms(1000) != ECANCELED)
        atomic_fetch_add(&n_bad, 1);
    atomic_fetch_sub(&waiters_left, 1);
    return NULL;
}

static void *setter(void *arg)
{
    uint64_t s = seed0 * 40503u + (uint64_t)(uintptr_t)arg + 7;
    while (atomic_load(&waiters_left) > 0) {
        int e = (int)(rnd(&s) % EVENTS);
        if (rnd(&s) % 3)
            gh_event_set(&ev[e]);
        else
            gh_event_clear(&ev[e]);
        if (rnd(&s) % 4 == 0)
            gh_sleep_ms(0);
        else
            gh_yield();
    }
    return NULL;
}

/* Kills every victim (ids divisible by 4) once, in random order, at random
 * moments: some mid-rounds, some parked in their final wait. */
static void *killer(void *arg)
{
    (void)arg;
    uint64_t s = seed0 + 99;
    int order[WAITERS / 4];
    for (int k = 0; k < WAITERS / 4; k++)
        order[k] = 4 * k;
    for (int k = WAITERS / 4 - 1; k > 0; k--) {
        int j = (int)(rnd(&s) % (uint64_t)(k + 1)), t = order[k];
        order[k] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < WAITERS / 4; k++) {
        for (int y = (int)(rnd(&s) % 64); y > 0; y--)
            gh_yield();
        atomic_store(&killed_flag[order[k]], 1);
        if (gh_kill(waiter_g[order[k]]) != 0)   /* a victim cannot have finished */
            atomic_fetch_add(&n_bad, 1);
    }
    return NULL;
}

static void *plain_setter(void *arg)
{
    (void)arg;
    uint64_t s = seed0 + 12345;
    while (atomic_load(&waiters_left) > 0) {
        gh_event_set(&ev[rnd(&s) % EVENTS]);
        struct timespec ts = { 0, (long)(rnd(&s) % 200000) };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *stress_main(void *arg)
{
    (void)arg;
    for (int e = 0; e < EVENTS; e++)
        gh_event_init(&ev[e]);
    gh_event_init(&never);
    atomic_store(&waiters_left, WAITERS);
    for (int i = 0; i < WAITERS; i++) {
        waiter_g[i] = gh_spawn(waiter, (void *)(intptr_t)i);
        assert_non_null(waiter_g[i]);
    }
    gh_greenlet *st[4];
    for (int i = 0; i < 4; i++)
        st[i] = gh_spawn(setter, (void *)(intptr_t)i);
    gh_greenlet *k = gh_spawn(killer, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, plain_setter, NULL), 0);
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(gh_join(waiter_g[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(gh_join(st[i], NULL), 0);
    assert_int_equal(gh_join(k, NULL), 0);
    pthread_join(t, NULL);
    for (int e = 0; e < EVENTS; e++)
        assert_int_equal(gh_event_destroy(&ev[e]), 0);   /* no waiter left */
    return NULL;
}

static void test_every_wakeup_source_races_every_other(void **state)
{
    (void)state;
    const char *env = getenv("GH_STRESS_SEED");
    seed0 = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    print_message("seed %u (GH_STRESS_SEED=%u repeats it)\n", seed0, seed0);
    for (int iter = 0; iter < 5; iter++) {
        gh_test_run(2, stress_main, NULL);
        seed0 = seed0 * 1103515245u + 12345u;
        for (int i = 0; i < WAITERS; i++)
            atomic_store(&killed_flag[i], 0);
    }
    print_message("waits: %lu ok, %lu timed out, %lu cancelled\n", atomic_load(&n_ok),
                  atomic_load(&n_timeout), atomic_load(&n_cancel));
    assert_int_equal(atomic_load(&n_bad), 0);
    assert_int_equal(atomic_load(&n_cancel), 5 * WAITERS / 4);   /* each victim once */
    assert_true(atomic_load(&n_ok) > 0);
    assert_true(atomic_load(&n_timeout) > 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_wakeup_source_races_every_other),
};
GH_TEST_MAIN(tests)
