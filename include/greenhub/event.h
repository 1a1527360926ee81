/* greenhub/event.h — gh_event: a flag greenlets and threads wait for.
 *
 * gh_event_set wakes every waiter and the event stays set until
 * gh_event_clear.  Works across hubs and between greenlets and plain threads
 * (a plain thread blocks; a greenlet parks).  gh_event is a complete type the
 * caller allocates (static, on the stack, inside a struct), like
 * pthread_mutex_t; initialise it with gh_event_init before use. */
#ifndef GREENHUB_EVENT_H
#define GREENHUB_EVENT_H

#include <stdatomic.h>
#include <stdint.h>

#ifndef GH_API
#define GH_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct gh__waiter;        /* internal */

typedef struct gh_event {
    atomic_int set;      /* 1 while set */
    atomic_flag lock;    /* protects waiters; never held across a switch */
    struct gh__waiter *waiters;   /* internal list of waiters, under lock */
} gh_event;

/* Initialises ev, cleared.  Returns 0, EINVAL for NULL. */
GH_API int gh_event_init(gh_event *ev);
/* Destroys ev.  Returns 0; EINVAL for NULL; EBUSY if someone waits on it
 * (a waiter whose wait timed out or was cancelled counts until it has let
 * go of ev: see "_destroy" in greenhub/sync.h). */
GH_API int gh_event_destroy(gh_event *ev);
/* Sets ev and wakes every waiter.  Returns 0, EINVAL for NULL. */
GH_API int gh_event_set(gh_event *ev);
/* Clears ev.  Returns 0, EINVAL for NULL. */
GH_API int gh_event_clear(gh_event *ev);
/* 1 if set, 0 if not (or NULL). */
GH_API int gh_event_is_set(const gh_event *ev);
/* Waits until ev is set (returns at once if it is).  Returns 0; ETIMEDOUT
 * after timeout_ms (-1 forever, 0 polls); ECANCELED if the greenlet was
 * killed; EINVAL for NULL or timeout_ms < -1. */
GH_API int gh_event_wait(gh_event *ev, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
