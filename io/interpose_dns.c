/* io/interpose_dns.c — the interposition layer's name lookups besides
 * getaddrinfo: the gethostbyname family and getnameinfo.
 *
 * On a greenlet each runs libc's reentrant form on libuv's thread pool
 * (gh_blocking), where the layer passes everything through, while the
 * greenlet parks and its hub runs others; the call stays on its hub (see
 * STAYING).  Elsewhere each is exactly libc's.
 *
 * gethostbyname, gethostbyname2 and gethostbyaddr return storage of
 * libc's that the next call overwrites.  Here that storage is per
 * greenlet (greenlet-local, freed when the greenlet ends): each call fills
 * a fresh buffer on the pool and makes it the greenlet's result, freeing
 * the greenlet's one before.  So the result stays valid until the same
 * greenlet's next such call, whatever other greenlets look up meanwhile
 * (a per-thread buffer was freed under a greenlet that parked in connect()
 * while walking h_addr_list, found in review).
 * h_errno is set on the caller's thread, as libc does on failure. */
#include "io_internal.h"
#include "real.h"
#include "interpose_internal.h"

#include <greenhub/sync.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>

#define GH_IP __attribute__((visibility("default")))

/* ---- the reentrant forms on the pool --------------------------------------------- */

enum lookup_kind { BYNAME2, BYADDR };

struct lookup {
    enum lookup_kind kind;
    const char *name;
    int af;
    const void *addr;
    socklen_t len;
    struct hostent *ret;
    char *buf;
    size_t buflen;
    struct hostent **result;
    int *h_errnop;
    int r;
};

static void *lookup_run(void *arg)
{
    struct lookup *l = arg;
    if (l->kind == BYNAME2)
        l->r = GH_REAL(gethostbyname2_r)(l->name, l->af, l->ret, l->buf, l->buflen,
                                         l->result, l->h_errnop);
    else
        l->r = GH_REAL(gethostbyaddr_r)(l->addr, l->len, l->af, l->ret, l->buf, l->buflen,
                                        l->result, l->h_errnop);
    return NULL;
}

/* Runs l on the pool (here if the pool cannot take it).  Returns the _r
 * function's result. */
static int lookup_green(struct lookup *l)
{
    if (STAYING(int, gh_blocking(lookup_run, l, NULL)) != 0)
        lookup_run(l);
    return l->r;
}

GH_IP int gh__ip_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                                  size_t buflen, struct hostent **result, int *h_errnop)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
    struct lookup l = { BYNAME2, name, af, NULL, 0, ret, buf, buflen, result, h_errnop, 0 };
    return lookup_green(&l);
}

GH_IP int gh__ip_gethostbyname_r(const char *name, struct hostent *ret, char *buf,
                                 size_t buflen, struct hostent **result, int *h_errnop)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
    /* gethostbyname_r is gethostbyname2_r for AF_INET (RES_USE_INET6 aside,
     * which glibc no longer honours). */
    return gh__ip_gethostbyname2_r(name, AF_INET, ret, buf, buflen, result, h_errnop);
}

GH_IP int gh__ip_gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
                                 char *buf, size_t buflen, struct hostent **result,
                                 int *h_errnop)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
    struct lookup l = { BYADDR, NULL, type, addr, len, ret, buf, buflen, result, h_errnop, 0 };
    return lookup_green(&l);
}

/* ---- the forms with libc's static result -------------------------------------------- */

struct hostbuf {
    struct hostent he;
    char buf[];
};

enum { HOSTBUF_FIRST = 1024, HOSTBUF_MAX = 1 << 20 };

static gh_local_key last_key;        /* the greenlet's struct hostbuf, freed at its end */
static pthread_once_t last_once = PTHREAD_ONCE_INIT;
static bool last_key_ok;

static void last_key_make(void)
{
    last_key_ok = gh_local_key_create(&last_key, free) == 0;
}

/* Makes hb the calling greenlet's result (freeing its one before: no other
 * greenlet can be reading that). */
static void last_set(struct hostbuf *hb)
{
    pthread_once(&last_once, last_key_make);
    if (!last_key_ok)
        return;   /* no key left: leak rather than free what a caller may read */
    void *old = gh_local_get(last_key);
    if (gh_local_set(last_key, hb) == 0)   /* (else hb stays the caller's for good) */
        free(old);
}

/* noinline: h_errno's address must be taken on the thread the greenlet
 * runs on now (glibc declares __h_errno_location const). */
__attribute__((noinline)) static void h_errno_set(int v)
{
    h_errno = v;
}

/* l (its buffers left to this function) on the pool, growing the buffer
 * while libc says ERANGE. */
static struct hostent *lookup_static(struct lookup *l)
{
    struct hostent *res = NULL;
    int herr = 0;
    struct hostbuf *hb = NULL;
    for (size_t size = HOSTBUF_FIRST; size <= HOSTBUF_MAX; size *= 2) {
        free(hb);
        if (!(hb = malloc(sizeof *hb + size))) {
            h_errno_set(NETDB_INTERNAL);
            errno = ENOMEM;
            return NULL;
        }
        l->ret = &hb->he, l->buf = hb->buf, l->buflen = size;
        l->result = &res, l->h_errnop = &herr;
        if (lookup_green(l) != ERANGE)
            break;
    }
    if (!res) {
        free(hb);
        h_errno_set(herr);
        return NULL;
    }
    last_set(hb);
    return res;
}

GH_IP struct hostent *gh__ip_gethostbyname2(const char *name, int af)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyname2)(name, af);
    struct lookup l = { .kind = BYNAME2, .name = name, .af = af };
    return lookup_static(&l);
}

GH_IP struct hostent *gh__ip_gethostbyname(const char *name)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyname)(name);
    return gh__ip_gethostbyname2(name, AF_INET);
}

GH_IP struct hostent *gh__ip_gethostbyaddr(const void *addr, socklen_t len, int type)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(gethostbyaddr)(addr, len, type);
    struct lookup l = { .kind = BYADDR, .addr = addr, .len = len, .af = type };
    return lookup_static(&l);
}

/* ---- getnameinfo ------------------------------------------------------------------- */

struct nameinfo {
    const struct sockaddr *sa;
    socklen_t salen;
    char *host;
    socklen_t hostlen;
    char *serv;
    socklen_t servlen;
    int flags;
    int r, err;
};

static void *nameinfo_run(void *arg)
{
    struct nameinfo *n = arg;
    n->r = GH_REAL(getnameinfo)(n->sa, n->salen, n->host, n->hostlen, n->serv, n->servlen,
                                n->flags);
    n->err = errno;
    return NULL;
}

GH_IP int gh__ip_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                             socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
    if (!gh__ip_on_greenlet())
        return GH_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    struct nameinfo n = { sa, salen, host, hostlen, serv, servlen, flags, 0, 0 };
    if (STAYING(int, gh_blocking(nameinfo_run, &n, NULL)) != 0)
        nameinfo_run(&n);
    if (n.r == EAI_SYSTEM)
        errno = n.err;
    return n.r;
}
