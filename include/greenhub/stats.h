/* greenhub/stats.h — per-hub counters (what schedtop shows).
 *
 * The hubs write these with relaxed atomic stores only; reading them never
 * stalls a hub, and a snapshot is a set of independently sampled counters,
 * not one consistent instant. */
#ifndef GREENHUB_STATS_H
#define GREENHUB_STATS_H

#include <stdint.h>

#ifndef GH_API
#define GH_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gh_hub_stats {      /* one hub; counters are totals since start */
    int core;                      /* OS cpu the hub is pinned to, -1 if not pinned */
    uint64_t switches;             /* greenlet switches made on this hub */
    uint64_t steals;               /* greenlets this hub took from other hubs */
    uint64_t stolen;               /* greenlets other hubs took from this one */
    uint64_t parks;                /* times a greenlet parked on this hub */
    uint64_t runnable;             /* now: greenlets queued on this hub */
    uint64_t greenlets;            /* now: alive greenlets that last ran here */
    uint64_t sleeps;               /* times the hub slept in epoll */
    uint64_t wakeups;              /* times another thread woke this hub */
    uint64_t woke;                 /* times the hub came back from a sleep:
                                    * woken by another hub or thread, or by
                                    * its own timer or I/O */
    int sleeping;                  /* now: 1 while the hub sleeps in epoll
                                    * (it found no work to run), else 0 */
    uint64_t stacks_trimmed;       /* stacks of ended greenlets whose pages
                                    * this hub gave back to the kernel; a
                                    * busy hub defers that until it is idle */
    uint64_t io_waits;             /* times a greenlet parked here waiting
                                    * for an fd (gh_wait_fd and the green
                                    * calls, after EAGAIN) */
    uint64_t timers;               /* now: timer entries queued on this hub
                                    * (sleeps, wait timeouts, deadlines); a
                                    * wait that ended early keeps its entry
                                    * until it is due or swept out */
} gh_hub_stats;

/* Fills out[0..max) with the hubs of the running runtime and returns the
 * number filled (0 when no runtime runs or out is NULL). */
GH_API int gh_stats_hubs(gh_hub_stats *out, unsigned max);

#ifdef __cplusplus
}
#endif
#endif
