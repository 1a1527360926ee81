/* io/signal.c — gh_signal_wait on uv_signal.
 *
 * A greenlet waits with a uv_signal handle on its hub's loop, on its own
 * stack.  A handle may be touched only by its loop's thread, and is freed
 * only after its close callback; so the greenlet pins itself to its hub
 * for the wait (every wakeup then brings it back there: see gh__enqueue),
 * closes the handle itself and waits for the close callback before it
 * returns.  If the runtime stops meanwhile, the hub closes the handle
 * (hub_fini walks its loop) while the abandoned stack is still mapped.
 *
 * A plain thread runs a private loop with the handle and a timer. */
#include "io_internal.h"

#include <errno.h>
#include <signal.h>

struct sigwait {
    uv_signal_t handle;
    gh_greenlet *g;
    uint64_t gen;          /* the wait the callbacks claim */
    bool closed;           /* the close callback ran */
};

static void on_signal(uv_signal_t *hd, int signum)
{
    (void)signum;
    struct sigwait *w = hd->data;
    uv_signal_stop(hd);
    gh__wake(w->g, w->gen, GH_WAKE_EVENT);
}

static void on_closed(uv_handle_t *hd)
{
    struct sigwait *w = hd->data;
    w->closed = true;
    gh__wake(w->g, w->gen, GH_WAKE_EVENT);
}

/* On the handle's hub: closes it and waits (whatever wakes us) until its
 * memory is free to go. */
static void close_and_wait(struct sigwait *w)
{
    uv_close((uv_handle_t *)&w->handle, on_closed);
    while (!w->closed) {
        w->gen = gh__wait_open(w->g);
        gh__park_until_woken(w->g);
    }
}

static int wait_green(struct gh__hub *h, gh_greenlet *self, int signum,
                      int64_t timeout_ms)
{
    int pin = self->pinned_hub;
    self->pinned_hub = (int)h->index;   /* see the top of this file */
    struct sigwait w = { .g = self };
    int r = GH_WAKE_EVENT, err = -uv_signal_init(&h->loop, &w.handle);
    if (err) {
        self->pinned_hub = pin;
        return err;
    }
    w.handle.data = &w;
    err = -uv_signal_start(&w.handle, on_signal, signum);
    if (!err) {
        w.gen = gh__wait_open(self);
        r = gh__park(self, w.gen, timeout_ms, NULL, NULL);
    }
    close_and_wait(&w);   /* pinned: still on h */
    self->pinned_hub = pin;
    return err ? err : r == GH_WAKE_EVENT ? 0 : gh__reason_errno(r);
}

/* ---- plain threads ------------------------------------------------------------- */

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

static int wait_thread(int signum, int64_t timeout_ms)
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
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    return self ? wait_green(h, self, signum, timeout_ms) : wait_thread(signum, timeout_ms);
}
