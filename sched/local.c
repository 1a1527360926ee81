/* sched/local.c — greenlet-local storage: gh_local_key_create/get/set.
 *
 * Keys are indices 1..GH_LOCAL_KEYS_MAX into one process-wide table of
 * destructors (0 is never a key, so a zeroed gh_local_key is invalid).
 * Each greenlet keeps its values in g->locals, grown on demand by the
 * greenlet itself and freed when it ends (after its destructors ran, on
 * its own stack: they may block, log, or use other locals).  A plain
 * thread keeps its values in a thread-local table whose destructors run
 * through one pthread key at thread exit. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static _Atomic unsigned nkeys;   /* keys handed out (may overshoot the max) */
/* Written once by gh_local_key_create before the key is returned; read
 * only for keys a caller set a value for, which it learnt after that. */
static void (*destructors[GH_LOCAL_KEYS_MAX])(void *);

struct local_table {
    void **v;
    unsigned n;
};

static __thread struct local_table thread_locals;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

int gh_local_key_create(gh_local_key *key, void (*destructor)(void *))
{
    if (!key)
        return EINVAL;
    unsigned k = atomic_fetch_add_explicit(&nkeys, 1, memory_order_relaxed);
    if (k >= GH_LOCAL_KEYS_MAX)
        return EAGAIN;
    destructors[k] = destructor;
    *key = k + 1;
    return 0;
}

static bool key_valid(gh_local_key key)
{
    unsigned n = atomic_load_explicit(&nkeys, memory_order_relaxed);
    return key >= 1 && key <= GH_LOCAL_KEYS_MAX && key <= n;
}

/* Runs the destructors of t's values, in rounds, then frees t. */
static void table_destroy(struct local_table *t)
{
    for (int round = 0; round < GH_LOCAL_DESTRUCTOR_ROUNDS; round++) {
        bool ran = false;
        for (unsigned k = 0; k < t->n; k++) {
            void *v = t->v[k];
            if (v && destructors[k]) {
                t->v[k] = NULL;
                destructors[k](v);
                ran = true;
            }
        }
        if (!ran)
            break;
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static void thread_exit(void *arg)
{
    table_destroy(arg);
}

static void thread_key_make(void)
{
    pthread_key_create(&thread_key, thread_exit);
}

void *gh_local_get(gh_local_key key)
{
    if (!key_valid(key))
        return NULL;
    gh_greenlet *g = gh_self();
    if (g)
        return key <= g->nlocals ? g->locals[key - 1] : NULL;
    return key <= thread_locals.n ? thread_locals.v[key - 1] : NULL;
}

/* Grows t to hold key (1-based).  false: no memory. */
static bool table_reserve(struct local_table *t, gh_local_key key)
{
    if (key <= t->n)
        return true;
    unsigned n = t->n ? t->n : 8;
    while (n < key)
        n *= 2;
    void **v = realloc(t->v, n * sizeof *v);
    if (!v)
        return false;
    for (unsigned i = t->n; i < n; i++)
        v[i] = NULL;
    t->v = v;
    t->n = n;
    return true;
}

int gh_local_set(gh_local_key key, const void *value)
{
    if (!key_valid(key))
        return EINVAL;
    gh_greenlet *g = gh_self();
    if (g) {
        struct local_table t = { g->locals, g->nlocals };
        if (!table_reserve(&t, key))
            return ENOMEM;
        g->locals = t.v;
        g->nlocals = t.n;
        g->locals[key - 1] = (void *)value;
        return 0;
    }
    bool first = thread_locals.v == NULL;
    if (!table_reserve(&thread_locals, key))
        return ENOMEM;
    if (first) {
        pthread_once(&thread_key_once, thread_key_make);
        pthread_setspecific(thread_key, &thread_locals);
    }
    thread_locals.v[key - 1] = (void *)value;
    return 0;
}

void gh__locals_run_destructors(gh_greenlet *g)
{
    struct local_table t = { g->locals, g->nlocals };
    g->locals = NULL;   /* a destructor that sets a value starts a new table */
    g->nlocals = 0;
    for (int round = 0; round < GH_LOCAL_DESTRUCTOR_ROUNDS && t.v; round++) {
        table_destroy(&t);
        t = (struct local_table){ g->locals, g->nlocals };
        g->locals = NULL;
        g->nlocals = 0;
    }
    free(t.v);
}

void gh__locals_free(gh_greenlet *g)
{
    free(g->locals);
    g->locals = NULL;
    g->nlocals = 0;
}
