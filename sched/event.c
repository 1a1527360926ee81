/* sched/event.c — gh_event: set wakes every waiter; stays set until cleared.
 *
 * Built on the one park mechanism (park.c): waiters queue a gh__waiter
 * under ev->lock and park; gh_event_set wakes them under that lock.  A
 * waiter leaves the list only when set wins its claim, or by itself under
 * ev->lock, so gh_event_destroy (which looks under ev->lock) says EBUSY
 * until every waiter has let go of ev. */
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

int gh_event_set(gh_event *ev)
{
    if (!ev)
        return EINVAL;
    gh__spin_lock(&ev->lock);
    atomic_store_explicit(&ev->set, 1, memory_order_release);
    gh__waiters_wake_all(&ev->waiters, GH_WAKE_EVENT);
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
    int r = gh__wait_on_relock(&ev->waiters, &ev->lock, &w, timeout_ms);
    if (r != GH_WAKE_EVENT) {
        /* Under ev->lock: once we let go of it, ev may be destroyed. */
        if (r == GH_WAKE_TIMEOUT && atomic_load_explicit(&ev->set, memory_order_relaxed))
            r = GH_WAKE_EVENT;   /* set as the timer fired: no timeout */
        gh__spin_unlock(&ev->lock);
    }
    gh__waiter_fini(&w);
    return gh__reason_errno(r);
}
