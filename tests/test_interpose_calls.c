/* tests/test_interpose_calls.c — interposed calls beyond the basic ones:
 * epoll_wait, recvmmsg/sendmmsg, the gethostbyname family and getnameinfo,
 * and what a green poll() leaves of a descriptor's flags.
 *
 * "The hub was not blocked" is shown as in test_interpose.c: on one hub, a
 * second greenlet runs while the first is inside the call. */
#include "gh_witness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <greenhub/interpose.h>

enum { LIMIT_MS = 2000 };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_x(void *arg)
{
    assert_int_equal(write(*(int *)arg, "x", 1), 1);
}

/* ---- epoll_wait ------------------------------------------------------------------- */

static void close_it(void *arg)
{
    assert_int_equal(close(*(int *)arg), 0);
}

static void *epoll_main(void *arg)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int et = 0; et < 2; et++) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        assert_true(ep >= 0);
        struct epoll_event e = { .events = EPOLLIN | (et ? EPOLLET : 0), .data.fd = sv[0] };
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e), 0);
        /* parks; another greenlet's write ends it */
        struct witness w = { write_x, &sv[1] };
        gh_greenlet *g = witness_spawn(&w);
        struct epoll_event got[4];
        atomic_store(&inside, 1);
        int r = epoll_wait(ep, got, 4, LIMIT_MS);
        atomic_store(&inside, 0);
        assert_true(atomic_load(&seen_inside));   /* else the witness waits forever */
        gh_join(g, NULL);
        assert_int_equal(r, 1);
        assert_int_equal(got[0].data.fd, sv[0]);
        char c;
        assert_int_equal(read(sv[0], &c, 1), 1);
        /* its own timeout: 0 events, not early */
        uint64_t t0 = now_ms();
        assert_int_equal(epoll_wait(ep, got, 4, 50), 0);
        assert_true(now_ms() - t0 >= 50);
        /* epoll_pwait and epoll_pwait2 the same way */
        sigset_t m;
        sigemptyset(&m);
        assert_int_equal(epoll_pwait(ep, got, 4, 20, &m), 0);
        struct timespec ts = { 0, 20 * 1000000 };
        assert_int_equal(epoll_pwait2(ep, got, 4, &ts, NULL), 0);
        /* a deadline scope ends a wait without its own limit */
        int64_t tok = gh_timeout_begin(30);
        errno = 0;
        assert_int_equal(epoll_wait(ep, got, 4, -1), -1);
        assert_int_equal(errno, ETIMEDOUT);
        gh_timeout_end(tok);
        /* a close of the epoll fd by another greenlet ends it with EBADF */
        struct witness wc = { close_it, &ep };
        g = witness_spawn(&wc);
        atomic_store(&inside, 1);
        errno = 0;
        r = epoll_wait(ep, got, 4, LIMIT_MS);
        int err = errno;
        atomic_store(&inside, 0);
        assert_true(atomic_load(&seen_inside));
        gh_join(g, NULL);
        assert_int_equal(r, -1);
        assert_int_equal(err, EBADF);
    }
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_epoll_wait_parks(void **state)
{
    (void)state;
    gh_test_run(1, epoll_main, NULL);
}

/* ---- recvmmsg / sendmmsg ----------------------------------------------------------- */

enum { NMSG = 64, MSGLEN = 1000 };

struct batch {
    struct mmsghdr v[NMSG];
    struct iovec iov[NMSG];
    char data[NMSG][MSGLEN];
};

static void batch_init(struct batch *b, int first)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < NMSG; i++) {
        memset(b->data[i], 'a' + (first + i) % 26, MSGLEN);
        b->iov[i] = (struct iovec){ b->data[i], MSGLEN };
        b->v[i].msg_hdr.msg_iov = &b->iov[i];
        b->v[i].msg_hdr.msg_iovlen = 1;
    }
}

struct sender {
    int fd;
    int n;        /* messages to send, in two halves with a yield between */
    int settle;   /* between the halves: 0 nothing more, 1 a sleep (the
                   * receiver wakes with the first half), 2 until the
                   * receiver returned */
};

static void *send_halves(void *arg)
{
    struct sender *s = arg;
    static struct batch b;
    batch_init(&b, 0);
    while (!atomic_load(&inside))
        gh_yield();
    atomic_store(&seen_inside, 1);
    int half = s->n / 2;
    assert_int_equal(sendmmsg(s->fd, b.v, (unsigned)half, 0), half);
    gh_yield();
    if (s->settle == 1)
        gh_sleep_ms(20);
    while (s->settle == 2 && atomic_load(&inside))
        gh_sleep_ms(1);
    assert_int_equal(sendmmsg(s->fd, b.v + half, (unsigned)(s->n - half), 0), s->n - half);
    return NULL;
}

/* Receives NMSG messages one by one, in order, once the sender is in. */
static void *receive_all(void *arg)
{
    int fd = *(int *)arg;
    while (!atomic_load(&inside))
        gh_yield();
    atomic_store(&seen_inside, 1);
    char buf[MSGLEN + 1];
    for (int i = 0; i < NMSG; i++) {
        assert_int_equal(recv(fd, buf, sizeof buf, 0), MSGLEN);
        assert_int_equal(buf[0], 'a' + i % 26);
    }
    return NULL;
}

static void *mmsg_main(void *arg)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    static struct batch in;
    gh_spawn_opts here = { .hub = gh_hub_index(), .pinned = 1 };

    /* a blocking recvmmsg waits for all 4, which come in two sends */
    batch_init(&in, 100);
    struct sender s = { sv[1], 4, 1 };
    atomic_store(&inside, 0);
    atomic_store(&seen_inside, 0);
    gh_greenlet *g = gh_spawn_with(&here, send_halves, &s);
    atomic_store(&inside, 1);
    assert_int_equal(recvmmsg(sv[0], in.v, 4, 0, NULL), 4);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_true(atomic_load(&seen_inside));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(in.v[i].msg_len, MSGLEN);
        assert_int_equal(in.data[i][0], 'a' + i);
    }
    /* MSG_WAITFORONE: the first that came is enough */
    batch_init(&in, 100);
    s.settle = 2;
    atomic_store(&seen_inside, 0);
    g = gh_spawn_with(&here, send_halves, &s);
    atomic_store(&inside, 1);
    assert_int_equal(recvmmsg(sv[0], in.v, 4, MSG_WAITFORONE, NULL), 2);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(recvmmsg(sv[0], in.v + 2, 2, 0, NULL), 2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(in.data[i][0], 'a' + i);
    /* its timeout with nothing received: EAGAIN */
    struct timespec ts = { 0, 30 * 1000000 };
    errno = 0;
    assert_int_equal(recvmmsg(sv[0], in.v, 4, 0, &ts), -1);
    assert_int_equal(errno, EAGAIN);

    /* sendmmsg of more than the socket holds: parks until all are sent */
    int small = 4096;
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    static struct batch out;
    batch_init(&out, 0);
    atomic_store(&inside, 0);
    atomic_store(&seen_inside, 0);
    int rfd = sv[0];
    g = gh_spawn_with(&here, receive_all, &rfd);
    atomic_store(&inside, 1);
    assert_int_equal(sendmmsg(sv[1], out.v, NMSG, 0), NMSG);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_true(atomic_load(&seen_inside));
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_mmsg_calls_block_as_believed(void **state)
{
    (void)state;
    gh_test_run(1, mmsg_main, NULL);
}

/* ---- name lookups ----------------------------------------------------------------- */

static struct hostent *(*real_gethostbyname2)(const char *, int);

static bool is_loopback(const struct hostent *he)
{
    struct in_addr a;
    memcpy(&a, he->h_addr_list[0], sizeof a);
    return he->h_addrtype == AF_INET && he->h_length == 4 && ntohl(a.s_addr) == INADDR_LOOPBACK;
}

/* Each lookup with a witness: the hub ran another greenlet meanwhile. */
#define WITNESSED(expr)                          \
    ({                                           \
        struct witness w_ = { NULL, NULL };      \
        gh_greenlet *g_ = witness_spawn(&w_);    \
        atomic_store(&inside, 1);                \
        __typeof__(expr) r_ = (expr);            \
        atomic_store(&inside, 0);                \
        assert_true(atomic_load(&seen_inside));  \
        gh_join(g_, NULL);                       \
        r_;                                      \
    })

static void *dns_main(void *arg)
{
    (void)arg;
    struct hostent *he = WITNESSED(gethostbyname("localhost"));
    assert_non_null(he);
    assert_true(is_loopback(he));
    he = WITNESSED(gethostbyname2("localhost", AF_INET));
    assert_non_null(he);
    assert_true(is_loopback(he));

    struct hostent ret, *res = NULL;
    char buf[1024];
    int herr = 0;
    assert_int_equal(WITNESSED(gethostbyname_r("localhost", &ret, buf, sizeof buf, &res, &herr)), 0);
    assert_ptr_equal(res, &ret);
    assert_true(is_loopback(res));
    /* a buffer too small: ERANGE, as libc says */
    assert_int_equal(gethostbyname_r("localhost", &ret, buf, 8, &res, &herr), ERANGE);
    assert_null(res);

    struct in_addr lo = { htonl(INADDR_LOOPBACK) };
    he = WITNESSED(gethostbyaddr(&lo, sizeof lo, AF_INET));
    assert_non_null(he);
    assert_non_null(he->h_name);
    char name[256], serv[32];
    assert_int_equal(gethostbyaddr_r(&lo, sizeof lo, AF_INET, &ret, buf, sizeof buf, &res, &herr), 0);
    assert_non_null(res);
    assert_string_equal(res->h_name, he->h_name);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(80), .sin_addr = lo };
    assert_int_equal(WITNESSED(getnameinfo((struct sockaddr *)&sa, sizeof sa, name, sizeof name,
                                           serv, sizeof serv, NI_NUMERICSERV)), 0);
    assert_string_equal(name, he->h_name);
    assert_string_equal(serv, "80");

    /* a failure sets h_errno on the caller's thread, as libc's own call
     * (run here through the table, not green) does */
    h_errno = 0;
    assert_null(real_gethostbyname2("localhost", AF_UNIX));
    int want = h_errno;
    h_errno = 0;
    assert_null(WITNESSED(gethostbyname2("localhost", AF_UNIX)));
    assert_int_equal(h_errno, want);
    return NULL;
}

/* The static result is the greenlet's own: another greenlet's lookups
 * while this one holds its result (parked, as in a connect loop over
 * h_addr_list) neither free nor change it (under ASan a use after free
 * would stop the test). */
static void *other_lookups(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        assert_non_null(gethostbyname("localhost"));
        struct in_addr lo = { htonl(INADDR_LOOPBACK) };
        assert_non_null(gethostbyaddr(&lo, sizeof lo, AF_INET));
    }
    return NULL;
}

static void *held_result_main(void *arg)
{
    (void)arg;
    struct hostent *he = gethostbyname("localhost");
    assert_non_null(he);
    char name[256];
    snprintf(name, sizeof name, "%s", he->h_name);
    gh_spawn_opts here = { .hub = gh_hub_index(), .pinned = 1 };
    gh_greenlet *g = gh_spawn_with(&here, other_lookups, NULL);
    assert_int_equal(gh_join(g, NULL), 0);   /* parks while the other looks up */
    assert_string_equal(he->h_name, name);
    assert_true(is_loopback(he));
    return NULL;
}

static void test_name_lookups_park(void **state)
{
    (void)state;
    void *p = gh_syscall_real("gethostbyname2");
    assert_non_null(p);
    memcpy(&real_gethostbyname2, &p, sizeof p);
    gh_test_run(1, dns_main, NULL);
    gh_test_run(1, held_result_main, NULL);
}

/* ---- a green poll leaves the flags alone ------------------------------------------ */

static void *poll_flags_main(void *arg)
{
    (void)arg;
    FILE *p = popen("sleep 0.05; echo hi", "r");   /* a pipe the layer did not make */
    assert_non_null(p);
    int fd = fileno(p);
    assert_false(kernel_nonblock(fd));
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&pf, 1, LIMIT_MS), 1);   /* green: the hub watches fd */
    /* still blocking: a plain read by its owner must not see EAGAIN */
    assert_false(kernel_nonblock(fd));
    char line[8];
    assert_non_null(fgets(line, sizeof line, p));
    assert_string_equal(line, "hi\n");
    assert_int_equal(pclose(p), 0);
    return NULL;
}

static void test_green_poll_keeps_blocking_flag(void **state)
{
    (void)state;
    gh_test_run(1, poll_flags_main, NULL);
}

/* ---- recv MSG_WAITALL, poll for hang-ups only, dup2 onto a watched fd ---------------- */

static void write_ab_cd(void *arg)
{
    int fd = *(int *)arg;
    assert_int_equal(write(fd, "ab", 2), 2);
    gh_sleep_ms(10);   /* the reader gets "ab" first, then waits for more */
    assert_int_equal(write(fd, "cd", 2), 2);
}

static void close_peer(void *arg)
{
    assert_int_equal(close(*(int *)arg), 0);
}

static void *misc_main(void *arg)
{
    (void)arg;
    int sv[2];
    char buf[8];
    /* MSG_WAITALL on a blocking-view stream: all 4 bytes, in two pieces */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct witness w = { write_ab_cd, &sv[1] };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    ssize_t r = recv(sv[0], buf, 4, MSG_WAITALL);
    atomic_store(&inside, 0);
    assert_true(atomic_load(&seen_inside));
    gh_join(g, NULL);
    assert_int_equal(r, 4);
    assert_memory_equal(buf, "abcd", 4);

    /* poll with no events still reports the peer's hang-up */
    struct pollfd p = { .fd = sv[0], .events = 0 };
    struct witness wc = { close_peer, &sv[1] };
    g = witness_spawn(&wc);
    int64_t tp = gh_timeout_begin(LIMIT_MS);   /* (a poll's own timeout looks once more) */
    atomic_store(&inside, 1);
    int n = poll(&p, 1, -1);
    atomic_store(&inside, 0);
    gh_timeout_end(tp);
    assert_true(atomic_load(&seen_inside));
    gh_join(g, NULL);
    assert_int_equal(n, 1);
    assert_true(p.revents & POLLHUP);
    close(sv[0]);

    /* dup2 onto a number a hub watches: the number now names the new file,
     * and a wait on it sees that file's readiness */
    int a[2], b[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    struct witness wx = { write_x, &a[1] };
    g = witness_spawn(&wx);
    atomic_store(&inside, 1);
    assert_int_equal(read(a[0], buf, 1), 1);   /* the hub watches a[0] */
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(dup2(b[0], a[0]), a[0]);
    struct witness wb = { write_x, &b[1] };
    g = witness_spawn(&wb);
    int64_t t = gh_timeout_begin(LIMIT_MS);
    atomic_store(&inside, 1);
    r = read(a[0], buf, 1);   /* b's data, through the number a[0] */
    int e = errno;
    atomic_store(&inside, 0);
    gh_timeout_end(t);
    if (r != 1)
        fail_msg("read through the dup2'd number: %zd (%s)", r, strerror(e));
    gh_join(g, NULL);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
    return NULL;
}

static void test_waitall_hangup_poll_and_dup2(void **state)
{
    (void)state;
    gh_test_run(1, misc_main, NULL);
}

/* ---- poll on mixed fds; getaddrinfo ---------------------------------------------- */

static void *mixed_main(void *arg)
{
    (void)arg;
    /* a socket the caller left blocking, one it made non-blocking, a pipe
     * the layer did not make, and a regular file (always ready: epoll
     * cannot watch one) */
    int a[2], b[2], p[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    char path[] = "/tmp/gh-mixed-XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    unlink(path);
    struct pollfd pf[4] = {
        { .fd = a[0], .events = POLLIN }, { .fd = b[0], .events = POLLIN },
        { .fd = p[0], .events = POLLIN }, { .fd = f, .events = POLLIN },
    };
    assert_int_equal(poll(pf, 4, LIMIT_MS), 1);   /* the file, at once */
    assert_true(pf[3].revents & POLLIN);
    /* without the file: the non-blocking socket becomes ready while we wait */
    struct witness w = { write_x, &b[1] };
    gh_greenlet *g = witness_spawn(&w);
    atomic_store(&inside, 1);
    int r = poll(pf, 3, LIMIT_MS);
    atomic_store(&inside, 0);
    assert_true(atomic_load(&seen_inside));
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_int_equal(pf[0].revents, 0);
    assert_true(pf[1].revents & POLLIN);
    assert_int_equal(pf[2].revents, 0);
    /* and the pipe */
    char c;
    assert_int_equal(read(b[0], &c, 1), 1);
    w.arg = &p[1];
    g = witness_spawn(&w);
    atomic_store(&inside, 1);
    r = poll(pf, 3, LIMIT_MS);
    atomic_store(&inside, 0);
    gh_join(g, NULL);
    assert_int_equal(r, 1);
    assert_true(pf[2].revents & POLLIN);
    close(f);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
        close(p[i]);
    }
    return NULL;
}

static void *gai_main(void *arg)
{
    (void)arg;
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res = NULL;
    int r = WITNESSED(getaddrinfo("localhost", "80", &hints, &res));
    assert_int_equal(r, 0);
    assert_non_null(res);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(ntohs(sin->sin_port), 80);
    freeaddrinfo(res);
    res = NULL;
    assert_int_not_equal(getaddrinfo("localhost", "no-such-service-here", &hints, &res), 0);
    return NULL;
}

static void test_poll_mixed_fds_and_getaddrinfo(void **state)
{
    (void)state;
    gh_test_run(1, mixed_main, NULL);
    gh_test_run(1, gai_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_epoll_wait_parks),
    cmocka_unit_test(test_mmsg_calls_block_as_believed),
    cmocka_unit_test(test_name_lookups_park),
    cmocka_unit_test(test_green_poll_keeps_blocking_flag),
    cmocka_unit_test(test_waitall_hangup_poll_and_dup2),
    cmocka_unit_test(test_poll_mixed_fds_and_getaddrinfo),
};
GH_TEST_MAIN(tests)
