/* io/tcp.c — gh_tcp_listen and gh_tcp_dial.  Names resolve through
 * gh_getaddrinfo (the greenlet parks; the hub keeps running). */
#include "io_internal.h"
#include "real.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

static int resolve(const char *host, const char *port, int passive,
                   struct addrinfo **out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (host && !*host)
        host = NULL;
    /* AI_ADDRCONFIG filters a name's addresses by the families configured
     * here; an address literal already names its family, and without the
     * flag it needs no lookup at all (gh_getaddrinfo answers it on the
     * hub, io/offload.c). */
    hints.ai_flags = passive ? AI_PASSIVE : gh__io_addr_literal(host) ? 0 : AI_ADDRCONFIG;
    int r = gh_getaddrinfo(host, port, &hints, out);
    if (r == 0)
        return 0;
    return r == EAI_SYSTEM ? errno : r == EAI_MEMORY ? ENOMEM :
           r == EAI_AGAIN ? EAGAIN : ENOENT;
}

static int stream_socket(const struct addrinfo *ai)
{
    return GH_REAL(socket)(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
}

static int listen_on(const struct addrinfo *ai, int backlog, int reuseport)
{
    int fd = stream_socket(ai);
    if (fd < 0)
        return -1;
    int one = 1;
    if (GH_REAL(setsockopt)(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (reuseport && GH_REAL(setsockopt)(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
        int e = errno;
        GH_REAL(close)(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int gh_tcp_listen_opts(const char *host, const char *port, int backlog, int reuseport)
{
    if (!port) {
        errno = EINVAL;
        return -1;
    }
    struct addrinfo *res;
    int err = resolve(host, port, 1, &res);
    if (err) {
        errno = err;
        return -1;
    }
    int saved = errno, fd = -1;
    errno = EADDRNOTAVAIL;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = listen_on(ai, backlog > 0 ? backlog : SOMAXCONN, reuseport);
    int e = fd < 0 ? errno : saved;   /* success leaves errno alone */
    freeaddrinfo(res);
    errno = e;
    return fd;
}

int gh_tcp_listen(const char *host, const char *port, int backlog)
{
    return gh_tcp_listen_opts(host, port, backlog, 0);
}

/* One address, within the dial's deadline scope.  Returns the fd or -1. */
static int dial_one(const struct addrinfo *ai)
{
    int fd = stream_socket(ai);
    if (fd < 0)
        return -1;
    if (gh_connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        int e = errno;
        gh_close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    GH_REAL(setsockopt)(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int gh_tcp_dial(const char *host, const char *port, int64_t timeout_ms)
{
    if (!host || !port || timeout_ms < -1) {
        errno = EINVAL;
        return -1;
    }
    /* The whole dial, lookup included, is one deadline scope: each step
     * gets what is left of timeout_ms. */
    uint64_t end = gh__deadline_after(timeout_ms);
    int token = timeout_ms >= 0 ? gh_timeout_begin(timeout_ms) : -1;
    if (timeout_ms >= 0 && token < 0)
        return -1;   /* errno from gh_timeout_begin */
    struct addrinfo *res;
    int err = resolve(host, port, 0, &res);
    if (err) {
        if (token >= 0)
            gh_timeout_end(token);
        errno = err;
        return -1;
    }
    int fd = -1;
    errno = EADDRNOTAVAIL;
    for (const struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = dial_one(ai);
        if (fd < 0 && (errno == ECANCELED || (timeout_ms >= 0 && gh__now_ns() >= end)))
            break;   /* killed, or out of time: no point trying the next */
    }
    int e = fd < 0 ? errno : 0;
    if (token >= 0)
        gh_timeout_end(token);
    freeaddrinfo(res);
    if (fd < 0)
        errno = e;
    return fd;
}
