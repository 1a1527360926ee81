/* tests/test_sync.c — synchronisation (greenhub/sync.h, greenhub/event.h):
 * queues, mutexes, semaphores, condition variables and events across hubs
 * and plain threads; groups, pools and imap; greenlet-local storage;
 * timeouts, deadline scopes and cancellation on every wait; bad input;
 * destroy and free racing a waiter on its way out of a timed-out wait; a
 * randomised stress.  Every case checks something a broken implementation
 * gets wrong: lost or duplicated items and permits, lost wakeups, early
 * timeouts, waiters left behind by a kill, values leaking between
 * greenlets. */
#include "gh_test.h"
#include "internal.h"   /* gh__waiters_claim, the wait-exit test hook */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Under ThreadSanitizer every started greenlet is a TSan fiber and the
 * build is 5-15x slower: the biggest counts shrink there, nothing else. */
#if defined(__SANITIZE_THREAD__)
#define GH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GH_TSAN 1
#endif
#endif
#ifndef GH_TSAN
#define GH_TSAN 0
#endif

/* cmocka's assert_* keep their message in a buffer that is printed only
 * when the failure gets back to the test's thread, which a failure on a hub
 * thread or a plain thread never does (the process just exits).  These print
 * the failed check and its values first, then fail the same way. */
#undef assert_int_equal
#define assert_int_equal(a, b)                                                \
    do {                                                                      \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                   \
        if (a_ != b_) {                                                       \
            print_error("%s:%d: %s is %jd (%#jx), expected %s = %jd\n",       \
                        __FILE__, __LINE__, #a, (intmax_t)a_, a_, #b,         \
                        (intmax_t)b_);                                        \
            _fail(__FILE__, __LINE__);                                        \
        }                                                                     \
    } while (0)
#undef assert_ptr_equal
#define assert_ptr_equal(a, b)                                                \
    do {                                                                      \
        const void *a_ = (a), *b_ = (b);                                      \
        if (a_ != b_) {                                                       \
            print_error("%s:%d: %s is %p, expected %s = %p\n", __FILE__,      \
                        __LINE__, #a, a_, #b, b_);                            \
            _fail(__FILE__, __LINE__);                                        \
        }                                                                     \
    } while (0)
#undef assert_true
#define assert_true(c)                                                        \
    do {                                                                      \
        if (!(c)) {                                                           \
            print_error("%s:%d: %s is false\n", __FILE__, __LINE__, #c);      \
            _fail(__FILE__, __LINE__);                                        \
        }                                                                     \
    } while (0)
#undef assert_null
#define assert_null(p)                                                        \
    do {                                                                      \
        const void *p_ = (p);                                                 \
        if (p_) {                                                             \
            print_error("%s:%d: %s is %p, expected NULL\n", __FILE__,         \
                        __LINE__, #p, p_);                                    \
            _fail(__FILE__, __LINE__);                                        \
        }                                                                     \
    } while (0)
#undef assert_non_null
#define assert_non_null(p)                                                    \
    do {                                                                      \
        if (!(p)) {                                                           \
            print_error("%s:%d: %s is NULL (errno %d)\n", __FILE__, __LINE__, \
                        #p, errno);                                           \
            _fail(__FILE__, __LINE__);                                        \
        }                                                                     \
    } while (0)

/* ---- helpers -------------------------------------------------------------- */

#define JOIN_MS 120000                /* a join that takes longer is a hang */
#define SETTLE_MS (GH_TSAN ? 50 : 20) /* lets spawned waiters reach their wait */
#define RC(x) ((void *)(intptr_t)(x))

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int rc_of(void *p)
{
    return (int)(intptr_t)p;
}

static gh_greenlet *spawn_on(int hub, gh_fn fn, void *arg)
{
    gh_spawn_opts o = { .name = "pinned", .hub = hub, .pinned = 1 };
    gh_greenlet *g = gh_spawn_with(&o, fn, arg);
    assert_non_null(g);
    return g;
}

static gh_greenlet *spawn_any(gh_fn fn, void *arg)
{
    gh_greenlet *g = gh_spawn(fn, arg);
    assert_non_null(g);
    return g;
}

/* gh_join that fails the test instead of hanging it. */
static void *join_ok(gh_greenlet *g)
{
    void *r = NULL;
    int e = gh_join_timeout(g, JOIN_MS, &r);
    if (e != 0)
        fail_msg("gh_join_timeout: %d (%s)", e, strerror(e));
    return r;
}

static int join_rc(gh_greenlet *g)
{
    return rc_of(join_ok(g));
}

static void settle(void)
{
    assert_int_equal(gh_sleep_ms(SETTLE_MS), 0);
}

/* Waits (sleeping, on a greenlet or a plain thread) until *v >= want. */
static void wait_count(_Atomic int *v, int want, const char *what)
{
    uint64_t t0 = now_us();
    while (atomic_load(v) < want) {
        if (now_us() - t0 > 30000000u)
            fail_msg("waited 30 s for %s: %d of %d", what, atomic_load(v), want);
        gh_sleep_ms(1);
    }
}

static uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* call must fail with ETIMEDOUT, no sooner than ms after t0 (taken before
 * the wait, or before its deadline scope began), and not absurdly late. */
#define EXPECT_TIMEOUT_SINCE(t0, call, ms)                                    \
    do {                                                                      \
        int r_ = (call);                                                      \
        uint64_t el_ = now_us() - (t0);                                       \
        if (r_ != ETIMEDOUT)                                                  \
            fail_msg("%s returned %d (%s), expected ETIMEDOUT", #call, r_,    \
                     strerror(r_));                                           \
        if (el_ < (uint64_t)(ms) * 1000)                                      \
            fail_msg("%s timed out after %llu us, before its %d ms", #call,   \
                     (unsigned long long)el_, (int)(ms));                     \
        if (el_ > (uint64_t)(ms) * 1000 + 10000000u)                          \
            fail_msg("%s took %llu us for a %d ms timeout", #call,            \
                     (unsigned long long)el_, (int)(ms));                     \
    } while (0)
#define EXPECT_TIMEOUT(call, ms)                                              \
    do {                                                                      \
        uint64_t t_ = now_us();                                               \
        EXPECT_TIMEOUT_SINCE(t_, call, ms);                                   \
    } while (0)
/* The same wait with no timeout of its own, bounded by a deadline scope. */
#define EXPECT_SCOPED_TIMEOUT(call, ms)                                       \
    do {                                                                      \
        uint64_t t_ = now_us();                                               \
        int tok_ = gh_timeout_begin(ms);                                      \
        assert_true(tok_ >= 0);                                               \
        EXPECT_TIMEOUT_SINCE(t_, call, ms);                                   \
        gh_timeout_end(tok_);                                                 \
    } while (0)

/* A plain thread started from a greenlet: the greenlet parks on `done`
 * (never blocks its hub in pthread_join) until the thread is finished. */
struct thr {
    pthread_t t;
    gh_event done;
    gh_fn fn;
    void *arg, *ret;
};

static void *thr_tramp(void *a)
{
    struct thr *t = a;
    assert_null(gh_self());
    assert_int_equal(gh_hub_index(), -1);
    t->ret = t->fn(t->arg);
    gh_event_set(&t->done);
    return NULL;
}

static void thr_start(struct thr *t, gh_fn fn, void *arg)
{
    assert_int_equal(gh_event_init(&t->done), 0);
    t->fn = fn;
    t->arg = arg;
    t->ret = NULL;
    assert_int_equal(pthread_create(&t->t, NULL, thr_tramp, t), 0);
}

static void *thr_join(struct thr *t)
{
    assert_int_equal(gh_event_wait(&t->done, JOIN_MS), 0);
    assert_int_equal(pthread_join(t->t, NULL), 0);
    assert_int_equal(gh_event_destroy(&t->done), 0);
    return t->ret;
}

/* Small greenlet bodies shared by several cases. */
static gh_event gate;          /* what gate_fn waits for */
static _Atomic int marks;      /* what mark_fn counts */

static void *gate_fn(void *arg)
{
    (void)arg;
    return RC(gh_event_wait(&gate, -1));
}

static void *gate_ret_fn(void *arg)
{
    gh_event_wait(&gate, -1);
    return arg;
}

static void *mark_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&marks, 1);
    return NULL;
}

/* ==== gh_queue ================================================================ */

/* ---- 1,000,000 items, 8 producers, 8 consumers, capacity 64 ---------------
 * Producer p puts items p, p+8, p+16, ... (as i+1, never NULL), pinned to
 * hub p % hubs; consumers run anywhere.  Every item must arrive exactly
 * once, each consumer must see each producer's items in increasing order
 * (the queue is FIFO), nothing arrives after the close, and every consumer
 * ends with EPIPE, and again EPIPE on the next get. */

#define PC_MAX 1000000
#define PC_PROD 8
#define PC_CONS 8
static _Atomic unsigned char pc_seen[PC_MAX];
static struct {
    gh_queue *q;
    unsigned long items;
    _Atomic unsigned long bad, dup, order;
    _Atomic unsigned hubs_seen;
} pc;

static void *pc_producer(void *arg)
{
    uintptr_t p = (uintptr_t)arg;
    for (unsigned long i = p; i < pc.items; i += PC_PROD) {
        int r = gh_queue_put(pc.q, (void *)(uintptr_t)(i + 1), -1);
        if (r != 0)
            fail_msg("producer %lu: gh_queue_put returned %d", (unsigned long)p, r);
    }
    return NULL;
}

static void *pc_consumer(void *arg)
{
    (void)arg;
    long last[PC_PROD];
    for (int p = 0; p < PC_PROD; p++)
        last[p] = -1;
    unsigned long got = 0;
    void *it;
    int r;
    while ((r = gh_queue_get(pc.q, &it, -1)) == 0) {
        uintptr_t v = (uintptr_t)it;
        if (v == 0 || v > pc.items) {
            atomic_fetch_add(&pc.bad, 1);
            continue;
        }
        v--;
        if (atomic_fetch_add(&pc_seen[v], 1) != 0)
            atomic_fetch_add(&pc.dup, 1);
        unsigned p = (unsigned)(v % PC_PROD);
        if ((long)v <= last[p])
            atomic_fetch_add(&pc.order, 1);
        last[p] = (long)v;
        if ((got++ & 1023) == 0)
            atomic_fetch_or(&pc.hubs_seen, 1u << gh_hub_index());
    }
    if (r != EPIPE)
        fail_msg("consumer: gh_queue_get returned %d, expected EPIPE", r);
    /* Closed and drained stays so: EPIPE at once, with or without a timeout. */
    assert_int_equal(gh_queue_get(pc.q, &it, 0), EPIPE);
    assert_int_equal(gh_queue_get(pc.q, &it, -1), EPIPE);
    return (void *)(uintptr_t)got;
}

static void *pc_main(void *arg)
{
    unsigned hubs = (unsigned)(uintptr_t)arg;
    assert_int_equal(gh_hub_count(), hubs);
    pc.q = gh_queue_new(64);
    assert_non_null(pc.q);
    gh_greenlet *c[PC_CONS], *p[PC_PROD];
    for (int i = 0; i < PC_CONS; i++)
        c[i] = spawn_any(pc_consumer, NULL);
    for (int i = 0; i < PC_PROD; i++)
        p[i] = spawn_on(i % (int)hubs, pc_producer, (void *)(uintptr_t)i);
    for (int i = 0; i < PC_PROD; i++)
        join_ok(p[i]);
    assert_int_equal(gh_queue_close(pc.q), 0);
    /* After the close nothing gets in; a consumer that got this would count
     * it as bad. */
    assert_int_equal(gh_queue_put(pc.q, (void *)(uintptr_t)(pc.items + 7), 0), EPIPE);
    assert_int_equal(gh_queue_put(pc.q, (void *)(uintptr_t)(pc.items + 7), -1), EPIPE);
    assert_int_equal(gh_queue_close(pc.q), 0);
    unsigned long total = 0;
    for (int i = 0; i < PC_CONS; i++)
        total += (uintptr_t)join_ok(c[i]);
    assert_int_equal(total, pc.items);
    assert_int_equal(gh_queue_len(pc.q), 0);
    assert_int_equal(gh_queue_free(pc.q), 0);
    return NULL;
}

static void pc_run(unsigned hubs)
{
    pc.items = GH_TSAN ? 100000 : PC_MAX;
    for (unsigned long i = 0; i < pc.items; i++)
        atomic_store(&pc_seen[i], 0);
    atomic_store(&pc.bad, 0);
    atomic_store(&pc.dup, 0);
    atomic_store(&pc.order, 0);
    uint64_t t0 = now_us();
    gh_test_run(hubs, pc_main, (void *)(uintptr_t)hubs);
    print_message("%lu items over %u hubs in %.2f s (consumers ran on hub mask %#x)\n",
                  pc.items, hubs, (double)(now_us() - t0) / 1e6, atomic_load(&pc.hubs_seen));
    assert_int_equal(atomic_load(&pc.bad), 0);
    assert_int_equal(atomic_load(&pc.dup), 0);
    assert_int_equal(atomic_load(&pc.order), 0);
    for (unsigned long i = 0; i < pc.items; i++)
        if (atomic_load(&pc_seen[i]) != 1)
            fail_msg("item %lu delivered %d times", i, atomic_load(&pc_seen[i]));
}

static void test_queue_million_items_8x8_on_2_hubs(void **state)
{
    (void)state;
    pc_run(2);
}

static void test_queue_million_items_8x8_on_4_hubs(void **state)
{
    (void)state;
    pc_run(4);
}

/* ---- close: drains, then EPIPE; wakes waiting getters and putters ---------- */

struct qw {
    gh_queue *q;
    void *item;
    int64_t timeout;
    _Atomic int *arrived;
};

static void *q_getter(void *arg)
{
    struct qw *w = arg;
    if (w->arrived)
        atomic_fetch_add(w->arrived, 1);
    return RC(gh_queue_get(w->q, &w->item, w->timeout));
}

static void *q_putter(void *arg)
{
    struct qw *w = arg;
    if (w->arrived)
        atomic_fetch_add(w->arrived, 1);
    return RC(gh_queue_put(w->q, w->item, w->timeout));
}

static void *qclose_main(void *arg)
{
    (void)arg;
    void *it;
    /* Bounded: what was put before the close comes out, in order. */
    gh_queue *q = gh_queue_new(8);
    assert_non_null(q);
    for (uintptr_t i = 1; i <= 5; i++)
        assert_int_equal(gh_queue_put(q, (void *)i, 0), 0);
    assert_int_equal(gh_queue_close(q), 0);
    assert_int_equal(gh_queue_put(q, (void *)6, 0), EPIPE);
    assert_int_equal(gh_queue_put(q, (void *)6, -1), EPIPE);   /* no wait */
    assert_int_equal(gh_queue_len(q), 5);
    for (uintptr_t i = 1; i <= 5; i++) {
        assert_int_equal(gh_queue_get(q, &it, -1), 0);
        assert_ptr_equal(it, (void *)i);
    }
    assert_int_equal(gh_queue_get(q, &it, -1), EPIPE);
    assert_int_equal(gh_queue_get(q, &it, 0), EPIPE);
    assert_int_equal(gh_queue_close(q), 0);
    assert_int_equal(gh_queue_len(q), 0);
    assert_int_equal(gh_queue_free(q), 0);

    /* A getter waiting on an empty queue (another hub) gets EPIPE. */
    q = gh_queue_new(2);
    struct qw g = { .q = q, .item = (void *)0x1, .timeout = -1 };
    gh_greenlet *gg = spawn_on(1, q_getter, &g);
    settle();
    uint64_t t0 = now_us();
    assert_int_equal(gh_queue_close(q), 0);
    assert_int_equal(join_rc(gg), EPIPE);
    assert_true(now_us() - t0 < 5000000u);
    assert_int_equal(gh_queue_free(q), 0);

    /* A putter waiting on a full queue gets EPIPE and its item is not
     * queued; what was queued before still drains. */
    q = gh_queue_new(2);
    assert_int_equal(gh_queue_put(q, (void *)1, 0), 0);
    assert_int_equal(gh_queue_put(q, (void *)2, 0), 0);
    struct qw p = { .q = q, .item = (void *)3, .timeout = -1 };
    gh_greenlet *pg = spawn_on(1, q_putter, &p);
    settle();
    assert_int_equal(gh_queue_close(q), 0);
    assert_int_equal(join_rc(pg), EPIPE);
    assert_int_equal(gh_queue_len(q), 2);
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)1);
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)2);
    assert_int_equal(gh_queue_get(q, &it, 0), EPIPE);
    assert_int_equal(gh_queue_free(q), 0);

    /* Unbounded: puts never wait; FIFO; then close drains. */
    enum { UNB = 100000 };
    q = gh_queue_new(0);
    assert_non_null(q);
    for (uintptr_t i = 1; i <= UNB; i++)
        assert_int_equal(gh_queue_put(q, (void *)i, 0), 0);
    assert_int_equal(gh_queue_len(q), UNB);
    assert_int_equal(gh_queue_close(q), 0);
    for (uintptr_t i = 1; i <= UNB; i++) {
        assert_int_equal(gh_queue_get(q, &it, 0), 0);
        if (it != (void *)i)
            fail_msg("unbounded queue: got %p at %lu", it, (unsigned long)i);
    }
    assert_int_equal(gh_queue_get(q, &it, 0), EPIPE);
    assert_int_equal(gh_queue_free(q), 0);
    return NULL;
}

static void test_queue_close_drains_then_epipe_and_wakes_waiters(void **state)
{
    (void)state;
    gh_test_run(2, qclose_main, NULL);
}

/* ---- FIFO of waiters and direct hand-off --------------------------------
 * Getters that wait are served first come, first served, and an item put
 * while a getter waits is handed to it: a poll right after the put finds
 * the queue empty.  Putters waiting on a full queue get in in their order. */

static void *qfifo_main(void *arg)
{
    (void)arg;
    void *it;
    _Atomic int arrived = 0;
    gh_queue *q = gh_queue_new(4);
    assert_non_null(q);
    struct qw g[3];
    gh_greenlet *gg[3];
    for (int i = 0; i < 3; i++) {
        g[i] = (struct qw){ .q = q, .timeout = -1, .arrived = &arrived };
        gg[i] = spawn_on(1, q_getter, &g[i]);
        wait_count(&arrived, i + 1, "getter");
        settle();
    }
    for (uintptr_t i = 0; i < 3; i++) {
        assert_int_equal(gh_queue_put(q, (void *)(0x100 + i), 0), 0);
        /* handed straight to the oldest waiting getter */
        assert_int_equal(gh_queue_get(q, &it, 0), ETIMEDOUT);
        assert_int_equal(gh_queue_len(q), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(join_rc(gg[i]), 0);
        assert_ptr_equal(g[i].item, (void *)(uintptr_t)(0x100 + i));
    }

    /* Waiting putters: capacity 1, holding 0x200. */
    gh_queue *q1 = gh_queue_new(1);
    assert_int_equal(gh_queue_put(q1, (void *)0x200, 0), 0);
    atomic_store(&arrived, 0);
    struct qw p[3];
    gh_greenlet *pg[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (struct qw){ .q = q1, .item = (void *)(uintptr_t)(0x201 + i),
                            .timeout = -1, .arrived = &arrived };
        pg[i] = spawn_on(i % 2, q_putter, &p[i]);
        wait_count(&arrived, i + 1, "putter");
        settle();
    }
    for (uintptr_t i = 0; i < 4; i++) {
        assert_int_equal(gh_queue_get(q1, &it, 5000), 0);
        assert_ptr_equal(it, (void *)(0x200 + i));
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(join_rc(pg[i]), 0);
    assert_int_equal(gh_queue_len(q1), 0);
    assert_int_equal(gh_queue_free(q1), 0);
    assert_int_equal(gh_queue_free(q), 0);
    return NULL;
}

static void test_queue_waiters_fifo_and_direct_handoff(void **state)
{
    (void)state;
    gh_test_run(2, qfifo_main, NULL);
}

/* ==== gh_mutex ================================================================= */

/* ---- 100 greenlets x 10,000 increments of a plain counter ----------------
 * The increment is split around a gh_yield every 64th time, so a mutex that
 * lets two holders in loses counts even without true parallelism. */

struct mx {
    gh_mutex m;
    unsigned long counter;   /* plain: only the mutex protects it */
    int per;
};

static void *mx_worker(void *arg)
{
    struct mx *x = arg;
    for (int i = 0; i < x->per; i++) {
        int r = gh_mutex_lock(&x->m);
        if (r != 0)
            fail_msg("gh_mutex_lock returned %d", r);
        unsigned long v = x->counter;
        if ((i & 63) == 0)
            gh_yield();        /* sched_yield on a plain thread */
        x->counter = v + 1;
        assert_int_equal(gh_mutex_unlock(&x->m), 0);
    }
    return NULL;
}

static void *mx_main(void *arg)
{
    struct mx *x = arg;
    enum { N = 100 };
    gh_greenlet *g[N];
    unsigned hubs = gh_hub_count();
    for (int i = 0; i < N; i++)
        g[i] = (i & 1) ? spawn_any(mx_worker, x) : spawn_on(i % (int)hubs, mx_worker, x);
    for (int i = 0; i < N; i++)     /* no time limit: slow under TSan on 4 hubs */
        assert_int_equal(gh_join(g[i], NULL), 0);
    assert_int_equal(gh_mutex_trylock(&x->m), 0);
    assert_int_equal(gh_mutex_unlock(&x->m), 0);
    assert_int_equal(gh_mutex_destroy(&x->m), 0);
    return NULL;
}

static void mx_run(unsigned hubs)
{
    static struct mx x;
    assert_int_equal(gh_mutex_init(&x.m), 0);
    x.counter = 0;
    x.per = 10000;
    uint64_t t0 = now_us();
    gh_test_run(hubs, mx_main, &x);
    print_message("100 x 10000 locks on %u hubs: %.2f s\n", hubs,
                  (double)(now_us() - t0) / 1e6);
    assert_int_equal(x.counter, 100ul * 10000);
}

static void test_mutex_100x10000_increments_on_2_hubs(void **state)
{
    (void)state;
    mx_run(2);
}

static void test_mutex_100x10000_increments_on_4_hubs(void **state)
{
    (void)state;
    mx_run(4);
}

/* ---- plain threads and greenlets on one mutex -------------------------- */

static void *mxmix_main(void *arg)
{
    struct mx *x = arg;
    enum { G = 16, T = 2 };
    struct thr t[T];
    for (int i = 0; i < T; i++)
        thr_start(&t[i], mx_worker, x);
    gh_greenlet *g[G];
    for (int i = 0; i < G; i++)
        g[i] = spawn_any(mx_worker, x);
    for (int i = 0; i < G; i++)
        join_ok(g[i]);
    for (int i = 0; i < T; i++)
        thr_join(&t[i]);
    return NULL;
}

static void test_mutex_plain_threads_and_greenlets_mixed(void **state)
{
    (void)state;
    static struct mx x = { .m = GH_MUTEX_INITIALIZER };   /* static init works */
    x.per = 5000;
    gh_test_run(2, mxmix_main, &x);
    assert_int_equal(x.counter, 18ul * 5000);
    assert_int_equal(gh_mutex_destroy(&x.m), 0);
}

/* ---- no waiter starves ---------------------------------------------------
 * A hog on hub 0 holds the lock 200 us at a time, takes it again right
 * after each unlock and never yields; a waiter on hub 1 needs 20 turns,
 * each within 2 s.  Without the starvation hand-off (GH_MUTEX_STARVE_MS)
 * the woken waiter reaches the lock only after the hog has re-taken it,
 * every time (it wins only if the OS preempts the hog in the few ns
 * between its unlock and its next lock).  With it, a turn takes about
 * GH_MUTEX_STARVE_MS plus one hold. */

static gh_mutex hog_m = GH_MUTEX_INITIALIZER;
static _Atomic int hog_stop;
static _Atomic unsigned long hog_turns;

static void *hog_fn(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_stop)) {
        assert_int_equal(gh_mutex_lock(&hog_m), 0);
        uint64_t t0 = now_us();
        while (now_us() - t0 < 200)
            ;
        atomic_fetch_add(&hog_turns, 1);
        assert_int_equal(gh_mutex_unlock(&hog_m), 0);
    }
    return NULL;
}

static void *starve_waiter(void *arg)
{
    (void)arg;
    uint64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = now_us();
        int r = gh_mutex_timedlock(&hog_m, 2000);
        if (r != 0) {
            atomic_store(&hog_stop, 1);
            fail_msg("waiter starved: timedlock returned %d on turn %d", r, i);
        }
        if (now_us() - t0 > worst)
            worst = now_us() - t0;
        assert_int_equal(gh_mutex_unlock(&hog_m), 0);
        gh_sleep_ms(1);
    }
    atomic_store(&hog_stop, 1);
    return (void *)(uintptr_t)worst;
}

static void *starve_main(void *arg)
{
    (void)arg;
    atomic_store(&hog_stop, 0);
    gh_greenlet *h = spawn_on(0, hog_fn, NULL);
    gh_greenlet *w = spawn_on(1, starve_waiter, NULL);
    uint64_t worst = (uintptr_t)join_ok(w);
    join_ok(h);
    print_message("starvation: worst wait %llu us, hog turns %lu\n",
                  (unsigned long long)worst, atomic_load(&hog_turns));
    assert_true(atomic_load(&hog_turns) > 0);
    return NULL;
}

static void test_mutex_waiter_does_not_starve(void **state)
{
    (void)state;
    gh_test_run(2, starve_main, NULL);
}

/* ---- a deadline scope bounds gh_mutex_lock ------------------------------- */

static gh_mutex ds_m;
static _Atomic int ds_step;

static void *ds_locker(void *arg)
{
    (void)arg;
    EXPECT_SCOPED_TIMEOUT(gh_mutex_lock(&ds_m), 40);
    /* nested: the earliest deadline wins; the outer one still holds after */
    uint64_t t0 = now_us();
    int outer = gh_timeout_begin(10000);
    assert_true(outer >= 0);
    int inner = gh_timeout_begin(30);
    assert_true(inner >= 0);
    EXPECT_TIMEOUT_SINCE(t0, gh_mutex_timedlock(&ds_m, 5000), 30);
    gh_timeout_end(inner);
    EXPECT_TIMEOUT(gh_mutex_timedlock(&ds_m, 20), 20);
    gh_timeout_end(outer);
    /* scopes closed: the lock is taken when it frees up */
    atomic_store(&ds_step, 1);
    assert_int_equal(gh_mutex_lock(&ds_m), 0);
    assert_int_equal(atomic_load(&ds_step), 2);
    assert_int_equal(gh_mutex_unlock(&ds_m), 0);
    return NULL;
}

static void *ds_main(void *arg)
{
    (void)arg;
    assert_int_equal(gh_mutex_init(&ds_m), 0);
    assert_int_equal(gh_mutex_lock(&ds_m), 0);
    gh_greenlet *g = spawn_on(1, ds_locker, NULL);
    wait_count(&ds_step, 1, "locker");
    settle();
    atomic_store(&ds_step, 2);
    assert_int_equal(gh_mutex_unlock(&ds_m), 0);
    join_ok(g);
    assert_int_equal(gh_mutex_destroy(&ds_m), 0);
    return NULL;
}

static void test_mutex_lock_bounded_by_deadline_scope(void **state)
{
    (void)state;
    gh_test_run(2, ds_main, NULL);
}

/* ==== gh_sem =================================================================== */

/* ---- at most N holders, and N reached ----------------------------------- */

enum { SEM_N = 3, SEM_WORKERS = 24, SEM_ROUNDS = 30 };
static gh_sem sm_sem;
static _Atomic int sm_cur, sm_max;

static void *sm_worker(void *arg)
{
    (void)arg;
    for (int r = 0; r < SEM_ROUNDS; r++) {
        assert_int_equal(gh_sem_acquire(&sm_sem, -1), 0);
        int c = atomic_fetch_add(&sm_cur, 1) + 1;
        if (c > SEM_N)
            fail_msg("%d holders of a %d-permit semaphore", c, SEM_N);
        int m = atomic_load(&sm_max);
        while (c > m && !atomic_compare_exchange_weak(&sm_max, &m, c))
            ;
        if (r & 1)
            gh_sleep_ms(1);
        else
            gh_yield();
        atomic_fetch_sub(&sm_cur, 1);
        assert_int_equal(gh_sem_release(&sm_sem), 0);
    }
    return NULL;
}

static void *sm_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    atomic_store(&sm_cur, 0);
    atomic_store(&sm_max, 0);
    assert_int_equal(gh_sem_init(&sm_sem, SEM_N), 0);
    gh_greenlet *g[SEM_WORKERS];
    for (int i = 0; i < SEM_WORKERS; i++)
        g[i] = (i & 1) ? spawn_any(sm_worker, NULL) : spawn_on(i % (int)hubs, sm_worker, NULL);
    for (int i = 0; i < SEM_WORKERS; i++)
        join_ok(g[i]);
    assert_int_equal(gh_sem_value(&sm_sem), SEM_N);
    assert_int_equal(atomic_load(&sm_max), SEM_N);
    assert_int_equal(gh_sem_destroy(&sm_sem), 0);
    return NULL;
}

static void test_sem_holders_never_exceed_n_on_2_hubs(void **state)
{
    (void)state;
    gh_test_run(2, sm_main, NULL);
}

static void test_sem_holders_never_exceed_n_on_4_hubs(void **state)
{
    (void)state;
    gh_test_run(4, sm_main, NULL);
}

/* ---- FIFO and direct hand-off --------------------------------------------
 * Waiters queued in a known order get permits in that order, and a release
 * while someone waits hands the permit over: a poll right after the release
 * finds none. */

static gh_sem sf_sem;
static _Atomic int sf_arrived, sf_seq;
static int sf_order[4];

static void *sf_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&sf_arrived, 1);
    int r = gh_sem_acquire(&sf_sem, -1);
    if (r == 0)
        sf_order[atomic_fetch_add(&sf_seq, 1)] = i;
    return RC(r);
}

static void *sf_main(void *arg)
{
    (void)arg;
    assert_int_equal(gh_sem_init(&sf_sem, 0), 0);
    gh_greenlet *g[4];
    for (int i = 0; i < 4; i++) {
        g[i] = spawn_on(1 - i % 2, sf_waiter, RC(i));
        wait_count(&sf_arrived, i + 1, "waiter");
        settle();
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(gh_sem_release(&sf_sem), 0);
        assert_int_equal(gh_sem_acquire(&sf_sem, 0), ETIMEDOUT);   /* handed over */
        assert_int_equal(gh_sem_value(&sf_sem), 0);
        wait_count(&sf_seq, i + 1, "permit taken");
        assert_int_equal(sf_order[i], i);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(join_rc(g[i]), 0);
    assert_int_equal(gh_sem_value(&sf_sem), 0);
    assert_int_equal(gh_sem_release(&sf_sem), 0);
    assert_int_equal(gh_sem_value(&sf_sem), 1);
    assert_int_equal(gh_sem_acquire(&sf_sem, 0), 0);
    assert_int_equal(gh_sem_destroy(&sf_sem), 0);
    return NULL;
}

static void test_sem_waiters_fifo_and_direct_handoff(void **state)
{
    (void)state;
    gh_test_run(2, sf_main, NULL);
}

/* ==== gh_cond ================================================================== */

/* ---- broadcast wakes every waiter ----------------------------------------
 * 32 greenlets on every hub and 2 plain threads wait in a predicate loop.  A
 * first broadcast with the predicate still false must wake each of them (each
 * notes it, then waits again); a second, with it true, lets them all out. */

enum { CB_G = 32, CB_T = 2, CB_N = CB_G + CB_T };
static struct {
    gh_mutex m;
    gh_cond c;
    int go, waiting;                 /* under m */
    _Atomic int woke[CB_N];
    _Atomic int woken;
} cb;

static void *cb_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    assert_int_equal(gh_mutex_lock(&cb.m), 0);
    cb.waiting++;
    while (!cb.go) {
        int r = gh_cond_wait(&cb.c, &cb.m, -1);
        if (r != 0)
            fail_msg("gh_cond_wait returned %d", r);
        if (atomic_exchange(&cb.woke[i], 1) == 0)
            atomic_fetch_add(&cb.woken, 1);
    }
    assert_int_equal(gh_mutex_unlock(&cb.m), 0);
    return NULL;
}

static int cb_waiting(void)
{
    assert_int_equal(gh_mutex_lock(&cb.m), 0);
    int w = cb.waiting;
    assert_int_equal(gh_mutex_unlock(&cb.m), 0);
    return w;
}

static void *cb_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    assert_int_equal(gh_mutex_init(&cb.m), 0);
    assert_int_equal(gh_cond_init(&cb.c), 0);
    cb.go = cb.waiting = 0;
    atomic_store(&cb.woken, 0);
    for (int i = 0; i < CB_N; i++)
        atomic_store(&cb.woke[i], 0);
    gh_greenlet *g[CB_G];
    for (int i = 0; i < CB_G; i++)
        g[i] = spawn_on(i % (int)hubs, cb_waiter, RC(i));
    struct thr t[CB_T];
    for (int i = 0; i < CB_T; i++)
        thr_start(&t[i], cb_waiter, RC(CB_G + i));
    /* waiting is counted under m, which the waiters give up only inside
     * gh_cond_wait: once all are counted, all wait. */
    uint64_t t0 = now_us();
    while (cb_waiting() < CB_N) {
        assert_true(now_us() - t0 < 30000000u);
        gh_sleep_ms(1);
    }
    assert_int_equal(gh_mutex_lock(&cb.m), 0);
    assert_int_equal(gh_cond_broadcast(&cb.c), 0);
    assert_int_equal(gh_mutex_unlock(&cb.m), 0);
    wait_count(&cb.woken, CB_N, "waiters woken by one broadcast");
    assert_int_equal(gh_mutex_lock(&cb.m), 0);
    cb.go = 1;
    assert_int_equal(gh_cond_broadcast(&cb.c), 0);
    assert_int_equal(gh_mutex_unlock(&cb.m), 0);
    for (int i = 0; i < CB_G; i++)
        join_ok(g[i]);
    for (int i = 0; i < CB_T; i++)
        thr_join(&t[i]);
    assert_int_equal(gh_cond_destroy(&cb.c), 0);
    assert_int_equal(gh_mutex_destroy(&cb.m), 0);
    return NULL;
}

static void test_cond_broadcast_wakes_every_waiter_on_2_hubs(void **state)
{
    (void)state;
    gh_test_run(2, cb_main, NULL);
}

static void test_cond_broadcast_wakes_every_waiter_on_4_hubs(void **state)
{
    (void)state;
    gh_test_run(4, cb_main, NULL);
}

/* ---- signal wakes one, the oldest ----------------------------------------
 * Four waiters, queued in a known order on both hubs, wait for a ticket.
 * Each signal comes with one ticket; the waiter that takes it must be the
 * oldest still waiting ("Wakes the oldest waiter"), and each signal must
 * let exactly one more through. */

static struct {
    gh_mutex m;
    gh_cond c;
    int tickets, arrived;       /* under m */
    _Atomic int seq;
    int order[4];
} cs = { GH_MUTEX_INITIALIZER, GH_COND_INITIALIZER, 0, 0, 0, { 0 } };

static void *cs_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    assert_int_equal(gh_mutex_lock(&cs.m), 0);
    cs.arrived++;
    while (cs.tickets == 0)
        assert_int_equal(gh_cond_wait(&cs.c, &cs.m, -1), 0);
    cs.tickets--;
    cs.order[atomic_fetch_add(&cs.seq, 1)] = i;
    assert_int_equal(gh_mutex_unlock(&cs.m), 0);
    return NULL;
}

static void *cs_main(void *arg)
{
    (void)arg;
    gh_greenlet *g[4];
    for (int i = 0; i < 4; i++) {
        g[i] = spawn_on(1 - i % 2, cs_waiter, RC(i));
        for (;;) {
            assert_int_equal(gh_mutex_lock(&cs.m), 0);
            int a = cs.arrived;
            assert_int_equal(gh_mutex_unlock(&cs.m), 0);
            if (a == i + 1)
                break;
            gh_sleep_ms(1);
        }
    }
    for (int k = 0; k < 4; k++) {
        assert_int_equal(gh_mutex_lock(&cs.m), 0);
        cs.tickets++;
        assert_int_equal(gh_cond_signal(&cs.c), 0);
        assert_int_equal(gh_mutex_unlock(&cs.m), 0);
        wait_count(&cs.seq, k + 1, "signalled waiter");
        gh_sleep_ms(5);
        assert_int_equal(atomic_load(&cs.seq), k + 1);
        assert_int_equal(cs.order[k], k);
    }
    for (int i = 0; i < 4; i++)
        join_ok(g[i]);
    /* no waiters: signal and broadcast are no-ops */
    assert_int_equal(gh_cond_signal(&cs.c), 0);
    assert_int_equal(gh_cond_broadcast(&cs.c), 0);
    assert_int_equal(gh_cond_destroy(&cs.c), 0);
    return NULL;
}

static void test_cond_signal_wakes_the_oldest_waiter(void **state)
{
    (void)state;
    gh_test_run(2, cs_main, NULL);
}

/* ---- the mutex is held again on every return ---------------------------- 
 * A waiter whose wait times out while another greenlet holds the mutex must
 * not return before that greenlet unlocks. */

static gh_mutex cr_m = GH_MUTEX_INITIALIZER;
static gh_cond cr_c = GH_COND_INITIALIZER;
static _Atomic int cr_arrived, cr_released;

static void *cr_waiter(void *arg)
{
    (void)arg;
    assert_int_equal(gh_mutex_lock(&cr_m), 0);
    atomic_store(&cr_arrived, 1);
    EXPECT_TIMEOUT(gh_cond_wait(&cr_c, &cr_m, 30), 30);
    int released = atomic_load(&cr_released);
    assert_int_equal(gh_mutex_trylock(&cr_m), EBUSY);   /* held: by us */
    assert_int_equal(gh_mutex_unlock(&cr_m), 0);
    return RC(released);
}

static void *cr_main(void *arg)
{
    (void)arg;
    gh_greenlet *w = spawn_on(1, cr_waiter, NULL);
    wait_count(&cr_arrived, 1, "cond waiter");
    /* granted only once the waiter is inside gh_cond_wait */
    assert_int_equal(gh_mutex_lock(&cr_m), 0);
    gh_sleep_ms(150);                  /* the waiter's 30 ms pass meanwhile */
    atomic_store(&cr_released, 1);
    assert_int_equal(gh_mutex_unlock(&cr_m), 0);
    if (join_rc(w) != 1)
        fail_msg("gh_cond_wait returned ETIMEDOUT while another greenlet held the mutex");
    assert_int_equal(gh_mutex_trylock(&cr_m), 0);
    assert_int_equal(gh_mutex_unlock(&cr_m), 0);
    assert_int_equal(gh_cond_destroy(&cr_c), 0);
    return NULL;
}

static void test_cond_timeout_returns_with_mutex_held(void **state)
{
    (void)state;
    gh_test_run(2, cr_main, NULL);
}

/* ==== gh_event ================================================================= */

enum { EV_N = 32 };
static gh_event ev_ev;
static _Atomic int ev_arrived, ev_returned;

static void *ev_waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ev_arrived, 1);
    int r = gh_event_wait(&ev_ev, -1);
    atomic_fetch_add(&ev_returned, 1);
    return RC(r);
}

static void *ev_set_check(void *arg)
{
    (void)arg;
    uint64_t t0 = now_us();
    int r = gh_event_wait(&ev_ev, -1);
    uint64_t el = now_us() - t0;
    if (r == 0 && el > 100000)
        fail_msg("wait on a set event took %llu us", (unsigned long long)el);
    return RC(r);
}

static void *ev_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    atomic_store(&ev_arrived, 0);
    atomic_store(&ev_returned, 0);
    assert_int_equal(gh_event_init(&ev_ev), 0);
    assert_int_equal(gh_event_is_set(&ev_ev), 0);
    gh_greenlet *g[EV_N];
    /* set wakes every waiter, on every hub */
    for (int i = 0; i < EV_N; i++)
        g[i] = (i & 1) ? spawn_any(ev_waiter, NULL) : spawn_on(i % (int)hubs, ev_waiter, NULL);
    wait_count(&ev_arrived, EV_N, "event waiters");
    settle();
    assert_int_equal(atomic_load(&ev_returned), 0);
    assert_int_equal(gh_event_set(&ev_ev), 0);
    for (int i = 0; i < EV_N; i++)
        assert_int_equal(join_rc(g[i]), 0);
    /* set before wait returns at once, on every hub, and stays set */
    assert_int_equal(gh_event_is_set(&ev_ev), 1);
    assert_int_equal(gh_event_wait(&ev_ev, 0), 0);
    for (unsigned h = 0; h < hubs; h++)
        assert_int_equal(join_rc(spawn_on((int)h, ev_set_check, NULL)), 0);
    assert_int_equal(gh_event_set(&ev_ev), 0);     /* setting twice is harmless */
    assert_int_equal(gh_event_is_set(&ev_ev), 1);
    /* clear */
    assert_int_equal(gh_event_clear(&ev_ev), 0);
    assert_int_equal(gh_event_is_set(&ev_ev), 0);
    assert_int_equal(gh_event_wait(&ev_ev, 0), ETIMEDOUT);
    EXPECT_TIMEOUT(gh_event_wait(&ev_ev, 30), 30);
    /* set then clear at once: the waiters it woke still return 0 */
    atomic_store(&ev_arrived, 0);
    atomic_store(&ev_returned, 0);
    for (int i = 0; i < EV_N; i++)
        g[i] = spawn_on(i % (int)hubs, ev_waiter, NULL);
    wait_count(&ev_arrived, EV_N, "event waiters");
    settle();
    assert_int_equal(gh_event_set(&ev_ev), 0);
    assert_int_equal(gh_event_clear(&ev_ev), 0);
    for (int i = 0; i < EV_N; i++)
        assert_int_equal(join_rc(g[i]), 0);
    assert_int_equal(gh_event_destroy(&ev_ev), 0);
    return NULL;
}

static void test_event_set_wakes_all_and_set_before_wait_returns_at_once(void **state)
{
    (void)state;
    gh_test_run(4, ev_main, NULL);
}

/* ==== gh_pool and gh_imap ====================================================== */

static _Atomic int pl_cur, pl_max, pl_done;

static void pl_enter(void)
{
    int c = atomic_fetch_add(&pl_cur, 1) + 1;
    int m = atomic_load(&pl_max);
    while (c > m && !atomic_compare_exchange_weak(&pl_max, &m, c))
        ;
}

static void pl_leave(void)
{
    atomic_fetch_sub(&pl_cur, 1);
    atomic_fetch_add(&pl_done, 1);
}

static void pl_reset(void)
{
    atomic_store(&pl_cur, 0);
    atomic_store(&pl_max, 0);
    atomic_store(&pl_done, 0);
}

/* ---- a pool of K runs at most K at once, and K do run at once ------------
 * ... also in the second half of the run: a pool that lost a slot now and
 * then would run K at first, then fewer.  A task
 * stays until K are in (or fewer than K are left to come), so that "K at
 * once" does not depend on how fast the spawner runs: under TSan on a busy
 * machine a fixed 3 ms sleep was once shorter than five spawns.  Bounded by
 * 2 s, so a pool that never lets K in fails on the count, not by hanging. */

enum { POOL_K = 5, POOL_TASKS = 60 };
static _Atomic int pl_max_late;

static void *pl_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    pl_enter();
    if (i >= POOL_TASKS / 2) {
        int c = atomic_load(&pl_cur), m = atomic_load(&pl_max_late);
        while (c > m && !atomic_compare_exchange_weak(&pl_max_late, &m, c))
            ;
    }
    for (int t = 0; t < 2000 && atomic_load(&pl_cur) < POOL_K &&
                    POOL_TASKS - atomic_load(&pl_done) >= POOL_K; t++)
        gh_sleep_ms(1);
    gh_sleep_ms(1);
    pl_leave();
    return NULL;
}

static void *pl_main(void *arg)
{
    (void)arg;
    pl_reset();
    atomic_store(&pl_max_late, 0);
    gh_pool *pool = gh_pool_new(POOL_K);
    assert_non_null(pool);
    for (uintptr_t i = 0; i < POOL_TASKS; i++) {
        assert_int_equal(gh_pool_spawn(pool, pl_task, (void *)i), 0);
        size_t running = gh_pool_running(pool);
        if (running > POOL_K)
            fail_msg("%zu running in a pool of %d", running, POOL_K);
    }
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_pool_running(pool), 0);
    assert_int_equal(atomic_load(&pl_done), POOL_TASKS);
    assert_int_equal(atomic_load(&pl_max), POOL_K);
    assert_int_equal(atomic_load(&pl_max_late), POOL_K);
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_pool_max_concurrency_is_exactly_k_on_2_hubs(void **state)
{
    (void)state;
    gh_test_run(2, pl_main, NULL);
}

static void test_pool_max_concurrency_is_exactly_k_on_4_hubs(void **state)
{
    (void)state;
    gh_test_run(4, pl_main, NULL);
}

/* ---- imap: input order, while tasks finish out of order ------------------ */

enum { IM_N = 60, IM_K = 4 };
static _Atomic int im_fin_seq;
static int im_fin[IM_N];

static void *im_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    pl_enter();
    gh_sleep_ms((int64_t)((IM_N - i) % 7));
    im_fin[atomic_fetch_add(&im_fin_seq, 1)] = (int)i;
    pl_leave();
    return (void *)(i * 3 + 1);
}

static void *im_main(void *arg)
{
    (void)arg;
    pl_reset();
    void *args[IM_N];
    for (uintptr_t i = 0; i < IM_N; i++)
        args[i] = (void *)i;
    gh_pool *pool = gh_pool_new(IM_K);
    gh_imap *it = gh_pool_imap(pool, im_task, args, IM_N);
    assert_non_null(it);
    void *r;
    for (uintptr_t i = 0; i < IM_N; i++) {
        int e = gh_imap_next(it, &r);
        if (e != 0)
            fail_msg("gh_imap_next returned %d at %lu", e, (unsigned long)i);
        if (r != (void *)(i * 3 + 1))
            fail_msg("imap result %lu is %p, expected %p", (unsigned long)i, r,
                     (void *)(i * 3 + 1));
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_next_timeout(it, &r, 0), ENOENT);
    assert_int_equal(gh_imap_next_timeout(it, &r, 100), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(atomic_load(&pl_done), IM_N);
    assert_true(atomic_load(&pl_max) <= IM_K);
    assert_int_equal(atomic_load(&pl_max), IM_K);
    int inversions = 0;
    for (int k = 1; k < IM_N; k++)
        inversions += im_fin[k] < im_fin[k - 1];
    print_message("imap: %d finish-order inversions\n", inversions);
    assert_true(inversions > 0);      /* the tasks did finish out of order */
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_pool_imap_results_in_input_order(void **state)
{
    (void)state;
    gh_test_run(2, im_main, NULL);
}

/* ---- imap streams results while later calls still run ------------------- 
 * 30 calls of 20 ms on a pool of 2 take >= 300 ms; the first result must
 * come long before that, and the whole run can't be faster than the limit
 * allows. */

static void *slow20(void *arg)
{
    pl_enter();
    gh_sleep_ms(20);
    pl_leave();
    return arg;
}

static void *ims_main(void *arg)
{
    (void)arg;
    pl_reset();
    enum { N = 30 };
    void *args[N];
    for (uintptr_t i = 0; i < N; i++)
        args[i] = (void *)(i + 1);
    gh_pool *pool = gh_pool_new(2);
    uint64_t t0 = now_us();
    gh_imap *it = gh_pool_imap(pool, slow20, args, N);
    assert_non_null(it);
    void *r;
    assert_int_equal(gh_imap_next(it, &r), 0);
    uint64_t first = now_us() - t0;
    assert_ptr_equal(r, (void *)1);
    for (uintptr_t i = 1; i < N; i++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, (void *)(i + 1));
    }
    uint64_t all = now_us() - t0;
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    print_message("imap: first result after %llu us, all after %llu us\n",
                  (unsigned long long)first, (unsigned long long)all);
    if (first > 200000)
        fail_msg("first imap result only after %llu us", (unsigned long long)first);
    assert_true(all >= 300000);
    assert_int_equal(atomic_load(&pl_max), 2);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_pool_imap_streams_results_as_they_come(void **state)
{
    (void)state;
    gh_test_run(2, ims_main, NULL);
}

/* ---- imap_unordered: every result once, then ENOENT; in finish order ----- */

enum { IU_N = 200 };
static _Atomic unsigned char iu_seen[IU_N];

static void *iu_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    gh_sleep_ms((int64_t)((i * 7919) % 5));
    return (void *)(i + 1);
}

static void *rev_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    gh_sleep_ms((int64_t)(15 * (8 - i)));
    return (void *)(i + 1);
}

static void *iu_main(void *arg)
{
    (void)arg;
    void *args[IU_N];
    for (uintptr_t i = 0; i < IU_N; i++)
        args[i] = (void *)i;
    gh_pool *pool = gh_pool_new(8);
    gh_imap *it = gh_pool_imap_unordered(pool, iu_task, args, IU_N);
    assert_non_null(it);
    void *r;
    for (int k = 0; k < IU_N; k++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        uintptr_t v = (uintptr_t)r;
        if (v < 1 || v > IU_N)
            fail_msg("imap_unordered result %p out of range", r);
        if (atomic_fetch_add(&iu_seen[v - 1], 1) != 0)
            fail_msg("imap_unordered handed out result %lu twice", (unsigned long)v);
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    for (int i = 0; i < IU_N; i++)
        assert_int_equal(atomic_load(&iu_seen[i]), 1);

    /* Eight calls at once finishing in reverse input order, 15 ms apart:
     * handed out as they finish. */
    for (uintptr_t i = 0; i < 8; i++)
        args[i] = (void *)i;
    it = gh_pool_imap_unordered(pool, rev_task, args, 8);
    assert_non_null(it);
    for (uintptr_t k = 0; k < 8; k++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, (void *)(8 - k));
    }
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_pool_imap_unordered_returns_all_in_finish_order(void **state)
{
    (void)state;
    gh_test_run(4, iu_main, NULL);
}

/* ---- imap: n = 0; shares the pool's limit; freed early ------------------ */

static _Atomic int ie_started;

static void *ie_task(void *arg)
{
    atomic_fetch_add(&ie_started, 1);
    gh_sleep_ms(20);
    return arg;
}

static void *ie_main(void *arg)
{
    (void)arg;
    void *r = (void *)1;
    atomic_store(&ie_started, 0);
    gh_pool *pool = gh_pool_new(3);
    /* n = 0 (args may be NULL then): exhausted at once, and stays so */
    gh_imap *it = gh_pool_imap(pool, ie_task, NULL, 0);
    assert_non_null(it);
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_next_timeout(it, &r, 50), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    it = gh_pool_imap_unordered(pool, ie_task, NULL, 0);
    assert_non_null(it);
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(atomic_load(&ie_started), 0);

    /* Two of three slots taken by other work: imap's calls run one at a
     * time, and still all complete. */
    pl_reset();
    assert_int_equal(gh_event_init(&gate), 0);
    assert_int_equal(gh_pool_spawn(pool, gate_fn, NULL), 0);
    assert_int_equal(gh_pool_spawn(pool, gate_fn, NULL), 0);
    void *args[100];
    for (uintptr_t i = 0; i < 100; i++)
        args[i] = (void *)(i + 1);
    it = gh_pool_imap(pool, slow20, args, 6);
    for (uintptr_t i = 0; i < 6; i++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, (void *)(i + 1));
    }
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(atomic_load(&pl_max), 1);
    assert_int_equal(gh_pool_running(pool), 2);
    assert_int_equal(gh_event_set(&gate), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);

    /* Freed after one result of 100: no new calls start, the running ones
     * finish on the pool, nothing crashes or leaks (ASan checks). */
    it = gh_pool_imap(pool, ie_task, args, 100);
    assert_non_null(it);
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_ptr_equal(r, (void *)1);
    assert_int_equal(gh_imap_free(it), 0);
    int at_free = atomic_load(&ie_started);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    int started = atomic_load(&ie_started);
    print_message("imap freed early: %d started at the free, %d in all\n", at_free, started);
    if (started > 20)
        fail_msg("%d of 100 calls started after gh_imap_free", started);
    /* the unordered kind too */
    atomic_store(&ie_started, 0);
    it = gh_pool_imap_unordered(pool, ie_task, args, 100);
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_true(atomic_load(&ie_started) <= 20);
    /* and the pool still works */
    atomic_store(&marks, 0);
    assert_int_equal(gh_pool_spawn(pool, mark_fn, NULL), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(atomic_load(&marks), 1);
    assert_int_equal(gh_pool_free(pool), 0);
    assert_int_equal(gh_event_destroy(&gate), 0);
    return NULL;
}

static void test_pool_imap_empty_shared_limit_and_early_free(void **state)
{
    (void)state;
    gh_test_run(2, ie_main, NULL);
}

/* ==== gh_group ================================================================= */

static gh_group *gr_grp;
static _Atomic int gr_spawned, gr_finished;

static void *gr_child(void *arg)
{
    (void)arg;
    gh_sleep_ms(10);
    atomic_fetch_add(&gr_finished, 1);
    return NULL;
}

static void *gr_member(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    gh_sleep_ms((int64_t)(i % 7));
    if (i % 5 == 0) {          /* members spawn members: join waits for those too */
        atomic_fetch_add(&gr_spawned, 1);
        assert_int_equal(gh_group_spawn(gr_grp, gr_child, NULL), 0);
    }
    atomic_fetch_add(&gr_finished, 1);
    return NULL;
}

static void *gr_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    int n = GH_TSAN ? 300 : 1000;
    atomic_store(&gr_spawned, 0);
    atomic_store(&gr_finished, 0);
    gr_grp = gh_group_new();
    assert_non_null(gr_grp);
    assert_int_equal(gh_group_join(gr_grp, 0), 0);      /* empty: at once */
    assert_int_equal(gh_group_join(gr_grp, -1), 0);
    for (int i = 0; i < n; i++) {
        atomic_fetch_add(&gr_spawned, 1);
        if (i & 1) {
            gh_spawn_opts o = { .name = "member", .hub = i % (int)hubs, .pinned = 1 };
            assert_int_equal(gh_group_spawn_with(gr_grp, &o, gr_member, (void *)(uintptr_t)i), 0);
        } else {
            assert_int_equal(gh_group_spawn(gr_grp, gr_member, (void *)(uintptr_t)i), 0);
        }
    }
    assert_true(gh_group_size(gr_grp) > 0);
    assert_int_equal(gh_group_join(gr_grp, JOIN_MS), 0);
    assert_int_equal(atomic_load(&gr_finished), atomic_load(&gr_spawned));
    assert_int_equal(atomic_load(&gr_spawned), n + (n + 4) / 5);
    assert_int_equal(gh_group_size(gr_grp), 0);
    assert_int_equal(gh_group_join(gr_grp, 0), 0);
    assert_int_equal(gh_group_free(gr_grp), 0);
    return NULL;
}

static void test_group_join_waits_for_every_member(void **state)
{
    (void)state;
    gh_test_run(4, gr_main, NULL);
}

/* ---- join timeout; free while running; kill ------------------------------ */

enum { GK_N = 20 };
static gh_event gk_never;
static _Atomic int gk_arrived;
static int gk_rc[GK_N];

static void *gk_member(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    atomic_fetch_add(&gk_arrived, 1);
    gk_rc[i] = (i & 1) ? gh_sleep_ms(60000) : gh_event_wait(&gk_never, -1);
    return NULL;
}

static void *gk_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    atomic_store(&gk_arrived, 0);
    assert_int_equal(gh_event_init(&gk_never), 0);
    gh_group *grp = gh_group_new();
    for (int i = 0; i < GK_N; i++) {
        gk_rc[i] = -1;
        gh_spawn_opts o = { .hub = i % (int)hubs, .pinned = i % 3 == 0 };
        assert_int_equal(gh_group_spawn_with(grp, &o, gk_member, (void *)(uintptr_t)i), 0);
    }
    wait_count(&gk_arrived, GK_N, "group members");
    settle();
    EXPECT_TIMEOUT(gh_group_join(grp, 30), 30);
    assert_int_equal(gh_group_join(grp, 0), ETIMEDOUT);
    assert_int_equal(gh_group_size(grp), GK_N);
    assert_int_equal(gh_group_free(grp), EBUSY);          /* nothing freed */
    assert_int_equal(gh_group_size(grp), GK_N);
    uint64_t t0 = now_us();
    assert_int_equal(gh_group_kill(grp), 0);
    assert_int_equal(gh_group_join(grp, JOIN_MS), 0);
    assert_true(now_us() - t0 < 10000000u);
    for (int i = 0; i < GK_N; i++)
        if (gk_rc[i] != ECANCELED)
            fail_msg("killed member %d returned %d, expected ECANCELED", i, gk_rc[i]);
    assert_int_equal(gh_group_size(grp), 0);
    assert_int_equal(gh_group_kill(grp), 0);               /* empty: harmless */
    assert_int_equal(gh_group_free(grp), 0);

    /* the same through a pool */
    atomic_store(&gk_arrived, 0);
    gh_pool *pool = gh_pool_new(GK_N);
    for (int i = 0; i < GK_N; i++) {
        gk_rc[i] = -1;
        assert_int_equal(gh_pool_spawn(pool, gk_member, (void *)(uintptr_t)i), 0);
    }
    wait_count(&gk_arrived, GK_N, "pool members");
    settle();
    EXPECT_TIMEOUT(gh_pool_join(pool, 30), 30);
    assert_int_equal(gh_pool_running(pool), GK_N);
    assert_int_equal(gh_pool_free(pool), EBUSY);
    assert_int_equal(gh_pool_kill(pool), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    for (int i = 0; i < GK_N; i++)
        assert_int_equal(gk_rc[i], ECANCELED);
    assert_int_equal(gh_pool_running(pool), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    assert_int_equal(gh_event_destroy(&gk_never), 0);
    return NULL;
}

static void test_group_join_timeout_free_busy_and_kill(void **state)
{
    (void)state;
    gh_test_run(2, gk_main, NULL);
}

/* ==== timeouts on every primitive ============================================== */

/* The primitives that need no runtime, from whoever calls: a greenlet, a
 * plain thread beside a runtime, or a thread with no runtime at all. */
static void timeouts_basic(void)
{
    enum { T = 30 };
    void *it;
    /* sem */
    gh_sem s;
    assert_int_equal(gh_sem_init(&s, 0), 0);
    EXPECT_TIMEOUT(gh_sem_acquire(&s, T), T);
    assert_int_equal(gh_sem_acquire(&s, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_sem_acquire(&s, -1), T);
    assert_int_equal(gh_sem_value(&s), 0);
    assert_int_equal(gh_sem_release(&s), 0);
    assert_int_equal(gh_sem_value(&s), 1);
    assert_int_equal(gh_sem_acquire(&s, 0), 0);
    assert_int_equal(gh_sem_destroy(&s), 0);      /* no waiter left behind */
    /* mutex (held by the caller: not recursive, so this waits) */
    gh_mutex m;
    assert_int_equal(gh_mutex_init(&m), 0);
    assert_int_equal(gh_mutex_lock(&m), 0);
    EXPECT_TIMEOUT(gh_mutex_timedlock(&m, T), T);
    assert_int_equal(gh_mutex_timedlock(&m, 0), ETIMEDOUT);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);
    EXPECT_SCOPED_TIMEOUT(gh_mutex_lock(&m), T);
    EXPECT_SCOPED_TIMEOUT(gh_mutex_timedlock(&m, 5000), T);
    /* cond: m held again after each timeout */
    gh_cond c;
    assert_int_equal(gh_cond_init(&c), 0);
    EXPECT_TIMEOUT(gh_cond_wait(&c, &m, T), T);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);
    assert_int_equal(gh_cond_wait(&c, &m, 0), ETIMEDOUT);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);
    EXPECT_SCOPED_TIMEOUT(gh_cond_wait(&c, &m, -1), T);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);
    assert_int_equal(gh_mutex_unlock(&m), 0);
    assert_int_equal(gh_mutex_trylock(&m), 0);
    assert_int_equal(gh_mutex_unlock(&m), 0);
    assert_int_equal(gh_cond_destroy(&c), 0);
    assert_int_equal(gh_mutex_destroy(&m), 0);
    /* queue: get on empty, put on full; the timed-out put queued nothing */
    gh_queue *q = gh_queue_new(1);
    assert_non_null(q);
    EXPECT_TIMEOUT(gh_queue_get(q, &it, T), T);
    assert_int_equal(gh_queue_get(q, &it, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_queue_get(q, &it, -1), T);
    assert_int_equal(gh_queue_put(q, (void *)1, 0), 0);
    EXPECT_TIMEOUT(gh_queue_put(q, (void *)2, T), T);
    assert_int_equal(gh_queue_put(q, (void *)3, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_queue_put(q, (void *)4, -1), T);
    assert_int_equal(gh_queue_len(q), 1);
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)1);
    assert_int_equal(gh_queue_get(q, &it, 0), ETIMEDOUT);
    assert_int_equal(gh_queue_free(q), 0);
    /* event */
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    EXPECT_TIMEOUT(gh_event_wait(&ev, T), T);
    EXPECT_SCOPED_TIMEOUT(gh_event_wait(&ev, -1), T);
    assert_int_equal(gh_event_destroy(&ev), 0);
    /* a scope that already expired: waits fail at once, calls that need no
     * wait still complete */
    int tok = gh_timeout_begin(1);
    assert_true(tok >= 0);
    usleep(5000);
    assert_int_equal(gh_sem_init(&s, 1), 0);
    assert_int_equal(gh_sem_acquire(&s, -1), 0);
    uint64_t t0 = now_us();
    assert_int_equal(gh_sem_acquire(&s, -1), ETIMEDOUT);
    assert_true(now_us() - t0 < 1000000u);
    gh_timeout_end(tok);
    assert_int_equal(gh_sem_destroy(&s), 0);
}

/* Group join, pool spawn and imap_next: need a runtime. */
static void timeouts_runtime(void)
{
    enum { T = 30 };
    void *r;
    assert_int_equal(gh_event_init(&gate), 0);
    atomic_store(&marks, 0);
    gh_group *grp = gh_group_new();
    assert_int_equal(gh_group_spawn(grp, gate_fn, NULL), 0);
    EXPECT_TIMEOUT(gh_group_join(grp, T), T);
    assert_int_equal(gh_group_join(grp, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_group_join(grp, -1), T);
    assert_int_equal(gh_group_size(grp), 1);

    gh_pool *pool = gh_pool_new(1);
    assert_int_equal(gh_pool_spawn(pool, gate_fn, NULL), 0);
    EXPECT_TIMEOUT(gh_pool_spawn_timeout(pool, mark_fn, NULL, T), T);
    assert_int_equal(gh_pool_spawn_timeout(pool, mark_fn, NULL, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_pool_spawn(pool, mark_fn, NULL), T);
    EXPECT_TIMEOUT(gh_pool_join(pool, T), T);

    gh_pool *p2 = gh_pool_new(2);
    void *args[1] = { (void *)77 };
    gh_imap *it = gh_pool_imap(p2, gate_ret_fn, args, 1);
    assert_non_null(it);
    EXPECT_TIMEOUT(gh_imap_next_timeout(it, &r, T), T);
    assert_int_equal(gh_imap_next_timeout(it, &r, 0), ETIMEDOUT);
    EXPECT_SCOPED_TIMEOUT(gh_imap_next(it, &r), T);

    assert_int_equal(gh_event_set(&gate), 0);
    assert_int_equal(gh_group_join(grp, JOIN_MS), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(atomic_load(&marks), 0);   /* timed-out spawns spawned nothing */
    assert_int_equal(gh_pool_spawn_timeout(pool, mark_fn, NULL, 0), 0);   /* room now */
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(atomic_load(&marks), 1);
    /* the iterator goes on after its timeouts */
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_ptr_equal(r, (void *)77);
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(p2, JOIN_MS), 0);
    assert_int_equal(gh_pool_free(p2), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    assert_int_equal(gh_group_free(grp), 0);
    assert_int_equal(gh_event_destroy(&gate), 0);
}

/* mutex timedlock against a lock another greenlet holds */
static gh_mutex to_m = GH_MUTEX_INITIALIZER;

static void *to_locker(void *arg)
{
    (void)arg;
    EXPECT_TIMEOUT(gh_mutex_timedlock(&to_m, 30), 30);
    assert_int_equal(gh_mutex_timedlock(&to_m, 0), ETIMEDOUT);
    assert_int_equal(gh_mutex_trylock(&to_m), EBUSY);
    EXPECT_SCOPED_TIMEOUT(gh_mutex_lock(&to_m), 30);
    return NULL;
}

static void *to_thread(void *arg)
{
    (void)arg;
    timeouts_basic();
    timeouts_runtime();
    return NULL;
}

static void *to_main(void *arg)
{
    (void)arg;
    timeouts_basic();
    timeouts_runtime();
    assert_int_equal(gh_mutex_lock(&to_m), 0);
    join_ok(spawn_on(1, to_locker, NULL));
    assert_int_equal(gh_mutex_unlock(&to_m), 0);
    /* the same from a plain thread beside the runtime */
    struct thr t;
    thr_start(&t, to_thread, NULL);
    thr_join(&t);
    return NULL;
}

static void test_timeouts_on_every_primitive(void **state)
{
    (void)state;
    gh_test_run(2, to_main, NULL);
}

/* ==== kill of a waiter, on every primitive ===================================
 * Two waiters, the first killed: it returns ECANCELED, the second still gets
 * through, and the primitive is left as if the first had never come. */

static _Atomic int kw_arrived;

/* sem */
static gh_sem k_sem;

static void *ksem_waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_sem_acquire(&k_sem, -1));
}

static void *ksem_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    assert_int_equal(gh_sem_init(&k_sem, 0), 0);
    gh_greenlet *w0 = spawn_on(1, ksem_waiter, NULL);
    wait_count(&kw_arrived, 1, "waiter 0");
    settle();
    gh_greenlet *w1 = spawn_on(0, ksem_waiter, NULL);
    wait_count(&kw_arrived, 2, "waiter 1");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_sem_value(&k_sem), 0);
    assert_int_equal(gh_sem_release(&k_sem), 0);
    assert_int_equal(join_rc(w1), 0);
    assert_int_equal(gh_sem_value(&k_sem), 0);     /* w1 holds the one permit */
    assert_int_equal(gh_sem_release(&k_sem), 0);
    assert_int_equal(gh_sem_value(&k_sem), 1);
    assert_int_equal(gh_sem_acquire(&k_sem, 0), 0);
    assert_int_equal(gh_sem_destroy(&k_sem), 0);   /* nobody left queued */
    return NULL;
}

static void test_kill_sem_waiter_next_still_gets_permit(void **state)
{
    (void)state;
    gh_test_run(2, ksem_main, NULL);
}

/* mutex, through gh_mutex_lock and gh_mutex_timedlock */
static gh_mutex k_m = GH_MUTEX_INITIALIZER;
static unsigned long k_counter;

static void *kmx_waiter(void *arg)
{
    int timed = (int)(intptr_t)arg;
    atomic_fetch_add(&kw_arrived, 1);
    int r = timed ? gh_mutex_timedlock(&k_m, 60000) : gh_mutex_lock(&k_m);
    if (r == 0) {
        k_counter++;
        gh_sleep_ms(10);
        assert_int_equal(gh_mutex_unlock(&k_m), 0);
    }
    return RC(r);
}

static void *kmx_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    for (int timed = 0; timed < 2; timed++) {
        atomic_store(&kw_arrived, 0);
        k_counter = 0;
        assert_int_equal(gh_mutex_lock(&k_m), 0);
        gh_greenlet *w0 = spawn_on(1, kmx_waiter, RC(timed));
        wait_count(&kw_arrived, 1, "waiter 0");
        settle();
        gh_greenlet *w1 = spawn_on(0, kmx_waiter, RC(timed));
        wait_count(&kw_arrived, 2, "waiter 1");
        settle();
        assert_int_equal(gh_kill(w0), 0);
        assert_int_equal(join_rc(w0), ECANCELED);
        assert_int_equal(k_counter, 0);
        assert_int_equal(gh_mutex_unlock(&k_m), 0);
        assert_int_equal(join_rc(w1), 0);
        assert_int_equal(k_counter, 1);
        /* the killed waiter holds nothing: the lock is free */
        assert_int_equal(gh_mutex_trylock(&k_m), 0);
        assert_int_equal(gh_mutex_unlock(&k_m), 0);
        assert_int_equal(gh_mutex_destroy(&k_m), 0);
    }
    return NULL;
}

static void test_kill_mutex_waiter_next_still_gets_lock(void **state)
{
    (void)state;
    gh_test_run(2, kmx_main, NULL);
}

/* cond: the killed waiter returns ECANCELED holding the mutex (so not before
 * the holder unlocks), and the one signal that follows wakes the other. */
static struct {
    gh_mutex m;
    gh_cond c;
    int go, arrived;       /* under m */
    _Atomic int released;
} kc = { GH_MUTEX_INITIALIZER, GH_COND_INITIALIZER, 0, 0, 0 };

static void *kc_waiter(void *arg)
{
    (void)arg;
    assert_int_equal(gh_mutex_lock(&kc.m), 0);
    kc.arrived++;
    int r = 0;
    while (!kc.go && (r = gh_cond_wait(&kc.c, &kc.m, -1)) == 0)
        ;
    int released = atomic_load(&kc.released);
    assert_int_equal(gh_mutex_trylock(&kc.m), EBUSY);   /* held, by us */
    assert_int_equal(gh_mutex_unlock(&kc.m), 0);
    return RC(r == ECANCELED ? (released ? 100 : 101) : r);
}

static int kc_arrived(void)
{
    assert_int_equal(gh_mutex_lock(&kc.m), 0);
    int a = kc.arrived;
    assert_int_equal(gh_mutex_unlock(&kc.m), 0);
    return a;
}

static void *kc_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    gh_greenlet *w0 = spawn_on(1, kc_waiter, NULL);
    while (kc_arrived() < 1)
        gh_sleep_ms(1);
    gh_greenlet *w1 = spawn_on(0, kc_waiter, NULL);
    while (kc_arrived() < 2)
        gh_sleep_ms(1);
    assert_int_equal(gh_mutex_lock(&kc.m), 0);
    assert_int_equal(gh_kill(w0), 0);
    gh_sleep_ms(50);
    atomic_store(&kc.released, 1);
    assert_int_equal(gh_mutex_unlock(&kc.m), 0);
    int r0 = join_rc(w0);
    if (r0 == 101)
        fail_msg("killed cond waiter returned while another greenlet held the mutex");
    assert_int_equal(r0, 100);
    assert_int_equal(gh_mutex_lock(&kc.m), 0);
    kc.go = 1;
    assert_int_equal(gh_cond_signal(&kc.c), 0);
    assert_int_equal(gh_mutex_unlock(&kc.m), 0);
    assert_int_equal(join_rc(w1), 0);
    assert_int_equal(gh_cond_destroy(&kc.c), 0);
    assert_int_equal(gh_mutex_destroy(&kc.m), 0);
    return NULL;
}

static void test_kill_cond_waiter_holds_mutex_and_signal_reaches_next(void **state)
{
    (void)state;
    gh_test_run(2, kc_main, NULL);
}

/* queue get: the killed getter eats nothing */
static void *kqg_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    void *it;
    gh_queue *q = gh_queue_new(4);
    struct qw g0 = { .q = q, .timeout = -1, .arrived = &kw_arrived };
    struct qw g1 = g0;
    gh_greenlet *w0 = spawn_on(1, q_getter, &g0);
    wait_count(&kw_arrived, 1, "getter 0");
    settle();
    gh_greenlet *w1 = spawn_on(0, q_getter, &g1);
    wait_count(&kw_arrived, 2, "getter 1");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_queue_put(q, (void *)0x11, 0), 0);
    assert_int_equal(join_rc(w1), 0);
    assert_ptr_equal(g1.item, (void *)0x11);
    assert_int_equal(gh_queue_len(q), 0);
    assert_int_equal(gh_queue_put(q, (void *)0x12, 0), 0);
    assert_int_equal(gh_queue_len(q), 1);                 /* nobody ate it */
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)0x12);
    assert_int_equal(gh_queue_free(q), 0);                /* no waiter left */
    return NULL;
}

static void test_kill_queue_getter_next_gets_item(void **state)
{
    (void)state;
    gh_test_run(2, kqg_main, NULL);
}

/* queue put: the killed putter's item is not queued */
static void *kqp_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    void *it;
    gh_queue *q = gh_queue_new(1);
    assert_int_equal(gh_queue_put(q, (void *)0x20, 0), 0);
    struct qw p0 = { .q = q, .item = (void *)0x21, .timeout = -1, .arrived = &kw_arrived };
    struct qw p1 = { .q = q, .item = (void *)0x22, .timeout = -1, .arrived = &kw_arrived };
    gh_greenlet *w0 = spawn_on(1, q_putter, &p0);
    wait_count(&kw_arrived, 1, "putter 0");
    settle();
    gh_greenlet *w1 = spawn_on(0, q_putter, &p1);
    wait_count(&kw_arrived, 2, "putter 1");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_queue_len(q), 1);
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)0x20);
    assert_int_equal(join_rc(w1), 0);
    assert_int_equal(gh_queue_get(q, &it, 1000), 0);
    assert_ptr_equal(it, (void *)0x22);
    assert_int_equal(gh_queue_get(q, &it, 20), ETIMEDOUT);   /* 0x21 never got in */
    assert_int_equal(gh_queue_len(q), 0);
    assert_int_equal(gh_queue_free(q), 0);
    return NULL;
}

static void test_kill_queue_putter_item_not_queued(void **state)
{
    (void)state;
    gh_test_run(2, kqp_main, NULL);
}

/* event, group join, pool spawn, imap_next */
static gh_event k_ev;

static void *kev_waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_event_wait(&k_ev, -1));
}

static void *kgrp_joiner(void *arg)
{
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_group_join(arg, -1));
}

static gh_pool *k_pool;
static _Atomic int k_ran[2];

static void *k_mark(void *arg)
{
    atomic_fetch_add(&k_ran[(intptr_t)arg], 1);
    return NULL;
}

static void *kpool_spawner(void *arg)
{
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_pool_spawn(k_pool, k_mark, arg));
}

static void *kimap_reader(void *arg)
{
    void *r = (void *)0xbad;
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_imap_next(arg, &r));
}

static void *kmisc_main(void *arg)
{
    (void)arg;
    atomic_store(&kw_arrived, 0);
    /* event */
    assert_int_equal(gh_event_init(&k_ev), 0);
    gh_greenlet *w0 = spawn_on(1, kev_waiter, NULL);
    wait_count(&kw_arrived, 1, "event waiter 0");
    gh_greenlet *w1 = spawn_on(0, kev_waiter, NULL);
    wait_count(&kw_arrived, 2, "event waiter 1");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_event_set(&k_ev), 0);
    assert_int_equal(join_rc(w1), 0);
    assert_int_equal(gh_event_destroy(&k_ev), 0);

    /* group join: the joiner is cancelled, the group is untouched */
    assert_int_equal(gh_event_init(&gate), 0);
    gh_group *grp = gh_group_new();
    assert_int_equal(gh_group_spawn(grp, gate_fn, NULL), 0);
    atomic_store(&kw_arrived, 0);
    w0 = spawn_on(1, kgrp_joiner, grp);
    wait_count(&kw_arrived, 1, "group joiner");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_group_size(grp), 1);
    assert_int_equal(gh_event_set(&gate), 0);
    assert_int_equal(gh_group_join(grp, JOIN_MS), 0);
    assert_int_equal(gh_group_free(grp), 0);

    /* pool spawn: two spawners wait on a full pool, the first is killed and
     * spawns nothing; when room frees up the second gets in */
    assert_int_equal(gh_event_clear(&gate), 0);
    k_pool = gh_pool_new(1);
    assert_int_equal(gh_pool_spawn(k_pool, gate_fn, NULL), 0);
    atomic_store(&kw_arrived, 0);
    w0 = spawn_on(1, kpool_spawner, RC(0));
    wait_count(&kw_arrived, 1, "pool spawner 0");
    settle();
    w1 = spawn_on(0, kpool_spawner, RC(1));
    wait_count(&kw_arrived, 2, "pool spawner 1");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_pool_running(k_pool), 1);
    assert_int_equal(gh_event_set(&gate), 0);
    assert_int_equal(join_rc(w1), 0);
    assert_int_equal(gh_pool_join(k_pool, JOIN_MS), 0);
    assert_int_equal(atomic_load(&k_ran[0]), 0);
    assert_int_equal(atomic_load(&k_ran[1]), 1);
    assert_int_equal(gh_pool_free(k_pool), 0);

    /* imap_next: the killed reader takes no result; all still come out */
    assert_int_equal(gh_event_clear(&gate), 0);
    gh_pool *pool = gh_pool_new(2);
    void *args[4] = { (void *)1, (void *)2, (void *)3, (void *)4 };
    gh_imap *it = gh_pool_imap(pool, gate_ret_fn, args, 4);
    atomic_store(&kw_arrived, 0);
    w0 = spawn_on(1, kimap_reader, it);
    wait_count(&kw_arrived, 1, "imap reader");
    settle();
    assert_int_equal(gh_kill(w0), 0);
    assert_int_equal(join_rc(w0), ECANCELED);
    assert_int_equal(gh_event_set(&gate), 0);
    void *r;
    for (uintptr_t i = 1; i <= 4; i++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, (void *)i);
    }
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    assert_int_equal(gh_event_destroy(&gate), 0);
    return NULL;
}

static void test_kill_event_group_pool_and_imap_waiters(void **state)
{
    (void)state;
    gh_test_run(2, kmisc_main, NULL);
}

/* ---- a lone killed waiter leaves nothing behind ---------------------------
 * With a second waiter behind it, a waker would skip a dead entry left on
 * the list; alone, the destroy right after the kill finds it (EBUSY). */

static gh_mutex lone_m = GH_MUTEX_INITIALIZER;
static gh_cond lone_c = GH_COND_INITIALIZER;

static void *lone_sem(void *arg)
{
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_sem_acquire(arg, -1));
}

static void *lone_ev(void *arg)
{
    atomic_fetch_add(&kw_arrived, 1);
    return RC(gh_event_wait(arg, -1));
}

static void *lone_cond(void *arg)
{
    (void)arg;
    assert_int_equal(gh_mutex_lock(&lone_m), 0);
    atomic_fetch_add(&kw_arrived, 1);
    int r = gh_cond_wait(&lone_c, &lone_m, -1);
    assert_int_equal(gh_mutex_unlock(&lone_m), 0);
    return RC(r);
}

/* Spawns fn(arg) on hub 1, lets it park, kills it: it must return ECANCELED. */
static void kill_lone(gh_fn fn, void *arg)
{
    atomic_store(&kw_arrived, 0);
    gh_greenlet *g = spawn_on(1, fn, arg);
    wait_count(&kw_arrived, 1, "lone waiter");
    settle();
    assert_int_equal(gh_kill(g), 0);
    assert_int_equal(join_rc(g), ECANCELED);
}

static void *lone_main(void *arg)
{
    (void)arg;
    gh_sem s;
    gh_sem_init(&s, 0);
    kill_lone(lone_sem, &s);
    assert_int_equal(gh_sem_value(&s), 0);
    assert_int_equal(gh_sem_destroy(&s), 0);
    gh_event ev;
    gh_event_init(&ev);
    kill_lone(lone_ev, &ev);
    assert_int_equal(gh_event_destroy(&ev), 0);
    kill_lone(lone_cond, NULL);
    assert_int_equal(gh_cond_destroy(&lone_c), 0);
    assert_int_equal(gh_mutex_destroy(&lone_m), 0);
    gh_queue *q = gh_queue_new(1);
    struct qw g = { .q = q, .timeout = -1, .arrived = &kw_arrived };
    kill_lone(q_getter, &g);
    assert_int_equal(gh_queue_free(q), 0);
    q = gh_queue_new(1);
    assert_int_equal(gh_queue_put(q, (void *)1, 0), 0);
    struct qw p = { .q = q, .item = (void *)2, .timeout = -1, .arrived = &kw_arrived };
    kill_lone(q_putter, &p);
    assert_int_equal(gh_queue_len(q), 1);
    assert_int_equal(gh_queue_free(q), 0);
    return NULL;
}

static void test_kill_lone_waiter_leaves_nothing_behind(void **state)
{
    (void)state;
    gh_test_run(2, lone_main, NULL);
}

/* ---- a killed greenlet: calls that need no wait complete, waits fail ------ */

static _Atomic int kc2_go;
static gh_event kc2_set_ev, kc2_unset_ev;

static void *killed_fn(void *arg)
{
    (void)arg;
    while (!atomic_load(&kc2_go))
        gh_yield();                        /* never a wait: not cancelled */
    void *it;
    gh_sem s;
    gh_mutex m;
    gh_cond c;
    gh_sem_init(&s, 1);
    gh_mutex_init(&m);
    gh_cond_init(&c);
    gh_queue *q = gh_queue_new(2);
    gh_queue_put(q, (void *)5, 0);
    assert_int_equal(gh_event_wait(&kc2_set_ev, -1), 0);
    assert_int_equal(gh_event_wait(&kc2_unset_ev, -1), ECANCELED);
    assert_int_equal(gh_sem_acquire(&s, -1), 0);             /* a permit is free */
    assert_int_equal(gh_sem_acquire(&s, -1), ECANCELED);     /* none: at once */
    assert_int_equal(gh_sem_value(&s), 0);
    assert_int_equal(gh_sem_release(&s), 0);
    assert_int_equal(gh_mutex_lock(&m), 0);                  /* uncontended */
    assert_int_equal(gh_cond_wait(&c, &m, -1), ECANCELED);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);           /* held again */
    assert_int_equal(gh_mutex_unlock(&m), 0);
    assert_int_equal(gh_queue_get(q, &it, -1), 0);
    assert_ptr_equal(it, (void *)5);
    assert_int_equal(gh_queue_get(q, &it, -1), ECANCELED);
    assert_int_equal(gh_queue_put(q, (void *)6, -1), 0);     /* room */
    assert_int_equal(gh_queue_put(q, (void *)7, -1), 0);
    assert_int_equal(gh_queue_put(q, (void *)8, -1), ECANCELED);
    assert_int_equal(gh_queue_len(q), 2);
    assert_int_equal(gh_sleep_ms(1), ECANCELED);
    assert_int_equal(gh_queue_free(q), 0);
    assert_int_equal(gh_sem_destroy(&s), 0);
    assert_int_equal(gh_cond_destroy(&c), 0);
    assert_int_equal(gh_mutex_destroy(&m), 0);
    return (void *)1;
}

static void *kc2_main(void *arg)
{
    (void)arg;
    gh_event_init(&kc2_set_ev);
    gh_event_init(&kc2_unset_ev);
    gh_event_set(&kc2_set_ev);
    gh_greenlet *g = spawn_on(1, killed_fn, NULL);
    gh_sleep_ms(5);
    assert_int_equal(gh_kill(g), 0);
    atomic_store(&kc2_go, 1);
    uint64_t t0 = now_us();
    assert_ptr_equal(join_ok(g), (void *)1);
    assert_true(now_us() - t0 < 10000000u);
    return NULL;
}

static void test_killed_greenlet_completes_calls_that_need_no_wait(void **state)
{
    (void)state;
    gh_test_run(2, kc2_main, NULL);
}

/* ==== plain threads and greenlets ============================================== */

enum { PP_N = 10000 };
static gh_queue *pp_to_g, *pp_to_t;

static void *pp_thread(void *arg)
{
    (void)arg;
    void *it;
    for (uintptr_t i = 0; i < PP_N; i++) {
        assert_int_equal(gh_queue_put(pp_to_g, (void *)(i + 1), -1), 0);
        assert_int_equal(gh_queue_get(pp_to_t, &it, -1), 0);
        if (it != (void *)(i + 2))
            fail_msg("ping-pong %lu: got %p", (unsigned long)i, it);
    }
    assert_int_equal(gh_queue_close(pp_to_g), 0);
    return NULL;
}

static void *pp_greenlet(void *arg)
{
    (void)arg;
    void *it;
    int r;
    unsigned long n = 0;
    while ((r = gh_queue_get(pp_to_g, &it, -1)) == 0) {
        assert_int_equal(gh_queue_put(pp_to_t, (void *)((uintptr_t)it + 1), -1), 0);
        n++;
    }
    assert_int_equal(r, EPIPE);
    return (void *)(uintptr_t)n;
}

static void *pp_main(void *arg)
{
    (void)arg;
    pp_to_g = gh_queue_new(1);
    pp_to_t = gh_queue_new(1);
    gh_greenlet *g = spawn_any(pp_greenlet, NULL);
    uint64_t t0 = now_us();
    struct thr t;
    thr_start(&t, pp_thread, NULL);
    thr_join(&t);
    assert_int_equal((uintptr_t)join_ok(g), PP_N);
    print_message("thread <-> greenlet queue ping-pong: %.1f us per round trip\n",
                  (double)(now_us() - t0) / PP_N);
    assert_int_equal(gh_queue_free(pp_to_g), 0);
    assert_int_equal(gh_queue_free(pp_to_t), 0);
    return NULL;
}

static void test_plain_thread_and_greenlet_queue_ping_pong(void **state)
{
    (void)state;
    gh_test_run(2, pp_main, NULL);
}

/* A plain thread blocks on a sem, a cond and an event that a greenlet
 * releases, and releases a sem a greenlet waits on. */
static struct {
    gh_sem to_thread, to_greenlet;
    gh_mutex m;
    gh_cond c;
    int flag;              /* under m */
    gh_event ev;
    _Atomic int ready;     /* the thread is about to wait */
} tw;

static void *tw_thread(void *arg)
{
    (void)arg;
    uint64_t t0 = now_us();
    atomic_store(&tw.ready, 1);
    assert_int_equal(gh_sem_acquire(&tw.to_thread, -1), 0);
    assert_true(now_us() - t0 >= 30000);           /* it did wait */
    assert_int_equal(gh_mutex_lock(&tw.m), 0);
    while (!tw.flag)
        assert_int_equal(gh_cond_wait(&tw.c, &tw.m, -1), 0);
    assert_int_equal(gh_mutex_unlock(&tw.m), 0);
    assert_int_equal(gh_event_wait(&tw.ev, -1), 0);
    gh_sleep_ms(20);
    assert_int_equal(gh_sem_release(&tw.to_greenlet), 0);
    return NULL;
}

static void *tw_greenlet(void *arg)
{
    (void)arg;
    wait_count(&tw.ready, 1, "thread");
    gh_sleep_ms(30);
    assert_int_equal(gh_sem_release(&tw.to_thread), 0);
    gh_sleep_ms(20);
    assert_int_equal(gh_mutex_lock(&tw.m), 0);
    tw.flag = 1;
    assert_int_equal(gh_cond_signal(&tw.c), 0);
    assert_int_equal(gh_mutex_unlock(&tw.m), 0);
    gh_sleep_ms(20);
    assert_int_equal(gh_event_set(&tw.ev), 0);
    assert_int_equal(gh_sem_acquire(&tw.to_greenlet, -1), 0);
    return NULL;
}

static void *tw_main(void *arg)
{
    (void)arg;
    gh_sem_init(&tw.to_thread, 0);
    gh_sem_init(&tw.to_greenlet, 0);
    gh_mutex_init(&tw.m);
    gh_cond_init(&tw.c);
    gh_event_init(&tw.ev);
    struct thr t;
    thr_start(&t, tw_thread, NULL);
    gh_greenlet *g = spawn_on(1, tw_greenlet, NULL);
    thr_join(&t);
    join_ok(g);
    assert_int_equal(gh_sem_destroy(&tw.to_thread), 0);
    assert_int_equal(gh_sem_destroy(&tw.to_greenlet), 0);
    assert_int_equal(gh_cond_destroy(&tw.c), 0);
    assert_int_equal(gh_mutex_destroy(&tw.m), 0);
    assert_int_equal(gh_event_destroy(&tw.ev), 0);
    return NULL;
}

static void test_plain_thread_waits_on_sem_cond_event_released_by_greenlet(void **state)
{
    (void)state;
    gh_test_run(2, tw_main, NULL);
}

/* ---- no runtime at all: plain threads block, and time out ---------------- */

static gh_queue *nr_a, *nr_b;

static void *nr_echo(void *arg)
{
    (void)arg;
    void *it;
    while (gh_queue_get(nr_a, &it, -1) == 0)
        assert_int_equal(gh_queue_put(nr_b, it, -1), 0);
    return NULL;
}

static void test_primitives_work_without_a_runtime(void **state)
{
    (void)state;
    assert_int_equal(gh_hub_count(), 0);
    timeouts_basic();
    nr_a = gh_queue_new(1);
    nr_b = gh_queue_new(1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, nr_echo, NULL), 0);
    void *it;
    for (uintptr_t i = 1; i <= 1000; i++) {
        assert_int_equal(gh_queue_put(nr_a, (void *)i, -1), 0);
        assert_int_equal(gh_queue_get(nr_b, &it, -1), 0);
        assert_ptr_equal(it, (void *)i);
    }
    assert_int_equal(gh_queue_close(nr_a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(gh_queue_free(nr_a), 0);
    assert_int_equal(gh_queue_free(nr_b), 0);
}

/* ==== wakeups keep locality ==================================================
 * A greenlet woken by a greenlet on hub k runs next on hub k: an unpinned
 * greenlet woken alternately by wakers pinned to hubs 0 and 1 (through a
 * semaphore, then through a queue) changes hub at most wakeups. */

enum { LOC_ROUNDS = 2000 };
static gh_sem loc_req[2], loc_resp;
static gh_queue *loc_qreq[2], *loc_qresp;

static _Atomic int loc_stop;

static void *loc_sem_waker(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (;;) {
        assert_int_equal(gh_sem_acquire(&loc_req[k], -1), 0);
        if (atomic_load(&loc_stop))
            return NULL;
        assert_int_equal(gh_sem_release(&loc_resp), 0);
    }
}

static void *loc_q_waker(void *arg)
{
    int k = (int)(intptr_t)arg;
    void *it;
    while (gh_queue_get(loc_qreq[k], &it, -1) == 0)
        assert_int_equal(gh_queue_put(loc_qresp, it, -1), 0);
    return NULL;
}

static void *loc_migrant(void *arg)
{
    int use_queue = (int)(intptr_t)arg, moves = 0, hub = gh_hub_index();
    void *it;
    for (int i = 0; i < LOC_ROUNDS; i++) {
        if (use_queue) {
            assert_int_equal(gh_queue_put(loc_qreq[i & 1], (void *)1, -1), 0);
            assert_int_equal(gh_queue_get(loc_qresp, &it, -1), 0);
        } else {
            assert_int_equal(gh_sem_release(&loc_req[i & 1]), 0);
            assert_int_equal(gh_sem_acquire(&loc_resp, -1), 0);
        }
        if (gh_hub_index() != hub)
            moves++, hub = gh_hub_index();
    }
    return (void *)(intptr_t)moves;
}

static void *loc_main(void *arg)
{
    (void)arg;
    atomic_store(&loc_stop, 0);
    gh_sem_init(&loc_resp, 0);
    gh_greenlet *w[2];
    for (int k = 0; k < 2; k++) {
        gh_sem_init(&loc_req[k], 0);
        w[k] = spawn_on(k, loc_sem_waker, RC(k));
    }
    int sem_moves = (int)(intptr_t)join_ok(spawn_any(loc_migrant, RC(0)));
    atomic_store(&loc_stop, 1);
    for (int k = 0; k < 2; k++) {
        gh_sem_release(&loc_req[k]);
        join_ok(w[k]);
    }
    loc_qresp = gh_queue_new(1);
    for (int k = 0; k < 2; k++) {
        loc_qreq[k] = gh_queue_new(1);
        w[k] = spawn_on(k, loc_q_waker, RC(k));
    }
    int q_moves = (int)(intptr_t)join_ok(spawn_any(loc_migrant, RC(1)));
    for (int k = 0; k < 2; k++) {
        gh_queue_close(loc_qreq[k]);
        join_ok(w[k]);
        gh_queue_free(loc_qreq[k]);
    }
    gh_queue_free(loc_qresp);
    print_message("locality: %d (sem) and %d (queue) hub changes in %d wakeups\n",
                  sem_moves, q_moves, LOC_ROUNDS);
    if (sem_moves < LOC_ROUNDS / 4 || q_moves < LOC_ROUNDS / 4)
        fail_msg("woken greenlets did not follow their wakers' hubs");
    return NULL;
}

static void test_wakeups_run_on_the_wakers_hub(void **state)
{
    (void)state;
    gh_test_run(2, loc_main, NULL);
}

/* ==== greenlet-local storage =================================================== */

enum { LS_N = 200, LS_ROUNDS = 20 };
struct ls_slot {
    _Atomic int d1, d2, d4a, d4b;
    uint64_t id;
    _Atomic uint64_t d1_on;     /* gh_id of the greenlet the destructor ran on */
};
static struct ls_slot ls_slots[LS_N];
static gh_local_key ls_k1, ls_k2, ls_k3, ls_k4;
static _Atomic int ls_d3, ls_moves;
static gh_queue *ls_relay[4];
static gh_event ls_ev[LS_N];

static void ls_dtor1(void *v)
{
    struct ls_slot *s = v;
    atomic_store(&s->d1_on, gh_id(gh_self()));
    atomic_fetch_add(&s->d1, 1);
}

static void ls_count(void *v)
{
    atomic_fetch_add((_Atomic int *)v, 1);
}

static void ls_dtor3(void *v)
{
    (void)v;
    atomic_fetch_add(&ls_d3, 1);
}

/* Pinned to one hub: wakes whoever asks, so they run next on this hub. */
static void *ls_relay_fn(void *arg)
{
    void *it;
    while (gh_queue_get(arg, &it, -1) == 0)
        gh_event_set(it);
    return NULL;
}

static void *ls_worker(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    struct ls_slot *s = &ls_slots[i];
    unsigned hubs = gh_hub_count();
    s->id = gh_id(gh_self());
    assert_null(gh_local_get(ls_k1));
    assert_null(gh_local_get(ls_k2));
    assert_int_equal(gh_local_set(ls_k1, s), 0);
    assert_int_equal(gh_local_set(ls_k2, &s->d2), 0);
    assert_int_equal(gh_local_set(ls_k3, &ls_d3), 0);
    assert_int_equal(gh_local_set(ls_k3, NULL), 0);      /* NULL: no destructor */
    assert_int_equal(gh_local_set(ls_k4, &s->d4a), 0);
    assert_int_equal(gh_local_set(ls_k4, &s->d4b), 0);   /* replaced: d4a never destroyed */
    int hub = gh_hub_index();
    for (unsigned r = 0; r < LS_ROUNDS; r++) {
        assert_int_equal(gh_queue_put(ls_relay[(i + r) % hubs], &ls_ev[i], -1), 0);
        assert_int_equal(gh_event_wait(&ls_ev[i], -1), 0);
        gh_event_clear(&ls_ev[i]);
        if (gh_hub_index() != hub) {
            atomic_fetch_add(&ls_moves, 1);
            hub = gh_hub_index();
        }
        if (gh_local_get(ls_k1) != s || gh_local_get(ls_k2) != &s->d2 ||
            gh_local_get(ls_k3) != NULL || gh_local_get(ls_k4) != &s->d4b)
            fail_msg("greenlet %lu sees another's local values after a switch",
                     (unsigned long)i);
    }
    return NULL;
}

static void *ls_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    gh_greenlet *relay[4];
    for (unsigned h = 0; h < hubs; h++) {
        ls_relay[h] = gh_queue_new(0);
        relay[h] = spawn_on((int)h, ls_relay_fn, ls_relay[h]);
    }
    gh_greenlet *g[LS_N];
    for (uintptr_t i = 0; i < LS_N; i++) {
        gh_event_init(&ls_ev[i]);
        g[i] = spawn_any(ls_worker, (void *)i);
    }
    for (int i = 0; i < LS_N; i++) {
        uint64_t id = gh_id(g[i]);
        join_ok(g[i]);
        /* destructors ran exactly once, on the greenlet, before the join */
        struct ls_slot *s = &ls_slots[i];
        assert_int_equal(s->id, id);
        assert_int_equal(atomic_load(&s->d1), 1);
        assert_int_equal(atomic_load(&s->d1_on), id);
        assert_int_equal(atomic_load(&s->d2), 1);
        assert_int_equal(atomic_load(&s->d4a), 0);
        assert_int_equal(atomic_load(&s->d4b), 1);
    }
    assert_int_equal(atomic_load(&ls_d3), 0);
    for (unsigned h = 0; h < hubs; h++) {
        gh_queue_close(ls_relay[h]);
        join_ok(relay[h]);
        gh_queue_free(ls_relay[h]);
    }
    print_message("local storage: %d hub changes\n", atomic_load(&ls_moves));
    assert_true(atomic_load(&ls_moves) > 0);
    return NULL;
}

static void test_local_values_per_greenlet_across_migration(void **state)
{
    (void)state;
    assert_int_equal(gh_local_key_create(&ls_k1, ls_dtor1), 0);
    assert_int_equal(gh_local_key_create(&ls_k2, ls_count), 0);
    assert_int_equal(gh_local_key_create(&ls_k3, ls_dtor3), 0);
    assert_int_equal(gh_local_key_create(&ls_k4, ls_count), 0);
    assert_true(ls_k1 != ls_k2 && ls_k2 != ls_k3 && ls_k3 != ls_k4 && ls_k1 != ls_k4);
    gh_test_run(4, ls_main, NULL);
}

/* ---- a fresh greenlet starts with no values; destructor rounds ---------- */

static gh_local_key lf_k, lr_k1, lr_k2, lr_ka, lr_kb;
static _Atomic int lr_n1, lr_n2, lr_nb;
static int lr_obj;

static void *lf_fn(void *arg)
{
    if (gh_local_get(lf_k) != NULL)
        fail_msg("new greenlet %lu sees a value it never set", (unsigned long)(uintptr_t)arg);
    assert_int_equal(gh_local_set(lf_k, (void *)((uintptr_t)arg + 1)), 0);
    gh_yield();
    assert_ptr_equal(gh_local_get(lf_k), (void *)((uintptr_t)arg + 1));
    return NULL;
}

static void lr_dtor1(void *v)    /* sets its value again twice: three calls */
{
    if (atomic_fetch_add(&lr_n1, 1) + 1 < 3)
        gh_local_set(lr_k1, v);
}

static void lr_dtor2(void *v)    /* always sets it again: stops after the rounds */
{
    atomic_fetch_add(&lr_n2, 1);
    gh_local_set(lr_k2, v);
}

static void lr_dtor_a(void *v)   /* sets another key, empty until now */
{
    (void)v;
    gh_local_set(lr_kb, &lr_obj);
}

static void lr_dtor_b(void *v)
{
    assert_ptr_equal(v, &lr_obj);
    atomic_fetch_add(&lr_nb, 1);
}

static void *lr_fn(void *arg)
{
    (void)arg;
    assert_int_equal(gh_local_set(lr_k1, &lr_obj), 0);
    assert_int_equal(gh_local_set(lr_k2, &lr_obj), 0);
    assert_int_equal(gh_local_set(lr_ka, &lr_obj), 0);
    return NULL;
}

static void *lf_main(void *arg)
{
    (void)arg;
    int n = GH_TSAN ? 300 : 2000;
    for (uintptr_t i = 0; i < (uintptr_t)n; i++)
        join_ok(spawn_any(lf_fn, (void *)i));
    /* concurrently, too */
    gh_greenlet *g[64];
    for (uintptr_t i = 0; i < 64; i++)
        g[i] = spawn_any(lf_fn, (void *)i);
    for (int i = 0; i < 64; i++)
        join_ok(g[i]);
    join_ok(spawn_on(1, lr_fn, NULL));
    assert_int_equal(atomic_load(&lr_n1), 3);
    assert_int_equal(atomic_load(&lr_n2), GH_LOCAL_DESTRUCTOR_ROUNDS);
    assert_int_equal(atomic_load(&lr_nb), 1);
    return NULL;
}

static void test_local_fresh_greenlets_and_destructor_rounds(void **state)
{
    (void)state;
    assert_int_equal(gh_local_key_create(&lf_k, NULL), 0);   /* no destructor */
    assert_int_equal(gh_local_key_create(&lr_k1, lr_dtor1), 0);
    assert_int_equal(gh_local_key_create(&lr_k2, lr_dtor2), 0);
    assert_int_equal(gh_local_key_create(&lr_ka, lr_dtor_a), 0);
    assert_int_equal(gh_local_key_create(&lr_kb, lr_dtor_b), 0);
    gh_test_run(2, lf_main, NULL);
}

/* ---- plain threads have their own values; bad keys --------------------- */

static gh_local_key lt_k;
static _Atomic int lt_test_thread_d, lt_thread_d, lt_main_d, lt_greenlet_d;
static int lt_test_val, lt_thread_val, lt_main_val, lt_greenlet_val;

static void lt_dtor(void *v)
{
    if (v == &lt_test_val)
        atomic_fetch_add(&lt_test_thread_d, 1);
    else if (v == &lt_thread_val)
        atomic_fetch_add(&lt_thread_d, 1);
    else if (v == &lt_main_val)
        atomic_fetch_add(&lt_main_d, 1);
    else if (v == &lt_greenlet_val)
        atomic_fetch_add(&lt_greenlet_d, 1);
}

static void *lt_thread(void *arg)
{
    (void)arg;
    assert_null(gh_local_get(lt_k));
    assert_int_equal(gh_local_set(lt_k, &lt_thread_val), 0);
    gh_sleep_ms(5);
    assert_ptr_equal(gh_local_get(lt_k), &lt_thread_val);
    return NULL;
}

static void *lt_greenlet(void *arg)
{
    (void)arg;
    assert_null(gh_local_get(lt_k));      /* not the hub thread's, nor main's */
    assert_int_equal(gh_local_set(lt_k, &lt_greenlet_val), 0);
    gh_sleep_ms(2);
    assert_ptr_equal(gh_local_get(lt_k), &lt_greenlet_val);
    return NULL;
}

static void *lt_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    assert_null(gh_local_get(lt_k));      /* the test thread's value is not ours */
    assert_int_equal(gh_local_set(lt_k, &lt_main_val), 0);
    for (unsigned h = 0; h < hubs; h++) {
        atomic_store(&lt_greenlet_d, 0);
        join_ok(spawn_on((int)h, lt_greenlet, NULL));
        assert_int_equal(atomic_load(&lt_greenlet_d), 1);
    }
    struct thr t;
    thr_start(&t, lt_thread, NULL);
    thr_join(&t);                          /* pthread_join: the thread has exited */
    assert_int_equal(atomic_load(&lt_thread_d), 1);
    assert_ptr_equal(gh_local_get(lt_k), &lt_main_val);
    assert_int_equal(atomic_load(&lt_main_d), 0);
    return NULL;
}

static void test_local_plain_threads_separate_and_bad_keys(void **state)
{
    (void)state;
    assert_int_equal(gh_local_key_create(NULL, lt_dtor), EINVAL);
    assert_int_equal(gh_local_key_create(&lt_k, lt_dtor), 0);
    assert_null(gh_local_get(lt_k));
    assert_int_equal(gh_local_set(lt_k, &lt_test_val), 0);
    assert_ptr_equal(gh_local_get(lt_k), &lt_test_val);
    /* invalid keys */
    assert_null(gh_local_get(GH_LOCAL_KEYS_MAX));
    assert_null(gh_local_get(lt_k + 100000));
    assert_null(gh_local_get(UINT_MAX));
    assert_int_equal(gh_local_set(GH_LOCAL_KEYS_MAX, &lt_test_val), EINVAL);
    assert_int_equal(gh_local_set(UINT_MAX, &lt_test_val), EINVAL);
    gh_test_run(2, lt_main, NULL);
    /* main's value was destroyed when main ended, before gh_run returned */
    assert_int_equal(atomic_load(&lt_main_d), 1);
    /* the test thread's own value is untouched by all that ran on hubs */
    assert_ptr_equal(gh_local_get(lt_k), &lt_test_val);
    assert_int_equal(atomic_load(&lt_test_thread_d), 0);
}

/* ---- keys run out: EAGAIN (keys are never reused, so this goes last) ---- */

static void test_local_keys_run_out_with_eagain(void **state)
{
    (void)state;
    gh_local_key k, first = 0;
    int made = 0, r;
    while ((r = gh_local_key_create(&k, NULL)) == 0) {
        if (made == 0)
            first = k;
        if (++made > GH_LOCAL_KEYS_MAX)
            fail_msg("created %d keys, more than GH_LOCAL_KEYS_MAX", made);
        assert_int_equal(gh_local_set(k, &made), 0);
        assert_ptr_equal(gh_local_get(k), &made);
    }
    assert_int_equal(r, EAGAIN);
    assert_true(made > 0);
    assert_int_equal(gh_local_key_create(&k, NULL), EAGAIN);
    assert_ptr_equal(gh_local_get(first), &made);
}

/* ==== bad input ================================================================= */

static void *bad_main(void *arg)
{
    (void)arg;
    void *r;
    /* group, pool, imap inside a runtime */
    gh_group *grp = gh_group_new();
    assert_non_null(grp);
    assert_int_equal(gh_group_spawn(NULL, mark_fn, NULL), EINVAL);
    assert_int_equal(gh_group_spawn(grp, NULL, NULL), EINVAL);
    gh_spawn_opts bad = { .hub = 99, .pinned = 1 };
    assert_int_equal(gh_group_spawn_with(grp, &bad, mark_fn, NULL), EINVAL);
    assert_int_equal(gh_group_spawn_with(NULL, NULL, mark_fn, NULL), EINVAL);
    assert_int_equal(gh_group_size(grp), 0);
    assert_int_equal(gh_group_join(NULL, 0), EINVAL);
    assert_int_equal(gh_group_join(grp, -2), EINVAL);
    assert_int_equal(gh_group_kill(NULL), EINVAL);
    assert_int_equal(gh_group_size(NULL), 0);
    assert_int_equal(gh_group_free(NULL), EINVAL);
    assert_int_equal(gh_group_free(grp), 0);

    errno = 0;
    assert_null(gh_pool_new(0));
    assert_int_equal(errno, EINVAL);
    gh_pool *pool = gh_pool_new(2);
    assert_non_null(pool);
    assert_int_equal(gh_pool_spawn(NULL, mark_fn, NULL), EINVAL);
    assert_int_equal(gh_pool_spawn(pool, NULL, NULL), EINVAL);
    assert_int_equal(gh_pool_spawn_timeout(NULL, mark_fn, NULL, 0), EINVAL);
    assert_int_equal(gh_pool_spawn_timeout(pool, NULL, NULL, 0), EINVAL);
    assert_int_equal(gh_pool_spawn_timeout(pool, mark_fn, NULL, -2), EINVAL);
    assert_int_equal(gh_pool_running(pool), 0);
    assert_int_equal(gh_pool_join(NULL, 0), EINVAL);
    assert_int_equal(gh_pool_join(pool, -2), EINVAL);
    assert_int_equal(gh_pool_kill(NULL), EINVAL);
    assert_int_equal(gh_pool_running(NULL), 0);
    assert_int_equal(gh_pool_free(NULL), EINVAL);

    void *args[2] = { (void *)1, (void *)2 };
    errno = 0;
    assert_null(gh_pool_imap(NULL, gate_ret_fn, args, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_pool_imap(pool, NULL, args, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_pool_imap(pool, gate_ret_fn, NULL, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_pool_imap_unordered(NULL, gate_ret_fn, args, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_pool_imap_unordered(pool, NULL, args, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_pool_imap_unordered(pool, gate_ret_fn, NULL, 2));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(gh_imap_next(NULL, &r), EINVAL);
    assert_int_equal(gh_imap_next_timeout(NULL, &r, 0), EINVAL);
    assert_int_equal(gh_imap_free(NULL), EINVAL);
    gh_event_init(&gate);
    gh_event_set(&gate);
    gh_imap *it = gh_pool_imap(pool, gate_ret_fn, args, 2);
    assert_non_null(it);
    assert_int_equal(gh_imap_next(it, NULL), EINVAL);
    assert_int_equal(gh_imap_next_timeout(it, NULL, 0), EINVAL);
    assert_int_equal(gh_imap_next_timeout(it, &r, -2), EINVAL);
    /* bad calls lost nothing */
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_ptr_equal(r, (void *)1);
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_ptr_equal(r, (void *)2);
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    gh_event_destroy(&gate);
    return NULL;
}

static void test_bad_input_gets_error_codes(void **state)
{
    (void)state;
    void *it;
    atomic_store(&marks, 0);
    /* event */
    gh_event ev;
    assert_int_equal(gh_event_init(NULL), EINVAL);
    assert_int_equal(gh_event_destroy(NULL), EINVAL);
    assert_int_equal(gh_event_set(NULL), EINVAL);
    assert_int_equal(gh_event_clear(NULL), EINVAL);
    assert_int_equal(gh_event_is_set(NULL), 0);
    assert_int_equal(gh_event_wait(NULL, 0), EINVAL);
    assert_int_equal(gh_event_init(&ev), 0);
    assert_int_equal(gh_event_wait(&ev, -2), EINVAL);
    assert_int_equal(gh_event_destroy(&ev), 0);
    /* sem */
    gh_sem s;
    assert_int_equal(gh_sem_init(NULL, 1), EINVAL);
    assert_int_equal(gh_sem_init(&s, (unsigned)INT_MAX + 1u), EINVAL);
    assert_int_equal(gh_sem_destroy(NULL), EINVAL);
    assert_int_equal(gh_sem_acquire(NULL, 0), EINVAL);
    assert_int_equal(gh_sem_release(NULL), EINVAL);
    assert_int_equal(gh_sem_init(&s, 1), 0);
    assert_int_equal(gh_sem_acquire(&s, -2), EINVAL);
    assert_int_equal(gh_sem_value(&s), 1);               /* and took nothing */
    assert_int_equal(gh_sem_init(&s, INT_MAX), 0);
    assert_int_equal(gh_sem_release(&s), EOVERFLOW);
    assert_int_equal(gh_sem_value(&s), INT_MAX);
    assert_int_equal(gh_sem_destroy(&s), 0);
    /* mutex */
    gh_mutex m;
    assert_int_equal(gh_mutex_init(NULL), EINVAL);
    assert_int_equal(gh_mutex_destroy(NULL), EINVAL);
    assert_int_equal(gh_mutex_lock(NULL), EINVAL);
    assert_int_equal(gh_mutex_timedlock(NULL, 0), EINVAL);
    assert_int_equal(gh_mutex_trylock(NULL), EINVAL);
    assert_int_equal(gh_mutex_unlock(NULL), EINVAL);
    assert_int_equal(gh_mutex_init(&m), 0);
    assert_int_equal(gh_mutex_unlock(&m), EPERM);
    assert_int_equal(gh_mutex_timedlock(&m, -2), EINVAL);
    assert_int_equal(gh_mutex_trylock(&m), 0);
    assert_int_equal(gh_mutex_trylock(&m), EBUSY);
    assert_int_equal(gh_mutex_destroy(&m), EBUSY);       /* locked */
    assert_int_equal(gh_mutex_unlock(&m), 0);
    assert_int_equal(gh_mutex_unlock(&m), EPERM);
    assert_int_equal(gh_mutex_destroy(&m), 0);
    /* cond */
    gh_cond c;
    assert_int_equal(gh_cond_init(NULL), EINVAL);
    assert_int_equal(gh_cond_destroy(NULL), EINVAL);
    assert_int_equal(gh_cond_signal(NULL), EINVAL);
    assert_int_equal(gh_cond_broadcast(NULL), EINVAL);
    assert_int_equal(gh_cond_init(&c), 0);
    assert_int_equal(gh_mutex_init(&m), 0);
    assert_int_equal(gh_cond_wait(NULL, &m, 0), EINVAL);
    assert_int_equal(gh_cond_wait(&c, NULL, 0), EINVAL);
    uint64_t t0 = now_us();
    assert_int_equal(gh_cond_wait(&c, &m, 1000), EPERM);   /* m not locked: no wait */
    assert_true(now_us() - t0 < 500000);
    assert_int_equal(gh_mutex_trylock(&m), 0);             /* EPERM left it unlocked */
    assert_int_equal(gh_cond_wait(&c, &m, -2), EINVAL);
    assert_int_equal(gh_mutex_unlock(&m), 0);              /* and it stayed locked */
    assert_int_equal(gh_cond_destroy(&c), 0);
    assert_int_equal(gh_mutex_destroy(&m), 0);
    /* queue */
    errno = 0;
    assert_null(gh_queue_new(((size_t)1 << 31) + 1));
    assert_int_equal(errno, EINVAL);
    gh_queue *q = gh_queue_new(4);
    assert_non_null(q);
    assert_int_equal(gh_queue_put(NULL, (void *)1, 0), EINVAL);
    assert_int_equal(gh_queue_get(NULL, &it, 0), EINVAL);
    assert_int_equal(gh_queue_close(NULL), EINVAL);
    assert_int_equal(gh_queue_len(NULL), 0);
    assert_int_equal(gh_queue_free(NULL), EINVAL);
    assert_int_equal(gh_queue_put(q, (void *)1, 0), 0);
    assert_int_equal(gh_queue_get(q, NULL, 0), EINVAL);
    assert_int_equal(gh_queue_get(q, &it, -2), EINVAL);
    assert_int_equal(gh_queue_put(q, (void *)2, -2), EINVAL);
    assert_int_equal(gh_queue_len(q), 1);                  /* nothing lost or added */
    assert_int_equal(gh_queue_get(q, &it, 0), 0);
    assert_ptr_equal(it, (void *)1);
    assert_int_equal(gh_queue_free(q), 0);
    /* no runtime: spawning fails with ESRCH, the handles still work */
    gh_group *grp = gh_group_new();
    assert_non_null(grp);
    assert_int_equal(gh_group_spawn(grp, mark_fn, NULL), ESRCH);
    assert_int_equal(gh_group_size(grp), 0);
    assert_int_equal(gh_group_join(grp, 0), 0);
    assert_int_equal(gh_group_free(grp), 0);
    gh_pool *pool = gh_pool_new(2);
    assert_non_null(pool);
    assert_int_equal(gh_pool_spawn(pool, mark_fn, NULL), ESRCH);
    assert_int_equal(gh_pool_spawn_timeout(pool, mark_fn, NULL, 0), ESRCH);
    void *args[1] = { NULL };
    errno = 0;
    assert_null(gh_pool_imap(pool, mark_fn, args, 1));
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_null(gh_pool_imap_unordered(pool, mark_fn, args, 1));
    assert_int_equal(errno, ESRCH);
    assert_int_equal(gh_pool_running(pool), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    assert_int_equal(atomic_load(&marks), 0);
    gh_test_run(2, bad_main, NULL);
}

/* ---- destroy / free while someone waits: EBUSY, and nothing destroyed ---- */

static gh_sem bz_sem;
static gh_mutex bz_m = GH_MUTEX_INITIALIZER;
static gh_cond bz_c = GH_COND_INITIALIZER;
static int bz_flag;
static gh_event bz_ev;

static void *bz_sem_waiter(void *arg)
{
    (void)arg;
    return RC(gh_sem_acquire(&bz_sem, -1));
}

static void *bz_mutex_waiter(void *arg)
{
    (void)arg;
    int r = gh_mutex_lock(&bz_m);
    if (r == 0)
        assert_int_equal(gh_mutex_unlock(&bz_m), 0);
    return RC(r);
}

static void *bz_cond_waiter(void *arg)
{
    (void)arg;
    int r = 0;
    assert_int_equal(gh_mutex_lock(&bz_m), 0);
    while (!bz_flag && (r = gh_cond_wait(&bz_c, &bz_m, -1)) == 0)
        ;
    assert_int_equal(gh_mutex_unlock(&bz_m), 0);
    return RC(r);
}

static void *bz_ev_waiter(void *arg)
{
    (void)arg;
    return RC(gh_event_wait(&bz_ev, -1));
}

static void *bz_main(void *arg)
{
    (void)arg;
    gh_greenlet *w;
    /* event */
    gh_event_init(&bz_ev);
    w = spawn_on(1, bz_ev_waiter, NULL);
    settle();
    assert_int_equal(gh_event_destroy(&bz_ev), EBUSY);
    assert_int_equal(gh_event_set(&bz_ev), 0);
    assert_int_equal(join_rc(w), 0);
    assert_int_equal(gh_event_destroy(&bz_ev), 0);
    /* sem */
    gh_sem_init(&bz_sem, 0);
    w = spawn_on(1, bz_sem_waiter, NULL);
    settle();
    assert_int_equal(gh_sem_destroy(&bz_sem), EBUSY);
    assert_int_equal(gh_sem_release(&bz_sem), 0);
    assert_int_equal(join_rc(w), 0);
    assert_int_equal(gh_sem_destroy(&bz_sem), 0);
    /* mutex: locked, then locked and waited on */
    assert_int_equal(gh_mutex_lock(&bz_m), 0);
    assert_int_equal(gh_mutex_destroy(&bz_m), EBUSY);
    w = spawn_on(1, bz_mutex_waiter, NULL);
    settle();
    assert_int_equal(gh_mutex_destroy(&bz_m), EBUSY);
    assert_int_equal(gh_mutex_unlock(&bz_m), 0);
    assert_int_equal(join_rc(w), 0);
    assert_int_equal(gh_mutex_destroy(&bz_m), 0);
    gh_mutex_init(&bz_m);
    /* cond */
    w = spawn_on(1, bz_cond_waiter, NULL);
    settle();
    assert_int_equal(gh_cond_destroy(&bz_c), EBUSY);
    assert_int_equal(gh_mutex_lock(&bz_m), 0);
    bz_flag = 1;
    assert_int_equal(gh_cond_signal(&bz_c), 0);
    assert_int_equal(gh_mutex_unlock(&bz_m), 0);
    assert_int_equal(join_rc(w), 0);
    assert_int_equal(gh_cond_destroy(&bz_c), 0);
    /* queue */
    gh_queue *q = gh_queue_new(1);
    struct qw g = { .q = q, .timeout = -1 };
    w = spawn_on(1, q_getter, &g);
    settle();
    assert_int_equal(gh_queue_free(q), EBUSY);
    assert_int_equal(gh_queue_put(q, (void *)9, 0), 0);
    assert_int_equal(join_rc(w), 0);
    assert_ptr_equal(g.item, (void *)9);
    assert_int_equal(gh_queue_free(q), 0);
    /* group and pool while members run */
    gh_event_init(&gate);
    gh_group *grp = gh_group_new();
    gh_pool *pool = gh_pool_new(1);
    assert_int_equal(gh_group_spawn(grp, gate_fn, NULL), 0);
    assert_int_equal(gh_pool_spawn(pool, gate_fn, NULL), 0);
    settle();
    assert_int_equal(gh_group_free(grp), EBUSY);
    assert_int_equal(gh_pool_free(pool), EBUSY);
    assert_int_equal(gh_group_size(grp), 1);
    assert_int_equal(gh_pool_running(pool), 1);
    gh_event_set(&gate);
    assert_int_equal(gh_group_join(grp, JOIN_MS), 0);
    assert_int_equal(gh_pool_join(pool, JOIN_MS), 0);
    assert_int_equal(gh_group_free(grp), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    gh_event_destroy(&gate);
    return NULL;
}

static void test_destroy_with_waiters_is_ebusy(void **state)
{
    (void)state;
    gh_test_run(2, bz_main, NULL);
}

/* ---- mutex destroy while a woken waiter is on its way back: EBUSY --------
 * A waiter queued on a held mutex (20 ms: certainly queued) is woken by the
 * unlock to compete for the lock; until its retry it is still inside
 * gh_mutex_lock, and will touch the mutex again.  A destroy right after the
 * unlock must say EBUSY ("waited on"), unless the waiter already got the
 * lock and let it go; a 0 there lets the caller free memory the waiter is
 * about to use. */

static gh_mutex dw_m;
static _Atomic int dw_called, dw_got;

static void *dw_waiter(void *arg)
{
    (void)arg;
    atomic_store(&dw_called, 1);
    assert_int_equal(gh_mutex_lock(&dw_m), 0);
    atomic_store(&dw_got, 1);
    assert_int_equal(gh_mutex_unlock(&dw_m), 0);
    return NULL;
}

static void *dw_main(void *arg)
{
    (void)arg;
    int ebusy = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(gh_mutex_init(&dw_m), 0);
        atomic_store(&dw_called, 0);
        atomic_store(&dw_got, 0);
        assert_int_equal(gh_mutex_lock(&dw_m), 0);
        gh_greenlet *w = spawn_on(1, dw_waiter, NULL);
        wait_count(&dw_called, 1, "mutex waiter");
        settle();
        assert_int_equal(gh_mutex_unlock(&dw_m), 0);
        int r = gh_mutex_destroy(&dw_m);
        int got = atomic_load(&dw_got);
        if (r == 0 && !got)
            fail_msg("try %d: gh_mutex_destroy returned 0 right after an unlock, while the "
                     "waiter it woke was still inside gh_mutex_lock", i);
        ebusy += r == EBUSY;
        join_ok(w);
        assert_int_equal(gh_mutex_destroy(&dw_m), 0);
    }
    print_message("destroy after unlock: EBUSY %d of 10 times (else the waiter was through)\n", ebusy);
    return NULL;
}

static void test_mutex_destroy_is_ebusy_while_a_woken_waiter_returns(void **state)
{
    (void)state;
    gh_test_run(2, dw_main, NULL);
}

/* ---- gh__waiters_claim: a lost claim leaves its waiter queued ------------
 * The helper every wake goes through, on a list of plain-thread waiters
 * whose parkers say "claimed already" (a timeout won) or "open": it wins
 * the open ones oldest first, and puts every waiter it loses back where it
 * was, in order, still linked (each unlinks itself on its way out); a
 * lost waiter taken again loses again.  The list's links (head->prev is
 * the tail) must stay whole. */

static void wl_expect(struct gh__waiter *head, struct gh__waiter *w, const int *idx, int n)
{
    struct gh__waiter *p = head, *prev = NULL;
    for (int i = 0; i < n; i++, prev = p, p = p->next) {
        if (p != &w[idx[i]])
            fail_msg("list position %d: waiter %d, expected %d", i,
                     p ? (int)(p - w) : -1, idx[i]);
        assert_true(p->linked);
        if (prev)
            assert_ptr_equal(p->prev, prev);
    }
    assert_null(p);
    if (n)
        assert_ptr_equal(head->prev, &w[idx[n - 1]]);
    else
        assert_null(head);
}

static void wl_count_prep(struct gh__waiter *w, void *arg)
{
    (void)w;
    (*(int *)arg)++;
}

static void test_waiters_claim_leaves_lost_waiters_queued_in_order(void **state)
{
    (void)state;
    enum { N = 6 };
    static const int open_now[N] = { 0, 1, 0, 0, 1, 0 };
    struct gh__tparker tp[N];
    struct gh__waiter w[N], *head = NULL;
    int preps = 0;
    for (int i = 0; i < N; i++) {
        gh__waiter_init(&w[i], NULL, &tp[i]);
        gh__waiters_push(&head, &w[i]);
        tp[i].reason = open_now[i] ? GH_WAKE_NONE : GH_WAKE_TIMEOUT;
    }
    /* one: loses 0, wins 1; 0 goes back in front */
    assert_int_equal(gh__waiters_claim(&head, 1, GH_WAKE_EVENT, wl_count_prep, &preps), 1);
    assert_int_equal(preps, 2);
    assert_int_equal(tp[1].reason, GH_WAKE_EVENT);
    assert_true(!w[1].linked);
    wl_expect(head, w, (const int[]){ 0, 2, 3, 4, 5 }, 5);
    /* all: wins 4 only */
    assert_int_equal(gh__waiters_claim(&head, SIZE_MAX, GH_WAKE_EVENT, NULL, NULL), 1);
    assert_int_equal(tp[4].reason, GH_WAKE_EVENT);
    wl_expect(head, w, (const int[]){ 0, 2, 3, 5 }, 4);
    /* again: every one loses again, nothing moves, no reason changes */
    assert_int_equal(gh__waiters_wake_one(&head, GH_WAKE_EVENT), false);
    gh__waiters_wake_all(&head, GH_WAKE_CANCEL);
    wl_expect(head, w, (const int[]){ 0, 2, 3, 5 }, 4);
    for (int i = 0; i < N; i++)
        assert_int_equal(tp[i].reason, open_now[i] ? GH_WAKE_EVENT : GH_WAKE_TIMEOUT);
    /* they leave by themselves, in any order */
    gh__waiters_unlink(&head, &w[3]);
    wl_expect(head, w, (const int[]){ 0, 2, 5 }, 3);
    gh__waiters_unlink(&head, &w[5]);
    wl_expect(head, w, (const int[]){ 0, 2 }, 2);
    gh__waiters_unlink(&head, &w[0]);
    gh__waiters_unlink(&head, &w[2]);
    wl_expect(head, w, NULL, 0);
    for (int i = 0; i < N; i++)
        gh__waiter_fini(&w[i]);
}

/* ---- destroy / free while a waiter is on its way out: EBUSY ---------------
 * A waiter's timed wait (WX_WAIT_MS) ends by its timeout; between that and
 * its taking the primitive's lock back to leave the queue, the test hook
 * GREENHUB_TEST_WAIT_EXIT_DELAY_US holds it (WX_HOLD_US).  Meanwhile the
 * case wakes the primitive (release, unlock, signal, set, put, get, a
 * member leaving a group): the wake finds the waiter still queued, loses
 * its claim to the timer, and must leave it queued, so that destroy/free
 * says EBUSY, since the waiter will still take the lock.  A 0 there lets the
 * caller free memory the waiter is about to write to.  A second wake
 * meets the skipped waiter again and must skip it again; once the waiter
 * has returned, destroy/free says 0, and what the wakes handed over went
 * where it belongs (the count, the ring), not to the waiter that left.
 * The waiter is a greenlet on hub 1 (the case runs on hub 0, as the hook
 * blocks the waiter's hub) or a plain thread.  The hook counts the waiters
 * it holds, so the case wakes only once the waiter is there; the hold is
 * the time the case has for its wakes and destroys. */

enum { WX_WAIT_MS = 20 };
#define WX_HOLD_US (GH_TSAN ? "1000000" : "300000")

static _Atomic int wx_out;     /* the waiter's call returned */

struct wx {
    gh_greenlet *g;            /* the waiter as a greenlet, or */
    struct thr t;              /* as a plain thread */
    int thread;
};

static void wx_in_window(const char *when)
{
    if (atomic_load(&wx_out))
        fail_msg("the waiter returned %s: the case missed the window it tests "
                 "(held %s us after its %d ms wait)", when, WX_HOLD_US, WX_WAIT_MS);
}

/* Starts fn as the waiter and returns once its wait has timed out and the
 * hook holds it on its way out. */
static void wx_start(struct wx *w, int thread, gh_fn fn, void *arg)
{
    unsigned long held = atomic_load(&gh__test_wait_exit_holds);
    uint64_t t0 = now_us();
    atomic_store(&wx_out, 0);
    w->thread = thread;
    if (thread)
        thr_start(&w->t, fn, arg);
    else
        w->g = spawn_on(1, fn, arg);
    while (atomic_load(&gh__test_wait_exit_holds) == held) {
        if (now_us() - t0 > 30000000u)
            fail_msg("the waiter's %d ms wait did not end in 30 s", WX_WAIT_MS);
        assert_int_equal(gh_sleep_ms(1), 0);
    }
    wx_in_window("before the wake");
}

static int wx_join(struct wx *w)
{
    return rc_of(w->thread ? thr_join(&w->t) : join_ok(w->g));
}

static gh_fn wx_body;

static void *wx_on_hub0(void *arg)
{
    (void)arg;
    join_ok(spawn_on(0, wx_body, NULL));
    return NULL;
}

/* Runs body on hub 0 of a 2-hub runtime, with the hook on. */
static void wx_run(gh_fn body)
{
    wx_body = body;
    setenv("GREENHUB_TEST_WAIT_EXIT_DELAY_US", WX_HOLD_US, 1);
    gh_test_run(2, wx_on_hub0, NULL);
    unsetenv("GREENHUB_TEST_WAIT_EXIT_DELAY_US");
}

static void *wx_done(int r)
{
    atomic_store(&wx_out, 1);
    return RC(r);
}

/* sem: both releases go to the count. */
static gh_sem wx_sem;

static void *wx_sem_waiter(void *arg)
{
    (void)arg;
    return wx_done(gh_sem_acquire(&wx_sem, WX_WAIT_MS));
}

static void *wx_sem_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_sem_init(&wx_sem, 0), 0);
        wx_start(&w, thread, wx_sem_waiter, NULL);
        assert_int_equal(gh_sem_release(&wx_sem), 0);
        assert_int_equal(gh_sem_destroy(&wx_sem), EBUSY);
        assert_int_equal(gh_sem_release(&wx_sem), 0);
        assert_int_equal(gh_sem_destroy(&wx_sem), EBUSY);
        wx_in_window("before the destroy");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_sem_destroy(&wx_sem), 0);
        assert_int_equal(gh_sem_value(&wx_sem), 2);
    }
    return NULL;
}
static void test_sem_destroy_is_ebusy_while_a_timed_out_waiter_leaves(void **state)
{
    (void)state;
    wx_run(wx_sem_body);
}

/* mutex: the unlock that skips the waiter leaves the mutex free. */
static gh_mutex wx_m;

static void *wx_mutex_waiter(void *arg)
{
    (void)arg;
    int r = gh_mutex_timedlock(&wx_m, WX_WAIT_MS);
    if (r == 0)
        assert_int_equal(gh_mutex_unlock(&wx_m), 0);
    return wx_done(r);
}

static void *wx_mutex_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_mutex_init(&wx_m), 0);
        assert_int_equal(gh_mutex_lock(&wx_m), 0);
        wx_start(&w, thread, wx_mutex_waiter, NULL);
        assert_int_equal(gh_mutex_unlock(&wx_m), 0);
        assert_int_equal(gh_mutex_destroy(&wx_m), EBUSY);
        assert_int_equal(gh_mutex_trylock(&wx_m), 0);
        assert_int_equal(gh_mutex_unlock(&wx_m), 0);
        assert_int_equal(gh_mutex_destroy(&wx_m), EBUSY);
        wx_in_window("before the destroy");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_mutex_destroy(&wx_m), 0);
        assert_int_equal(gh_mutex_trylock(&wx_m), 0);
        assert_int_equal(gh_mutex_unlock(&wx_m), 0);
        assert_int_equal(gh_mutex_destroy(&wx_m), 0);
    }
    return NULL;
}
static void test_mutex_destroy_is_ebusy_while_a_timed_out_waiter_leaves(void **state)
{
    (void)state;
    wx_run(wx_mutex_body);
}

/* cond: a signal, then a broadcast, both skip the waiter. */
static gh_cond wx_c;

static void *wx_cond_waiter(void *arg)
{
    (void)arg;
    assert_int_equal(gh_mutex_lock(&wx_m), 0);
    int r = gh_cond_wait(&wx_c, &wx_m, WX_WAIT_MS);
    assert_int_equal(gh_mutex_unlock(&wx_m), 0);
    return wx_done(r);
}

static void *wx_cond_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_mutex_init(&wx_m), 0);
        assert_int_equal(gh_cond_init(&wx_c), 0);
        wx_start(&w, thread, wx_cond_waiter, NULL);
        assert_int_equal(gh_cond_signal(&wx_c), 0);
        assert_int_equal(gh_cond_destroy(&wx_c), EBUSY);
        assert_int_equal(gh_cond_broadcast(&wx_c), 0);
        assert_int_equal(gh_cond_destroy(&wx_c), EBUSY);
        wx_in_window("before the destroy");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_cond_destroy(&wx_c), 0);
        assert_int_equal(gh_mutex_destroy(&wx_m), 0);
    }
    return NULL;
}
static void test_cond_destroy_is_ebusy_while_a_timed_out_waiter_leaves(void **state)
{
    (void)state;
    wx_run(wx_cond_body);
}

/* event: the waiter, on its way out, sees the event set (no timeout). */
static gh_event wx_ev;

static void *wx_event_waiter(void *arg)
{
    (void)arg;
    return wx_done(gh_event_wait(&wx_ev, WX_WAIT_MS));
}

static void *wx_event_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_event_init(&wx_ev), 0);
        wx_start(&w, thread, wx_event_waiter, NULL);
        assert_int_equal(gh_event_set(&wx_ev), 0);
        assert_int_equal(gh_event_destroy(&wx_ev), EBUSY);
        assert_int_equal(gh_event_clear(&wx_ev), 0);
        assert_int_equal(gh_event_set(&wx_ev), 0);
        assert_int_equal(gh_event_destroy(&wx_ev), EBUSY);
        wx_in_window("before the destroy");
        assert_int_equal(wx_join(&w), 0);
        assert_int_equal(gh_event_destroy(&wx_ev), 0);
    }
    return NULL;
}
static void test_event_destroy_is_ebusy_while_a_timed_out_waiter_leaves(void **state)
{
    (void)state;
    wx_run(wx_event_body);
}

/* queue, get side: two puts and the close skip the getter; both items stay
 * queued.  Put side: a get (and a put and get more) skip the putter; its
 * item is never queued. */
static gh_queue *wx_q;

static void *wx_getter(void *arg)
{
    (void)arg;
    void *item = NULL;
    return wx_done(gh_queue_get(wx_q, &item, WX_WAIT_MS));
}

static void *wx_putter(void *arg)
{
    return wx_done(gh_queue_put(wx_q, arg, WX_WAIT_MS));
}

static void *wx_queue_get_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        void *it = NULL;
        assert_non_null(wx_q = gh_queue_new(4));
        wx_start(&w, thread, wx_getter, NULL);
        assert_int_equal(gh_queue_put(wx_q, (void *)1, 0), 0);
        assert_int_equal(gh_queue_free(wx_q), EBUSY);
        assert_int_equal(gh_queue_put(wx_q, (void *)2, 0), 0);
        assert_int_equal(gh_queue_close(wx_q), 0);
        assert_int_equal(gh_queue_free(wx_q), EBUSY);
        wx_in_window("before the free");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_queue_len(wx_q), 2);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), 0);
        assert_ptr_equal(it, (void *)1);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), 0);
        assert_ptr_equal(it, (void *)2);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), EPIPE);
        assert_int_equal(gh_queue_free(wx_q), 0);
    }
    return NULL;
}
static void test_queue_free_is_ebusy_while_a_timed_out_getter_leaves(void **state)
{
    (void)state;
    wx_run(wx_queue_get_body);
}

static void *wx_queue_put_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        void *it = NULL;
        assert_non_null(wx_q = gh_queue_new(1));
        assert_int_equal(gh_queue_put(wx_q, (void *)1, 0), 0);
        wx_start(&w, thread, wx_putter, (void *)2);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), 0);
        assert_ptr_equal(it, (void *)1);
        assert_int_equal(gh_queue_free(wx_q), EBUSY);
        assert_int_equal(gh_queue_put(wx_q, (void *)3, 0), 0);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), 0);
        assert_ptr_equal(it, (void *)3);
        assert_int_equal(gh_queue_close(wx_q), 0);
        assert_int_equal(gh_queue_free(wx_q), EBUSY);
        wx_in_window("before the free");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_queue_len(wx_q), 0);
        assert_int_equal(gh_queue_get(wx_q, &it, 0), EPIPE);
        assert_int_equal(gh_queue_free(wx_q), 0);
    }
    return NULL;
}
static void test_queue_free_is_ebusy_while_a_timed_out_putter_leaves(void **state)
{
    (void)state;
    wx_run(wx_queue_put_body);
}

/* group: the last member leaving skips the joiner.  pool: a member leaving
 * returns its permit past a spawner whose wait for room timed out; the
 * permit stays the pool's. */
static gh_group *wx_grp;
static gh_pool *wx_pool;
static gh_event wx_gate;

static void *wx_gate_fn(void *arg)
{
    (void)arg;
    return RC(gh_event_wait(&wx_gate, -1));
}

static void *wx_joiner(void *arg)
{
    (void)arg;
    return wx_done(gh_group_join(wx_grp, WX_WAIT_MS));
}

static void *wx_spawner(void *arg)
{
    (void)arg;
    return wx_done(gh_pool_spawn_timeout(wx_pool, mark_fn, NULL, WX_WAIT_MS));
}

static void wx_wait_empty(size_t (*size)(void *), void *p)
{
    uint64_t t0 = now_us();
    while (size(p) != 0) {
        if (now_us() - t0 > 30000000u)
            fail_msg("the member did not leave in 30 s");
        gh_sleep_ms(1);
    }
}

static size_t wx_group_size(void *p) { return gh_group_size(p); }
static size_t wx_pool_running(void *p) { return gh_pool_running(p); }

static void *wx_group_body(void *arg)
{
    (void)arg;
    gh_spawn_opts on0 = { .name = "member", .hub = 0, .pinned = 1 };
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_event_init(&wx_gate), 0);
        assert_non_null(wx_grp = gh_group_new());
        assert_int_equal(gh_group_spawn_with(wx_grp, &on0, wx_gate_fn, NULL), 0);
        wx_start(&w, thread, wx_joiner, NULL);
        assert_int_equal(gh_event_set(&wx_gate), 0);
        wx_wait_empty(wx_group_size, wx_grp);
        assert_int_equal(gh_group_free(wx_grp), EBUSY);
        wx_in_window("before the free");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        assert_int_equal(gh_group_free(wx_grp), 0);
        assert_int_equal(gh_event_destroy(&wx_gate), 0);
    }
    return NULL;
}

static void test_group_free_is_ebusy_while_a_timed_out_joiner_leaves(void **state)
{
    (void)state;
    wx_run(wx_group_body);
}

static void *wx_pool_body(void *arg)
{
    (void)arg;
    for (int thread = 0; thread < 2; thread++) {
        struct wx w;
        assert_int_equal(gh_event_init(&wx_gate), 0);
        assert_non_null(wx_pool = gh_pool_new(1));
        assert_int_equal(gh_pool_spawn(wx_pool, wx_gate_fn, NULL), 0);
        wx_start(&w, thread, wx_spawner, NULL);
        assert_int_equal(gh_event_set(&wx_gate), 0);
        wx_wait_empty(wx_pool_running, wx_pool);
        assert_int_equal(gh_pool_free(wx_pool), EBUSY);
        wx_in_window("before the free");
        assert_int_equal(wx_join(&w), ETIMEDOUT);
        atomic_store(&marks, 0);
        assert_int_equal(gh_pool_spawn_timeout(wx_pool, mark_fn, NULL, 0), 0);
        assert_int_equal(gh_pool_join(wx_pool, JOIN_MS), 0);
        assert_int_equal(atomic_load(&marks), 1);
        assert_int_equal(gh_pool_free(wx_pool), 0);
        assert_int_equal(gh_event_destroy(&wx_gate), 0);
    }
    return NULL;
}

static void test_pool_free_is_ebusy_while_a_timed_out_spawner_leaves(void **state)
{
    (void)state;
    wx_run(wx_pool_body);
}

/* ---- stress: destroy says 0 only once every wait has let go --------------
 * Rounds on 4 hubs.  In each, WS_WAITERS greenlets (spread over the hubs)
 * and a plain thread wait once on a fresh heap gh_cond, each with a tiny
 * random timeout (1-4 ms), and WS_SEM_WAITERS greenlets wait likewise on a
 * semaphore, while WS_WAKERS greenlets hammer signal, broadcast and
 * release, and the round's driver calls gh_cond_destroy until it says 0.
 * Each cond waiter counts itself under the mutex before it waits, and
 * gh_cond_wait queues it before it lets go of the mutex: once the driver
 * has seen them all counted (under the mutex), every one is queued or done,
 * so a 0 from destroy must mean every one has let go of the cond.  The
 * driver then poisons the cond (every byte 0xff: its spin lock reads as
 * held forever, its list as garbage) and waits for the waiters to return;
 * one that touches the cond after the 0 hangs or crashes.  The hook holds
 * every waiter whose wait ended on its own WS_HOLD_US on its way out, so
 * that wakes often find one there and skip it.  The semaphore checks that
 * permits released past such waiters are not lost: at the end its count is
 * what was released minus what was taken. */

enum { WS_WAITERS = 12, WS_SEM_WAITERS = 6, WS_WAKERS = 3, WS_HUBS = 4 };
#define WS_HOLD_US "50"
static struct {
    gh_mutex m;
    gh_cond *c;
    gh_sem sem;
    _Atomic int entered, out, stop;
    _Atomic long released, acquired, skipped_rounds;
} ws;

static int64_t ws_timeout(uintptr_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    return (int64_t)(1 + rnd_next(&s) % 4);
}

static void *ws_cond_waiter(void *arg)
{
    assert_int_equal(gh_mutex_lock(&ws.m), 0);
    atomic_fetch_add(&ws.entered, 1);
    int r = gh_cond_wait(ws.c, &ws.m, ws_timeout((uintptr_t)arg));
    assert_int_equal(gh_mutex_unlock(&ws.m), 0);
    if (r != 0 && r != ETIMEDOUT)
        fail_msg("gh_cond_wait returned %d", r);
    atomic_fetch_add(&ws.out, 1);
    return NULL;
}

static void *ws_sem_waiter(void *arg)
{
    int r = gh_sem_acquire(&ws.sem, ws_timeout((uintptr_t)arg));
    if (r == 0)
        atomic_fetch_add(&ws.acquired, 1);
    else if (r != ETIMEDOUT)
        fail_msg("gh_sem_acquire returned %d", r);
    return NULL;
}

static void *ws_waker(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 7;
    while (!atomic_load(&ws.stop)) {
        uint64_t x = rnd_next(&seed);
        switch (x % 4) {
        case 0: assert_int_equal(gh_cond_signal(ws.c), 0); break;
        case 1: assert_int_equal(gh_cond_broadcast(ws.c), 0); break;
        default:
            assert_int_equal(gh_sem_release(&ws.sem), 0);
            atomic_fetch_add(&ws.released, 1);
            break;
        }
        if (x & 16)
            gh_yield();
    }
    return NULL;
}

static void ws_wait_entered(int want)
{
    uint64_t t0 = now_us();
    for (;;) {
        assert_int_equal(gh_mutex_lock(&ws.m), 0);
        int e = atomic_load(&ws.entered);
        assert_int_equal(gh_mutex_unlock(&ws.m), 0);
        if (e == want)
            return;
        if (now_us() - t0 > 30000000u)
            fail_msg("waited 30 s for %d cond waiters to queue: %d", want, e);
        gh_yield();
    }
}

static void ws_round(uintptr_t round)
{
    gh_greenlet *cw[WS_WAITERS], *sw[WS_SEM_WAITERS], *wk[WS_WAKERS];
    struct thr t;
    gh_cond *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_int_equal(gh_cond_init(c), 0);
    ws.c = c;
    assert_int_equal(gh_sem_init(&ws.sem, 0), 0);
    atomic_store(&ws.entered, 0);
    atomic_store(&ws.out, 0);
    atomic_store(&ws.stop, 0);
    atomic_store(&ws.released, 0);
    atomic_store(&ws.acquired, 0);
    uintptr_t seed = round * 64;
    for (int i = 0; i < WS_WAITERS; i++)
        cw[i] = spawn_on(i % WS_HUBS, ws_cond_waiter, (void *)seed++);
    thr_start(&t, ws_cond_waiter, (void *)seed++);
    for (int i = 0; i < WS_SEM_WAITERS; i++)
        sw[i] = spawn_on(i % WS_HUBS, ws_sem_waiter, (void *)seed++);
    ws_wait_entered(WS_WAITERS + 1);
    for (int i = 0; i < WS_WAKERS; i++)
        wk[i] = spawn_on((i + 1) % WS_HUBS, ws_waker, (void *)seed++);
    uint64_t t0 = now_us();
    int r;
    while ((r = gh_cond_destroy(c)) == EBUSY) {
        if (now_us() - t0 > 30000000u)
            fail_msg("round %lu: gh_cond_destroy still EBUSY after 30 s", (unsigned long)round);
        gh_yield();
    }
    assert_int_equal(r, 0);
    if (atomic_load(&ws.out) == WS_WAITERS + 1)
        atomic_fetch_add(&ws.skipped_rounds, 1);   /* all gone before: proves little */
    atomic_store(&ws.stop, 1);
    for (int i = 0; i < WS_WAKERS; i++)
        join_ok(wk[i]);
    memset((void *)c, 0xff, sizeof *c);
    t0 = now_us();
    while (atomic_load(&ws.out) < WS_WAITERS + 1) {
        if (now_us() - t0 > 10000000u)
            fail_msg("round %lu: %d of %d cond waiters still inside gh_cond_wait 10 s "
                     "after gh_cond_destroy said 0 (one touched the destroyed cond)",
                     (unsigned long)round, WS_WAITERS + 1 - atomic_load(&ws.out),
                     WS_WAITERS + 1);
        gh_sleep_ms(1);
    }
    for (int i = 0; i < WS_WAITERS; i++)
        join_ok(cw[i]);
    thr_join(&t);
    for (int i = 0; i < WS_SEM_WAITERS; i++)
        join_ok(sw[i]);
    assert_int_equal(gh_sem_value(&ws.sem),
                     atomic_load(&ws.released) - atomic_load(&ws.acquired));
    assert_int_equal(gh_sem_destroy(&ws.sem), 0);
    free(c);
}

static void *ws_main(void *arg)
{
    (void)arg;
    int rounds = GH_TSAN ? 40 : 300;
    assert_int_equal(gh_mutex_init(&ws.m), 0);
    atomic_store(&ws.skipped_rounds, 0);
    for (int i = 0; i < rounds; i++)
        ws_round((uintptr_t)i);
    assert_int_equal(gh_mutex_destroy(&ws.m), 0);
    print_message("%d rounds, %ld in which every waiter had returned before the "
                  "first destroy\n", rounds, atomic_load(&ws.skipped_rounds));
    return NULL;
}

static void test_stress_destroy_zero_only_once_every_wait_let_go(void **state)
{
    (void)state;
    setenv("GREENHUB_TEST_WAIT_EXIT_DELAY_US", WS_HOLD_US, 1);
    gh_test_run(WS_HUBS, ws_main, NULL);
    unsetenv("GREENHUB_TEST_WAIT_EXIT_DELAY_US");
}

/* ==== stress ===================================================================
 * Workers on every hub do random sem, mutex and queue operations with short
 * random timeouts (0-2 ms), while a killer kills random workers and starts
 * replacements.  At the end: the semaphore has exactly its permits, never
 * more than its permits were held at once, the plain counter under the mutex
 * equals the successful locks, the mutex is free, and every item whose put
 * succeeded was taken exactly once (by a getter or by the final drain),
 * while no item whose put failed (timeout, kill) was ever seen. */

enum { ST_WORKERS = 32, ST_PERMITS = 3 };
#define ST_ITEMS_MAX (1u << 20)
static struct {
    gh_sem sem;
    gh_mutex mu;
    gh_queue *q;
    unsigned long plain;                       /* under mu */
    _Atomic unsigned long locks;
    _Atomic int holders, max_holders;
    _Atomic unsigned long next_id, ops, timeouts, cancels, kills, spawned;
    _Atomic unsigned char put_ok[ST_ITEMS_MAX];
    _Atomic unsigned char got[ST_ITEMS_MAX];
    int iters;
    gh_greenlet *w[ST_WORKERS];
    _Atomic uint64_t seed;
} st;

static void *st_worker(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < st.iters; i++) {
        uint64_t x = rnd_next(&seed);
        int64_t t = (int64_t)((x >> 8) % 3);
        int op = (int)(x % 4), r;
        switch (op) {
        case 0:
            r = gh_sem_acquire(&st.sem, t);
            if (r == 0) {
                int h = atomic_fetch_add(&st.holders, 1) + 1;
                if (h > ST_PERMITS)
                    fail_msg("%d holders of %d permits", h, ST_PERMITS);
                int m = atomic_load(&st.max_holders);
                while (h > m && !atomic_compare_exchange_weak(&st.max_holders, &m, h))
                    ;
                if (x & 16)
                    gh_yield();
                atomic_fetch_sub(&st.holders, 1);
                assert_int_equal(gh_sem_release(&st.sem), 0);
            }
            break;
        case 1:
            r = (x & 32) ? gh_mutex_lock(&st.mu) : gh_mutex_timedlock(&st.mu, t);
            if (r == 0) {
                unsigned long v = st.plain;
                if (x & 64)
                    gh_yield();
                st.plain = v + 1;
                atomic_fetch_add(&st.locks, 1);
                assert_int_equal(gh_mutex_unlock(&st.mu), 0);
            }
            break;
        case 2: {
            unsigned long id = atomic_fetch_add(&st.next_id, 1);
            if (id >= ST_ITEMS_MAX) {
                r = 0;
                break;
            }
            r = gh_queue_put(st.q, (void *)(uintptr_t)(id + 1), t);
            if (r == 0)
                atomic_store(&st.put_ok[id], 1);
            break;
        }
        default: {
            void *it;
            r = gh_queue_get(st.q, &it, t);
            if (r == 0) {
                uintptr_t id = (uintptr_t)it - 1;
                if (id >= ST_ITEMS_MAX)
                    fail_msg("stress: got item %p", it);
                atomic_fetch_add(&st.got[id], 1);
            }
            break;
        }
        }
        if (r == ECANCELED) {
            atomic_fetch_add(&st.cancels, 1);
            return NULL;                       /* killed: clean up and go */
        }
        if (r == ETIMEDOUT)
            atomic_fetch_add(&st.timeouts, 1);
        else if (r != 0)
            fail_msg("stress op %d returned %d", op, r);
        atomic_fetch_add(&st.ops, 1);
    }
    return NULL;
}

static gh_greenlet *st_spawn(unsigned hubs)
{
    uint64_t s = atomic_fetch_add(&st.seed, 1);
    atomic_fetch_add(&st.spawned, 1);
    return (s & 1) ? spawn_any(st_worker, (void *)(uintptr_t)s)
                   : spawn_on((int)(s % hubs), st_worker, (void *)(uintptr_t)s);
}

static void *st_killer(void *arg)
{
    int rounds = (int)(intptr_t)arg;
    unsigned hubs = gh_hub_count();
    uint64_t seed = 0x5eed;
    for (int k = 0; k < rounds; k++) {
        uint64_t x = rnd_next(&seed);
        if (x & 1)
            gh_sleep_ms(1);
        else
            gh_yield();
        int j = (int)((x >> 8) % ST_WORKERS);
        int r = gh_kill(st.w[j]);
        if (r != 0 && r != ESRCH)
            fail_msg("gh_kill returned %d", r);
        if (r == 0)
            atomic_fetch_add(&st.kills, 1);
        join_ok(st.w[j]);
        st.w[j] = st_spawn(hubs);
    }
    return NULL;
}

static void *st_main(void *arg)
{
    (void)arg;
    unsigned hubs = gh_hub_count();
    memset((void *)&st, 0, sizeof st);   /* the 2- and 4-hub runs may share a process */
    assert_int_equal(gh_sem_init(&st.sem, ST_PERMITS), 0);
    assert_int_equal(gh_mutex_init(&st.mu), 0);
    st.q = gh_queue_new(16);
    st.iters = GH_TSAN ? 1500 : 8000;
    atomic_store(&st.seed, 1);
    for (int i = 0; i < ST_WORKERS; i++)
        st.w[i] = st_spawn(hubs);
    gh_greenlet *killer = spawn_any(st_killer, RC(GH_TSAN ? 150 : 500));
    join_ok(killer);
    for (int i = 0; i < ST_WORKERS; i++)
        join_ok(st.w[i]);
    /* invariants */
    assert_int_equal(gh_sem_value(&st.sem), ST_PERMITS);
    assert_int_equal(gh_sem_destroy(&st.sem), 0);
    assert_int_equal(atomic_load(&st.holders), 0);
    assert_true(atomic_load(&st.max_holders) >= 1);
    assert_int_equal(st.plain, atomic_load(&st.locks));
    assert_int_equal(gh_mutex_trylock(&st.mu), 0);
    assert_int_equal(gh_mutex_unlock(&st.mu), 0);
    assert_int_equal(gh_mutex_destroy(&st.mu), 0);
    assert_int_equal(gh_queue_close(st.q), 0);
    void *it;
    int r;
    unsigned long drained = 0;
    while ((r = gh_queue_get(st.q, &it, 0)) == 0) {
        uintptr_t id = (uintptr_t)it - 1;
        assert_true(id < ST_ITEMS_MAX);
        atomic_fetch_add(&st.got[id], 1);
        drained++;
    }
    assert_int_equal(r, EPIPE);
    assert_int_equal(gh_queue_free(st.q), 0);
    unsigned long n = atomic_load(&st.next_id), puts = 0;
    if (n > ST_ITEMS_MAX)
        n = ST_ITEMS_MAX;
    for (unsigned long id = 0; id < n; id++) {
        int ok = atomic_load(&st.put_ok[id]), got = atomic_load(&st.got[id]);
        puts += ok;
        if (got != ok)
            fail_msg("item %lu: put %s, taken %d times", id, ok ? "succeeded" : "failed", got);
    }
    print_message("stress on %u hubs: %lu ops, %lu timeouts, %lu kills, %lu cancelled waits, "
                  "%lu workers, %lu locks, %lu items put (%lu drained at the end), "
                  "max %d holders\n",
                  hubs, atomic_load(&st.ops), atomic_load(&st.timeouts),
                  atomic_load(&st.kills), atomic_load(&st.cancels),
                  atomic_load(&st.spawned), atomic_load(&st.locks), puts, drained,
                  atomic_load(&st.max_holders));
    assert_true(atomic_load(&st.timeouts) > 0);
    assert_true(atomic_load(&st.cancels) > 0);
    return NULL;
}

static void test_stress_random_ops_timeouts_and_kills_on_2_hubs(void **state)
{
    (void)state;
    gh_test_run(2, st_main, NULL);
}

static void test_stress_random_ops_timeouts_and_kills_on_4_hubs(void **state)
{
    (void)state;
    gh_test_run(4, st_main, NULL);
}

/* ---- a plain thread's timed wait never drops what it was handed ----------
 * A plain thread waits on a condition variable.  When its timed wait times
 * out just as a waker takes its parker's mutex, the waker sees the wait
 * still open, hands it an item or a permit and moves on, and
 * pthread_cond_timedwait still returns ETIMEDOUT.  The waiter must then
 * keep what it was given, not report a timeout (which would drop an item
 * or a permit for good).  To make that window common, the getter runs
 * niced on a CPU it shares with a busy thread, so that it is often slow to
 * take its mutex back after the timeout; the putter runs on another CPU.
 * Exact accounting: every successful put is either got or still there. */

enum { TP_ITERS = 2000 };
static _Atomic int tp_stop;
static gh_queue *tp_q;
static gh_sem tp_s;
static int tp_use_sem;
static long tp_got, tp_put, tp_timeouts, tp_errors;

static void tp_pin(int cpu)
{
    cpu_set_t c;
    CPU_ZERO(&c);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &c);
    pthread_setaffinity_np(pthread_self(), sizeof c, &c);
}

static void *tp_hog(void *arg)
{
    (void)arg;
    tp_pin(0);
    while (!atomic_load_explicit(&tp_stop, memory_order_relaxed))
        ;
    return NULL;
}

static void *tp_getter(void *arg)
{
    (void)arg;
    tp_pin(0);
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    for (int i = 0; i < TP_ITERS; i++) {
        void *x;
        int r = tp_use_sem ? gh_sem_acquire(&tp_s, 2) : gh_queue_get(tp_q, &x, 2);
        if (r == 0)
            tp_got++;
        else if (r == ETIMEDOUT)
            tp_timeouts++;
        else
            tp_errors++;
    }
    return NULL;
}

static void *tp_putter(void *arg)
{
    (void)arg;
    tp_pin(1);
    unsigned seed = 1;
    while (!atomic_load(&tp_stop)) {
        struct timespec ts = { 0, 1000000 + rand_r(&seed) % 2000000 };
        nanosleep(&ts, NULL);
        int r = tp_use_sem ? gh_sem_release(&tp_s) : gh_queue_put(tp_q, (void *)1, 0);
        if (r == 0)
            tp_put++;
    }
    return NULL;
}

static void tp_run(int use_sem)
{
    tp_use_sem = use_sem;
    tp_got = tp_put = tp_timeouts = tp_errors = 0;
    atomic_store(&tp_stop, 0);
    assert_non_null(tp_q = gh_queue_new(0));
    assert_int_equal(gh_sem_init(&tp_s, 0), 0);
    pthread_t hog, get, put;
    assert_int_equal(pthread_create(&hog, NULL, tp_hog, NULL), 0);
    assert_int_equal(pthread_create(&get, NULL, tp_getter, NULL), 0);
    assert_int_equal(pthread_create(&put, NULL, tp_putter, NULL), 0);
    pthread_join(get, NULL);
    atomic_store(&tp_stop, 1);
    pthread_join(put, NULL);
    pthread_join(hog, NULL);
    long left = 0;
    if (use_sem) {
        left = gh_sem_value(&tp_s);
    } else {
        void *x;
        while (gh_queue_get(tp_q, &x, 0) == 0)
            left++;
    }
    assert_int_equal(tp_errors, 0);
    if (tp_put != tp_got + left)
        fail_msg("%s: %ld handed over, %ld got, %ld left, %ld timeouts: %ld lost",
                 use_sem ? "gh_sem" : "gh_queue", tp_put, tp_got, left, tp_timeouts,
                 tp_put - tp_got - left);
    assert_int_equal(gh_sem_destroy(&tp_s), 0);
    assert_int_equal(gh_queue_free(tp_q), 0);
}

static void test_plain_thread_timed_wait_keeps_what_it_was_handed(void **state)
{
    (void)state;
    tp_run(0);
    tp_run(1);
}

/* ---- gh_pool_imap copies its arguments ------------------------------------
 * The calls run later, some after gh_imap_free (spawned, not yet started):
 * they must not read the caller's array then.  The array is overwritten
 * with NULLs as soon as gh_pool_imap returns and every call checks the
 * argument it got, on one hub (nothing runs before the overwrite) and on
 * two; then, with a fresh iterator, gh_imap_free comes after one result and
 * the array is overwritten again before the pool is joined. */

enum { IA_N = 60 };
static long ia_vals[IA_N];
static _Atomic int ia_bad;

static void *ia_call(void *arg)
{
    long *v = arg;
    if (!v || v < ia_vals || v >= ia_vals + IA_N)
        atomic_fetch_add(&ia_bad, 1);
    gh_yield();
    return arg;
}

static void *ia_main(void *arg)
{
    (void)arg;
    atomic_store(&ia_bad, 0);
    gh_pool *pool = gh_pool_new(4);
    assert_non_null(pool);
    void **args = malloc(IA_N * sizeof *args);
    assert_non_null(args);
    for (int i = 0; i < IA_N; i++)
        args[i] = &ia_vals[i];
    gh_imap *it = gh_pool_imap(pool, ia_call, args, IA_N);
    assert_non_null(it);
    for (int i = 0; i < IA_N; i++)
        args[i] = NULL;
    void *r;
    for (int i = 0; i < IA_N; i++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, &ia_vals[i]);
    }
    assert_int_equal(gh_imap_next(it, &r), ENOENT);
    assert_int_equal(gh_imap_free(it), 0);

    for (int i = 0; i < IA_N; i++)
        args[i] = &ia_vals[i];
    it = gh_pool_imap_unordered(pool, ia_call, args, IA_N);
    assert_non_null(it);
    assert_int_equal(gh_imap_next(it, &r), 0);
    assert_int_equal(gh_imap_free(it), 0);
    for (int i = 0; i < IA_N; i++)
        args[i] = NULL;
    assert_int_equal(gh_pool_join(pool, -1), 0);
    free(args);
    assert_int_equal(atomic_load(&ia_bad), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_imap_copies_its_arguments(void **state)
{
    (void)state;
    gh_test_run(1, ia_main, NULL);
    gh_test_run(2, ia_main, NULL);
}

/* ---- a pool is not idle while an imap still feeds it ----------------------
 * Pool of one, three calls: between two calls the pool is empty although
 * the imap has more to spawn.  gh_pool_join must wait for all three (read
 * or not), and gh_pool_free must say EBUSY while the feeder may still
 * spawn into the pool. */

static _Atomic int pf_done;

static void *pf_call(void *arg)
{
    gh_sleep_ms(2);
    atomic_fetch_add(&pf_done, 1);
    return arg;
}

static void *pf_main(void *arg)
{
    (void)arg;
    static void *args[3] = { (void *)1, (void *)2, (void *)3 };
    atomic_store(&pf_done, 0);
    gh_pool *pool = gh_pool_new(1);
    assert_non_null(pool);
    gh_imap *it = gh_pool_imap(pool, pf_call, args, 3);
    assert_non_null(it);
    assert_int_equal(gh_pool_free(pool), EBUSY);
    assert_int_equal(gh_pool_join(pool, -1), 0);
    assert_int_equal(atomic_load(&pf_done), 3);
    void *r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gh_imap_next(it, &r), 0);
        assert_ptr_equal(r, args[i]);
    }
    assert_int_equal(gh_imap_free(it), 0);
    assert_int_equal(gh_pool_free(pool), 0);
    return NULL;
}

static void test_pool_join_and_free_wait_for_an_imap_feeder(void **state)
{
    (void)state;
    gh_test_run(1, pf_main, NULL);
    gh_test_run(2, pf_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_queue_million_items_8x8_on_2_hubs),
    cmocka_unit_test(test_plain_thread_timed_wait_keeps_what_it_was_handed),
    cmocka_unit_test(test_imap_copies_its_arguments),
    cmocka_unit_test(test_pool_join_and_free_wait_for_an_imap_feeder),
    cmocka_unit_test(test_queue_million_items_8x8_on_4_hubs),
    cmocka_unit_test(test_queue_close_drains_then_epipe_and_wakes_waiters),
    cmocka_unit_test(test_queue_waiters_fifo_and_direct_handoff),
    cmocka_unit_test(test_mutex_100x10000_increments_on_2_hubs),
    cmocka_unit_test(test_mutex_100x10000_increments_on_4_hubs),
    cmocka_unit_test(test_mutex_plain_threads_and_greenlets_mixed),
    cmocka_unit_test(test_mutex_waiter_does_not_starve),
    cmocka_unit_test(test_mutex_lock_bounded_by_deadline_scope),
    cmocka_unit_test(test_sem_holders_never_exceed_n_on_2_hubs),
    cmocka_unit_test(test_sem_holders_never_exceed_n_on_4_hubs),
    cmocka_unit_test(test_sem_waiters_fifo_and_direct_handoff),
    cmocka_unit_test(test_cond_broadcast_wakes_every_waiter_on_2_hubs),
    cmocka_unit_test(test_cond_broadcast_wakes_every_waiter_on_4_hubs),
    cmocka_unit_test(test_cond_signal_wakes_the_oldest_waiter),
    cmocka_unit_test(test_cond_timeout_returns_with_mutex_held),
    cmocka_unit_test(test_event_set_wakes_all_and_set_before_wait_returns_at_once),
    cmocka_unit_test(test_pool_max_concurrency_is_exactly_k_on_2_hubs),
    cmocka_unit_test(test_pool_max_concurrency_is_exactly_k_on_4_hubs),
    cmocka_unit_test(test_pool_imap_results_in_input_order),
    cmocka_unit_test(test_pool_imap_streams_results_as_they_come),
    cmocka_unit_test(test_pool_imap_unordered_returns_all_in_finish_order),
    cmocka_unit_test(test_pool_imap_empty_shared_limit_and_early_free),
    cmocka_unit_test(test_group_join_waits_for_every_member),
    cmocka_unit_test(test_group_join_timeout_free_busy_and_kill),
    cmocka_unit_test(test_timeouts_on_every_primitive),
    cmocka_unit_test(test_kill_sem_waiter_next_still_gets_permit),
    cmocka_unit_test(test_kill_mutex_waiter_next_still_gets_lock),
    cmocka_unit_test(test_kill_cond_waiter_holds_mutex_and_signal_reaches_next),
    cmocka_unit_test(test_kill_queue_getter_next_gets_item),
    cmocka_unit_test(test_kill_queue_putter_item_not_queued),
    cmocka_unit_test(test_kill_event_group_pool_and_imap_waiters),
    cmocka_unit_test(test_kill_lone_waiter_leaves_nothing_behind),
    cmocka_unit_test(test_killed_greenlet_completes_calls_that_need_no_wait),
    cmocka_unit_test(test_plain_thread_and_greenlet_queue_ping_pong),
    cmocka_unit_test(test_plain_thread_waits_on_sem_cond_event_released_by_greenlet),
    cmocka_unit_test(test_primitives_work_without_a_runtime),
    cmocka_unit_test(test_wakeups_run_on_the_wakers_hub),
    cmocka_unit_test(test_local_values_per_greenlet_across_migration),
    cmocka_unit_test(test_local_fresh_greenlets_and_destructor_rounds),
    cmocka_unit_test(test_local_plain_threads_separate_and_bad_keys),
    cmocka_unit_test(test_bad_input_gets_error_codes),
    cmocka_unit_test(test_destroy_with_waiters_is_ebusy),
    cmocka_unit_test(test_mutex_destroy_is_ebusy_while_a_woken_waiter_returns),
    cmocka_unit_test(test_waiters_claim_leaves_lost_waiters_queued_in_order),
    cmocka_unit_test(test_sem_destroy_is_ebusy_while_a_timed_out_waiter_leaves),
    cmocka_unit_test(test_mutex_destroy_is_ebusy_while_a_timed_out_waiter_leaves),
    cmocka_unit_test(test_cond_destroy_is_ebusy_while_a_timed_out_waiter_leaves),
    cmocka_unit_test(test_event_destroy_is_ebusy_while_a_timed_out_waiter_leaves),
    cmocka_unit_test(test_queue_free_is_ebusy_while_a_timed_out_getter_leaves),
    cmocka_unit_test(test_queue_free_is_ebusy_while_a_timed_out_putter_leaves),
    cmocka_unit_test(test_group_free_is_ebusy_while_a_timed_out_joiner_leaves),
    cmocka_unit_test(test_pool_free_is_ebusy_while_a_timed_out_spawner_leaves),
    cmocka_unit_test(test_stress_destroy_zero_only_once_every_wait_let_go),
    cmocka_unit_test(test_stress_random_ops_timeouts_and_kills_on_2_hubs),
    cmocka_unit_test(test_stress_random_ops_timeouts_and_kills_on_4_hubs),
    cmocka_unit_test(test_local_keys_run_out_with_eagain),
};
GH_TEST_MAIN(tests)
