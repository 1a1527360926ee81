/* io/offload.c — work that cannot be made non-blocking, done off the hub:
 * gh_blocking (libuv's thread pool) and gh_getaddrinfo (uv_getaddrinfo).
 *
 * Both start a libuv request on the calling greenlet's hub and park; the
 * request's callback runs later on that hub's thread and wakes it.
 *
 * gh_blocking cannot be abandoned: fn may use memory of the caller (its
 * stack), so the greenlet waits for fn to finish even if killed or past
 * its deadline, and its request lives on its stack.  Each wake is checked
 * against `done` and the wait re-opened if it was not the callback's
 * (a Dekker pair of seq_cst accesses: the greenlet stores its generation
 * then reads done; the callback stores done then reads the generation).
 *
 * gh_getaddrinfo can be abandoned (a timeout or a kill ends the wait; the
 * lookup finishes on its own): its request lives on the heap, and whichever
 * of the callback and the leaving greenlet comes second frees it. */
#include "io_internal.h"
#include "real.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>

/* ---- gh_blocking ------------------------------------------------------------- */

struct blocking_req {
    uv_work_t work;
    void *(*fn)(void *);
    void *arg, *result;
    gh_greenlet *g;
    _Atomic uint64_t gen;       /* the wait the callback must claim */
    _Atomic int done;           /* fn has returned (callback side) */
    _Atomic int released;       /* the callback no longer touches this */
};

static void blocking_work(uv_work_t *w)
{
    struct blocking_req *r = w->data;
    r->result = r->fn(r->arg);
}

static void blocking_after(uv_work_t *w, int status)
{
    (void)status;   /* never cancelled: nobody calls uv_cancel on it */
    struct blocking_req *r = w->data;
    gh_greenlet *g = r->g;
    atomic_store(&r->done, 1);
    gh__wake(g, atomic_load(&r->gen), GH_WAKE_EVENT);
    atomic_store_explicit(&r->released, 1, memory_order_release);
}

int gh_blocking(void *(*fn)(void *arg), void *arg, void **result)
{
    if (!fn)
        return EINVAL;
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (!self) {   /* a plain thread may block: run it right here */
        void *res = fn(arg);
        if (result)
            *result = res;
        return 0;
    }
    struct blocking_req r = { .fn = fn, .arg = arg, .g = self };
    r.work.data = &r;
    gh__pool_ensure();
    int err = uv_queue_work(&h->loop, &r.work, blocking_work, blocking_after);
    if (err)
        return -err;
    /* The callback runs on h's thread, not before this greenlet parks. */
    for (;;) {
        uint64_t gen = gh__wait_open(self);
        atomic_store(&r.gen, gen);
        if (atomic_load(&r.done))
            gh__wake(self, gen, GH_WAKE_EVENT);   /* park returns at once */
        gh__park_until_woken(self, NULL, NULL);
        if (atomic_load(&r.done))
            break;
    }
    while (!atomic_load_explicit(&r.released, memory_order_acquire))
        gh__cpu_relax();
    if (result)
        *result = r.result;
    return 0;
}

/* ---- gh_getaddrinfo ------------------------------------------------------------ */

struct gai_req {
    uv_getaddrinfo_t req;
    gh_greenlet *g;
    uint64_t gen;
    int status;                  /* libuv's */
    struct addrinfo *res;
    _Atomic int finished;        /* set by the first of callback / leaver */
};

static void gai_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct gai_req *r = req->data;
    gh_greenlet *g = r->g;
    uint64_t gen = r->gen;
    r->status = status;
    r->res = res;
    if (atomic_exchange(&r->finished, 1)) {   /* the greenlet left */
        if (res)
            uv_freeaddrinfo(res);
        free(r);
        return;
    }
    gh__wake(g, gen, GH_WAKE_EVENT);   /* r is the greenlet's from here */
}

/* libuv's error as getaddrinfo's EAI_* code. */
static int eai_code(int uverr)
{
    switch (uverr) {
    case UV_EAI_ADDRFAMILY: return EAI_ADDRFAMILY;
    case UV_EAI_AGAIN: return EAI_AGAIN;
    case UV_EAI_BADFLAGS: return EAI_BADFLAGS;
    case UV_EAI_FAIL: return EAI_FAIL;
    case UV_EAI_FAMILY: return EAI_FAMILY;
    case UV_EAI_MEMORY: return EAI_MEMORY;
    case UV_EAI_NODATA: return EAI_NODATA;
    case UV_EAI_NONAME: return EAI_NONAME;
    case UV_EAI_SERVICE: return EAI_SERVICE;
    case UV_EAI_SOCKTYPE: return EAI_SOCKTYPE;
    case UV_ENOMEM: return EAI_MEMORY;
    default: errno = -uverr; return EAI_SYSTEM;
    }
}

bool gh__io_addr_literal(const char *node)
{
    unsigned char a[sizeof(struct in6_addr)];
    return node && (inet_pton(AF_INET, node, a) == 1 || inet_pton(AF_INET6, node, a) == 1);
}

/* Nothing to look up: node is an IPv4/IPv6 address in its usual form (no
 * scope name, which takes an interface lookup), service NULL or a port
 * number, and no AI_ADDRCONFIG (which asks the kernel for the configured
 * addresses: a netlink exchange, and nscd's socket; NULL hints mean
 * AI_ADDRCONFIG too).  Not a NULL node: its two wildcard or loopback
 * addresses are sorted by RFC 3484, which reads /etc/gai.conf and opens
 * sockets.  libc's getaddrinfo then only parses one address, with no
 * system call, name service or file (strace), so it runs right on the hub:
 * the thread pool would cost a round trip and, on its first use, four
 * threads that also share the hubs' descriptor table (runtime.c, "Hub 0
 * on the caller's thread").  Other forms libc takes as numeric ("127.1")
 * go to the pool, with the same result. */
static bool numeric_only(const char *node, const char *service,
                         const struct addrinfo *hints)
{
    if (!hints || (hints->ai_flags & AI_ADDRCONFIG))
        return false;
    if (!gh__io_addr_literal(node))
        return false;
    if (!service)
        return true;
    if (!*service)
        return false;
    for (const char *p = service; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static int getaddrinfo_numeric(const char *node, const char *service,
                               const struct addrinfo *hints, struct addrinfo **res)
{
    struct addrinfo h = *hints;
    h.ai_flags |= AI_NUMERICSERV | AI_NUMERICHOST;
    return GH_REAL(getaddrinfo)(node, service, &h, res);
}

int gh_getaddrinfo(const char *node, const char *service,
                   const struct addrinfo *hints, struct addrinfo **res)
{
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *self = h ? h->current : NULL;
    if (!res) {
        errno = EINVAL;
        return EAI_SYSTEM;
    }
    if (!self || (!node && !service))
        return GH_REAL(getaddrinfo)(node, service, hints, res);   /* plain thread, or its error */
    if (numeric_only(node, service, hints))
        return getaddrinfo_numeric(node, service, hints, res);
    struct gai_req *r = calloc(1, sizeof *r);
    if (!r)
        return EAI_MEMORY;
    r->g = self;
    r->req.data = r;
    gh__pool_ensure();
    int err = uv_getaddrinfo(&h->loop, &r->req, gai_done, node, service, hints);
    if (err) {
        free(r);
        return eai_code(err);
    }
    r->gen = gh__wait_open(self);   /* read by gai_done, on this thread, later */
    int why = gh__park(self, r->gen, -1, NULL, NULL);
    if (why != GH_WAKE_EVENT && !atomic_exchange(&r->finished, 1)) {
        errno = gh__reason_errno(why);   /* the lookup's callback frees r */
        return EAI_SYSTEM;
    }
    int ret = 0;
    if (why != GH_WAKE_EVENT) {   /* finished meanwhile, but we were told to go */
        if (r->res)
            uv_freeaddrinfo(r->res);
        errno = gh__reason_errno(why);
        ret = EAI_SYSTEM;
    } else if (r->status) {
        ret = eai_code(r->status);
    } else {
        *res = r->res;
    }
    free(r);
    return ret;
}
