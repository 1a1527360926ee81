/* tests/test_deque.c — the Chase–Lev deque under real contention: one owner
 * pushing and popping, several thieves stealing, millions of items, each
 * taken exactly once, starting from a tiny buffer so growth races too. */
#include "gh_test.h"
#include "deque.h"

#include <pthread.h>
#include <stdatomic.h>

#define ITEMS 2000000u
#define THIEVES 3

static gh__deque dq;
static _Atomic unsigned char *taken;
static atomic_int owner_done;
static _Atomic unsigned long stolen_total;

static _Atomic unsigned long bad_items;   /* checked by the main thread */

/* Items are (i + 1) * 8, like aligned pointers (never the ABORT value). */
static void *item(uintptr_t i) { return (void *)((i + 1) * 8); }

/* Any thread: records that x was taken.  No cmocka assertions here: they
 * longjmp, which must not happen on a thief thread. */
static void take(void *x)
{
    uintptr_t i = (uintptr_t)x / 8 - 1;
    if (!x || x == GH_DEQUE_ABORT || (uintptr_t)x % 8 || i >= ITEMS) {
        atomic_fetch_add(&bad_items, 1);
        return;
    }
    atomic_fetch_add(&taken[i], 1);
}

static void *thief(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    for (;;) {
        void *x = gh__deque_steal(&dq);
        if (x == GH_DEQUE_ABORT)
            continue;
        if (x) {
            take(x);
            n++;
        } else if (atomic_load(&owner_done)) {
            /* The owner stopped pushing; one last look. */
            if (gh__deque_size(&dq) == 0)
                break;
        }
    }
    atomic_fetch_add(&stolen_total, n);
    return NULL;
}

static void test_owner_and_thieves_take_each_item_once(void **state)
{
    (void)state;
    taken = calloc(ITEMS, 1);
    assert_non_null(taken);
    assert_int_equal(gh__deque_init(&dq, 2), 0);
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thief, NULL), 0);
    unsigned long popped = 0;
    uint64_t rng = 88172645463325252ULL;
    for (uintptr_t i = 0; i < ITEMS; i++) {
        assert_int_equal(gh__deque_push(&dq, item(i)), 0);
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        /* Pop now and then (sometimes in bursts) to race thieves for the
         * last items. */
        if ((rng & 7) == 0) {
            for (unsigned k = (unsigned)(rng >> 60); k-- > 0;) {
                void *x = gh__deque_pop(&dq);
                if (!x)
                    break;
                take(x);
                popped++;
            }
        }
    }
    void *x;
    while ((x = gh__deque_pop(&dq))) {
        take(x);
        popped++;
    }
    atomic_store(&owner_done, 1);
    for (int i = 0; i < THIEVES; i++)
        pthread_join(t[i], NULL);
    unsigned long missing = 0, twice = 0;
    for (unsigned i = 0; i < ITEMS; i++) {
        unsigned char c = atomic_load(&taken[i]);
        missing += c == 0;
        twice += c > 1;
    }
    assert_int_equal(atomic_load(&bad_items), 0);
    assert_int_equal(twice, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(popped + atomic_load(&stolen_total), ITEMS);
    assert_true(atomic_load(&stolen_total) > 0);   /* thieves really raced */
    gh__deque_destroy(&dq);
    free((void *)taken);
}

static void test_fifo_steal_and_lifo_pop(void **state)
{
    (void)state;
    gh__deque d;
    assert_int_equal(gh__deque_init(&d, 4), 0);
    for (uintptr_t i = 1; i <= 100; i++)
        assert_int_equal(gh__deque_push(&d, (void *)i), 0);
    assert_int_equal(gh__deque_size(&d), 100);
    assert_ptr_equal(gh__deque_steal(&d), (void *)1);    /* oldest */
    assert_ptr_equal(gh__deque_pop(&d), (void *)100);    /* newest */
    for (uintptr_t i = 2; i <= 99; i++)
        assert_ptr_equal(gh__deque_steal(&d), (void *)i);
    assert_null(gh__deque_steal(&d));
    assert_null(gh__deque_pop(&d));
    gh__deque_destroy(&d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fifo_steal_and_lifo_pop),
    cmocka_unit_test(test_owner_and_thieves_take_each_item_once),
};
GH_TEST_MAIN(tests)
