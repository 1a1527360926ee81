/* tests/test_io.c — green I/O: readiness waits, the mirrors, the close
 * protocol, deadline scopes and cancellation, on real sockets. */
#include "gh_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Reads exactly n bytes; returns n, or what the failing call returned. */
static ssize_t read_full(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = gh_read(fd, buf + got, n - got);
        if (r <= 0)
            return r;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static ssize_t write_full(int fd, const char *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = gh_write(fd, buf + put, n - put);
        if (r < 0)
            return r;
        put += (size_t)r;
    }
    return (ssize_t)put;
}

/* ---- 1,000 connections echoing across all hubs ------------------------------ */

enum { CONNS = 1000, ROUNDS = 20, MSG = 64 };
static int echo_port;
static _Atomic int echo_ok;

static void *echo_handler(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = gh_read(fd, buf, sizeof buf)) > 0)
        if (write_full(fd, buf, (size_t)n) != n)
            break;
    gh_close(fd);
    return NULL;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < CONNS; i++) {
        int c = gh_accept(lfd, NULL, NULL);
        assert_true(c >= 0);
        gh_detach(gh_spawn(echo_handler, (void *)(intptr_t)c));
    }
    return NULL;
}

/* Each client sends ROUNDS messages that name it and the round, and checks
 * every echoed byte. */
static void *echo_client(void *arg)
{
    int id = (int)(intptr_t)arg;
    char port[16];
    snprintf(port, sizeof port, "%d", echo_port);
    int fd = gh_tcp_dial("127.0.0.1", port, 10000);
    assert_true(fd >= 0);
    char out[MSG], in[MSG];
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < MSG; k++)
            out[k] = (char)(id * 31 + r * 7 + k);
        assert_int_equal(write_full(fd, out, MSG), MSG);
        assert_int_equal(read_full(fd, in, MSG), MSG);
        assert_memory_equal(in, out, MSG);
    }
    assert_int_equal(gh_close(fd), 0);
    atomic_fetch_add(&echo_ok, 1);
    return NULL;
}

static void *echo_main(void *arg)
{
    (void)arg;
    int lfd = gh_tcp_listen("127.0.0.1", "0", 4096);
    assert_true(lfd >= 0);
    echo_port = local_port(lfd);
    gh_greenlet *acc = gh_spawn(acceptor, (void *)(intptr_t)lfd);
    gh_greenlet *c[CONNS];
    for (int i = 0; i < CONNS; i++)
        assert_non_null(c[i] = gh_spawn(echo_client, (void *)(intptr_t)i));
    for (int i = 0; i < CONNS; i++)
        assert_int_equal(gh_join(c[i], NULL), 0);
    assert_int_equal(gh_join(acc, NULL), 0);
    assert_int_equal(gh_close(lfd), 0);
    return NULL;
}

static void test_thousand_connections_echo_across_hubs(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 3 * CONNS && rl.rlim_max >= 3 * CONNS) {
        rl.rlim_cur = 3 * CONNS;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < 3 * CONNS)
        skip();   /* the hard limit is too low for 2,000 sockets */
    gh_test_run(2, echo_main, NULL);
    assert_int_equal(echo_ok, CONNS);
}

/* ---- 64 MiB through tiny socket buffers ------------------------------------- */

enum { BIG = 64 << 20 };

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 13));
}

static void *big_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static unsigned char buf[65536];
    for (size_t off = 0; off < BIG; off += sizeof buf) {
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = pattern(off + k);
        assert_int_equal(write_full(fd, (char *)buf, sizeof buf), (ssize_t)sizeof buf);
    }
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    return NULL;
}

static void *big_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char buf[1000];   /* odd size: reads straddle the writes */
    size_t got = 0;
    ssize_t n;
    while ((n = gh_read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < n; k++)
            if (buf[k] != pattern(got + (size_t)k))
                fail_msg("byte %zu corrupted", got + (size_t)k);
        got += (size_t)n;
    }
    assert_int_equal(n, 0);
    return (void *)got;
}

static void *big_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    int small = 4096;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    gh_greenlet *w = gh_spawn(big_writer, (void *)(intptr_t)sv[0]);
    gh_greenlet *r = gh_spawn(big_reader, (void *)(intptr_t)sv[1]);
    void *got = NULL;
    assert_int_equal(gh_join(w, NULL), 0);
    assert_int_equal(gh_join(r, &got), 0);
    assert_int_equal((size_t)got, (size_t)BIG);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_64mib_through_tiny_buffers_arrives_intact(void **state)
{
    (void)state;
    gh_test_run(2, big_main, NULL);
}

/* ---- close while another hub waits; the number reused at once --------------- */

static int close_fd;
static _Atomic int close_waiting;

static void *blocked_reader(void *arg)
{
    (void)arg;
    char c;
    atomic_store(&close_waiting, 1);
    ssize_t r = gh_read(close_fd, &c, 1);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *reuse_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[6] = { 0 };
    return (void *)(intptr_t)read_full(fd, buf, 5);
}

static void *closer_on_hub1(void *arg)
{
    (void)arg;
    assert_int_equal(gh_hub_index(), 1);
    assert_int_equal(gh_close(close_fd), 0);
    return NULL;
}

static void *close_reuse_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    close_fd = sv[0];
    gh_spawn_opts on0 = { .hub = 0, .pinned = 1 }, on1 = { .hub = 1, .pinned = 1 };
    gh_greenlet *r = gh_spawn_with(&on0, blocked_reader, NULL);
    while (!atomic_load(&close_waiting))
        gh_sleep_ms(1);
    gh_sleep_ms(20);   /* let it park in gh_read on hub 0 */
    gh_greenlet *c = gh_spawn_with(&on1, closer_on_hub1, NULL);
    assert_int_equal(gh_join(c, NULL), 0);
    void *res;
    assert_int_equal(gh_join(r, &res), 0);
    assert_int_equal((intptr_t)res, EBADF);

    /* The lowest free number comes back: sv[0] again.  Hub 0 waited on the
     * old one; a wait there on the new one must see its data.  Another
     * thread of the process may have freed a lower number meanwhile (seen
     * under ASan: a transient fd of some runtime thread), so pairs are made
     * until one end lands on the old number, the end used as nv[0] (a
     * socketpair is symmetric); the others are closed after. */
    int nv[2], extra[64], nextra = 0;
    pair(nv);
    while (nv[0] != close_fd && nv[1] != close_fd && nextra < 62) {
        extra[nextra++] = nv[0];
        extra[nextra++] = nv[1];
        pair(nv);
    }
    if (nv[1] == close_fd) {
        nv[1] = nv[0];
        nv[0] = close_fd;
    }
    assert_int_equal(nv[0], close_fd);
    gh_greenlet *rr = gh_spawn_with(&on0, reuse_reader, (void *)(intptr_t)nv[0]);
    gh_sleep_ms(20);
    assert_int_equal(gh_write(nv[1], "hello", 5), 5);
    assert_int_equal(gh_join(rr, &res), 0);
    assert_int_equal((intptr_t)res, 5);
    gh_close(nv[0]);
    gh_close(nv[1]);
    gh_close(sv[1]);
    while (nextra)
        gh_close(extra[--nextra]);
    return NULL;
}

static void test_close_wakes_waiter_on_other_hub_and_fd_reuse_works(void **state)
{
    (void)state;
    gh_test_run(2, close_reuse_main, NULL);
}

/* Many waiters on one fd of one hub: a watch holds one registration in
 * place and moves to a heap array as more come (io/poll.c), so nine
 * readers and a writer cross both steps.  Each reader must get one byte
 * of nine; then nine more wait and a close wakes every one with EBADF. */
enum { CROWD = 9 };
static _Atomic int crowd_parked;

static void *crowd_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    atomic_fetch_add(&crowd_parked, 1);
    ssize_t n = gh_read(fd, &c, 1);
    return (void *)(intptr_t)(n == 1 ? c : -errno);
}

static void *crowd_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return (void *)(intptr_t)gh_wait_fd(fd, GH_WRITE, -1);
}

static void crowd_wait_parked(int n)
{
    while (atomic_load(&crowd_parked) < n)
        gh_sleep_ms(1);
    gh_sleep_ms(20);   /* let the last one park in gh_read */
}

static void *crowd_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    gh_spawn_opts on0 = { .hub = 0, .pinned = 1 };
    gh_greenlet *g[CROWD];
    for (int i = 0; i < CROWD; i++)
        g[i] = gh_spawn_with(&on0, crowd_reader, (void *)(intptr_t)sv[0]);
    crowd_wait_parked(CROWD);
    /* A writer joins the crowd on the same watch: writable at once. */
    gh_greenlet *w = gh_spawn_with(&on0, crowd_writer, (void *)(intptr_t)sv[0]);
    void *res;
    assert_int_equal(gh_join(w, &res), 0);
    assert_int_equal((intptr_t)res, 0);
    assert_int_equal(gh_write(sv[1], "abcdefghi", CROWD), CROWD);
    unsigned seen = 0;
    for (int i = 0; i < CROWD; i++) {
        assert_int_equal(gh_join(g[i], &res), 0);
        intptr_t c = (intptr_t)res;
        assert_true(c >= 'a' && c < 'a' + CROWD);
        assert_false(seen & (1u << (c - 'a')));   /* each byte once */
        seen |= 1u << (c - 'a');
    }
    assert_int_equal(seen, (1u << CROWD) - 1);

    atomic_store(&crowd_parked, 0);
    for (int i = 0; i < CROWD; i++)
        g[i] = gh_spawn_with(&on0, crowd_reader, (void *)(intptr_t)sv[0]);
    crowd_wait_parked(CROWD);
    assert_int_equal(gh_close(sv[0]), 0);
    for (int i = 0; i < CROWD; i++) {
        assert_int_equal(gh_join(g[i], &res), 0);
        assert_int_equal((intptr_t)res, -EBADF);
    }
    gh_close(sv[1]);
    return NULL;
}

static void test_many_waiters_on_one_fd_are_each_woken(void **state)
{
    (void)state;
    gh_test_run(2, crowd_main, NULL);
}

/* ---- timeouts, deadline scopes, kill ------------------------------------------ */

static void *timeouts_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    char c;
    uint64_t t0 = now_ms();
    assert_int_equal(gh_wait_fd(sv[0], GH_READ, 50), ETIMEDOUT);
    assert_true(now_ms() - t0 >= 50);
    assert_int_equal(gh_wait_fd(sv[0], GH_WRITE, 50), 0);   /* writable now */
    assert_int_equal(gh_wait_fd(sv[0], GH_READ, 0), ETIMEDOUT);

    /* A scope bounds a call with no timeout of its own. */
    t0 = now_ms();
    int t = gh_timeout_begin(50);
    assert_true(t >= 0);
    assert_int_equal(gh_read(sv[0], &c, 1), -1);
    assert_int_equal(errno, ETIMEDOUT);
    gh_timeout_end(t);
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 50 && dt < 2000);

    /* Nested: the inner (earlier) deadline first, then the outer one. */
    t0 = now_ms();
    int outer = gh_timeout_begin(200);
    int inner = gh_timeout_begin(1000);   /* later than outer: outer wins */
    assert_int_equal(gh_sleep_ms(5000), ETIMEDOUT);
    assert_true(now_ms() - t0 >= 200 && now_ms() - t0 < 1000);
    gh_timeout_end(inner);
    assert_int_equal(gh_sleep_ms(10), ETIMEDOUT);   /* outer has expired */
    gh_timeout_end(outer);
    assert_int_equal(gh_sleep_ms(10), 0);            /* no scope left */

    t0 = now_ms();
    outer = gh_timeout_begin(300);
    inner = gh_timeout_begin(50);
    assert_int_equal(gh_read(sv[0], &c, 1), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(now_ms() - t0 < 300);
    gh_timeout_end(inner);
    assert_int_equal(gh_read(sv[0], &c, 1), -1);     /* now the outer one */
    assert_int_equal(errno, ETIMEDOUT);
    assert_true(now_ms() - t0 >= 300);
    gh_timeout_end(outer);

    /* A token already ended cannot close a newer scope. */
    int stale = gh_timeout_begin(1000);
    gh_timeout_end(stale);
    t0 = now_ms();
    int fresh = gh_timeout_begin(50);
    gh_timeout_end(stale);
    assert_int_equal(gh_sleep_ms(1000), ETIMEDOUT);
    assert_true(now_ms() - t0 < 1000);
    gh_timeout_end(fresh);

    /* Data that is there is read, scope or not. */
    assert_int_equal(gh_write(sv[1], "x", 1), 1);
    t = gh_timeout_begin(0);
    assert_int_equal(gh_read(sv[0], &c, 1), 1);
    gh_timeout_end(t);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_timeouts_and_nested_deadline_scopes(void **state)
{
    (void)state;
    gh_test_run(2, timeouts_main, NULL);
}

static void *killed_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    ssize_t r = gh_read(fd, &c, 1);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *kill_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    gh_greenlet *g = gh_spawn(killed_reader, (void *)(intptr_t)sv[0]);
    gh_sleep_ms(30);
    assert_int_equal(gh_kill(g), 0);
    void *res;
    assert_int_equal(gh_join(g, &res), 0);
    assert_int_equal((intptr_t)res, ECANCELED);
    /* The fd still works for the next reader. */
    gh_greenlet *g2 = gh_spawn(reuse_reader, (void *)(intptr_t)sv[0]);
    assert_int_equal(gh_write(sv[1], "abcde", 5), 5);
    assert_int_equal(gh_join(g2, &res), 0);
    assert_int_equal((intptr_t)res, 5);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_kill_during_read_returns_ecanceled(void **state)
{
    (void)state;
    gh_test_run(2, kill_main, NULL);
}

/* ---- errors: closed peer, refused, timeout, bad input ------------------------- */

static void *errors_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    gh_close(sv[1]);
    /* SIGPIPE must not kill the process: EPIPE instead. */
    assert_int_equal(gh_write(sv[0], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(gh_send(sv[0], "x", 1, 0), -1);
    assert_int_equal(errno, EPIPE);
    char c;
    assert_int_equal(gh_read(sv[0], &c, 1), 0);   /* EOF */
    gh_close(sv[0]);

    /* A port nobody listens on: take one, then free it. */
    int l = gh_tcp_listen("127.0.0.1", "0", 1);
    assert_true(l >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", local_port(l));
    gh_close(l);
    assert_int_equal(gh_tcp_dial("127.0.0.1", port, 2000), -1);
    assert_int_equal(errno, ECONNREFUSED);

    int tok = gh_timeout_begin(3000);   /* no resolver here may mean a wait */
    assert_int_equal(gh_tcp_dial("no-such-host.invalid", "80", -1), -1);
    assert_true(errno == ENOENT || errno == EAGAIN || errno == ETIMEDOUT);
    gh_timeout_end(tok);

    /* The peer resets the connection while a read waits. */
    l = gh_tcp_listen("127.0.0.1", "0", 4);
    assert_true(l >= 0);
    snprintf(port, sizeof port, "%d", local_port(l));
    int cfd = gh_tcp_dial("127.0.0.1", port, 2000);
    assert_true(cfd >= 0);
    int sfd = gh_accept(l, NULL, NULL);
    assert_true(sfd >= 0);
    gh_greenlet *rd = gh_spawn(killed_reader, (void *)(intptr_t)cfd);
    gh_sleep_ms(20);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };   /* close sends RST */
    assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    gh_close(sfd);
    void *res;
    assert_int_equal(gh_join(rd, &res), 0);
    assert_int_equal((intptr_t)res, ECONNRESET);
    gh_close(cfd);
    gh_close(l);

    assert_int_equal(gh_wait_fd(-1, GH_READ, 0), EINVAL);
    assert_int_equal(gh_wait_fd(0, 0, 0), EINVAL);
    assert_int_equal(gh_wait_fd(0, 4, 0), EINVAL);
    assert_int_equal(gh_wait_fd(0, GH_READ, -2), EINVAL);
    assert_int_equal(gh_read(-1, &c, 1), -1);
    assert_int_equal(errno, EBADF);
    int dead[2];
    pair(dead);
    close(dead[0]);
    close(dead[1]);
    assert_int_equal(gh_wait_fd(dead[0], GH_READ, 100), EBADF);
    assert_int_equal(gh_close(-1), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(gh_timeout_begin(-1), -1);
    assert_int_equal(errno, EINVAL);
    gh_timeout_end(12345);   /* not open: ignored */
    int ok[2];
    pair(ok);
    errno = EIO;
    assert_int_equal(gh_close(ok[0]), 0);
    assert_int_equal(gh_close(ok[1]), 0);
    assert_int_equal(errno, EIO);   /* success leaves errno alone */
    assert_int_equal(gh_getaddrinfo("localhost", "80", NULL, NULL), EAI_SYSTEM);
    assert_int_equal(errno, EINVAL);
    return NULL;
}

static void test_error_paths_get_the_calls_errno(void **state)
{
    (void)state;
    gh_test_run(1, errors_main, NULL);
}

/* A listener whose accept queue is full drops further SYNs: a dial to it
 * can only time out. */
static void *dial_timeout_main(void *arg)
{
    (void)arg;
    int l = gh_tcp_listen("127.0.0.1", "0", 1);
    assert_true(l >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", local_port(l));
    int fill[4], n = 0;
    for (; n < 4; n++) {   /* fill the queue; these may hang, so poll */
        fill[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        connect(fill[n], (struct sockaddr *)&a, sizeof a);
    }
    gh_sleep_ms(50);
    uint64_t t0 = now_ms();
    assert_int_equal(gh_tcp_dial("127.0.0.1", port, 200), -1);
    assert_int_equal(errno, ETIMEDOUT);
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 200 && dt < 3000);
    while (n--)
        gh_close(fill[n]);
    gh_close(l);
    return NULL;
}

static void test_dial_times_out_against_a_full_listener(void **state)
{
    (void)state;
    gh_test_run(1, dial_timeout_main, NULL);
}

/* ---- plain threads: the same calls block the thread ------------------------------ */

static void *late_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct timespec ts = { 0, 30 * 1000000 };
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)gh_write(fd, "ping", 4);
}

static void test_mirrors_block_a_plain_thread(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    char buf[8];
    assert_int_equal(gh_wait_fd(sv[0], GH_READ, 30), ETIMEDOUT);
    int t = gh_timeout_begin(30);
    assert_int_equal(gh_read(sv[0], buf, 4), -1);
    assert_int_equal(errno, ETIMEDOUT);
    gh_timeout_end(t);
    pthread_t th;
    pthread_create(&th, NULL, late_writer, (void *)(intptr_t)sv[1]);
    assert_int_equal(read_full(sv[0], buf, 4), 4);   /* waits ~30 ms */
    assert_memory_equal(buf, "ping", 4);
    void *w;
    pthread_join(th, &w);
    assert_int_equal((intptr_t)w, 4);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
}

/* ---- per-hub I/O and timer figures (gh_stats_hubs) ---------------------------------- */

static gh_hub_stats hub0_stats(void)
{
    gh_hub_stats st;
    assert_int_equal(gh_stats_hubs(&st, 1), 1);
    return st;
}

static void *late_write(void *arg)
{
    gh_sleep_ms(20);
    return (void *)(intptr_t)gh_write((int)(intptr_t)arg, "x", 1);
}

static void *sleep_300(void *arg)
{
    gh_sleep_ms(300);
    return arg;
}

static void *stats_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    uint64_t io0 = hub0_stats().io_waits;
    gh_greenlet *w = gh_spawn(late_write, (void *)(intptr_t)sv[1]);
    char c;
    assert_int_equal(gh_read(sv[0], &c, 1), 1);   /* waits ~20 ms */
    assert_int_equal(gh_join(w, NULL), 0);
    uint64_t io1 = hub0_stats().io_waits;
    if (io1 < io0 + 1)
        fail_msg("io_waits went from %llu to %llu across a read that waited",
                 (unsigned long long)io0, (unsigned long long)io1);

    gh_greenlet *s = gh_spawn(sleep_300, NULL);
    gh_sleep_ms(50);   /* our own entry is gone once we are back */
    assert_int_equal(hub0_stats().timers, 1);      /* the sleeper's */
    assert_int_equal(gh_join(s, NULL), 0);
    assert_int_equal(hub0_stats().timers, 0);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
    return NULL;
}

static void test_stats_count_io_waits_and_pending_timers(void **state)
{
    (void)state;
    gh_test_run(1, stats_main, NULL);
}

/* ---- gh_close wakes a plain thread blocked on the fd ------------------------------- */

struct tclose {
    int fd, other;          /* waits on fd; then on other, which stays quiet */
    bool by_read;           /* gh_read instead of gh_wait_fd */
    _Atomic int started;
    int err, err_after;     /* the wait's result; the next wait's */
};

static void *thread_blocks_on_fd(void *arg)
{
    struct tclose *t = arg;
    atomic_store(&t->started, 1);
    if (t->by_read) {
        char b[4];
        ssize_t r = gh_read(t->fd, b, sizeof b);
        t->err = r < 0 ? errno : 0;
    } else {
        t->err = gh_wait_fd(t->fd, GH_READ, -1);
    }
    /* What the close left behind must not end the thread's next wait. */
    t->err_after = gh_wait_fd(t->other, GH_READ, 50);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* A plain thread blocks on sv[0]; the caller (a plain thread or a
 * greenlet) closes it once the thread is surely in poll(2), then gives
 * the number to a new, readable socket.  The thread must come back with
 * EBADF, not hang (Linux does not end a poll on an fd another thread
 * closes) and not take the new socket's readiness for its own. */
static void close_under_a_blocked_thread(bool by_read)
{
    int sv[2], quiet[2], again[2];
    pair(sv);
    pair(quiet);
    struct tclose t = { .fd = sv[0], .other = quiet[0], .by_read = by_read, .err = -1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_blocks_on_fd, &t), 0);
    while (!atomic_load(&t.started))
        sleep_ms(1);
    sleep_ms(100);   /* into poll(2): nothing else would wake it */
    assert_int_equal(gh_close(sv[0]), 0);
    pair(again);     /* most likely takes sv[0]'s number */
    assert_int_equal(write(again[1], "x", 1), 1);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    int j = pthread_timedjoin_np(th, NULL, &dl);
    if (j == ETIMEDOUT)
        fail_msg("the plain thread is still blocked 10 s after gh_close of its fd");
    assert_int_equal(j, 0);
    assert_int_equal(t.err, EBADF);
    assert_int_equal(t.err_after, ETIMEDOUT);
    int fds[] = { sv[1], quiet[0], quiet[1], again[0], again[1] };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        assert_int_equal(gh_close(fds[i]), 0);
}

static void *close_from_a_greenlet(void *arg)
{
    (void)arg;
    close_under_a_blocked_thread(false);
    close_under_a_blocked_thread(true);
    return NULL;
}

static void test_close_wakes_a_plain_thread_blocked_on_the_fd(void **state)
{
    (void)state;
    close_under_a_blocked_thread(false);          /* closer: a plain thread */
    close_under_a_blocked_thread(true);
    gh_test_run(2, close_from_a_greenlet, NULL);  /* closer: a greenlet */
}

/* ---- gh_blocking and gh_getaddrinfo -------------------------------------------- */

static _Atomic long ticks;
static _Atomic int blocking_running;
static pthread_t hub_thread;

static void *slow_call(void *arg)
{
    /* Runs on a pool thread, not the hub's. */
    assert_false(pthread_equal(pthread_self(), hub_thread));
    atomic_store(&blocking_running, 1);
    struct timespec ts = { 0, 150 * 1000000 };
    nanosleep(&ts, NULL);
    atomic_store(&blocking_running, 0);
    return (void *)((intptr_t)arg * 2);
}

static void *which_thread(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)pthread_self();
}

static void *ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&blocking_running))
        gh_sleep_ms(1);
    while (atomic_load(&blocking_running)) {
        atomic_fetch_add(&ticks, 1);
        gh_sleep_ms(1);
    }
    return NULL;
}

static void *killed_blocker(void *arg)
{
    (void)arg;
    void *res = NULL;
    assert_int_equal(gh_blocking(slow_call, (void *)5, &res), 0);   /* not cut short */
    assert_ptr_equal(res, (void *)10);
    return (void *)(intptr_t)gh_sleep_ms(1000);   /* the kill shows here */
}

static void *blocking_main(void *arg)
{
    (void)arg;
    hub_thread = pthread_self();
    gh_greenlet *t = gh_spawn(ticker, NULL);
    void *res = NULL;
    assert_int_equal(gh_blocking(slow_call, (void *)21, &res), 0);
    assert_ptr_equal(res, (void *)42);
    assert_int_equal(gh_join(t, NULL), 0);
    /* The one hub kept running the ticker while slow_call slept. */
    assert_true(atomic_load(&ticks) >= 20);

    gh_greenlet *k = gh_spawn(killed_blocker, NULL);
    gh_sleep_ms(50);
    assert_int_equal(gh_kill(k), 0);
    assert_int_equal(gh_join(k, &res), 0);
    assert_int_equal((intptr_t)res, ECANCELED);
    assert_int_equal(gh_blocking(NULL, NULL, NULL), EINVAL);
    return NULL;
}

static void test_blocking_runs_off_the_hub_while_it_runs_others(void **state)
{
    (void)state;
    gh_test_run(1, blocking_main, NULL);
    /* On a plain thread fn runs right there. */
    void *res = NULL;
    assert_int_equal(gh_blocking(which_thread, NULL, &res), 0);
    assert_true(pthread_equal((pthread_t)(uintptr_t)res, pthread_self()));
}

static int gai_ok(const char *name)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    int r = gh_getaddrinfo(name, "80", &hints, &res);
    if (r == 0) {
        assert_non_null(res);
        freeaddrinfo(res);
    }
    return r;
}

static void *gai_main(void *arg)
{
    (void)arg;
    assert_int_equal(gai_ok("localhost"), 0);
    assert_int_equal(gai_ok("127.0.0.1"), 0);
    /* A name that cannot exist: an EAI_* error (NONAME, or AGAIN/FAIL/
     * SYSTEM when no resolver answers here), bounded by a scope. */
    int tok = gh_timeout_begin(3000);
    assert_int_not_equal(gai_ok("no-such-host.invalid"), 0);
    gh_timeout_end(tok);
    /* A scope that has expired: the lookup is abandoned, not waited for. */
    tok = gh_timeout_begin(0);
    struct addrinfo *res = NULL;
    int r = gh_getaddrinfo("localhost", "80", NULL, &res);
    gh_timeout_end(tok);
    assert_int_equal(r, EAI_SYSTEM);
    assert_int_equal(errno, ETIMEDOUT);
    gh_sleep_ms(50);   /* the abandoned lookup finishes and frees itself */
    return NULL;
}

static void test_getaddrinfo_resolves_and_fails_cleanly(void **state)
{
    (void)state;
    gh_test_run(2, gai_main, NULL);
    assert_int_equal(gai_ok("localhost"), 0);   /* plain thread */
}

/* A numeric address and port need no lookup: gh_getaddrinfo answers them on
 * the hub, with libc's result, and starts no thread pool (io/offload.c).
 * So a one-hub runtime serving on 127.0.0.1 is a process of two threads,
 * hub 0 on gh_run's own thread and the monitor, and the monitor keeps a
 * descriptor table of its own (runtime.c, "Hub 0 on the caller's thread";
 * monitor.c): the hub's table is used by one thread.  Run in a child,
 * where libuv's thread pool has not started; the child reports, the test
 * checks. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1   /* no private table there (monitor.c); TSan's thread */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

struct solo_report {
    int same[4];         /* gh_getaddrinfo == libc's, per case */
    int listen_fd;
    int threads_before;  /* in /proc/self/task before gh_run (a sanitizer's
                          * or qemu-user's own threads) */
    int threads;         /* and while serving */
    int monitor_found;
    int monitor_shares;  /* the monitor's fd N is the hub's fd N */
};

static bool same_ai(const struct addrinfo *a, const struct addrinfo *b)
{
    for (; a && b; a = a->ai_next, b = b->ai_next)
        if (a->ai_family != b->ai_family || a->ai_socktype != b->ai_socktype ||
            a->ai_addrlen != b->ai_addrlen || memcmp(a->ai_addr, b->ai_addr, a->ai_addrlen))
            return false;
    return !a && !b;
}

static int gai_same(const char *node, const char *svc, int family, int socktype, int flags)
{
    struct addrinfo hints = { .ai_family = family, .ai_socktype = socktype, .ai_flags = flags };
    struct addrinfo *mine = NULL, *libc = NULL;
    int r1 = gh_getaddrinfo(node, svc, &hints, &mine);
    int r2 = getaddrinfo(node, svc, &hints, &libc);
    int same = r1 == 0 && r2 == 0 && same_ai(mine, libc);
    if (mine)
        freeaddrinfo(mine);
    if (libc)
        freeaddrinfo(libc);
    return same;
}

static void *solo_main(void *arg)
{
    struct solo_report *r = arg;
    r->same[0] = gai_same("127.0.0.1", "8080", AF_UNSPEC, SOCK_STREAM, 0);
    r->same[1] = gai_same("::1", "443", AF_INET6, SOCK_STREAM, 0);
    r->same[2] = gai_same("0.0.0.0", "0", AF_UNSPEC, SOCK_STREAM, AI_PASSIVE);
    r->same[3] = gai_same("10.1.2.3", NULL, AF_INET, SOCK_DGRAM, 0);
    r->listen_fd = gh_tcp_listen("127.0.0.1", "0", 16);
    pid_t monitor = 0;
    r->threads = gh_test_threads("gh-monitor", &monitor);
    r->monitor_found = monitor > 0;
    r->monitor_shares = 1;
    char mine[64] = "", path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r->listen_fd);
    ssize_t n = readlink(path, mine, sizeof mine - 1);
    for (int i = 0; monitor > 0 && n > 0 && i < 200 && r->monitor_shares; i++) {
        char theirs[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%d/fd/%d", (int)monitor, r->listen_fd);
        ssize_t m = readlink(path, theirs, sizeof theirs - 1);
        r->monitor_shares = m == n && memcmp(mine, theirs, (size_t)n) == 0;
        if (r->monitor_shares)
            gh_sleep_ms(10);   /* the monitor thread may not have run yet */
    }
    if (r->listen_fd >= 0)
        gh_close(r->listen_fd);
    return NULL;
}

static void test_one_hub_serving_on_numeric_address_is_one_thread_with_the_fds(void **state)
{
    (void)state;
    unsetenv("GREENHUB_HUBS");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct solo_report r = { .listen_fd = -1 };
        r.threads_before = gh_test_threads("", NULL);
        gh_config cfg = { .hubs = 1 };
        int rc = gh_run(&cfg, solo_main, &r, NULL);
        _exit(rc == 0 && write(p[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
    }
    close(p[1]);
    struct solo_report r;
    ssize_t got = read(p[0], &r, sizeof r);
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got, (ssize_t)sizeof r);
    for (int i = 0; i < 4; i++)
        assert_true(r.same[i]);
    assert_true(r.listen_fd >= 3);
    assert_true(r.monitor_found);
    assert_true(r.threads_before >= 1);
    if (SANITIZED)
        return;   /* TSan starts a thread of its own with the first one made */
    /* hub 0 is gh_run's thread; the monitor is the only thread added */
    assert_int_equal(r.threads, r.threads_before + 1);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, INT_MAX - 1, INT_MAX - 1, 0) != 0)
        skip();   /* a kernel before 5.9: the monitor shares the table */
    assert_false(r.monitor_shares);
#endif
}

/* ---- signals ------------------------------------------------------------------- */

static void *sig_waiter(void *arg)
{
    return (void *)(intptr_t)gh_signal_wait((int)(intptr_t)arg, 5000);
}

static void *sig_sender(void *arg)
{
    (void)arg;
    gh_sleep_ms(50);
    kill(getpid(), SIGUSR1);
    return NULL;
}

static void *signal_main(void *arg)
{
    (void)arg;
    gh_spawn_opts on0 = { .hub = 0, .pinned = 1 };
    gh_greenlet *w1 = gh_spawn_with(&on0, sig_waiter, (void *)SIGUSR1);
    gh_greenlet *w2 = gh_spawn(sig_waiter, (void *)SIGUSR1);
    gh_greenlet *s = gh_spawn(sig_sender, NULL);
    void *r1, *r2;
    assert_int_equal(gh_join(w1, &r1), 0);
    assert_int_equal(gh_join(w2, &r2), 0);
    assert_int_equal(gh_join(s, NULL), 0);
    assert_int_equal((intptr_t)r1, 0);   /* every waiter woke */
    assert_int_equal((intptr_t)r2, 0);

    uint64_t t0 = now_ms();
    assert_int_equal(gh_signal_wait(SIGUSR2, 50), ETIMEDOUT);
    assert_true(now_ms() - t0 >= 50);
    gh_greenlet *k = gh_spawn(sig_waiter, (void *)SIGUSR2);
    gh_sleep_ms(20);
    assert_int_equal(gh_kill(k), 0);
    assert_int_equal(gh_join(k, &r1), 0);
    assert_int_equal((intptr_t)r1, ECANCELED);
    assert_int_equal(gh_signal_wait(SIGKILL, 0), EINVAL);
    assert_int_equal(gh_signal_wait(0, 0), EINVAL);
    assert_int_equal(gh_signal_wait(SIGUSR1, -2), EINVAL);
    return NULL;
}

/* A signal that comes between two waits is caught, not fatal, and kept
 * for the next wait (once). */
static void *reload_main(void *arg)
{
    (void)arg;
    gh_greenlet *snd = gh_spawn(sig_sender, NULL);   /* SIGUSR1 in 50 ms */
    assert_int_equal(gh_signal_wait(SIGUSR1, 5000), 0);
    assert_int_equal(gh_join(snd, NULL), 0);
    kill(getpid(), SIGUSR1);   /* nobody waits: SIG_DFL would end the test */
    /* Polls (timeout 0) until hub 0 has seen it: then it is pending. */
    int r = ETIMEDOUT;
    for (int i = 0; i < 500 && r == ETIMEDOUT; i++) {
        r = gh_signal_wait(SIGUSR1, 0);
        if (r == ETIMEDOUT)
            gh_sleep_ms(10);
    }
    assert_int_equal(r, 0);
    assert_int_equal(gh_signal_wait(SIGUSR1, 30), ETIMEDOUT);   /* taken */
    assert_int_equal(gh_signal_wait(SIGUSR2, 20), ETIMEDOUT);
    return NULL;
}

static void test_signal_between_waits_is_kept_and_disposition_restored(void **state)
{
    (void)state;
    signal(SIGUSR2, SIG_IGN);
    gh_test_run(2, reload_main, NULL);
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    assert_ptr_equal(sa.sa_handler, SIG_IGN);   /* put back at stop */
    sigaction(SIGUSR1, NULL, &sa);
    assert_ptr_equal(sa.sa_handler, SIG_DFL);
}

static void *thread_sender(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 50 * 1000000 };
    nanosleep(&ts, NULL);
    kill(getpid(), SIGUSR1);
    return NULL;
}

/* Every signal reaches a loop of 1 ms waits, even one that lands as a
 * wait times out (its claim lost): it is kept for the next wait. */
enum { SIG_ROUNDS = 300 };
static _Atomic int sig_seen;

static void *short_waits_fn(void *arg)
{
    (void)arg;
    uint64_t deadline = now_ms() + 60000;
    while (atomic_load(&sig_seen) < SIG_ROUNDS && now_ms() < deadline)
        if (gh_signal_wait(SIGUSR1, 1) == 0)
            atomic_fetch_add(&sig_seen, 1);
    return NULL;
}

static void *signals_race_main(void *arg)
{
    (void)arg;
    /* One signal waited for: hub 0 catches SIGUSR1 from then on. */
    gh_greenlet *snd = gh_spawn(sig_sender, NULL);
    assert_int_equal(gh_signal_wait(SIGUSR1, 5000), 0);
    assert_int_equal(gh_join(snd, NULL), 0);
    gh_greenlet *w = gh_spawn(short_waits_fn, NULL);
    uint64_t rng = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < SIG_ROUNDS; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        struct timespec ts = { 0, (long)(rng % 1500) * 1000 };   /* 0-1.5 ms */
        nanosleep(&ts, NULL);   /* blocks this hub: the timing is the point */
        kill(getpid(), SIGUSR1);
        uint64_t end = now_ms() + 5000;
        while (atomic_load(&sig_seen) <= i && now_ms() < end)
            gh_sleep_ms(1);
        if (atomic_load(&sig_seen) <= i)
            fail_msg("signal %d of %d never reached the waiting loop", i + 1, SIG_ROUNDS);
    }
    assert_int_equal(gh_join(w, NULL), 0);
    return NULL;
}

static void test_signal_during_a_timing_out_wait_is_not_lost(void **state)
{
    (void)state;
    gh_test_run(2, signals_race_main, NULL);
}

/* "From the first wait on, greenhub catches it" holds from the call, not
 * from when hub 0 gets round to starting the handle: here hub 0 is held
 * by a greenlet that never yields while the first wait (a poll) is made on
 * hub 1 and the signal sent.  SIGALRM's default action would end the
 * test process. */
static _Atomic int hub0_held, hub0_free;

static void *hold_hub0(void *arg)
{
    (void)arg;
    atomic_store(&hub0_held, 1);
    while (!atomic_load(&hub0_free))
        ;   /* no yield: hub 0 serves no request meanwhile */
    return NULL;
}

static void *first_wait_on_hub1(void *arg)
{
    (void)arg;
    while (!atomic_load(&hub0_held))
        gh_yield();
    assert_int_equal(gh_signal_wait(SIGALRM, 0), ETIMEDOUT);
    kill(getpid(), SIGALRM);
    atomic_store(&hub0_free, 1);
    assert_int_equal(gh_signal_wait(SIGALRM, 5000), 0);   /* it was kept */
    assert_int_equal(gh_signal_wait(SIGALRM, 0), ETIMEDOUT);   /* once */
    return NULL;
}

static void *first_wait_main(void *arg)
{
    (void)arg;
    gh_spawn_opts on0 = { .hub = 0, .pinned = 1 }, on1 = { .hub = 1, .pinned = 1 };
    gh_greenlet *h = gh_spawn_with(&on0, hold_hub0, NULL);
    gh_greenlet *w = gh_spawn_with(&on1, first_wait_on_hub1, NULL);
    assert_int_equal(gh_join(w, NULL), 0);
    assert_int_equal(gh_join(h, NULL), 0);
    return NULL;
}

static void test_signal_caught_from_the_first_wait_on(void **state)
{
    (void)state;
    gh_test_run(2, first_wait_main, NULL);
    struct sigaction sa;
    sigaction(SIGALRM, NULL, &sa);
    assert_ptr_equal(sa.sa_handler, SIG_DFL);   /* put back at stop */
}

static void test_signal_wait_wakes_every_waiter_times_out_and_cancels(void **state)
{
    (void)state;
    gh_test_run(2, signal_main, NULL);
    /* A plain thread waits the same way. */
    pthread_t th;
    pthread_create(&th, NULL, thread_sender, NULL);
    assert_int_equal(gh_signal_wait(SIGUSR1, 5000), 0);
    pthread_join(th, NULL);
    assert_int_equal(gh_signal_wait(SIGUSR2, 30), ETIMEDOUT);
    int t = gh_timeout_begin(30);   /* the thread's scope bounds a -1 wait */
    assert_int_equal(gh_signal_wait(SIGUSR2, -1), ETIMEDOUT);
    gh_timeout_end(t);
}

/* ---- child processes -------------------------------------------------------------- */

enum { CAT_BYTES = 1 << 20 };   /* 16 pipe buffers: both directions must flow */

static void *cat_feeder(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char buf[4096];
    for (size_t off = 0; off < CAT_BYTES; off += sizeof buf) {
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (char)pattern(off + k);
        assert_int_equal(write_full(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    }
    assert_int_equal(gh_close(fd), 0);   /* cat sees EOF */
    return NULL;
}

static void *process_main(void *arg)
{
    (void)arg;
    char *cat[] = { "cat", NULL };
    gh_process_opts o = { .argv = cat, .stdio = { GH_STDIO_PIPE, GH_STDIO_PIPE, GH_STDIO_INHERIT } };
    gh_process *p = gh_process_spawn(&o);
    assert_non_null(p);
    assert_true(gh_process_pid(p) > 0);
    assert_int_equal(gh_process_fd(p, 2), -1);
    gh_greenlet *f = gh_spawn(cat_feeder, (void *)(intptr_t)gh_process_fd(p, 0));
    int out = gh_process_fd(p, 1);
    unsigned char buf[3000];
    size_t got = 0;
    ssize_t n;
    while ((n = gh_read(out, buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < n; k++)
            if (buf[k] != pattern(got + (size_t)k))
                fail_msg("byte %zu corrupted", got + (size_t)k);
        got += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(got, CAT_BYTES);
    assert_int_equal(gh_join(f, NULL), 0);
    int st = -1;
    assert_int_equal(gh_process_wait(p, 5000, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(gh_process_wait(p, 0, &st), 0);   /* again: same answer */
    gh_close(out);
    gh_process_free(p);

    /* A wait that times out, then a kill. */
    char *slp[] = { "sleep", "10", NULL };
    gh_process_opts so = { .argv = slp };
    p = gh_process_spawn(&so);
    assert_non_null(p);
    uint64_t t0 = now_ms();
    assert_int_equal(gh_process_wait(p, 50, &st), ETIMEDOUT);
    assert_true(now_ms() - t0 >= 50);
    assert_int_equal(gh_process_kill(p, SIGTERM), 0);
    assert_int_equal(gh_process_wait(p, 5000, &st), 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    assert_int_equal(gh_process_kill(p, SIGTERM), ESRCH);   /* reaped: no one to hit */
    gh_process_free(p);

    /* Exit status and environment and cwd reach the child. */
    char *sh[] = { "sh", "-c", "test \"$GH_X\" = 7 && test \"$(pwd)\" = / && exit 3", NULL };
    char *env[] = { "GH_X=7", "PATH=/usr/bin:/bin", NULL };
    gh_process_opts eo = { .argv = sh, .envp = env, .cwd = "/",
                           .stdio = { GH_STDIO_NULL, GH_STDIO_NULL, GH_STDIO_NULL } };
    p = gh_process_spawn(&eo);
    assert_non_null(p);
    assert_int_equal(gh_process_wait(p, -1, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    gh_process_free(p);

    char *none[] = { "/no/such/program", NULL };
    gh_process_opts no = { .argv = none };
    assert_null(gh_process_spawn(&no));
    assert_int_equal(errno, ENOENT);
    assert_null(gh_process_spawn(NULL));
    assert_int_equal(errno, EINVAL);
    return NULL;
}

static void test_process_cat_through_pipes_wait_timeout_and_kill(void **state)
{
    (void)state;
    gh_test_run(2, process_main, NULL);
    /* A plain thread spawns and waits the same way. */
    char *tru[] = { "true", NULL };
    gh_process_opts o = { .argv = tru };
    gh_process *p = gh_process_spawn(&o);
    assert_non_null(p);
    int st = -1;
    assert_int_equal(gh_process_wait(p, 5000, &st), 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    gh_process_free(p);
}

/* ---- a listener out of descriptors ---------------------------------------------- */

static _Atomic int emfile_fails, emfile_served;

static void *emfile_acceptor(void *arg)
{
    int l = (int)(intptr_t)arg;
    while (atomic_load(&emfile_served) < 2) {
        int c = gh_accept(l, NULL, NULL);
        if (c < 0) {
            assert_int_equal(errno, EMFILE);
            atomic_fetch_add(&emfile_fails, 1);
            continue;   /* what a server does: try again */
        }
        assert_int_equal(gh_write(c, "ok", 2), 2);
        gh_close(c);
        atomic_fetch_add(&emfile_served, 1);
    }
    return NULL;
}

static void *emfile_main(void *arg)
{
    (void)arg;
    int l = gh_tcp_listen("127.0.0.1", "0", 16);
    assert_true(l >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)local_port(l)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(gh_connect(c1, (struct sockaddr *)&a, sizeof a), 0);
    /* Use up every descriptor, so the pending connection cannot be taken. */
    static int hog[65536];
    int nhog = 0;
    while (nhog < 65536 && (hog[nhog] = dup(0)) >= 0)
        nhog++;
    assert_int_equal(errno, EMFILE);
    gh_greenlet *acc = gh_spawn(emfile_acceptor, (void *)(intptr_t)l);
    gh_sleep_ms(300);
    /* It kept failing, slowly: at most one try per 100 ms, plus slack. */
    int fails = atomic_load(&emfile_fails);
    assert_true(fails >= 1 && fails <= 10);
    assert_int_equal(atomic_load(&emfile_served), 0);
    for (int i = 0; i < nhog; i++)
        gh_close(hog[i]);
    char buf[2];
    assert_int_equal(read_full(c1, buf, 2), 2);   /* served once fds freed */
    assert_int_equal(gh_connect(c2, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(read_full(c2, buf, 2), 2);   /* and keeps serving */
    assert_int_equal(gh_join(acc, NULL), 0);
    gh_close(c1);
    gh_close(c2);
    gh_close(l);
    return NULL;
}

static void test_listener_out_of_fds_keeps_serving_without_spinning(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 256;   /* small, so the hog is quick */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    gh_test_run(1, emfile_main, NULL);
}

/* ---- edges: huge timeouts, processes reaped elsewhere, stale fd notes ----------- */

static void *huge_waiter(void *arg)
{
    gh_event *ev = arg;
    return (void *)(intptr_t)gh_event_wait(ev, INT64_MAX);
}

static void *huge_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    /* INT64_MAX ms must mean "a very long time", not wrap into the past. */
    int t = gh_timeout_begin(INT64_MAX);
    assert_true(t >= 0);
    assert_int_equal(gh_sleep_ms(10), 0);
    int inner = gh_timeout_begin(50);   /* a real scope inside still works */
    uint64_t t0 = now_ms();
    assert_int_equal(gh_wait_fd(sv[0], GH_READ, INT64_MAX), ETIMEDOUT);
    assert_true(now_ms() - t0 >= 50);
    gh_timeout_end(inner);
    gh_timeout_end(t);
    gh_event ev;
    gh_event_init(&ev);
    gh_greenlet *w = gh_spawn(huge_waiter, &ev);
    gh_sleep_ms(30);
    assert_int_equal(gh_event_is_set(&ev), 0);
    gh_event_set(&ev);
    void *r;
    assert_int_equal(gh_join(w, &r), 0);
    assert_int_equal((intptr_t)r, 0);   /* woken by the set, not timed out */
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void *late_setter(void *arg)
{
    struct timespec ts = { 0, 30 * 1000000 };
    nanosleep(&ts, NULL);
    gh_event_set(arg);
    return NULL;
}

static void test_huge_timeouts_do_not_wrap(void **state)
{
    (void)state;
    gh_test_run(1, huge_main, NULL);
    gh_event ev;   /* a plain thread too */
    gh_event_init(&ev);
    pthread_t th;
    pthread_create(&th, NULL, late_setter, &ev);
    assert_int_equal(gh_event_wait(&ev, INT64_MAX), 0);
    pthread_join(th, NULL);
}

static void *stale_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    int t = gh_timeout_begin(50);
    ssize_t r = gh_read(fd, &c, 1);   /* would block the hub if fd were blocking */
    int e = errno;
    gh_timeout_end(t);
    return (void *)(intptr_t)(r < 0 ? e : 0);
}

static void *process_edges_main(void *arg)
{
    (void)arg;
    /* A failed spawn made its pipe ends non-blocking and closed them; a
     * blocking pipe that reuses the numbers must be made non-blocking
     * again, not taken for one already. */
    char *none[] = { "/no/such/program", NULL };
    gh_process_opts no = { .argv = none, .stdio = { GH_STDIO_PIPE, GH_STDIO_PIPE, GH_STDIO_PIPE } };
    assert_null(gh_process_spawn(&no));
    int bp[2];
    assert_int_equal(pipe(bp), 0);
    void *r;
    gh_greenlet *g = gh_spawn(stale_reader, (void *)(intptr_t)bp[0]);
    assert_int_equal(gh_join(g, &r), 0);
    assert_int_equal((intptr_t)r, ETIMEDOUT);
    gh_close(bp[0]);
    gh_close(bp[1]);

    /* The child starts with SIGPIPE at its default. */
    char *sh[] = { "sh", "-c", "sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status", NULL };
    gh_process_opts so = { .argv = sh, .stdio = { GH_STDIO_NULL, GH_STDIO_PIPE, GH_STDIO_INHERIT } };
    gh_process *p = gh_process_spawn(&so);
    assert_non_null(p);
    char buf[64] = { 0 };
    ssize_t n = read_full(gh_process_fd(p, 1), buf, 16);
    assert_int_equal(n, 16);
    unsigned long long ign = strtoull(buf, NULL, 16);
    assert_int_equal(ign & (1ull << (SIGPIPE - 1)), 0);
    int st;
    assert_int_equal(gh_process_wait(p, 5000, &st), 0);
    gh_close(gh_process_fd(p, 1));
    gh_process_free(p);

    /* Reaped behind our back: ECHILD, at once, not a spin.  Many times:
     * a quick child can be gone before the spawn opens its pidfd, and
     * the spawn must still succeed (it failed with ESRCH 1 run in 70). */
    signal(SIGCHLD, SIG_IGN);
    char *tru[] = { "true", NULL };
    gh_process_opts to = { .argv = tru };
    for (int i = 0; i < 200; i++) {
        p = gh_process_spawn(&to);
        if (!p)
            fail_msg("spawn %d with SIGCHLD ignored: %s", i, strerror(errno));
        uint64_t t0 = now_ms();
        assert_int_equal(gh_process_wait(p, 2000, &st), ECHILD);
        assert_true(now_ms() - t0 < 1500);
        assert_int_equal(gh_process_kill(p, SIGTERM), ESRCH);   /* gone */
        gh_process_free(p);
    }
    signal(SIGCHLD, SIG_DFL);
    return NULL;
}

static void test_process_edges_stale_nonblock_sigpipe_echild(void **state)
{
    (void)state;
    gh_test_run(1, process_edges_main, NULL);
}

/* A watch whose waiter left must not keep its hub awake: data nobody
 * reads arrives on an fd a greenlet waited on once, and the idle runtime
 * must still sleep in epoll (level-triggered readiness would otherwise
 * wake it at once, forever). */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *stale_watch_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    gh_greenlet *r = gh_spawn(reuse_reader, (void *)(intptr_t)sv[0]);
    gh_sleep_ms(10);
    assert_int_equal(gh_write(sv[1], "abcde", 5), 5);
    void *res;
    assert_int_equal(gh_join(r, &res), 0);
    assert_int_equal((intptr_t)res, 5);
    assert_int_equal(gh_write(sv[1], "unread", 6), 6);   /* nobody waits now */
    double c0 = cpu_seconds();
    gh_sleep_ms(500);
    double used = cpu_seconds() - c0;
    if (used >= 0.05)
        fail_msg("idle hubs used %.3f s of CPU in 0.5 s", used);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_stale_watch_does_not_keep_a_hub_awake(void **state)
{
    (void)state;
    gh_test_run(2, stale_watch_main, NULL);
}

/* ---- the I/O budget: calls that never wait still let the hub's others run ---- */

/* The hog reads /dev/zero (every read succeeds at once) until another
 * greenlet of its hub tells it to stop, or it reaches its limit or
 * HOG_MS.  Without the budget it never gives up the hub, so only the
 * limit or HOG_MS stops it. */
enum { HOG_LIMIT = 1000000, HOG_FAIR = 100000, HOG_MS = 5000 };
static _Atomic int hog_started, hog_stop, hog_capped;
static _Atomic long hog_reads;   /* reads so far, published by the hog */
static long hog_limit;

static void hog_reset(long limit)
{
    atomic_store(&hog_started, 0);
    atomic_store(&hog_stop, 0);
    atomic_store(&hog_capped, 0);
    atomic_store(&hog_reads, 0);
    hog_limit = limit;
}

/* Returns the number of reads, or -1 if a read failed or lost errno. */
static void *hog_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    atomic_store(&hog_started, 1);
    uint64_t t0 = now_ms();
    intptr_t reads = 0;
    while (!atomic_load_explicit(&hog_stop, memory_order_relaxed)) {
        if (reads >= hog_limit ||
            ((reads & 4095) == 4095 && now_ms() - t0 > HOG_MS)) {
            atomic_store(&hog_capped, 1);
            break;
        }
        char c = 1;
        errno = 0;
        if (gh_read(fd, &c, 1) != 1 || c != 0 || errno != 0)
            return (void *)(intptr_t)-1;
        reads++;
        atomic_store_explicit(&hog_reads, reads, memory_order_relaxed);
    }
    return (void *)reads;
}

static void *hog_stopper(void *arg)
{
    (void)arg;
    while (!atomic_load(&hog_started))
        gh_yield();
    atomic_store(&hog_stop, 1);
    return NULL;
}

/* Runs the hog beside `other` on this hub; returns the hog's reads. */
static intptr_t hog_beside(gh_fn other, void *other_arg)
{
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    gh_greenlet *b = gh_spawn(other, other_arg);
    gh_greenlet *a = gh_spawn(hog_reader, (void *)(intptr_t)fd);
    assert_non_null(a);
    assert_non_null(b);
    void *ra, *rb;
    assert_int_equal(gh_join(a, &ra), 0);
    assert_int_equal(gh_join(b, &rb), 0);
    assert_int_equal(gh_close(fd), 0);
    intptr_t reads = (intptr_t)ra;
    if (reads < 0)
        fail_msg("a read of /dev/zero failed or changed errno");
    return reads;
}

static void *hog_main(void *arg)
{
    (void)arg;
    hog_reset(HOG_LIMIT);
    intptr_t reads = hog_beside(hog_stopper, NULL);
    if (reads >= HOG_FAIR || atomic_load(&hog_capped))
        fail_msg("the reader made %ld reads before the other greenlet of its hub ran",
                 (long)reads);
    return NULL;
}

static void test_reads_that_never_wait_let_the_hubs_others_run(void **state)
{
    (void)state;
    gh_test_run(1, hog_main, NULL);
}

/* The same hog beside a greenlet parked in gh_read on a socket, which a
 * plain thread writes to once the hog runs: the hub must still run its
 * libuv loop.  Bounded by time, not reads (how soon the hub polls is the
 * scheduler's business, and the writer thread may be late). */
static void *hog_sock_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    ssize_t r = gh_read(fd, &c, 1);
    atomic_store(&hog_stop, 1);
    return (void *)r;
}

static void *hog_sock_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    while (!atomic_load(&hog_started))
        usleep(1000);
    usleep(10 * 1000);
    if (write(fd, "x", 1) != 1)
        abort();
    return NULL;
}

static void *hog_sock_main(void *arg)
{
    (void)arg;
    hog_reset(LONG_MAX);
    int sv[2];
    pair(sv);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hog_sock_writer, (void *)(intptr_t)sv[1]), 0);
    intptr_t reads = hog_beside(hog_sock_reader, (void *)(intptr_t)sv[0]);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (atomic_load(&hog_capped))
        fail_msg("a greenlet waiting on a socket was not woken in %d ms "
                 "(%ld reads) while another greenlet of its hub read /dev/zero",
                 HOG_MS, (long)reads);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_reads_that_never_wait_let_the_hub_poll_its_sockets(void **state)
{
    (void)state;
    gh_test_run(1, hog_sock_main, NULL);
}

/* How soon, counted in the hog's reads (not in time): the writer notes
 * the hog's count after its write has made the socket readable, the
 * woken reader notes it again.  The hub must poll its fds every budget
 * (GH_IO_BUDGET = 128 calls), so a few budgets at most may pass; polling
 * only on the scheduler's own look-arounds took ~61 * 16 budgets. */
enum { HOG_POLL_MAX_READS = 8 * 128 };
static _Atomic long hog_at_write, hog_at_wake;

static void *hog_sock_reader_counts(void *arg)
{
    void *r = hog_sock_reader(arg);
    atomic_store(&hog_at_wake, atomic_load(&hog_reads));
    return r;
}

static void *hog_sock_writer_counts(void *arg)
{
    int fd = (int)(intptr_t)arg;
    while (atomic_load(&hog_reads) < 10000)   /* the hog is well under way */
        usleep(1000);
    if (write(fd, "x", 1) != 1)
        abort();
    atomic_store(&hog_at_write, atomic_load(&hog_reads));
    return NULL;
}

static void *hog_poll_main(void *arg)
{
    (void)arg;
    hog_reset(LONG_MAX);
    int sv[2];
    pair(sv);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hog_sock_writer_counts, (void *)(intptr_t)sv[1]), 0);
    hog_beside(hog_sock_reader_counts, (void *)(intptr_t)sv[0]);
    assert_int_equal(pthread_join(t, NULL), 0);
    long late = atomic_load(&hog_at_wake) - atomic_load(&hog_at_write);
    if (atomic_load(&hog_capped) || late > HOG_POLL_MAX_READS)
        fail_msg("the hog made %ld reads between the write and its hub noticing it "
                 "(at most %d expected)", late, HOG_POLL_MAX_READS);
    gh_close(sv[0]);
    gh_close(sv[1]);
    return NULL;
}

static void test_reads_that_never_wait_let_the_hub_poll_every_budget(void **state)
{
    (void)state;
    gh_test_run(1, hog_poll_main, NULL);
}

/* The budget counts calls since the greenlet last got its hub: one that
 * yields on its own every POLITE_READS (< GH_IO_BUDGET, 128) calls never
 * pays an extra yield.  The counter greenlet runs once per yield of the
 * reader: POLITE_ROUNDS times, or about 150 more if the count ran on
 * across the reader's own yields. */
enum { POLITE_ROUNDS = 200, POLITE_READS = 100 };
static _Atomic int polite_done;
static _Atomic long polite_other_runs;

static void *polite_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    for (int r = 0; r < POLITE_ROUNDS; r++) {
        for (int i = 0; i < POLITE_READS; i++) {
            char c = 1;
            if (gh_read(fd, &c, 1) != 1 || c != 0)
                return (void *)(intptr_t)-1;
        }
        gh_yield();
    }
    atomic_store(&polite_done, 1);
    return NULL;
}

static void *polite_counter(void *arg)
{
    (void)arg;
    while (!atomic_load(&polite_done)) {
        atomic_fetch_add(&polite_other_runs, 1);
        gh_yield();
    }
    return NULL;
}

static void *polite_main(void *arg)
{
    (void)arg;
    atomic_store(&polite_done, 0);
    atomic_store(&polite_other_runs, 0);
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    gh_greenlet *a = gh_spawn(polite_reader, (void *)(intptr_t)fd);
    gh_greenlet *b = gh_spawn(polite_counter, NULL);
    assert_non_null(a);
    assert_non_null(b);
    void *ra, *rb;
    assert_int_equal(gh_join(a, &ra), 0);
    assert_int_equal(gh_join(b, &rb), 0);
    assert_int_equal(gh_close(fd), 0);
    assert_int_equal((intptr_t)ra, 0);
    long runs = atomic_load(&polite_other_runs);
    if (runs > POLITE_ROUNDS + POLITE_ROUNDS / 4)
        fail_msg("the other greenlet ran %ld times for %d yields: the budget "
                 "made extra yields", runs, POLITE_ROUNDS);
    return NULL;
}

static void test_a_greenlet_that_yields_pays_no_budget_yield(void **state)
{
    (void)state;
    gh_test_run(1, polite_main, NULL);
}


/* ---- reads that wait first (io/sys.c, poll.c "Drained") ------------------ */

static uint64_t hub0_io_waits(void)
{
    gh_hub_stats st;
    assert_int_equal(gh_stats_hubs(&st, 1), 1);
    return st.io_waits;
}

static void *late_write_x(void *arg)
{
    gh_sleep_ms(20);
    return (void *)(intptr_t)write((int)(intptr_t)arg, "x", 1);
}

/* A greenlet waits on sv[0] once, so this hub has a watch on it. */
static void make_watch(int sv[2])
{
    gh_greenlet *w = gh_spawn(late_write_x, (void *)(intptr_t)sv[1]);
    char c;
    assert_int_equal(gh_read(sv[0], &c, 1), 1);   /* waits; a full read */
    assert_int_equal(c, 'x');
    assert_int_equal(gh_join(w, NULL), 0);
}

/* A connected TCP pair on loopback: sv[0] accepted, sv[1] dialled. */
static void tcp_pair(int sv[2])
{
    int l = gh_tcp_listen("127.0.0.1", "0", 1);
    assert_true(l >= 0);
    char port[16];
    snprintf(port, sizeof port, "%d", local_port(l));
    sv[1] = gh_tcp_dial("127.0.0.1", port, 2000);
    assert_true(sv[1] >= 0);
    sv[0] = gh_accept(l, NULL, NULL);
    assert_true(sv[0] >= 0);
    assert_int_equal(gh_close(l), 0);
    int one = 1;
    assert_int_equal(setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), 0);
}

/* The hint is for TCP only: a unix stream's short read may stop at a
 * message carrying descriptors, with more queued (poll.c, "Drained"). */
static void unix_stream_no_hint(void)
{
    char buf[16];
    int sv[2];
    pair(sv);
    make_watch(sv);
    assert_int_equal(write(sv[1], "ab", 2), 2);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 2);     /* short */
    assert_int_equal(write(sv[1], "cd", 2), 2);
    uint64_t w0 = hub0_io_waits();
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 2);
    assert_int_equal(hub0_io_waits(), w0);                    /* no wait first */
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
}

static void *drained_stream_main(void *arg)
{
    (void)arg;
    char buf[16];
    int sv[2];
    unix_stream_no_hint();
    tcp_pair(sv);
    make_watch(sv);
    /* A short read makes the next read wait first, and data written in
     * between is found all the same. */
    assert_int_equal(write(sv[1], "ab", 2), 2);
    uint64_t w0 = hub0_io_waits();
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 2);     /* short */
    assert_int_equal(hub0_io_waits(), w0);
    assert_int_equal(write(sv[1], "cd", 2), 2);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 2);
    assert_memory_equal(buf, "cd", 2);
    assert_int_equal(hub0_io_waits(), w0 + 1);                /* waited first */
    /* A full read leaves no hint. */
    assert_int_equal(write(sv[1], "efgh", 4), 4);
    assert_int_equal(gh_read(sv[0], buf, 2), 2);
    w0 = hub0_io_waits();
    assert_int_equal(gh_read(sv[0], buf, 2), 2);
    assert_memory_equal(buf, "gh", 2);
    assert_int_equal(hub0_io_waits(), w0);
    /* MSG_DONTWAIT never waits, hint or not. */
    assert_int_equal(write(sv[1], "i", 1), 1);
    assert_int_equal(gh_recv(sv[0], buf, sizeof buf, 0), 1);  /* short */
    w0 = hub0_io_waits();
    assert_int_equal(gh_recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(hub0_io_waits(), w0);
    /* A first wait that fails (deadline past, then a kill) still returns
     * the data that is there, and the error when there is none. */
    assert_int_equal(write(sv[1], "j", 1), 1);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 1);     /* short */
    assert_int_equal(write(sv[1], "k", 1), 1);
    int t = gh_timeout_begin(0);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'k');
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), -1);
    assert_int_equal(errno, ETIMEDOUT);
    gh_timeout_end(t);
    assert_int_equal(write(sv[1], "l", 1), 1);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 1);     /* short */
    assert_int_equal(write(sv[1], "m", 1), 1);
    assert_int_equal(gh_kill(gh_self()), 0);
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'm');
    assert_int_equal(gh_read(sv[0], buf, sizeof buf), -1);
    assert_int_equal(errno, ECANCELED);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
    return NULL;
}

static void test_short_read_makes_next_read_wait_first_returning_same(void **state)
{
    (void)state;
    gh_test_run(1, drained_stream_main, NULL);
}

/* Short reads that leave data queued (a pipe in packet mode, a pty line
 * by line, a unix stream at a message carrying a descriptor): the next
 * read must get the rest at once, not wait for an edge that already came
 * (it would wait forever; the deadline scope bounds the test, and the
 * read would then still return the data, so the check is that it did not
 * wait at all). */
static int sr_rfd, sr_wfd, sr_mode;

static void *short_reader(void *arg)
{
    (void)arg;
    char buf[100];
    assert_true(gh_read(sr_rfd, buf, sizeof buf) > 0);   /* parks first: empty */
    uint64_t w0 = hub0_io_waits();
    int tok = gh_timeout_begin(2000);
    ssize_t n = gh_read(sr_rfd, buf, sizeof buf);
    int e = errno;
    gh_timeout_end(tok);
    if (n <= 0 || hub0_io_waits() != w0)
        fail_msg("mode %d: second read %zd (%s), %llu waits, with data queued", sr_mode, n,
                 strerror(e), (unsigned long long)(hub0_io_waits() - w0));
    return NULL;
}

static void send_with_fd(int fd)
{
    int passed = 0;
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { "0123456789", 10 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &passed, sizeof passed);
    assert_int_equal(sendmsg(fd, &m, 0), 10);
}

static void *short_reads_main(void *arg)
{
    (void)arg;
    for (sr_mode = 0; sr_mode < 3; sr_mode++) {
        int p[2];
        if (sr_mode == 0) {
            assert_int_equal(pipe2(p, O_DIRECT | O_CLOEXEC), 0);
            sr_rfd = p[0], sr_wfd = p[1];
        } else if (sr_mode == 1) {
            assert_int_equal(openpty(&sr_wfd, &sr_rfd, NULL, NULL, NULL), 0);
        } else {
            pair(p);
            sr_rfd = p[0], sr_wfd = p[1];
        }
        gh_greenlet *g = gh_spawn(short_reader, NULL);
        gh_sleep_ms(20);   /* the reader parks in its first read */
        if (sr_mode == 0) {   /* two packets */
            assert_int_equal(write(sr_wfd, "0123456789", 10), 10);
            assert_int_equal(write(sr_wfd, "abcdefghij", 10), 10);
        } else if (sr_mode == 1) {   /* two lines in one write */
            assert_int_equal(write(sr_wfd, "one\ntwo\n", 8), 8);
        } else {   /* a message with a descriptor, then plain data */
            send_with_fd(sr_wfd);
            assert_int_equal(write(sr_wfd, "abcdefghij", 10), 10);
        }
        assert_int_equal(gh_join(g, NULL), 0);
        gh_close(sr_rfd);
        gh_close(sr_wfd);
    }
    return NULL;
}

static void test_short_read_leaving_data_does_not_park(void **state)
{
    (void)state;
    gh_test_run(1, short_reads_main, NULL);
}

/* gh_wait_fd says ready only when the fd is: an edge that came and went
 * while nobody waited (data written, then read by a plain call) leaves
 * nothing behind. */
static void *wait_fd_truth_main(void *arg)
{
    (void)arg;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(gh_wait_fd(p[0], GH_READ, 10), ETIMEDOUT);   /* now watched */
    assert_int_equal(write(p[1], "x", 1), 1);
    gh_sleep_ms(20);   /* the hub dispatches the edge, for nobody */
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(gh_wait_fd(p[0], GH_READ, 50), ETIMEDOUT);   /* empty */
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    return NULL;
}

static void test_wait_fd_is_ready_only_when_the_fd_is(void **state)
{
    (void)state;
    gh_test_run(1, wait_fd_truth_main, NULL);
}

/* An fd a hub waited on once, then served on another hub only, stops
 * waking the first (its watch leaves that hub's epoll set). */
enum { MOVED_MSGS = 2000 };
static int mv[2];

static void *touch_on_hub0(void *arg)
{
    (void)arg;
    assert_int_equal(gh_wait_fd(mv[0], GH_READ, 5), ETIMEDOUT);
    return NULL;
}

static void *serve_on_hub1(void *arg)
{
    (void)arg;
    char b[8];
    for (int i = 0; i < MOVED_MSGS; i++) {
        assert_int_equal(gh_read(mv[0], b, 1), 1);
        assert_int_equal(gh_write(mv[0], b, 1), 1);
    }
    return NULL;
}

static void *client_thread(void *arg)
{
    (void)arg;
    char b = 0;
    for (int i = 0; i < MOVED_MSGS; i++) {
        assert_int_equal(write(mv[1], &b, 1), 1);
        assert_int_equal(read(mv[1], &b, 1), 1);
    }
    return NULL;
}

static void *moved_main(void *arg)
{
    (void)arg;
    pair(mv);
    gh_spawn_opts on0 = { .hub = 0, .pinned = 1 }, on1 = { .hub = 1, .pinned = 1 };
    assert_int_equal(gh_join(gh_spawn_with(&on0, touch_on_hub0, NULL), NULL), 0);
    gh_sleep_ms(20);
    gh_hub_stats a[2], b[2];
    assert_int_equal(gh_stats_hubs(a, 2), 2);
    gh_greenlet *g = gh_spawn_with(&on1, serve_on_hub1, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_thread, NULL), 0);
    assert_int_equal(gh_join(g, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(gh_stats_hubs(b, 2), 2);
    uint64_t woke0 = b[0].woke - a[0].woke;
    /* before: a wakeup of hub 0 per edge, about 1.5 per round trip */
    if (woke0 > MOVED_MSGS / 20)
        fail_msg("hub 0 woke %llu times for %d round trips served on hub 1",
                 (unsigned long long)woke0, MOVED_MSGS);
    gh_close(mv[0]);
    gh_close(mv[1]);
    return NULL;
}

static void test_fd_moved_to_another_hub_stops_waking_the_first(void **state)
{
    (void)state;
    gh_test_run(2, moved_main, NULL);
}

/* Datagrams: a short read is one message of several; no hint. */
static void *drained_dgram_main(void *arg)
{
    (void)arg;
    char buf[16];
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    make_watch(sv);
    for (int i = 0; i < 3; i++)
        assert_int_equal(write(sv[1], "dg", 2), 2);
    uint64_t w0 = hub0_io_waits();
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_read(sv[0], buf, sizeof buf), 2);
    assert_int_equal(hub0_io_waits(), w0);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
    return NULL;
}

static void test_datagram_short_reads_never_wait_first(void **state)
{
    (void)state;
    gh_test_run(1, drained_dgram_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_thousand_connections_echo_across_hubs),
    cmocka_unit_test(test_64mib_through_tiny_buffers_arrives_intact),
    cmocka_unit_test(test_close_wakes_waiter_on_other_hub_and_fd_reuse_works),
    cmocka_unit_test(test_many_waiters_on_one_fd_are_each_woken),
    cmocka_unit_test(test_timeouts_and_nested_deadline_scopes),
    cmocka_unit_test(test_kill_during_read_returns_ecanceled),
    cmocka_unit_test(test_error_paths_get_the_calls_errno),
    cmocka_unit_test(test_dial_times_out_against_a_full_listener),
    cmocka_unit_test(test_mirrors_block_a_plain_thread),
    cmocka_unit_test(test_close_wakes_a_plain_thread_blocked_on_the_fd),
    cmocka_unit_test(test_stats_count_io_waits_and_pending_timers),
    cmocka_unit_test(test_blocking_runs_off_the_hub_while_it_runs_others),
    cmocka_unit_test(test_getaddrinfo_resolves_and_fails_cleanly),
    cmocka_unit_test(test_one_hub_serving_on_numeric_address_is_one_thread_with_the_fds),
    cmocka_unit_test(test_signal_wait_wakes_every_waiter_times_out_and_cancels),
    cmocka_unit_test(test_signal_between_waits_is_kept_and_disposition_restored),
    cmocka_unit_test(test_signal_caught_from_the_first_wait_on),
    cmocka_unit_test(test_signal_during_a_timing_out_wait_is_not_lost),
    cmocka_unit_test(test_process_cat_through_pipes_wait_timeout_and_kill),
    cmocka_unit_test(test_listener_out_of_fds_keeps_serving_without_spinning),
    cmocka_unit_test(test_huge_timeouts_do_not_wrap),
    cmocka_unit_test(test_stale_watch_does_not_keep_a_hub_awake),
    cmocka_unit_test(test_process_edges_stale_nonblock_sigpipe_echild),
    cmocka_unit_test(test_reads_that_never_wait_let_the_hubs_others_run),
    cmocka_unit_test(test_reads_that_never_wait_let_the_hub_poll_its_sockets),
    cmocka_unit_test(test_reads_that_never_wait_let_the_hub_poll_every_budget),
    cmocka_unit_test(test_a_greenlet_that_yields_pays_no_budget_yield),
    cmocka_unit_test(test_short_read_makes_next_read_wait_first_returning_same),
    cmocka_unit_test(test_short_read_leaving_data_does_not_park),
    cmocka_unit_test(test_wait_fd_is_ready_only_when_the_fd_is),
    cmocka_unit_test(test_fd_moved_to_another_hub_stops_waking_the_first),
    cmocka_unit_test(test_datagram_short_reads_never_wait_first),
};
GH_TEST_MAIN(tests)
