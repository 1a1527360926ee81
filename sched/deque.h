/* sched/deque.h — growable Chase–Lev work-stealing deque of pointers.
 *
 * One owner thread pushes at the bottom and pops there (LIFO); any thread,
 * the owner included, steals at the top (FIFO).  See "Run queues" in hub.c
 * for how the hubs use the two ends.
 *
 * Algorithm: Chase & Lev, "Dynamic Circular Work-Stealing Deque" (SPAA
 * 2005), in the C11 form of Lê, Pop, Cohen & Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013).  Where Lê
 * et al. use a seq_cst fence next to a relaxed access, this code makes the
 * access itself seq_cst: the same instructions on x86-64, and visible to
 * ThreadSanitizer, which does not model fences. */
#ifndef GH_SCHED_DEQUE_H
#define GH_SCHED_DEQUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct gh__deque_buf {
    size_t mask;                      /* capacity - 1; capacity a power of 2 */
    struct gh__deque_buf *retired;    /* older buffers, freed at destroy */
    _Atomic(void *) slot[];
};

typedef struct gh__deque {
    _Alignas(64) _Atomic int64_t top;      /* thieves CAS it forward */
    _Alignas(64) _Atomic int64_t bottom;   /* written by the owner only */
    _Atomic(struct gh__deque_buf *) buf;   /* replaced by the owner on growth */
} gh__deque;

/* A steal that lost a race (the caller may retry). */
#define GH_DEQUE_ABORT ((void *)1)

/* Initial capacity is rounded up to a power of two.  0 or ENOMEM. */
int gh__deque_init(gh__deque *d, size_t capacity);
/* Frees every buffer.  Nobody may use d any more. */
void gh__deque_destroy(gh__deque *d);
/* Owner only.  0, or ENOMEM when the deque is full and cannot grow (then x
 * is not pushed: the caller must put it elsewhere). */
int gh__deque_push(gh__deque *d, void *x);
/* Owner only.  The most recently pushed item, or NULL when empty. */
void *gh__deque_pop(gh__deque *d);
/* Any thread.  The oldest item, NULL when empty, GH_DEQUE_ABORT when it lost
 * a race with another thief or the owner. */
void *gh__deque_steal(gh__deque *d);
/* Any thread; a snapshot that may be stale at once. */
static inline size_t gh__deque_size(gh__deque *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}

#endif
