/* tests/test_interpose_stay.c — a call the interposition layer parks
 * resumes on the hub it started on.  Unmodified code may keep a
 * thread-local address across such a call (hiredis 0.14 keeps &errno
 * across poll() and stores ETIMEDOUT through it afterwards); had the
 * greenlet been stolen while parked, the store would hit another
 * greenlet's errno on the old thread (io/interpose.c, "Staying").
 *
 * Set-up that makes a steal likely without the rule: greenlets pinned to
 * hub 0 keep it busy between switches, while 200 greenlets wait in poll()
 * with short timeouts; the timer-woken ones queue on hub 0, and hub 1,
 * idle and spinning for work (GREENHUB_SPIN_US), steals them.  Measured
 * before the rule: greenlets came back from poll on the other hub in 16 of
 * 30 such runs (11 of 20 runs of the hiredis reproducer clobbered a
 * bystander's errno); the test makes ROUNDS runs. */
#include "gh_test.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WAITERS = 200, BUSY = 4, ROUNDS = 5 };

static _Atomic int stop, moved, waits;
static int sv[2];

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Pinned to hub 0: 300 us of work between switches. */
static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        uint64_t t = now_us();
        while (now_us() - t < 300)
            ;
        gh_yield();
    }
    return NULL;
}

static void *waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    struct pollfd p = { .fd = sv[0], .events = POLLIN };
    int before = gh_hub_index();
    int r = poll(&p, 1, 20 + i % 10);   /* nothing comes: its timeout */
    int after = gh_hub_index();
    assert_int_equal(r, 0);
    atomic_fetch_add(&waits, 1);
    if (before != after)
        atomic_fetch_add(&moved, 1);
    /* and a sleep the same way */
    before = gh_hub_index();
    usleep(1000 + (useconds_t)(i % 5) * 1000);
    if (gh_hub_index() != before)
        atomic_fetch_add(&moved, 1);
    return NULL;
}

static void *round_main(void *arg)
{
    (void)arg;
    atomic_store(&stop, 0);
    gh_greenlet *b[BUSY], *w[WAITERS];
    gh_spawn_opts o = { .hub = 0, .pinned = 1 };
    for (int i = 0; i < BUSY; i++)
        b[i] = gh_spawn_with(&o, busy, NULL);
    for (int i = 0; i < WAITERS; i++)
        w[i] = gh_spawn(waiter, (void *)(intptr_t)i);
    for (int i = 0; i < WAITERS; i++)
        gh_join(w[i], NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < BUSY; i++)
        gh_join(b[i], NULL);
    return NULL;
}

static void test_layer_parks_resume_on_their_hub(void **state)
{
    (void)state;
    setenv("GREENHUB_SPIN_US", "1000000", 1);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int r = 0; r < ROUNDS; r++)
        gh_test_run(2, round_main, NULL);
    close(sv[0]);
    close(sv[1]);
    printf("%d green polls, %d came back on another hub\n", atomic_load(&waits),
           atomic_load(&moved));
    assert_int_equal(atomic_load(&waits), ROUNDS * WAITERS);
    assert_int_equal(atomic_load(&moved), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_parks_resume_on_their_hub),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
