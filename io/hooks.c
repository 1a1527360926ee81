/* io/hooks.c — the interposition layer's entry points: libc's names,
 * each passing its call to libgreenhub's gh__ip_<name> (io/interpose.c).
 *
 * Built twice: libgreenhub_hooks (linked into a program: greenhub::hooks)
 * and libgreenhub_preload.so (LD_PRELOAD).  Nothing else defines libc's
 * names, so a program that links only libgreenhub interposes nothing.
 * The fortified variants (__read_chk...) of code built with
 * _FORTIFY_SOURCE are covered too; fcntl64, pread64 and pwrite64 are the
 * same functions under their large-file names. */
#undef _FORTIFY_SOURCE   /* the real prototypes, not fortify's inline wrappers */
#include "real.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GH_HOOK __attribute__((visibility("default")))

void __chk_fail(void) __attribute__((noreturn));   /* glibc's */
/* glibc declares these only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int fl);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int fl,
                       struct sockaddr *a, socklen_t *al);
int __poll_chk(struct pollfd *p, nfds_t n, int ms, size_t plen);
int __ppoll_chk(struct pollfd *p, nfds_t n, const struct timespec *ts,
                const sigset_t *m, size_t plen);

/* Every function of the list but the three written out below, passed on
 * as is. */
#define GH_HOOK_DEF(ret, name, params, args) \
    GH_HOOK ret name params { return gh__ip_##name args; }
GH_REAL_LIST_PLAIN(GH_HOOK_DEF)
#undef GH_HOOK_DEF

GH_HOOK int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);
    va_end(ap);
    return gh__ip_fcntl(fd, cmd, arg);
}

GH_HOOK int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

GH_HOOK int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return gh__ip_ioctl(fd, req, arg);
}

GH_HOOK void closefrom(int low)
{
    gh__ip_closefrom(low);
}

GH_HOOK ssize_t pread64(int fd, void *buf, size_t n, off_t off) __attribute__((alias("pread")));
GH_HOOK ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
    __attribute__((alias("pwrite")));

/* _FORTIFY_SOURCE's checked variants: the check, then the call. */
GH_HOOK ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    if (n > buflen)
        __chk_fail();
    return gh__ip_read(fd, buf, n);
}

GH_HOOK ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int fl)
{
    if (n > buflen)
        __chk_fail();
    return gh__ip_recv(fd, buf, n, fl);
}

GH_HOOK ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int fl,
                               struct sockaddr *a, socklen_t *al)
{
    if (n > buflen)
        __chk_fail();
    return gh__ip_recvfrom(fd, buf, n, fl, a, al);
}

GH_HOOK int __poll_chk(struct pollfd *p, nfds_t n, int ms, size_t plen)
{
    if (plen / sizeof *p < n)
        __chk_fail();
    return gh__ip_poll(p, n, ms);
}

GH_HOOK int __ppoll_chk(struct pollfd *p, nfds_t n, const struct timespec *ts,
                        const sigset_t *m, size_t plen)
{
    if (plen / sizeof *p < n)
        __chk_fail();
    return gh__ip_ppoll(p, n, ts, m);
}

/* Tells libgreenhub the layer is in (gh_interposed), and fills the table
 * of real functions before main. */
__attribute__((constructor)) static void hooks_loaded(void)
{
    gh__ip_loaded();
}
