/* io/signal.c — gh_signal_wait on uv_signal.
 *
 * The first wait for a signal, while a runtime runs, starts one uv_signal
 * handle for it on hub 0's loop (a hub call), and the handle then stays
 * until the runtime stops; until hub 0 has started it, a plain handler the
 * first waiter installs catches the signal for it (early_catch).  Waiters (greenlets, or plain threads) queue on
 * the signal's slot; the handle's callback wakes them all, or, when nobody
 * waits, marks the signal pending for the next wait (one mark, however
 * many arrive: a pending standard signal in POSIX does the same); so does
 * one that finds only waiters whose wait already ended (a timeout that
 * fired as the signal came: their claims are lost).  Without
 * that, `while (gh_signal_wait(SIGTERM, 200) != 0) housekeeping();` lost a
 * SIGTERM that came during housekeeping, and the program never stopped
 * (seen with bench/schedtop_demo under its test).  Why a handle
 * that outlives the waits: libuv puts a signal back to SIG_DFL when its
 * last handle stops, so per-wait handles turned `for (;;) {
 * gh_signal_wait(SIGHUP, -1); reload(); }` into a program that a SIGHUP
 * during reload() kills.  At stop, hub 0 closes the handles and puts back
 * the dispositions it found before the first wait.
 *
 * Without a runtime, a plain thread runs a private loop with a handle and a
 * timer (and libuv restores SIG_DFL when it returns). */
#include "io_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { IDLE = 0, STARTING, WATCHING };

struct sigslot {
    atomic_flag lock;             /* state, waiters */
    int state;                    /* IDLE, STARTING (request posted), WATCHING */
    struct gh__waiter *waiters;   /* under lock */
    bool pending;                 /* under lock: came while nobody waited */
    uv_signal_t handle;           /* on hub 0's loop; hub 0's thread only */
    struct sigaction orig;        /* the disposition before the handle */
};

static struct sigslot slots[NSIG];

/* Between the first wait and hub 0 starting the handle, a signal is
 * caught by this handler (installed by the first waiter) and handed to
 * the handle's first run: "from the first wait on" holds from the moment
 * the wait is called, not from whenever hub 0 gets to it (a hub running a
 * greenlet that does not yield may take long). */
static atomic_bool early[NSIG];

static void early_catch(int signum)
{
    atomic_store(&early[signum], true);
}

struct start_req {
    struct gh__hubcall call;
    int signum;
};

/* Lock held: signum came. */
static void deliver(struct sigslot *s)
{
    /* Nobody took it (no waiter, or every one already on its way out by
     * a timeout or a kill): it stays pending for the next wait. */
    if (gh__waiters_claim(&s->waiters, SIZE_MAX, GH_WAKE_EVENT, NULL, NULL) == 0)
        s->pending = true;
}

static void on_signal(uv_signal_t *hd, int signum)
{
    struct sigslot *s = &slots[signum];
    (void)hd;
    gh__spin_lock(&s->lock);
    deliver(s);
    gh__spin_unlock(&s->lock);
}

static void start_call(struct gh__hub *h, struct gh__hubcall *call)
{
    struct start_req *r = (struct start_req *)call;
    struct sigslot *s = &slots[r->signum];
    uv_signal_init(&h->loop, &s->handle);   /* cannot fail on Linux */
    int err = uv_signal_start(&s->handle, on_signal, r->signum);   /* replaces early_catch */
    if (err)
        sigaction(r->signum, &s->orig, NULL);
    gh__spin_lock(&s->lock);
    s->state = err ? IDLE : WATCHING;
    if (err)   /* (signum was checked: not expected) */
        gh__waiters_wake_all(&s->waiters, GH_WAKE_CLOSED);
    else if (atomic_exchange(&early[r->signum], false))
        deliver(s);
    gh__spin_unlock(&s->lock);
    if (err)
        uv_close((uv_handle_t *)&s->handle, NULL);
    free(r);
}

/* Lock held: makes sure hub 0 watches signum.  Returns 0 or ENOMEM (or
 * ESRCH: the runtime is stopping). */
static int ensure_watched(struct gh__runtime *rt, int signum)
{
    struct sigslot *s = &slots[signum];
    if (s->state != IDLE)
        return 0;
    struct start_req *r = malloc(sizeof *r);
    if (!r)
        return ENOMEM;
    r->call.fn = start_call;
    r->signum = signum;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = early_catch;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    atomic_store(&early[signum], false);
    sigaction(signum, &sa, &s->orig);   /* the program's, put back at stop */
    if (!gh__hub_call(&rt->hubs[0], &r->call)) {
        sigaction(signum, &s->orig, NULL);
        free(r);
        return ESRCH;
    }
    s->state = STARTING;
    return 0;
}

static int wait_queued(struct gh__runtime *rt, int signum, int64_t timeout_ms)
{
    struct sigslot *s = &slots[signum];
    struct gh__tparker tp;
    struct gh__waiter w;
    gh__waiter_init(&w, gh_self(), &tp);
    gh__spin_lock(&s->lock);
    int err = ensure_watched(rt, signum);
    if (err || s->pending || timeout_ms == 0) {
        bool got = !err && s->pending;
        s->pending = false;
        gh__spin_unlock(&s->lock);
        gh__waiter_fini(&w);
        return err ? err : got ? 0 : ETIMEDOUT;
    }
    gh__waiter_arm(&w);
    gh__waiters_push(&s->waiters, &w);
    int r = gh__waiter_wait(&w, timeout_ms, gh__spin_unlock_cb, &s->lock);
    if (r != GH_WAKE_EVENT) {
        gh__spin_lock(&s->lock);
        if (w.linked)
            gh__waiters_unlink(&s->waiters, &w);
        gh__spin_unlock(&s->lock);
    }
    gh__waiter_fini(&w);
    return r == GH_WAKE_EVENT ? 0 : gh__reason_errno(r);
}

/* Hub 0's thread, its loop about to close: closes the handles, puts the
 * dispositions back, and lets waiters go (ECANCELED: the runtime ends). */
void gh__signal_hub_fini(struct gh__hub *h)
{
    if (h->index != 0)
        return;
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigslot *s = &slots[sig];
        gh__spin_lock(&s->lock);
        int was = s->state;
        s->state = IDLE;
        s->pending = false;
        gh__waiters_wake_all(&s->waiters, GH_WAKE_CANCEL);
        gh__spin_unlock(&s->lock);
        if (was == WATCHING) {
            uv_close((uv_handle_t *)&s->handle, NULL);   /* libuv: SIG_DFL */
            sigaction(sig, &s->orig, NULL);
        }
    }
}

/* ---- plain threads, no runtime ----------------------------------------------- */

struct tsigwait {
    uv_signal_t sig;
    uv_timer_t timer;
    bool fired;
};

static void t_on_signal(uv_signal_t *hd, int signum)
{
    (void)signum;
    struct tsigwait *w = hd->data;
    w->fired = true;
    uv_stop(hd->loop);
}

static void t_on_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int wait_alone(int signum, int64_t timeout_ms)
{
    bool by_scope;
    uint64_t at = timeout_ms ? gh__scope_deadline(timeout_ms, &by_scope) : 0;
    uv_loop_t loop;
    struct tsigwait w = { .fired = false };
    int err = -uv_loop_init(&loop);
    if (err)
        return err;
    uv_signal_init(&loop, &w.sig);   /* cannot fail on Linux */
    uv_timer_init(&loop, &w.timer);  /* nor can this */
    w.sig.data = &w;
    err = -uv_signal_start(&w.sig, t_on_signal, signum);
    if (!err && at) {   /* timeout_ms, or the scope's deadline */
        uint64_t now = gh__now_ns();
        uint64_t ms = at > now ? (at - now + 999999) / 1000000 : 0;
        uv_timer_start(&w.timer, t_on_timer, ms, 0);
    }
    if (!err && timeout_ms != 0)
        uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&w.sig, NULL);
    uv_close((uv_handle_t *)&w.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return err ? err : w.fired ? 0 : ETIMEDOUT;
}

int gh_signal_wait(int signum, int64_t timeout_ms)
{
    if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP ||
        timeout_ms < -1)
        return EINVAL;
    struct gh__runtime *rt = gh__rt;
    if (!rt)
        return wait_alone(signum, timeout_ms);
    return wait_queued(rt, signum, timeout_ms);
}
