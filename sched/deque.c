/* sched/deque.c — growable Chase–Lev work-stealing deque (see deque.h). */
#include "deque.h"
#include "arch.h"

#include <errno.h>
#include <stdlib.h>

static struct gh__deque_buf *buf_new(size_t cap)
{
    struct gh__deque_buf *b = malloc(sizeof *b + cap * sizeof b->slot[0]);
    if (!b)
        return NULL;
    b->mask = cap - 1;
    b->retired = NULL;
    return b;
}

int gh__deque_init(gh__deque *d, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    struct gh__deque_buf *b = buf_new(cap);
    if (!b)
        return ENOMEM;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->buf, b);
    return 0;
}

void gh__deque_destroy(gh__deque *d)
{
    struct gh__deque_buf *b = atomic_load_explicit(&d->buf, memory_order_relaxed);
    while (b) {
        struct gh__deque_buf *older = b->retired;
        free(b);
        b = older;
    }
    atomic_store_explicit(&d->buf, NULL, memory_order_relaxed);
}

/* Owner only: doubles the buffer, copying the live range [t, b).  The old
 * buffer stays readable (a thief may still be reading it; the values it
 * holds for [t, b) stay valid) until the deque is destroyed. */
static struct gh__deque_buf *grow(gh__deque *d, struct gh__deque_buf *old,
                                  int64_t t, int64_t b)
{
    struct gh__deque_buf *n = buf_new((old->mask + 1) * 2);
    if (!n)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        void *x = atomic_load_explicit(&old->slot[i & old->mask], memory_order_relaxed);
        atomic_store_explicit(&n->slot[i & n->mask], x, memory_order_relaxed);
    }
    n->retired = old;
    /* release: publishes the copied slots; pairs with the acquire in
     * gh__deque_steal(). */
    atomic_store_explicit(&d->buf, n, memory_order_release);
    return n;
}

int gh__deque_push(gh__deque *d, void *x)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    struct gh__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
    if (b - t > (int64_t)a->mask) {
        a = grow(d, a, t, b);
        if (!a)
            return ENOMEM;
    }
    atomic_store_explicit(&a->slot[b & a->mask], x, memory_order_relaxed);
    /* release: publishes the slot (and everything the owner wrote to *x);
     * pairs with the seq_cst (acquire) load of bottom in gh__deque_steal(). */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    return 0;
}

void *gh__deque_pop(gh__deque *d)
{
    /* Empty?  Only the owner moves bottom and top only grows, so this
     * relaxed look is exact for "empty", and spares the full fence below
     * (a hub with an empty deque paid it on every other yield). */
    if (atomic_load_explicit(&d->bottom, memory_order_relaxed) <=
        atomic_load_explicit(&d->top, memory_order_relaxed))
        return NULL;
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    struct gh__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_relaxed);
    /* seq_cst store then seq_cst load: the store-load order the algorithm
     * needs (Lê et al. put a seq_cst fence here).  Either a thief sees the
     * smaller bottom, or we see its larger top. */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    gh__store_load_fence();
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    void *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
        if (t == b) {
            /* The last item: race the thieves for it on top. */
            if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                    memory_order_seq_cst, memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
        }
    } else {
        /* release, not relaxed: a thief that reads this bottom must still
         * see the slots published by earlier pushes (TSan and C++20 do not
         * count a same-thread relaxed store as part of a release sequence). */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return x;
}

void *gh__deque_steal(gh__deque *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    if (t >= b)
        return NULL;
    /* acquire: pairs with the release in grow(). */
    struct gh__deque_buf *a = atomic_load_explicit(&d->buf, memory_order_acquire);
    void *x = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
            memory_order_seq_cst, memory_order_relaxed))
        return GH_DEQUE_ABORT;
    return x;
}
