/* sched/event.c — gh_event: set wakes every waiter; stays set until cleared.
 *
 * Built on the one park mechanism (park.c): waiters queue a gh__waiter
 * under ev->lock and park; gh_event_set wakes them under that lock. */
#include "internal.h"

#include <errno.h>

int gh_event_init(gh_event *ev)
{
    if (!ev)
        return EINVAL;
    atomic_init(&ev->set, 0);
    atomic_flag_clear(&ev->lock);
    ev->waiters = NULL;
    return 0;
}

int gh_event_destroy(gh_event *ev)
{
    if (!ev)
        return EINVAL;
    gh__spin_lock(&ev->lock);
    int busy = ev->waiters != NULL;
    gh__spin_unlock(&ev->lock);
    return busy ? EBUSY : 0;
}

/* Caller holds ev->lock. */
static void unlink_waiter(gh_event *ev, struct gh__waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ev->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->linked = false;
}

int gh_event_set(gh_event *ev)
{
    if (!ev)
        return EINVAL;
    gh__spin_lock(&ev->lock);
    atomic_store_explicit(&ev->set, 1, memory_order_release);
    struct gh__waiter *w;
    while ((w = ev->waiters)) {
        unlink_waiter(ev, w);
        gh__waiter_wake(w, GH_WAKE_EVENT);   /* under ev->lock: w is alive */
    }
    gh__spin_unlock(&ev->lock);
    return 0;
}

int gh_event_clear(gh_event *ev)
{
    if (!ev)
        return EINVAL;
    atomic_store_explicit(&ev->set, 0, memory_order_release);
    return 0;
}

int gh_event_is_set(const gh_event *ev)
{
    return ev ? atomic_load_explicit(&ev->set, memory_order_acquire) : 0;
}

int gh_event_wait(gh_event *ev, int64_t timeout_ms)
{
    if (!ev || timeout_ms < -1)
        return EINVAL;
    if (atomic_load_explicit(&ev->set, memory_order_acquire))
        return 0;
    if (timeout_ms == 0)
        return ETIMEDOUT;
    gh_greenlet *self = gh_self();
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, self, &tp);
    gh__spin_lock(&ev->lock);
    if (atomic_load_explicit(&ev->set, memory_order_relaxed)) {
        gh__spin_unlock(&ev->lock);
        gh__waiter_fini(&w);
        return 0;
    }
    gh__waiter_arm(&w);
    w.next = ev->waiters;
    if (w.next)
        ((struct gh__waiter *)w.next)->prev = &w;
    ev->waiters = &w;
    w.linked = true;
    int r = gh__waiter_wait(&w, timeout_ms, gh__spin_unlock_cb, &ev->lock);
    if (r != GH_WAKE_EVENT) {
        gh__spin_lock(&ev->lock);
        if (w.linked)
            unlink_waiter(ev, &w);
        gh__spin_unlock(&ev->lock);
        if (r == GH_WAKE_TIMEOUT && atomic_load(&ev->set))
            r = GH_WAKE_EVENT;
    }
    gh__waiter_fini(&w);
    return gh__reason_errno(r);
}
