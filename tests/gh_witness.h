/* tests/gh_witness.h — what the interposition tests share.
 *
 * "The hub was not blocked" without timing: on one hub, a second greenlet
 * (the witness) runs while the first is inside a call (it sees the first's
 * `inside` flag set), which a call that blocked the hub's thread would
 * make impossible: the witness could only run after the call returned.
 * The witness then runs `then(arg)`, if given: what ends the call.
 *
 * Each test file that includes this gets its own copy of the state. */
#ifndef GH_WITNESS_H
#define GH_WITNESS_H

#include "gh_test.h"

#include <fcntl.h>
#include <greenhub/interpose.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

static _Atomic int inside;        /* the first greenlet is in the call */
static _Atomic int seen_inside;   /* the witness ran while it was */

struct witness {
    void (*then)(void *);
    void *arg;
};

static inline void *witness_fn(void *arg)
{
    struct witness *w = arg;
    while (!atomic_load(&inside))
        gh_yield();
    atomic_store(&seen_inside, 1);
    if (w->then)
        w->then(w->arg);
    return NULL;
}

/* A witness on the caller's hub, pinned there. */
static inline gh_greenlet *witness_spawn(struct witness *w)
{
    atomic_store(&inside, 0);
    atomic_store(&seen_inside, 0);
    gh_spawn_opts o = { .hub = gh_hub_index(), .pinned = 1 };
    return gh_spawn_with(&o, witness_fn, w);
}

/* O_NONBLOCK as the kernel has it (libc's fcntl, past the layer's view). */
static inline bool kernel_nonblock(int fd)
{
    int (*real_fcntl)(int, int, ...);
    void *p = gh_syscall_real("fcntl");
    memcpy(&real_fcntl, &p, sizeof p);
    return real_fcntl(fd, F_GETFL) & O_NONBLOCK;
}

#endif
