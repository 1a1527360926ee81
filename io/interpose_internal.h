/* io/interpose_internal.h — what the interposition layer's files
 * (interpose.c, interpose_dns.c) share. */
#ifndef GH_INTERPOSE_INTERNAL_H
#define GH_INTERPOSE_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

/* A greenlet runs here and the layer is not bypassed (nor in a forked
 * child): a call may go green. */
bool gh__ip_on_greenlet(void);

/* The signal handler this thread runs, if any (interpose_signal.c):
 * depth 0 outside any; else where the outermost one's frame is. */
struct gh__ip_handler {
    int depth;
    bool alt;                    /* it runs on the alternate signal stack */
    uintptr_t sp;                /* its wrapper's frame (not alt) */
    uintptr_t alt_lo, alt_hi;    /* the alternate stack (alt) */
};
extern __thread struct gh__ip_handler gh__ip_handler_ctx
    __attribute__((tls_model("initial-exec")));
bool gh__ip_in_handler_slow(void);

/* True while a signal handler installed through the layer runs on this
 * thread: its calls are libc's.  One thread-local load outside handlers. */
static inline bool gh__ip_in_handler(void)
{
    return gh__ip_handler_ctx.depth && gh__ip_in_handler_slow();
}

/* A runtime starts in this process: its hubs are real, even in the child
 * of a fork (see forked_child in interpose.c). */
void gh__ip_runtime_start(void);

/* Staying on the hub.
 * Unmodified code may keep a thread-local address across a call the layer
 * parks: hiredis 0.14 computes &errno before poll() and stores ETIMEDOUT
 * through it after (glibc declares __errno_location const, so the
 * compiler may).  Had the greenlet been stolen while parked, that store
 * would land in another greenlet's errno on the old thread (reproduced:
 * 200 redisConnectWithTimeout to a full accept queue on 2 hubs, 11 of 20
 * runs; 0 of 20 with this).  So a green call made by the layer resumes on
 * the hub it started on: the greenlet's stay_hub (sched/internal.h) is set
 * for the call, and wakers and the scheduler treat it as pinned meanwhile
 * (tests/test_interpose_stay.c).  Costs two stores per call; what is lost
 * is only moving such a greenlet to an idle hub while it waits
 * (spawn-time spreading and the gh_* calls are unchanged).
 *
 * gh__ip_stay_begin returns the stay in force before (for
 * gh__ip_stay_end), or -2 off a greenlet. */
int gh__ip_stay_begin(void);
void gh__ip_stay_end(int old);

/* Evaluates a green call with the greenlet staying on its hub; errno as
 * the call left it. */
#define STAYING(type, expr)                 \
    ({                                      \
        int stay_ = gh__ip_stay_begin();    \
        type r_ = (expr);                   \
        int e_ = errno;                     \
        gh__ip_stay_end(stay_);             \
        errno = e_;                         \
        r_;                                 \
    })

#endif
