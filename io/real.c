/* io/real.c — the table of real libc functions (see real.h), and fault
 * injection through it (gh_syscall_override).
 *
 * Bootstrap.  Until gh__real_init() has run, each entry is a fallback
 * that makes the raw system call: a hook entered before the table is
 * filled (another library's constructor, or dlopen/dlsym itself calling
 * read or close while the table is being filled) must neither recurse into
 * the layer nor allocate.  gh__real_init() runs as a constructor of
 * libgreenhub; its dlopen and dlsym calls are the only ones that may
 * allocate, and they re-enter the layer only through these fallbacks. */
#include "real.h"
#include "io_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <gnu/lib-names.h>
#include <greenhub/interpose.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- raw-system-call fallbacks (bootstrap only) ----------------------------- */

static ssize_t boot_read(int fd, void *b, size_t n) { return syscall(SYS_read, fd, b, n); }
static ssize_t boot_write(int fd, const void *b, size_t n) { return syscall(SYS_write, fd, b, n); }
static ssize_t boot_readv(int fd, const struct iovec *v, int c) { return syscall(SYS_readv, fd, v, c); }
static ssize_t boot_writev(int fd, const struct iovec *v, int c) { return syscall(SYS_writev, fd, v, c); }
static ssize_t boot_pread(int fd, void *b, size_t n, off_t o) { return syscall(SYS_pread64, fd, b, n, o); }
static ssize_t boot_pwrite(int fd, const void *b, size_t n, off_t o)
{
    return syscall(SYS_pwrite64, fd, b, n, o);
}
static ssize_t boot_recv(int fd, void *b, size_t n, int f)
{
    return syscall(SYS_recvfrom, fd, b, n, f, NULL, NULL);
}
static ssize_t boot_recvfrom(int fd, void *b, size_t n, int f, struct sockaddr *a, socklen_t *al)
{
    return syscall(SYS_recvfrom, fd, b, n, f, a, al);
}
static ssize_t boot_recvmsg(int fd, struct msghdr *m, int f) { return syscall(SYS_recvmsg, fd, m, f); }
static ssize_t boot_send(int fd, const void *b, size_t n, int f)
{
    return syscall(SYS_sendto, fd, b, n, f, NULL, 0);
}
static ssize_t boot_sendto(int fd, const void *b, size_t n, int f, const struct sockaddr *a,
                           socklen_t al)
{
    return syscall(SYS_sendto, fd, b, n, f, a, al);
}
static ssize_t boot_sendmsg(int fd, const struct msghdr *m, int f) { return syscall(SYS_sendmsg, fd, m, f); }
static int boot_accept(int fd, struct sockaddr *a, socklen_t *al)
{
    return (int)syscall(SYS_accept4, fd, a, al, 0);
}
static int boot_accept4(int fd, struct sockaddr *a, socklen_t *al, int f)
{
    return (int)syscall(SYS_accept4, fd, a, al, f);
}
static int boot_connect(int fd, const struct sockaddr *a, socklen_t al)
{
    return (int)syscall(SYS_connect, fd, a, al);
}
static int boot_close(int fd) { return (int)syscall(SYS_close, fd); }
static int boot_shutdown(int fd, int how) { return (int)syscall(SYS_shutdown, fd, how); }
static int boot_ppoll(struct pollfd *p, nfds_t n, const struct timespec *ts, const sigset_t *m)
{
    return (int)syscall(SYS_ppoll, p, n, ts, m, _NSIG / 8);
}
static int boot_poll(struct pollfd *p, nfds_t n, int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    return boot_ppoll(p, n, ms < 0 ? NULL : &ts, NULL);
}
static int boot_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    struct timespec ts, *tp = NULL;
    if (tv) {
        ts = (struct timespec){ tv->tv_sec, tv->tv_usec * 1000 };
        tp = &ts;
    }
    return (int)syscall(SYS_pselect6, n, r, w, e, tp, NULL);
}
static int boot_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts,
                        const sigset_t *mask)
{
    struct timespec t, *tp = NULL;
    if (ts) {   /* the kernel writes the time left back: a copy */
        t = *ts;
        tp = &t;
    }
    struct { const sigset_t *ss; size_t len; } m = { mask, _NSIG / 8 };
    return (int)syscall(SYS_pselect6, n, r, w, e, tp, mask ? &m : NULL);
}
static int boot_clock_nanosleep(clockid_t c, int f, const struct timespec *q, struct timespec *m)
{
    /* clock_nanosleep returns the error; it does not set errno. */
    return syscall(SYS_clock_nanosleep, c, f, q, m) < 0 ? errno : 0;
}
static int boot_nanosleep(const struct timespec *q, struct timespec *m)
{
    return (int)syscall(SYS_clock_nanosleep, CLOCK_REALTIME, 0, q, m);
}
static unsigned boot_sleep(unsigned s)
{
    struct timespec q = { (time_t)s, 0 }, m = { 0, 0 };
    return boot_nanosleep(&q, &m) == 0 ? 0 : (unsigned)m.tv_sec;
}
static int boot_usleep(useconds_t us)
{
    struct timespec q = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
    return boot_nanosleep(&q, NULL);
}
static int boot_getaddrinfo(const char *n, const char *s, const struct addrinfo *h,
                            struct addrinfo **r)
{
    (void)n, (void)s, (void)h, (void)r;
    errno = ENOSYS;   /* never needed while the table is being filled */
    return EAI_SYSTEM;
}
static int boot_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    long arg = va_arg(ap, long);   /* every command's argument fits a long */
    va_end(ap);
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
static int boot_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return (int)syscall(SYS_ioctl, fd, req, arg);
}
static int boot_setsockopt(int fd, int l, int o, const void *v, socklen_t vl)
{
    return (int)syscall(SYS_setsockopt, fd, l, o, v, vl);
}
static int boot_dup(int fd) { return (int)syscall(SYS_dup, fd); }
static int boot_dup3(int fd, int fd2, int f) { return (int)syscall(SYS_dup3, fd, fd2, f); }
static int boot_dup2(int fd, int fd2)
{
    if (fd == fd2)   /* dup3 refuses this; dup2 checks fd and returns it */
        return syscall(SYS_fcntl, fd, F_GETFD) < 0 ? -1 : fd2;
    return boot_dup3(fd, fd2, 0);
}
static int boot_socket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static int boot_socketpair(int d, int t, int p, int sv[2])
{
    return (int)syscall(SYS_socketpair, d, t, p, sv);
}
static int boot_pipe2(int p[2], int f) { return (int)syscall(SYS_pipe2, p, f); }
static int boot_pipe(int p[2]) { return boot_pipe2(p, 0); }
static int boot_close_range(unsigned a, unsigned b, int f)
{
    return (int)syscall(SYS_close_range, a, b, f);
}
static void boot_closefrom(int low)
{
    syscall(SYS_close_range, (unsigned)low, ~0u, 0);
}
static int boot_recvmmsg(int fd, struct mmsghdr *v, unsigned n, int f, struct timespec *ts)
{
    return (int)syscall(SYS_recvmmsg, fd, v, n, f, ts);
}
static int boot_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int f)
{
    return (int)syscall(SYS_sendmmsg, fd, v, n, f);
}
static int boot_epoll_pwait(int ep, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
    return (int)syscall(SYS_epoll_pwait, ep, ev, max, ms, m, _NSIG / 8);
}
static int boot_epoll_wait(int ep, struct epoll_event *ev, int max, int ms)
{
    return boot_epoll_pwait(ep, ev, max, ms, NULL);
}
static int boot_epoll_pwait2(int ep, struct epoll_event *ev, int max, const struct timespec *ts,
                             const sigset_t *m)
{
    return (int)syscall(SYS_epoll_pwait2, ep, ev, max, ts, m, _NSIG / 8);
}
static int boot_epoll_ctl(int ep, int op, int fd, struct epoll_event *e)
{
    return (int)syscall(SYS_epoll_ctl, ep, op, fd, e);
}
/* The stdio functions have no system call to fall back on.  Called before
 * the table is filled (a constructor that runs before libgreenhub's), they
 * fill it; only while it is being filled (dlopen itself, which uses no
 * stdio) would they fail. */
static bool boot_fill(void)
{
    gh__real_init();
    return gh__real_ready();
}
static int boot_fclose(FILE *f)
{
    if (boot_fill())
        return GH_REAL(fclose)(f);
    errno = ENOSYS;
    return EOF;
}
static int boot_pclose(FILE *f)
{
    if (boot_fill())
        return GH_REAL(pclose)(f);
    errno = ENOSYS;
    return -1;
}
#ifndef __SANITIZE_THREAD__   /* see GH_REAL_LIST_SIGNALS */
static int boot_sigaction(int sig, const struct sigaction *a, struct sigaction *o)
{
    if (boot_fill())
        return GH_REAL(sigaction)(sig, a, o);
    errno = ENOSYS;
    return -1;
}
static sighandler_t boot_signal(int sig, sighandler_t h)
{
    if (boot_fill())
        return GH_REAL(signal)(sig, h);
    errno = ENOSYS;
    return SIG_ERR;
}
#endif
/* The lookups, like the stdio functions, fill the table or fail. */
static struct hostent *boot_gethostbyname(const char *name)
{
    return boot_fill() ? GH_REAL(gethostbyname)(name) : NULL;
}
static struct hostent *boot_gethostbyname2(const char *name, int af)
{
    return boot_fill() ? GH_REAL(gethostbyname2)(name, af) : NULL;
}
static struct hostent *boot_gethostbyaddr(const void *a, socklen_t len, int type)
{
    return boot_fill() ? GH_REAL(gethostbyaddr)(a, len, type) : NULL;
}
static int boot_gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                                struct hostent **res, int *herr)
{
    if (boot_fill())
        return GH_REAL(gethostbyname_r)(name, ret, buf, buflen, res, herr);
    *res = NULL;
    return ENOSYS;
}
static int boot_gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                                 size_t buflen, struct hostent **res, int *herr)
{
    if (boot_fill())
        return GH_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, res, herr);
    *res = NULL;
    return ENOSYS;
}
static int boot_gethostbyaddr_r(const void *a, socklen_t len, int type, struct hostent *ret,
                                char *buf, size_t buflen, struct hostent **res, int *herr)
{
    if (boot_fill())
        return GH_REAL(gethostbyaddr_r)(a, len, type, ret, buf, buflen, res, herr);
    *res = NULL;
    return ENOSYS;
}
static int boot_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                            socklen_t hostlen, char *serv, socklen_t servlen, int fl)
{
    if (boot_fill())
        return GH_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, fl);
    errno = ENOSYS;
    return EAI_SYSTEM;
}
static FILE *boot_fdopen(int fd, const char *mode)
{
    if (boot_fill())
        return GH_REAL(fdopen)(fd, mode);
    errno = ENOSYS;
    return NULL;
}

struct gh__real_table gh__real = {
#define GH_REAL_BOOT(ret, name, params, args) .name = boot_##name,
    GH_REAL_LIST(GH_REAL_BOOT)
#undef GH_REAL_BOOT
};

/* ---- resolution ------------------------------------------------------------- */

/* What libc resolved each entry to: kept for gh_syscall_override(NULL). */
static struct {
#define GH_REAL_FIELD(ret, name, params, args) gh__real_##name##_fn name;
    GH_REAL_LIST(GH_REAL_FIELD)
#undef GH_REAL_FIELD
} libc_fn;

static _Atomic int init_state;   /* 0 not begun, 1 filling, 2 done */

bool gh__real_ready(void)
{
    return atomic_load_explicit(&init_state, memory_order_acquire) == 2;
}

/* Fills the table.  A concurrent caller while another thread fills it
 * keeps using the fallbacks (correct, only slower) instead of waiting:
 * waiting could deadlock on dlopen's lock. */
void gh__real_init(void)
{
    int s = 0;
    if (!atomic_compare_exchange_strong(&init_state, &s, 1))
        return;
    void *libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
    void *f;
#define GH_REAL_RESOLVE(ret, name, params, args)                                  \
    f = libc ? dlsym(libc, #name) : NULL;                                          \
    if (f) {                                                                       \
        memcpy(&libc_fn.name, &f, sizeof f);  /* object to function pointer */     \
        atomic_store_explicit(&gh__real.name, libc_fn.name, memory_order_relaxed); \
    } else {                                                                       \
        libc_fn.name = boot_##name;                                                \
    }
    GH_REAL_LIST(GH_REAL_RESOLVE)
#undef GH_REAL_RESOLVE
    /* The handle is not closed: libc stays loaded for the whole process. */
    atomic_store_explicit(&init_state, 2, memory_order_release);
}

__attribute__((constructor)) static void real_ctor(void)
{
    gh__real_init();
}

/* ---- fault injection (<greenhub/interpose.h>) ------------------------------------- */

struct named {
    const char *name;
    _Atomic(void *) *slot;     /* the entry, as an untyped pointer */
    const void *libc;          /* libc_fn's field */
};

/* The entry called `name`, or NULL. */
static bool lookup(const char *name, struct named *out)
{
#define GH_REAL_NAMED(ret, fn, params, args)                   \
    if (strcmp(name, #fn) == 0) {                              \
        out->name = #fn;                                       \
        out->slot = (_Atomic(void *) *)(void *)&gh__real.fn;   \
        out->libc = &libc_fn.fn;                               \
        return true;                                           \
    }
    GH_REAL_LIST(GH_REAL_NAMED)
#undef GH_REAL_NAMED
    return false;
}

int gh_syscall_override(const char *name, void *fn)
{
    struct named e;
    if (!name || !lookup(name, &e))
        return name ? ENOENT : EINVAL;
    gh__real_init();
    if (!gh__real_ready())
        return EAGAIN;   /* another thread is filling the table right now */
    void *orig;
    memcpy(&orig, e.libc, sizeof orig);
    void *now = fn ? fn : orig;
    void *was = atomic_exchange_explicit(e.slot, now, memory_order_relaxed);
    atomic_fetch_add(&gh__real_overrides, (now != orig) - (was != orig));
    return 0;
}

_Atomic int gh__real_overrides;

void *gh_syscall_real(const char *name)
{
    struct named e;
    if (!name || !lookup(name, &e))
        return NULL;
    gh__real_init();
    if (!gh__real_ready())
        return NULL;
    void *orig;
    memcpy(&orig, e.libc, sizeof orig);
    return orig;
}
