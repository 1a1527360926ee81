/* sched/greenlet.c — greenlet lifecycle: spawn, entry, exit, join, detach,
 * kill.
 *
 * Control blocks are type-stable while a runtime runs: they are carved from
 * slabs, recycled through free lists (per hub, then shared), and returned
 * to the system only when the runtime ends.  That is what lets a stale
 * waker or timer read g->wait safely (park.c); a parked greenlet costs one
 * control block here plus the stack pages it touched.
 *
 * References: a greenlet holds one reference while it is alive, its handle
 * (from gh_spawn) another; gh_join/gh_detach drop the handle's, exit drops
 * the greenlet's own, and the last one recycles the control block. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { SLAB_GREENLETS = 256 };   /* control blocks per slab: a guess */
enum { ID_BLOCK = 1024 };        /* ids a hub takes from the global counter
                                    at once: keeps spawn off a shared line */

static _Atomic uint64_t id_counter = 1;   /* process-wide: ids never repeat */

static gh_greenlet *slab_new_locked(struct gh__runtime *rt)
{
    if (rt->nslabs == rt->slabs_cap) {
        size_t cap = rt->slabs_cap ? rt->slabs_cap * 2 : 64;
        void **a = realloc(rt->slabs, cap * sizeof *a);
        if (!a)
            return NULL;
        rt->slabs = a;
        rt->slabs_cap = cap;
    }
    /* Line-aligned (see struct gh_greenlet): aligned_alloc, as calloc
     * promises only max_align_t. */
    gh_greenlet *s = aligned_alloc(_Alignof(gh_greenlet), SLAB_GREENLETS * sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, SLAB_GREENLETS * sizeof *s);
    rt->slabs[rt->nslabs++] = s;
    for (int i = 1; i < SLAB_GREENLETS; i++) {
        s[i].qnext = rt->g_free;
        rt->g_free = &s[i];
    }
    return &s[0];
}

static gh_greenlet *g_alloc(struct gh__hub *h)
{
    struct gh__runtime *rt = gh__rt;
    gh_greenlet *g;
    if (h && (g = h->g_free)) {
        h->g_free = g->qnext;
        return g;
    }
    pthread_mutex_lock(&rt->slab_mu);
    if ((g = rt->g_free))
        rt->g_free = g->qnext;
    else
        g = slab_new_locked(rt);
    pthread_mutex_unlock(&rt->slab_mu);
    return g;
}

static void g_recycle(struct gh__hub *h, gh_greenlet *g)
{
    if (h) {
        g->qnext = h->g_free;
        h->g_free = g;
        return;
    }
    struct gh__runtime *rt = gh__rt;
    pthread_mutex_lock(&rt->slab_mu);
    g->qnext = rt->g_free;
    rt->g_free = g;
    pthread_mutex_unlock(&rt->slab_mu);
}

static uint64_t next_id(struct gh__hub *h)
{
    if (!h)
        return atomic_fetch_add_explicit(&id_counter, 1, memory_order_relaxed);
    if (h->id_next == h->id_end) {
        h->id_next = atomic_fetch_add_explicit(&id_counter, ID_BLOCK, memory_order_relaxed);
        h->id_end = h->id_next + ID_BLOCK;
    }
    return h->id_next++;
}

/* g->name, written byte by byte with relaxed atomic stores: the monitor
 * thread may read the name of a control block that is being reused (it
 * discards what it read then, see monitor.c), and a torn read must not be
 * a data race.  An empty name stands for "(unnamed)" (one store). */
static void set_name(gh_greenlet *g, const char *name)
{
    size_t n = 0;
    for (; name && n < GH_NAME_MAX - 1 && name[n]; n++)
        __atomic_store_n(&g->name[n], name[n], __ATOMIC_RELAXED);
    __atomic_store_n(&g->name[n], '\0', __ATOMIC_RELAXED);
}

static void count_spawn(struct gh__hub *h)
{
    if (h)
        gh__stat_inc(&h->st.spawned);
    else
        atomic_fetch_add_explicit(&gh__rt->spawned_ext, 1, memory_order_relaxed);
}

gh_greenlet *gh__greenlet_new(struct gh__hub *h, const gh_spawn_opts *o,
                              gh_fn fn, void *arg)
{
    struct gh__runtime *rt = gh__rt;
    gh_greenlet *g = g_alloc(h);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    size_t size = o && o->stack_size ? o->stack_size : rt->stack_size;
    int err = gh__stack_alloc(h, size, &g->ctx, &g->stack_kind);
    if (err) {
        g_recycle(h, g);
        errno = err;
        return NULL;
    }
    gh__ctx_make(&g->ctx);
    gh__ctx_san_reset(&g->ctx);
    g->saved_errno = 0;
    g->qnext = NULL;
    /* The wait generation survives reuse; no wait is open (reason EVENT). */
    uint64_t gen = atomic_load_explicit(&g->wait, memory_order_relaxed) >> 8;
    atomic_store_explicit(&g->wait, (gen << 8) | GH_WAKE_EVENT, memory_order_relaxed);
    atomic_store_explicit(&g->killed, 0, memory_order_relaxed);
    atomic_store_explicit(&g->refs, 2, memory_order_relaxed);
    g->unlock_fn = NULL;
    g->unlock_arg = NULL;
    /* relaxed: nobody else can see g until the queue that carries it
     * publishes it (a seq_cst clear cost an xchg per spawn). */
    atomic_flag_clear_explicit(&g->join_lock, memory_order_relaxed);
    g->done = false;
    g->joiner = NULL;
    g->fn = fn;
    g->arg = arg;
    g->result = NULL;
    __atomic_store_n(&g->id, next_id(h), __ATOMIC_RELAXED);  /* monitor.c reads it */
    g->pinned_hub = o && o->pinned ? o->hub : -1;
    g->stay_hub = -1;
    g->is_main = false;
    g->last_hub = NULL;
    g->dl = (struct gh__dlscope){ 0 };
    g->group = NULL;
    g->locals = NULL;
    g->nlocals = 0;
    set_name(g, o ? o->name : NULL);
    count_spawn(h);
    /* release: the fields above are published with the state; the queue
     * that carries g publishes them again. */
    atomic_store_explicit(&g->state, GH_G_RUNNABLE, memory_order_release);
    return g;
}

gh_greenlet *gh__spawn_prepare(const gh_spawn_opts *opts, gh_fn fn, void *arg)
{
    struct gh__runtime *rt = gh__rt;
    if (!rt) {
        errno = ESRCH;
        return NULL;
    }
    if (!fn || (opts && opts->pinned && (opts->hub < 0 || (unsigned)opts->hub >= rt->nhubs))) {
        errno = EINVAL;
        return NULL;
    }
    return gh__greenlet_new(gh__hub_self(), opts, fn, arg);
}

gh_greenlet *gh_spawn_with(const gh_spawn_opts *opts, gh_fn fn, void *arg)
{
    gh_greenlet *g = gh__spawn_prepare(opts, fn, arg);
    if (g)
        gh__enqueue(g);
    return g;
}

gh_greenlet *gh_spawn(gh_fn fn, void *arg)
{
    return gh_spawn_with(NULL, fn, arg);
}

/* The greenlet's function has returned; still on its own stack.  Its
 * joiner (if any) is woken now, so the exit can switch straight to it
 * instead of through the scheduler.  That is safe before the stack is
 * released: the joiner only reads the result and drops the handle's
 * reference; the stack and the control block go after the switch
 * (gh__greenlet_exited), with the last reference. */
static void greenlet_finish(gh_greenlet *g)
{
    struct gh__runtime *rt = gh__rt;
    if (g->is_main) {
        rt->main_result = g->result;
        atomic_store_explicit(&rt->stopping, 1, memory_order_release);
        gh__wake_all_hubs();
    }
    gh__spin_lock(&g->join_lock);
    g->done = true;
    struct gh__waiter *w = g->joiner;
    g->joiner = NULL;
    if (w)
        gh__waiter_wake(w, GH_WAKE_EVENT);   /* under join_lock: w is alive */
    gh__spin_unlock(&g->join_lock);
}

/* First code a new greenlet runs, called by the trampoline (switch .S). */
_Noreturn void gh__greenlet_entry(struct gh__hub *h);
_Noreturn void gh__greenlet_entry(struct gh__hub *h)
{
    gh_greenlet *g = h->current;
    gh__asan_arrive(&g->ctx);
    gh__after_switch(h);
    errno = 0;
    g->result = g->fn(g->arg);
    if (g->locals)
        gh__locals_run_destructors(g);
    if (g->group)
        gh__group_leave(g);
    greenlet_finish(g);
    gh__switch_out(gh__hub_self(), g, GH_ACT_EXIT);
    gh__die(__func__, "dead greenlet #%llu resumed", (unsigned long long)g->id);
}

void gh__greenlet_release_ref(struct gh__hub *h, gh_greenlet *g)
{
    /* refs only ever falls (2 at spawn: the handle's and the running
     * greenlet's), so a holder that reads 1 holds the last reference and
     * needs no RMW.  acquire: pairs with the other holder's release in its
     * fetch_sub, as the fetch_sub below does. */
    if (atomic_load_explicit(&g->refs, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        g_recycle(h, g);
}

/* Hub thread, after g's last switch away from its own stack. */
void gh__greenlet_exited(struct gh__hub *h, gh_greenlet *g)
{
    /* Nobody else writes the state of a greenlet that ran to its end: its
     * last wait was claimed before it returned, so no wake can come (a
     * load and a store; no RMW on every exit). */
    int s = atomic_load_explicit(&g->state, memory_order_relaxed);
    atomic_store_explicit(&g->state, GH_G_DEAD, memory_order_release);
    if (s != GH_G_RUNNING)
        gh__die(__func__, "greenlet #%llu exited in state %d", (unsigned long long)g->id, s);
    gh__stack_free(h, &g->ctx, g->stack_kind);
    gh__tsan_fiber_free(&g->ctx);
    gh__dlscope_free(&g->dl);   /* scopes it left open */
    gh__stat_inc(&h->st.ended);   /* h == g->last_hub: g last ran here */
    gh__greenlet_release_ref(h, g);
}

int gh_join_timeout(gh_greenlet *t, int64_t timeout_ms, void **result)
{
    if (!t || timeout_ms < -1)
        return EINVAL;
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (t == self)
        return EDEADLK;
    gh__spin_lock(&t->join_lock);
    if (!t->done) {
        if (t->joiner || timeout_ms == 0) {
            int busy = t->joiner != NULL;
            gh__spin_unlock(&t->join_lock);
            return busy ? EBUSY : ETIMEDOUT;
        }
        struct gh__tparker tp;
        struct gh__waiter w;
        gh__waiter_init(&w, self, &tp);
        gh__waiter_arm(&w);
        t->joiner = &w;
        int r = gh__waiter_wait(&w, timeout_ms, gh__spin_unlock_cb, &t->join_lock);
        gh__waiter_fini(&w);
        if (r != GH_WAKE_EVENT) {
            gh__spin_lock(&t->join_lock);
            if (t->joiner == &w)
                t->joiner = NULL;
            bool done = t->done;
            gh__spin_unlock(&t->join_lock);
            if (!done)
                return gh__reason_errno(r);
        }
    } else {
        gh__spin_unlock(&t->join_lock);
    }
    if (result)
        *result = t->result;
    gh__greenlet_release_ref(gh__hub_self(), t);
    return 0;
}

int gh_join(gh_greenlet *g, void **result)
{
    return gh_join_timeout(g, -1, result);
}

void gh_detach(gh_greenlet *g)
{
    if (g)
        gh__greenlet_release_ref(gh__hub_self(), g);
}

int gh_kill(gh_greenlet *g)
{
    if (!g)
        return EINVAL;
    if (atomic_load_explicit(&g->state, memory_order_acquire) == GH_G_DEAD)
        return ESRCH;
    /* seq_cst store, then read the wait word: pairs with gh__wait_open()
     * (store wait, then gh__park reads killed).  One of us sees the other. */
    atomic_store_explicit(&g->killed, 1, memory_order_seq_cst);
    gh__store_load_fence();
    uint64_t w = atomic_load_explicit(&g->wait, memory_order_seq_cst);
    if ((w & 0xff) == GH_WAKE_NONE)
        gh__wake(g, w >> 8, GH_WAKE_CANCEL);
    return 0;
}

gh_greenlet *gh_self(void)
{
    struct gh__hub *h = gh__hub_self();
    return h ? h->current : NULL;
}

uint64_t gh_id(const gh_greenlet *g)
{
    return g ? g->id : 0;
}

const char *gh_name(const gh_greenlet *g)
{
    if (!g)
        return "";
    return g->name[0] ? g->name : "(unnamed)";
}

/* At runtime end: releases the stacks of greenlets that never finished. */
void gh__greenlets_destroy_all(struct gh__runtime *rt)
{
    for (size_t i = 0; i < rt->nslabs; i++) {
        gh_greenlet *s = rt->slabs[i];
        for (int k = 0; k < SLAB_GREENLETS; k++) {
            int st = atomic_load(&s[k].state);
            if (st != 0 && st != GH_G_DEAD) {
                /* Stacks in shared segments go when the segments do. */
                if ((s[k].stack_kind & 0xff) == GH_STACK_OWN)
                    gh__stack_free(NULL, &s[k].ctx, s[k].stack_kind);
                gh__tsan_fiber_free(&s[k].ctx);
                gh__locals_free(&s[k]);   /* destructors cannot run here */
            }
        }
        free(s);
    }
    free(rt->slabs);
    rt->slabs = NULL;
    rt->nslabs = rt->slabs_cap = 0;
    rt->g_free = NULL;
}
