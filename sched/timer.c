/* sched/timer.c — per-hub timers: a binary min-heap of deadlines driving one
 * uv_timer, and gh_sleep_ms.
 *
 * A timed wait adds (deadline, greenlet, wait generation) to the heap of the
 * hub it parks on; the hub's uv_timer is armed for the earliest deadline.
 * When a deadline passes, the hub tries to wake the greenlet with reason
 * TIMEOUT; if something else won the wait first, the claim fails and the
 * entry is simply dropped (see park.c).  Entries are therefore never removed
 * early: a wait that ends otherwise leaves a dead entry behind, and when the
 * heap has doubled since it was last cleaned, a pass drops the dead ones
 * (amortised O(1) per entry).  A million sleepers cost 24 bytes each here.
 *
 * Deadlines are CLOCK_MONOTONIC nanoseconds and are checked against that
 * clock, not libuv's cached millisecond time, so no timer fires early.
 * Owner: everything here is touched by the hub's own thread only. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

enum { COMPACT_MIN = 1024 };   /* don't bother cleaning smaller heaps */

uint64_t gh__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_uv_timer(uv_timer_t *t);

int gh__timer_init(struct gh__hub *h)
{
    h->timer_heap = NULL;
    h->timer_len = h->timer_cap = 0;
    h->timer_compact_at = COMPACT_MIN;
    int err = uv_timer_init(&h->loop, &h->timer);
    h->timer.data = h;
    return err ? ENOMEM : 0;
}

void gh__timer_destroy(struct gh__hub *h)
{
    free(h->timer_heap);
    h->timer_heap = NULL;
    h->timer_len = h->timer_cap = 0;
}

static void sift_up(struct gh__timer_ent *a, size_t i)
{
    struct gh__timer_ent e = a[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (a[p].deadline_ns <= e.deadline_ns)
            break;
        a[i] = a[p];
        i = p;
    }
    a[i] = e;
}

static void sift_down(struct gh__timer_ent *a, size_t n, size_t i)
{
    struct gh__timer_ent e = a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && a[c + 1].deadline_ns < a[c].deadline_ns)
            c++;
        if (e.deadline_ns <= a[c].deadline_ns)
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = e;
}

/* Arms the hub's uv_timer for the earliest deadline (rounded up to ms). */
static void arm(struct gh__hub *h)
{
    if (h->timer_len == 0) {
        uv_timer_stop(&h->timer);
        return;
    }
    uint64_t now = gh__now_ns(), d = h->timer_heap[0].deadline_ns;
    uint64_t ms = d > now ? (d - now + 999999) / 1000000 : 0;
    uv_update_time(&h->loop);
    uv_timer_start(&h->timer, on_uv_timer, ms, 0);
}

static bool entry_live(const struct gh__timer_ent *e)
{
    return atomic_load_explicit(&e->g->wait, memory_order_relaxed) == e->gen << 8;
}

/* Owner hub: publishes the heap's length for gh_stats_hubs (relaxed). */
static void timers_published(struct gh__hub *h)
{
    atomic_store_explicit(&h->st.timers, h->timer_len, memory_order_relaxed);
}

/* Drops entries whose wait already ended, then rebuilds the heap. */
static void compact(struct gh__hub *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->timer_len; i++)
        if (entry_live(&h->timer_heap[i]))
            h->timer_heap[n++] = h->timer_heap[i];
    h->timer_len = n;
    timers_published(h);
    for (size_t i = n / 2; i-- > 0;)
        sift_down(h->timer_heap, n, i);
    h->timer_compact_at = n * 2 > COMPACT_MIN ? n * 2 : COMPACT_MIN;
}

int gh__timer_add(struct gh__hub *h, uint64_t deadline_ns, gh_greenlet *g, uint64_t gen)
{
    if (h->timer_len >= h->timer_compact_at)
        compact(h);
    if (h->timer_len == h->timer_cap) {
        size_t cap = h->timer_cap ? h->timer_cap * 2 : 64;
        struct gh__timer_ent *a = realloc(h->timer_heap, cap * sizeof *a);
        if (!a)
            return ENOMEM;
        h->timer_heap = a;
        h->timer_cap = cap;
    }
    h->timer_heap[h->timer_len] = (struct gh__timer_ent){ deadline_ns, g, gen };
    sift_up(h->timer_heap, h->timer_len++);
    timers_published(h);
    if (h->timer_heap[0].g == g && h->timer_heap[0].gen == gen)
        arm(h);   /* the new entry is the earliest */
    return 0;
}

void gh__timers_run(struct gh__hub *h)
{
    if (h->timer_len == 0)
        return;
    uint64_t now = gh__now_ns();
    bool fired = false;
    while (h->timer_len && h->timer_heap[0].deadline_ns <= now) {
        struct gh__timer_ent e = h->timer_heap[0];
        h->timer_heap[0] = h->timer_heap[--h->timer_len];
        if (h->timer_len)
            sift_down(h->timer_heap, h->timer_len, 0);
        gh__wake(e.g, e.gen, GH_WAKE_TIMEOUT);
        fired = true;
    }
    timers_published(h);
    if (fired)
        arm(h);
}

static void on_uv_timer(uv_timer_t *t)
{
    struct gh__hub *h = t->data;
    gh__timers_run(h);
    arm(h);
}

int gh_sleep_ms(int64_t ms)
{
    if (ms < 0)
        return EINVAL;
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (!self) {   /* a plain thread sleeps, within its deadline scope */
        bool by_scope = false;
        uint64_t at = ms ? gh__scope_deadline(ms, &by_scope) : gh__now_ns();
        if (!at)
            at = UINT64_MAX;   /* too far to matter: sleep "forever" */
        struct timespec ts = { (time_t)(at / 1000000000u), (long)(at % 1000000000u) };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        return by_scope ? ETIMEDOUT : 0;
    }
    if (atomic_load(&self->killed))
        return ECANCELED;
    if (ms == 0) {
        gh_yield();
        return 0;
    }
    int r = gh__park(self, gh__wait_open(self), ms, NULL, NULL);
    return r == GH_WAKE_TIMEOUT ? 0 : gh__reason_errno(r);
}
