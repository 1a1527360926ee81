/* sched/queue.c — gh_queue: a FIFO of void * between greenlets and threads.
 *
 * One spin lock protects everything; items live in a ring buffer that
 * grows by doubling (up to the capacity of a bounded queue).  Waiters are
 * handed items directly, so a woken waiter never has to compete again:
 *
 *   - getters wait only while the buffer is empty, so a put that finds a
 *     getter gives it the item (FIFO holds: nothing older is buffered);
 *   - putters wait only while the buffer is full, so a get that takes an
 *     item moves the oldest waiting putter's item into the freed slot.
 *
 * A hand-over writes the item (or status) into the waiter, then claims it;
 * a waiter whose claim is lost (it timed out or was killed) is skipped and
 * keeps what it had: a killed putter's item is not queued, a killed getter
 * has eaten nothing.  A skipped waiter stays on its list until it unlinks
 * itself (see park.c), so the lists may hold such waiters whatever len is,
 * and gh_queue_free says EBUSY until they are gone.  gh_queue_close claims
 * every waiter with EPIPE. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct gh_queue {
    atomic_flag lock;             /* protects every field below */
    void **buf;                   /* ring of `size` slots */
    size_t size, head, len;       /* slots, oldest item, items */
    size_t capacity;              /* immutable; 0: unbounded */
    bool closed;
    struct gh__waiter *getters;   /* waiting while len == 0 (or leaving) */
    struct gh__waiter *putters;   /* waiting while len == capacity (or leaving) */
};

struct queue_waiter {
    struct gh__waiter w;   /* first: the lists hold &qw->w */
    void *item;            /* a putter's item, or the one a getter is handed */
    int status;            /* 0, or EPIPE when woken by the close */
};

/* Ring sizes start here and double: small queues stay small.  A guess. */
enum { QUEUE_MIN_SLOTS = 16 };

gh_queue *gh_queue_new(size_t capacity)
{
    if (capacity > (size_t)1 << 31) {
        errno = EINVAL;
        return NULL;
    }
    gh_queue *q = calloc(1, sizeof *q);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_flag_clear(&q->lock);
    q->capacity = capacity;
    return q;
}

/* Caller holds q->lock.  Doubles the ring (never past a bounded queue's
 * capacity), keeping the items in order.  false: no memory. */
static bool ring_grow(gh_queue *q)
{
    size_t n = q->size ? q->size * 2 : QUEUE_MIN_SLOTS;
    if (q->capacity && n > q->capacity)
        n = q->capacity;
    void **b = malloc(n * sizeof *b);
    if (!b)
        return false;
    for (size_t i = 0; i < q->len; i++)
        b[i] = q->buf[(q->head + i) % q->size];
    free(q->buf);
    q->buf = b;
    q->size = n;
    q->head = 0;
    return true;
}

/* Caller holds q->lock and checked the capacity. */
static bool ring_push(gh_queue *q, void *item)
{
    if (q->len == q->size && !ring_grow(q))
        return false;
    q->buf[(q->head + q->len) % q->size] = item;
    q->len++;
    return true;
}

/* Caller holds q->lock; q->len > 0. */
static void *ring_pop(gh_queue *q)
{
    void *item = q->buf[q->head];
    q->head = (q->head + 1) % q->size;
    q->len--;
    return item;
}

/* What a waker hands each waiter it claims (gh__waiters_claim's prep). */
struct handing {
    void *item;
    int status;
};

static void hand_prep(struct gh__waiter *w, void *arg)
{
    struct queue_waiter *qw = (struct queue_waiter *)w;
    const struct handing *h = arg;
    qw->item = h->item;
    qw->status = h->status;
}

/* Caller holds q->lock.  Claims up to `max` waiters of `list` oldest
 * first, handing each (item, status) before its claim; returns how many
 * were won.  A waiter whose claim is lost keeps what it had and stays
 * queued until it unlinks itself (park.c). */
static size_t hand_over(struct gh__waiter **list, size_t max, void *item, int status)
{
    struct handing h = { item, status };
    return gh__waiters_claim(list, max, GH_WAKE_EVENT, hand_prep, &h);
}

/* Caller holds q->lock and waits as qw on `list`; returns with it
 * released: qw->status (0 or EPIPE) if a waker claimed qw, else the
 * reason's errno. */
static int queue_wait(gh_queue *q, struct gh__waiter **list,
                      struct queue_waiter *qw, int64_t timeout_ms)
{
    struct gh__tparker tp;
    gh__waiter_init(&qw->w, gh_self(), &tp);
    int r = gh__wait_on(list, &q->lock, &qw->w, timeout_ms, false);
    gh__waiter_fini(&qw->w);
    return r == GH_WAKE_EVENT ? qw->status : gh__reason_errno(r);
}

int gh_queue_put(gh_queue *q, void *item, int64_t timeout_ms)
{
    if (!q || timeout_ms < -1)
        return EINVAL;
    int err = 0;
    gh__spin_lock(&q->lock);
    if (q->closed)
        err = EPIPE;
    else if (hand_over(&q->getters, 1, item, 0))
        err = 0;
    else if (!q->capacity || q->len < q->capacity)
        err = ring_push(q, item) ? 0 : ENOMEM;
    else if (timeout_ms == 0)
        err = ETIMEDOUT;
    else {
        struct queue_waiter qw = { .item = item };
        return queue_wait(q, &q->putters, &qw, timeout_ms);
    }
    gh__spin_unlock(&q->lock);
    return err;
}

/* gh__waiters_claim's prep for a putter: takes its item (into *arg)
 * before the claim, and tells it it is queued. */
static void take_prep(struct gh__waiter *w, void *arg)
{
    struct queue_waiter *qw = (struct queue_waiter *)w;
    *(void **)arg = qw->item;
    qw->status = 0;
}

/* Caller holds q->lock; an item was just taken from a bounded queue.
 * Moves the oldest waiting putter's item into the freed slot. */
static void refill_from_putters(gh_queue *q)
{
    void *item;
    if (gh__waiters_claim(&q->putters, 1, GH_WAKE_EVENT, take_prep, &item))
        ring_push(q, item);   /* the slot just freed: no allocation */
}

int gh_queue_get(gh_queue *q, void **item, int64_t timeout_ms)
{
    if (!q || !item || timeout_ms < -1)
        return EINVAL;
    int err = 0;
    gh__spin_lock(&q->lock);
    if (q->len > 0) {
        *item = ring_pop(q);
        refill_from_putters(q);
    } else if (q->closed) {
        err = EPIPE;
    } else if (timeout_ms == 0) {
        err = ETIMEDOUT;
    } else {
        struct queue_waiter qw = { .item = NULL };
        err = queue_wait(q, &q->getters, &qw, timeout_ms);
        if (err == 0)
            *item = qw.item;
        return err;
    }
    gh__spin_unlock(&q->lock);
    return err;
}

int gh_queue_close(gh_queue *q)
{
    if (!q)
        return EINVAL;
    gh__spin_lock(&q->lock);
    q->closed = true;
    /* Getters wait only on an empty queue, so they lose nothing; putters
     * keep their items.  Each is tried once: one whose claim is lost is
     * leaving by itself. */
    hand_over(&q->getters, SIZE_MAX, NULL, EPIPE);
    hand_over(&q->putters, SIZE_MAX, NULL, EPIPE);
    gh__spin_unlock(&q->lock);
    return 0;
}

size_t gh_queue_len(gh_queue *q)
{
    if (!q)
        return 0;
    gh__spin_lock(&q->lock);
    size_t n = q->len;
    gh__spin_unlock(&q->lock);
    return n;
}

int gh_queue_free(gh_queue *q)
{
    if (!q)
        return EINVAL;
    gh__spin_lock(&q->lock);
    bool busy = q->getters || q->putters;
    gh__spin_unlock(&q->lock);
    if (busy)
        return EBUSY;
    free(q->buf);
    free(q);
    return 0;
}
