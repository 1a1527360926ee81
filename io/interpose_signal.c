/* io/interpose_signal.c — the interposition layer and signal handlers.
 *
 * A signal handler may run on a hub's thread while a greenlet runs there.
 * A call it makes must be exactly libc's (issue 7): a read on a managed
 * blocking socket would otherwise park the greenlet from inside the
 * handler, switching stacks under the interrupted code's feet.  So the
 * layer hooks sigaction and signal: a handler the program installs is
 * recorded here, and the kernel gets wrap() instead, which runs the
 * program's handler with the layer off on that thread (gh__ip_in_handler,
 * below).  Nothing else
 * changes: flags, mask and SA_SIGINFO are the program's, and sigaction
 * reports the program's handler, never wrap.
 *
 * The record is two atomic pointers per signal, one per handler form; the
 * one in force is set before the other is cleared, so a signal that
 * arrives while a handler is being replaced runs the old one or the new
 * one, never none.  SA_RESETHAND: the kernel puts SIG_DFL back itself on
 * delivery, so what sigaction reports is the kernel's action whenever the
 * kernel's handler is not wrap.
 *
 * Not covered: sigset, sysv_signal and bsd_signal (obsolete); a build
 * with ThreadSanitizer, which hooks neither (GH_REAL_LIST_SIGNALS). */
#include "io_internal.h"
#include "real.h"
#include "interpose_internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#define GH_IP __attribute__((visibility("default")))

/* ---- inside a handler ---------------------------------------------------------------
 * A counter raised around the handler would stay raised for good after a
 * siglongjmp out of it (found in review: the thread's calls were libc's
 * from then on).  So the wrapper records where its frame is: on the
 * alternate signal stack (then "inside" means running on that stack), or
 * on the interrupted stack (then "inside" means deeper than the wrapper's
 * frame, stacks growing down).  A check that finds itself outside, after
 * a jump out, forgets the record. */
__thread struct gh__ip_handler gh__ip_handler_ctx __attribute__((tls_model("initial-exec")));

__attribute__((noinline)) bool gh__ip_in_handler_slow(void)
{
    struct gh__ip_handler *c = &gh__ip_handler_ctx;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    bool inside = c->alt ? sp >= c->alt_lo && sp < c->alt_hi : sp < c->sp;
    if (!inside)
        c->depth = 0;
    return inside;
}

#ifndef __SANITIZE_THREAD__   /* see GH_REAL_LIST_SIGNALS in real.h */

typedef void (*plain_fn)(int);
typedef void (*info_fn)(int, siginfo_t *, void *);

static _Atomic(plain_fn) plain[NSIG];
static _Atomic(info_fn) info[NSIG];

/* Runs the program's handler with the layer off on this thread (see
 * "inside a handler"). */
static void wrap(int sig, siginfo_t *si, void *uc)
{
    struct gh__ip_handler *c = &gh__ip_handler_ctx, saved = *c;
    if (!gh__ip_in_handler()) {   /* the outermost: record where it runs */
        stack_t ss;
        c->alt = sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
        c->alt_lo = (uintptr_t)ss.ss_sp;
        c->alt_hi = (uintptr_t)ss.ss_sp + ss.ss_size;
        c->sp = (uintptr_t)__builtin_frame_address(0);
    }
    c->depth++;
    info_fn fi = atomic_load_explicit(&info[sig], memory_order_acquire);
    plain_fn fp = fi ? NULL : atomic_load_explicit(&plain[sig], memory_order_acquire);
    if (fi)
        fi(sig, si, uc);
    else if (fp)
        fp(sig);
    *c = saved;
}

/* A handler of the program's (not SIG_DFL, SIG_IGN or SIG_ERR), whatever
 * the flags say: SA_SIGINFO with SIG_IGN or SIG_DFL is still ignore or
 * default (sa_handler and sa_sigaction share their storage). */
static bool is_function(const struct sigaction *a)
{
    return a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN && a->sa_handler != SIG_ERR;
}

/* Records a's handler for sig: the new form first, then the other cleared. */
static void record(int sig, const struct sigaction *a)
{
    if (a->sa_flags & SA_SIGINFO) {
        atomic_store_explicit(&info[sig], a->sa_sigaction, memory_order_release);
        atomic_store_explicit(&plain[sig], NULL, memory_order_release);
    } else {
        atomic_store_explicit(&plain[sig], a->sa_handler, memory_order_release);
        atomic_store_explicit(&info[sig], NULL, memory_order_release);
    }
}

/* The kernel's action k as the program sees it: wrap is its handler. */
static void as_seen(int sig, struct sigaction *k)
{
    if (!(k->sa_flags & SA_SIGINFO) || k->sa_sigaction != wrap)
        return;
    info_fn fi = atomic_load_explicit(&info[sig], memory_order_acquire);
    if (fi) {
        k->sa_sigaction = fi;
    } else {
        k->sa_flags &= ~SA_SIGINFO;
        k->sa_handler = atomic_load_explicit(&plain[sig], memory_order_acquire);
    }
}

GH_IP int gh__ip_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG || !act || !is_function(act)) {
        int r = GH_REAL(sigaction)(sig, act, old);
        if (r == 0 && old && sig > 0 && sig < NSIG)
            as_seen(sig, old);
        return r;
    }
    struct sigaction w = *act;
    w.sa_flags |= SA_SIGINFO;
    w.sa_sigaction = wrap;
    /* The handler is recorded before wrap can run for it; the previous
     * one is reported as it was, read before the record changes. */
    struct sigaction prev;
    int r = GH_REAL(sigaction)(sig, NULL, &prev);
    if (r != 0)
        return r;
    as_seen(sig, &prev);
    record(sig, act);
    r = GH_REAL(sigaction)(sig, &w, NULL);
    if (r != 0) {
        if (is_function(&prev))
            record(sig, &prev);
        return r;
    }
    if (old)
        *old = prev;
    return 0;
}

/* glibc's signal(): BSD semantics (SA_RESTART, the signal blocked in its
 * handler, no reset), through the hook above. */
GH_IP sighandler_t gh__ip_signal(int sig, sighandler_t h)
{
    struct sigaction a, old;
    memset(&a, 0, sizeof a);
    a.sa_handler = h;
    a.sa_flags = SA_RESTART;
    sigemptyset(&a.sa_mask);
    if (sig > 0 && sig < NSIG)
        sigaddset(&a.sa_mask, sig);
    if (gh__ip_sigaction(sig, &a, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;   /* shares its storage with sa_sigaction */
}

#endif
