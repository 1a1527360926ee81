/* tests/test_interpose.c — the interposition layer (io/interpose.c),
 * linked in through greenhub::hooks: plain libc calls (read, write,
 * accept, connect, poll, select, sleeps, fcntl...) made on greenlets park
 * the greenlet, keep the caller's view of O_NONBLOCK, honour socket
 * timeouts, deadline scopes and close; on plain threads they are libc's.
 *
 * "The hub was not blocked" is shown without timing: on one hub, a second
 * greenlet runs while the first is inside the call (it sees the first's
 * `inside` flag set), which a call that blocked the hub's thread would
 * make impossible (the second could only run after the call returned). */
#include "gh_witness.h"

#include <errno.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the layer is there ----------------------------------------------------------- */

static void test_layer_loaded(void **state)
{
    (void)state;
    assert_true(gh_interposed());
    assert_non_null(gh_syscall_real("read"));
    assert_null(gh_syscall_real("no_such_call"));
    assert_int_equal(gh_syscall_override("no_such_call", NULL), ENOENT);
    assert_int_equal(gh_syscall_override(NULL, NULL), EINVAL);
}

/* ---- sleeps ---------------------------------------------------------------------------- */

static void *sleeper(void *arg)
{
    (void)arg;
    struct witness w = { 0 };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    assert_int_equal(usleep(30000), 0);
    atomic_store(&inside, 0);
    int a = atomic_load(&seen_inside);
    gh_join(g, NULL);
    /* nanosleep and sleep(0) too, with their results */
    struct timespec ts = { 0, 2000000 }, rem = { 9, 9 };
    assert_int_equal(nanosleep(&ts, &rem), 0);
    assert_int_equal(sleep(0), 0);
    /* a deadline scope cuts a long sleep short, with ETIMEDOUT and the rest */
    int tok = gh_timeout_begin(20);
    ts = (struct timespec){ 5, 0 };
    int r = nanosleep(&ts, &rem);
    int e = errno;
    gh_timeout_end(tok);
    assert_int_equal(r, -1);
    assert_int_equal(e, ETIMEDOUT);
    assert_true(rem.tv_sec >= 4);
    return (void *)(intptr_t)a;
}

static void test_sleep_parks(void **state)
{
    (void)state;
    assert_int_equal((intptr_t)gh_test_run(1, sleeper, NULL), 1);
}

/* ---- a blocking read on a socketpair ------------------------------------------------ */

static void write_hello(void *arg)
{
    int fd = *(int *)arg;
    assert_int_equal(write(fd, "hello", 5), 5);
}

static void *blocking_read(void *arg)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* the caller's view: blocking; fcntl says so */
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    struct witness w = { write_hello, &sv[1] };
    gh_greenlet *g = witness_spawn(&w);
    char buf[16] = { 0 };
    atomic_store(&inside, 1);
    ssize_t n = read(sv[0], buf, sizeof buf);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(atomic_load(&seen_inside), 1);
    /* non-blocking underneath, blocking for the caller */
    assert_true(kernel_nonblock(sv[0]));
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_blocking_read_parks(void **state)
{
    (void)state;
    gh_test_run(1, blocking_read, NULL);
}

/* ---- the caller's O_NONBLOCK is kept ---------------------------------------------------- */

static void *nonblocking_views(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(read(sv[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    /* made blocking by the caller: the layer keeps the kernel's flag */
    assert_int_equal(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) & ~O_NONBLOCK), 0);
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    assert_true(kernel_nonblock(sv[0]));
    struct witness w = { write_hello, &sv[1] };
    gh_greenlet *g = witness_spawn(&w);
    char buf[8];
    atomic_store(&inside, 1);
    assert_int_equal(read(sv[0], buf, sizeof buf), 5);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(atomic_load(&seen_inside), 1);
    /* FIONBIO on: EAGAIN again; off: blocking view again */
    int on = 1, off = 0;
    assert_int_equal(ioctl(sv[0], FIONBIO, &on), 0);
    assert_int_equal(recv(sv[0], &c, 1, 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(ioctl(sv[0], FIONBIO, &off), 0);
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    assert_true(kernel_nonblock(sv[0]));
    /* MSG_DONTWAIT still never waits */
    assert_int_equal(recv(sv[0], &c, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_nonblocking_view_kept(void **state)
{
    (void)state;
    gh_test_run(1, nonblocking_views, NULL);
}

/* ---- time limits: SO_RCVTIMEO, deadline scopes, close ------------------------------------ */

static void *timeouts(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = { 0, 30000 };
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct witness w = { 0 };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    assert_int_equal(read(sv[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);   /* what a blocking socket's timeout says */
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(atomic_load(&seen_inside), 1);
    /* the deadline scope: ETIMEDOUT, on the other end (no SO_RCVTIMEO) */
    int tok = gh_timeout_begin(20);
    assert_int_equal(read(sv[1], &c, 1), -1);
    assert_int_equal(errno, ETIMEDOUT);
    gh_timeout_end(tok);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_timeouts(void **state)
{
    (void)state;
    gh_test_run(1, timeouts, NULL);
}

static void close_fd(void *arg)
{
    assert_int_equal(close(*(int *)arg), 0);
}

static void *close_wakes(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct witness w = { close_fd, &sv[0] };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    ssize_t n = read(sv[0], &c, 1);
    int e = errno;
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(n, -1);
    assert_int_equal(e, EBADF);
    close(sv[1]);
    return NULL;
}

static void test_close_wakes_reader(void **state)
{
    (void)state;
    gh_test_run(1, close_wakes, NULL);
}

/* ---- poll and select on several fds ---------------------------------------------------- */

static void write_x(void *arg)
{
    int fd = *(int *)arg;
    assert_int_equal(write(fd, "x", 1), 1);
}

static void *poll_many(void *arg)
{
    (void)arg;
    int sv[3][2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
    struct pollfd p[3];
    for (int i = 0; i < 3; i++)
        p[i] = (struct pollfd){ .fd = sv[i][0], .events = POLLIN };
    /* nothing ready: the timeout, 0 */
    assert_int_equal(poll(p, 3, 20), 0);
    /* the second becomes ready while we wait */
    struct witness w = { write_x, &sv[1][1] };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    int r = poll(p, 3, -1);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_int_equal(p[0].revents, 0);
    assert_int_equal(p[1].revents, POLLIN);
    assert_int_equal(p[2].revents, 0);
    assert_int_equal(atomic_load(&seen_inside), 1);
    /* select: the third this time */
    w.arg = &sv[2][1];
    g = witness_spawn(&w);
    fd_set rs;
    FD_ZERO(&rs);
    int maxfd = 0;
    for (int i = 0; i < 3; i++) {
        if (i != 1)
            FD_SET(sv[i][0], &rs);
        maxfd = sv[i][0] > maxfd ? sv[i][0] : maxfd;
    }
    atomic_store(&inside, 1);
    r = select(maxfd + 1, &rs, NULL, NULL, NULL);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_true(FD_ISSET(sv[2][0], &rs));
    assert_false(FD_ISSET(sv[0][0], &rs));
    assert_int_equal(atomic_load(&seen_inside), 1);
    char c;
    assert_int_equal(read(sv[2][0], &c, 1), 1);
    /* pselect: the first, with a timeout (unchanged by the call) */
    w.arg = &sv[0][1];
    g = witness_spawn(&w);
    FD_ZERO(&rs);
    for (int i = 0; i < 3; i++)
        FD_SET(sv[i][0], &rs);
    FD_CLR(sv[1][0], &rs);   /* still readable from the poll above */
    struct timespec ts = { 5, 0 };
    sigset_t mask;
    sigemptyset(&mask);
    atomic_store(&inside, 1);
    r = pselect(maxfd + 1, &rs, NULL, NULL, &ts, &mask);
    atomic_store(&inside, 0);
    assert_int_equal(atomic_load(&seen_inside), 1);
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_true(FD_ISSET(sv[0][0], &rs));
    assert_false(FD_ISSET(sv[2][0], &rs));
    assert_int_equal(ts.tv_sec, 5);
    FD_ZERO(&rs);
    FD_SET(sv[2][0], &rs);
    ts = (struct timespec){ 0, 20 * 1000000 };
    assert_int_equal(pselect(sv[2][0] + 1, &rs, NULL, NULL, &ts, NULL), 0);   /* times out */
    for (int i = 0; i < 3; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    return NULL;
}

static void test_poll_select_many(void **state)
{
    (void)state;
    gh_test_run(1, poll_many, NULL);
}

/* ---- a blocking-style TCP echo, all hubs ---------------------------------------------- */

enum { CLIENTS = 64, ROUNDS = 20 };
static int port;
static _Atomic int echoed;

static void *echo_conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[512];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0)
        assert_int_equal(write(c, buf, (size_t)n), n);
    close(c);
    return NULL;
}

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < CLIENTS; i++) {
        int c = accept(lfd, NULL, NULL);
        assert_true(c >= 0);
        gh_detach(gh_spawn(echo_conn, (void *)(intptr_t)c));
    }
    close(lfd);
    return NULL;
}

static void *echo_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    for (int r = 0; r < ROUNDS; r++) {
        char msg[64], got[64];
        int len = snprintf(msg, sizeof msg, "client %d round %d", id, r);
        assert_int_equal(send(fd, msg, (size_t)len, 0), len);
        int have = 0;
        while (have < len) {
            ssize_t n = recv(fd, got + have, (size_t)(len - have), 0);
            assert_true(n > 0);
            have += (int)n;
        }
        assert_memory_equal(got, msg, (size_t)len);
        atomic_fetch_add(&echoed, 1);
    }
    close(fd);
    return NULL;
}

static void *echo_main(void *arg)
{
    (void)arg;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, CLIENTS), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    port = ntohs(a.sin_port);
    gh_greenlet *srv = gh_spawn(echo_server, (void *)(intptr_t)lfd);
    gh_greenlet *cl[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        cl[i] = gh_spawn(echo_client, (void *)(intptr_t)i);
    for (int i = 0; i < CLIENTS; i++)
        gh_join(cl[i], NULL);
    gh_join(srv, NULL);
    return NULL;
}

static void test_tcp_echo_all_hubs(void **state)
{
    (void)state;
    atomic_store(&echoed, 0);
    gh_test_run(2, echo_main, NULL);
    assert_int_equal(atomic_load(&echoed), CLIENTS * ROUNDS);
}

/* ---- fault injection ---------------------------------------------------------------------- */

static _Atomic int faults;

static ssize_t read_eio(int fd, void *buf, size_t n)
{
    (void)fd, (void)buf, (void)n;
    atomic_fetch_add(&faults, 1);
    errno = EIO;
    return -1;
}

static void *fault_main(void *arg)
{
    (void)arg;
    int sv[2];
    char c;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "ab", 2), 2);
    void *f;
    ssize_t (*fp)(int, void *, size_t) = read_eio;
    memcpy(&f, &fp, sizeof f);
    assert_int_equal(gh_syscall_override("read", f), 0);
    ssize_t r1 = read(sv[0], &c, 1);      /* interposed */
    int e1 = errno;
    ssize_t r2 = gh_read(sv[0], &c, 1);   /* greenhub's own mirror */
    int e2 = errno;
    assert_int_equal(gh_syscall_override("read", NULL), 0);
    assert_int_equal(r1, -1);
    assert_int_equal(e1, EIO);
    assert_int_equal(r2, -1);
    assert_int_equal(e2, EIO);
    assert_int_equal(atomic_load(&faults), 2);
    assert_int_equal(read(sv[0], &c, 1), 1);   /* restored: the data is intact */
    assert_int_equal(c, 'a');
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

/* The faults the issue names, each ending in the libc-shaped result (the
 * error, or for a blocking-view read the data once the storm is over),
 * never a hang: a deadline scope around each call turns a hang into
 * ETIMEDOUT. */
static _Atomic int storm;   /* EAGAINs still to come from read_storm */

static ssize_t read_eintr(int fd, void *buf, size_t n)
{
    (void)fd, (void)buf, (void)n;
    errno = EINTR;
    return -1;
}

static ssize_t read_storm(int fd, void *buf, size_t n)
{
    if (atomic_fetch_sub(&storm, 1) > 0) {
        errno = EAGAIN;
        return -1;
    }
    ssize_t (*real)(int, void *, size_t);
    void *p = gh_syscall_real("read");
    memcpy(&real, &p, sizeof p);
    return real(fd, buf, n);
}

static int epoll_ctl_enomem(int ep, int op, int fd, struct epoll_event *e)
{
    (void)ep, (void)op, (void)fd, (void)e;
    errno = ENOMEM;
    return -1;
}

static void override(const char *name, const void *fnp, size_t size)
{
    void *f = NULL;
    if (fnp)
        memcpy(&f, fnp, size);
    assert_int_equal(gh_syscall_override(name, f), 0);
}

/* read under a deadline scope: a hang shows as ETIMEDOUT */
static ssize_t read_bounded(int fd, void *buf, size_t n, int *err)
{
    int64_t t = gh_timeout_begin(2000);
    ssize_t r = read(fd, buf, n);
    *err = errno;
    gh_timeout_end(t);
    return r;
}

static void reset_peer(void *arg)
{
    int fd = *(int *)arg;
    struct linger l = { 1, 0 };
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    assert_int_equal(close(fd), 0);   /* RST */
}

static void *faults_main(void *arg)
{
    (void)arg;
    int sv[2], err;
    char buf[8];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "abc", 3), 3);

    /* EINTR: returned as a blocking read would, the data left alone */
    ssize_t (*fe)(int, void *, size_t) = read_eintr;
    override("read", &fe, sizeof fe);
    ssize_t r = read_bounded(sv[0], buf, 1, &err);
    override("read", NULL, 0);
    assert_int_equal(r, -1);
    assert_int_equal(err, EINTR);

    /* an EAGAIN storm on a blocking-view socket with data: the data, once
     * the storm is over, however many waits it took */
    atomic_store(&storm, 300);
    ssize_t (*fs)(int, void *, size_t) = read_storm;
    override("read", &fs, sizeof fs);
    r = read_bounded(sv[0], buf, 1, &err);
    override("read", NULL, 0);
    if (r != 1)
        fail_msg("read through an EAGAIN storm: %zd (%s)", r, strerror(err));
    assert_int_equal(buf[0], 'a');
    assert_true(atomic_load(&storm) < 0);   /* the storm was spent */

    /* ENOMEM in the layer (the hub cannot watch the fd): the error, and
     * the fd and the layer intact for the next call */
    int nv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
    int (*fm)(int, int, int, struct epoll_event *) = epoll_ctl_enomem;
    override("epoll_ctl", &fm, sizeof fm);
    r = read_bounded(nv[0], buf, 1, &err);   /* no data: it must wait */
    override("epoll_ctl", NULL, 0);
    assert_int_equal(r, -1);
    assert_int_equal(err, ENOMEM);
    struct witness w = { write_x, &nv[1] };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    r = read_bounded(nv[0], buf, 1, &err);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_int_equal(buf[0], 'x');
    close(nv[0]);
    close(nv[1]);
    close(sv[0]);
    close(sv[1]);

    /* ECONNRESET while a read waits: the peer resets the connection */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept(l, NULL, NULL);
    assert_true(s >= 0);
    struct witness wr = { reset_peer, &s };
    g = witness_spawn(&wr);
    atomic_store(&inside, 1);
    r = read_bounded(c, buf, sizeof buf, &err);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(r, -1);
    assert_int_equal(err, ECONNRESET);
    close(c);
    close(l);
    return NULL;
}

static void test_fault_injection(void **state)
{
    (void)state;
    gh_test_run(1, fault_main, NULL);
    gh_test_run(1, faults_main, NULL);
}

/* ---- plain threads: libc's calls ---------------------------------------------------------- */

static void *late_writer(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = { 0, 20000000 };
    nanosleep(&ts, NULL);
    write_hello(&fd);
    return NULL;
}

static void *made_green(void *arg)
{
    int *sv = arg;
    char c;
    /* a green read: the fd goes non-blocking underneath */
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(read(sv[0], &c, 1), 1);
    return NULL;
}

static void test_plain_thread_blocks(void **state)
{
    (void)state;
    int sv[2];
    char buf[8];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pthread_t t;
    /* never touched by a greenlet: libc's blocking read */
    assert_int_equal(pthread_create(&t, NULL, late_writer, &sv[1]), 0);
    assert_int_equal(read(sv[0], buf, sizeof buf), 5);
    pthread_join(t, NULL);
    assert_false(kernel_nonblock(sv[0]));
    /* after a greenlet used it (non-blocking underneath), a plain thread
     * still gets a blocking read, not EAGAIN */
    gh_test_run(1, made_green, sv);
    assert_true(kernel_nonblock(sv[0]));
    assert_int_equal(pthread_create(&t, NULL, late_writer, &sv[1]), 0);
    assert_int_equal(read(sv[0], buf, sizeof buf), 5);
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
}

/* ---- fork: the child has no hubs --------------------------------------------------------- */

/* On hub 1: a green read that leaves hub 1 watching the fd. */
static void *watch_on_hub1(void *arg)
{
    int *sv = arg;
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    return NULL;
}

static void *forker(void *arg)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    gh_spawn_opts o = { .hub = 1, .pinned = 1 };
    gh_greenlet *g = gh_spawn_with(&o, watch_on_hub1, sv);
    usleep(20000);   /* it parks in its read on hub 1 (a watch there) */
    assert_int_equal(write(sv[1], "x", 1), 1);
    gh_join(g, NULL);
    /* Fork from hub 0.  In the child, close(sv[0]) through gh_close would
     * ask hub 1, which does not exist there, to retire its watch, and wait
     * forever; usleep would park on a copy of hub 0 whose epoll set is the
     * parent's. */
    pid_t pid = fork();
    if (pid == 0) {
        if (usleep(1000) != 0 || close(sv[0]) != 0 || close(sv[1]) != 0)
            _exit(1);
        _exit(0);
    }
    assert_true(pid > 0);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0)
        usleep(1000);   /* green here, in the parent */
    assert_int_equal(w, pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void *forker_main(void *arg)
{
    gh_spawn_opts o = { .hub = 0, .pinned = 1 };   /* forks from hub 0 */
    gh_join(gh_spawn_with(&o, forker, arg), NULL);
    return NULL;
}

static void test_fork_child_is_plain(void **state)
{
    (void)state;
    gh_test_run(2, forker_main, NULL);
}

/* A fork made with no runtime running leaves an ordinary process: a
 * runtime the child starts has the layer working (a sleep parks). */
static void *child_sleeper(void *arg)
{
    (void)arg;
    struct witness w = { 0 };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    usleep(20000);
    atomic_store(&inside, 0);
    int seen = atomic_load(&seen_inside);
    gh_join(g, NULL);
    return (void *)(intptr_t)seen;
}

static void test_fork_child_runtime_has_the_layer(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *seen = NULL;
        gh_config cfg = { .hubs = 1 };
        int err = gh_run(&cfg, child_sleeper, NULL, &seen);
        _exit(err ? 2 : seen ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("in the child's runtime usleep %s", WEXITSTATUS(st) == 1 ?
                 "blocked the hub (the layer was off)" : "could not run");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_loaded),
        cmocka_unit_test(test_sleep_parks),
        cmocka_unit_test(test_blocking_read_parks),
        cmocka_unit_test(test_nonblocking_view_kept),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_close_wakes_reader),
        cmocka_unit_test(test_poll_select_many),
        cmocka_unit_test(test_tcp_echo_all_hubs),
        cmocka_unit_test(test_fault_injection),
        cmocka_unit_test(test_plain_thread_blocks),
        cmocka_unit_test(test_fork_child_is_plain),
        cmocka_unit_test(test_fork_child_runtime_has_the_layer),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
