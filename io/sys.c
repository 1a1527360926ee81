/* io/sys.c — the mirrors of the system calls (see <greenhub/io.h>).
 *
 * Each one: make sure the fd is non-blocking (once per fd), make the call,
 * and only on EAGAIN wait for readiness (gh__io_wait: a greenlet parks, a
 * plain thread polls) and make it again.  Errors pass through with the
 * call's own errno; a failed wait sets errno to its reason. */
#include "io_internal.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

/* Before a call on fd: non-blocking mode (else the call would block the
 * hub) and SIGPIPE ignored.  Returns 0, or -1 with errno. */
static int prepare(int fd)
{
    gh__io_sigpipe_once();
    int err = gh__fd_nonblock(fd);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* After a call failed with errno: 1 if it should be retried once fd is
 * ready for `events` (and the wait succeeded), 0 to return its failure
 * (errno set: the call's, or the wait's). */
static int again(int fd, int events, int flags)
{
    if ((errno != EAGAIN && errno != EWOULDBLOCK) || (flags & MSG_DONTWAIT))
        return 0;
    int err = gh__io_wait(fd, events, -1);
    if (err) {
        errno = err;
        return 0;
    }
    return 1;
}

/* The retry loop every mirror shares: CALL is an expression of type
 * ssize_t, re-evaluated after each wait. */
#define GREEN_CALL(fd, events, flags, CALL)                 \
    do {                                                    \
        if (prepare(fd) < 0)                                \
            return -1;                                      \
        ssize_t r_;                                         \
        while ((r_ = (CALL)) < 0 && again(fd, events, flags)) \
            ;                                               \
        return r_;                                          \
    } while (0)

ssize_t gh_read(int fd, void *buf, size_t count)
{
    GREEN_CALL(fd, GH_READ, 0, read(fd, buf, count));
}

ssize_t gh_write(int fd, const void *buf, size_t count)
{
    GREEN_CALL(fd, GH_WRITE, 0, write(fd, buf, count));
}

ssize_t gh_readv(int fd, const struct iovec *iov, int iovcnt)
{
    GREEN_CALL(fd, GH_READ, 0, readv(fd, iov, iovcnt));
}

ssize_t gh_writev(int fd, const struct iovec *iov, int iovcnt)
{
    GREEN_CALL(fd, GH_WRITE, 0, writev(fd, iov, iovcnt));
}

ssize_t gh_recv(int fd, void *buf, size_t len, int flags)
{
    GREEN_CALL(fd, GH_READ, flags, recv(fd, buf, len, flags));
}

ssize_t gh_send(int fd, const void *buf, size_t len, int flags)
{
    GREEN_CALL(fd, GH_WRITE, flags, send(fd, buf, len, flags | MSG_NOSIGNAL));
}

ssize_t gh_recvfrom(int fd, void *buf, size_t len, int flags,
                    struct sockaddr *addr, socklen_t *addrlen)
{
    GREEN_CALL(fd, GH_READ, flags, recvfrom(fd, buf, len, flags, addr, addrlen));
}

ssize_t gh_sendto(int fd, const void *buf, size_t len, int flags,
                  const struct sockaddr *addr, socklen_t addrlen)
{
    GREEN_CALL(fd, GH_WRITE, flags,
               sendto(fd, buf, len, flags | MSG_NOSIGNAL, addr, addrlen));
}

ssize_t gh_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    GREEN_CALL(out_fd, GH_WRITE, 0, sendfile(out_fd, in_fd, offset, count));
}

/* Out of descriptors, an accept fails at once, and a server that retries
 * (what else can it do) would spin: the connection stays queued and the
 * listener stays readable.  So the failure is returned only after a wait
 * for a gh_close to free a descriptor, or EMFILE_WAIT_MS (descriptors
 * freed by close(2) are only seen that way). */
enum { EMFILE_WAIT_MS = 100 };

int gh_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (prepare(fd) < 0)
        return -1;
    int c;
    while ((c = accept4(fd, addr, addrlen, flags | SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0 &&
           again(fd, GH_READ, 0))
        ;
    if (c < 0 && (errno == EMFILE || errno == ENFILE)) {
        int e = errno;
        gh__fd_freed_wait(EMFILE_WAIT_MS);
        errno = e;
    }
    if (c >= 0) {
        /* made non-blocking above: no fcntl on its first use */
        gh__fd_mark_nonblock(gh__fdstate_get(c));
    }
    return c;
}

int gh_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return gh_accept4(fd, addr, addrlen, 0);
}

int gh_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    if (prepare(fd) < 0)
        return -1;
    if (connect(fd, addr, addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    int err = gh__io_wait(fd, GH_WRITE, -1);
    socklen_t len = sizeof err;
    if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
