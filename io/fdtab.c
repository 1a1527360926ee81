/* io/fdtab.c — process-wide per-fd state (see io_internal.h).
 *
 * A two-level table: CHUNK states per chunk, chunks allocated on first use
 * and published with a CAS, never freed (the table lives as long as the
 * process, like the fd numbers it describes).  Lookups take no lock. */
#include "io_internal.h"
#include "real.h"
#include "interpose_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

enum { CHUNK = GH__FD_CHUNK };

_Atomic(struct gh__fdstate *) gh__fd_chunks[GH_FD_MAX / GH__FD_CHUNK];
static _Atomic uint32_t epoch = 1;

uint32_t gh__io_epoch(void)
{
    return atomic_load_explicit(&epoch, memory_order_relaxed);
}

void gh__io_runtime_start(void)
{
    atomic_fetch_add(&epoch, 1);
    gh__ip_runtime_start();
}

struct gh__fdstate *gh__fdstate_make(int fd)
{
    if (fd < 0 || fd >= GH_FD_MAX) {
        errno = EINVAL;
        return NULL;
    }
    _Atomic(struct gh__fdstate *) *slot = &gh__fd_chunks[fd / CHUNK];
    struct gh__fdstate *c = atomic_load_explicit(slot, memory_order_acquire);
    if (!c) {
        /* calloc: every lock clear, every field 0 (atomic_flag's clear
         * state is all-zero bits on the targets we build for). */
        struct gh__fdstate *fresh = calloc(CHUNK, sizeof *fresh);
        if (!fresh) {
            errno = ENOMEM;
            return NULL;
        }
        if (atomic_compare_exchange_strong_explicit(slot, &c, fresh,
                memory_order_acq_rel, memory_order_acquire))
            c = fresh;
        else
            free(fresh);   /* another thread published its chunk first */
    }
    return &c[fd % CHUNK];
}

int gh__fd_mark_hub(struct gh__fdstate *st, unsigned hub)
{
    uint64_t bit = 1ull << (hub % 64);
    uint32_t now = gh__io_epoch();
    /* Fast path: already marked in this run, no close under way.  Safe
     * without the lock: a gh_close that starts after this read still sees
     * the bit, and asks this hub, whose thread is the one running here,
     * so it retires the watch after this wait has registered. */
    /* closing first (acquire), then the mask: read the other way round, a
     * weakly ordered CPU could pair a bit from before a finished close with
     * `closing == false` from after it. */
    if (!atomic_load_explicit(&st->closing, memory_order_acquire) &&
        atomic_load_explicit(&st->epoch, memory_order_acquire) == now &&
        (atomic_load_explicit(&st->hubmask, memory_order_acquire) & bit))
        return 0;
    gh__spin_lock(&st->lock);
    int err = 0;
    if (atomic_load_explicit(&st->closing, memory_order_relaxed)) {
        err = EAGAIN;
    } else {
        if (atomic_load_explicit(&st->epoch, memory_order_relaxed) != now) {
            atomic_store_explicit(&st->hubmask, 0, memory_order_relaxed);
            atomic_store_explicit(&st->epoch, now, memory_order_release);
        }
        atomic_fetch_or_explicit(&st->hubmask, bit, memory_order_relaxed);
    }
    gh__spin_unlock(&st->lock);
    return err;
}

int gh__fd_nonblock_slow(int fd)
{
    if (fd < 0)
        return EBADF;   /* what the call itself would say */
    struct gh__fdstate *st = gh__fdstate_get(fd);   /* NULL: fcntl each time */
    if (st && atomic_load_explicit(&st->nb, memory_order_relaxed))
        return 0;
    int fl = GH_REAL(fcntl)(fd, F_GETFL);
    if (fl < 0)
        return errno;
    if (!(fl & O_NONBLOCK) && GH_REAL(fcntl)(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return errno;
    gh__fd_mark_nonblock(st);
    return 0;
}

void gh__fd_mark_nonblock(struct gh__fdstate *st)
{
    if (!st)
        return;
    /* Under the lock, and not while a gh_close runs: the flag must not
     * outlive the fd it describes (gh_close clears it under this lock). */
    gh__spin_lock(&st->lock);
    if (!atomic_load_explicit(&st->closing, memory_order_relaxed))
        atomic_store_explicit(&st->nb, 1, memory_order_relaxed);
    gh__spin_unlock(&st->lock);
}

static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

_Atomic bool gh__sigpipe_done;

void gh__io_sigpipe_slow(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ignore_sigpipe);
    /* release: whoever sees it set skips a disposition already changed */
    atomic_store_explicit(&gh__sigpipe_done, true, memory_order_release);
}

/* ---- descriptors freed, for accepts out of them (sys.c) ------------------------ */

static gh_event fd_freed;            /* all-zero: a valid, clear event */
static _Atomic int fd_freed_waiters;

void gh__fd_freed_notify(void)
{
    if (atomic_load_explicit(&fd_freed_waiters, memory_order_relaxed))
        gh_event_set(&fd_freed);
}

void gh__fd_freed_wait(int64_t ms)
{
    atomic_fetch_add(&fd_freed_waiters, 1);
    /* A set that comes before this clear is lost to us: the timeout bounds
     * what that costs. */
    gh_event_clear(&fd_freed);
    gh_event_wait(&fd_freed, ms);
    atomic_fetch_sub(&fd_freed_waiters, 1);
}
