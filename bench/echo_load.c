/* bench/echo_load.c — the echo benchmark's load generator: plain C, one
 * thread, one level-triggered epoll set, no greenhub, the same for every
 * server it measures.
 *
 *   bench_echo_load [--host A] [--port P] [--conns N] [--size S]
 *                   [--warmup W] [--time T] [--impl NAME] [--threads X]
 *                   [--pid PID] [--connect-wait MS]
 *
 * Opens N connections to A:P (numeric IPv4, default 127.0.0.1:7000).  Each
 * sends a message of S bytes (default 64), waits for the whole echo,
 * checks every byte, and sends the next: one round trip in flight per
 * connection.  Runs W seconds of warm-up (default 1), then T measured
 * seconds (default 5), then stops sending and waits for the echoes still
 * in flight, so that every message sent is checked and the server sees a
 * clean EOF on every connection.  Prints
 *   RESULT bench=echo impl=NAME threads=X value=<msgs/s> unit=msgs_per_s
 *          check=ok p50_us=.. p99_us=.. conns=N load_cpu=.. server_cpu=..
 *          machine_cpu=..
 * (one line; latency per round trip over the measured seconds; load_cpu:
 * this process's CPU time over the measured seconds, 1.00 = one core
 * saturated; server_cpu: the same for process PID when --pid is given;
 * machine_cpu: busy cores of the whole machine, which shows whether
 * something else ran meanwhile),
 * and an INFO line with total=<round trips over the whole run> for
 * system-call counts.  A wrong or missing byte, an extra byte, or a
 * connection the server closes prints check=FAIL and exits 1.
 *
 * Why it stays light: per round trip it makes exactly one send and one
 * recv (messages fit the socket buffers, so neither is ever partial in
 * practice), never touches the epoll set (interest is registered once;
 * EPOLLOUT only after a short send), reads the clock once, and shares one
 * epoll_wait with every connection that became ready meanwhile. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Events taken per epoll_wait: at least the connection count the
 * benchmark uses (1,000), so one call can report every ready one. */
enum { MAX_EVENTS = 1024 };
/* Latency histogram: 1 us buckets up to 1 s; slower round trips are
 * counted in the last bucket (then p99 reads ">= 1 s"). */
enum { HIST_US = 1000000 };
/* How long the echoes still in flight at the end may take. */
enum { DRAIN_MS = 5000 };
/* Above this share of a core the load generator may be the bottleneck (a
 * judgement: it then has almost no idle time left to absorb a faster
 * server). */
#define SATURATED 0.95

enum phase { WARMUP, MEASURE, DRAIN };

struct conn {
    int fd;
    uint32_t id;
    uint32_t seq;            /* messages sent so far on this connection */
    uint32_t sent, got;      /* bytes of the current message sent / echoed */
    bool out_watched;        /* EPOLLOUT is in the epoll set */
    uint64_t t_send;         /* ns, when the current message was sent */
    unsigned char *tx, *rx;  /* the current message; its echo */
};

/* Options: immutable after parse(). */
static struct {
    const char *host, *port, *impl, *threads;
    int conns, size, warmup_s, time_s, pid, connect_wait_ms;
} opt = { "127.0.0.1", "7000", "unknown", "1", 100, 64, 1, 5, 0, 5000 };

/* The run's state (one thread: no locks). */
static struct {
    struct conn *c;
    int ep;
    enum phase phase;
    uint64_t measured;       /* round trips finished while measuring */
    uint64_t total;          /* round trips finished in the whole run */
    int in_flight;           /* during DRAIN: echoes not yet back */
    uint32_t *hist;
    const char *failure;     /* first failure, or NULL */
} L;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *why, const struct conn *c)
{
    if (L.failure)
        return;
    if (c)
        fprintf(stderr, "echo_load: connection %u, message %u: %s\n", c->id, c->seq, why);
    else
        fprintf(stderr, "echo_load: %s\n", why);
    L.failure = why;
}

/* ---- messages ------------------------------------------------------------------- */

/* Connection id and sequence number first, then a pattern of both: an echo
 * of another connection's message, or of an earlier one, or one shifted by
 * a byte, does not compare equal. */
static void fill_msg(struct conn *c)
{
    unsigned char *p = c->tx;
    size_t n = (size_t)opt.size;
    size_t head = n < 8 ? n : 8;
    uint32_t hdr[2] = { c->id, c->seq };
    memcpy(p, hdr, head);
    for (size_t i = head; i < n; i++)
        p[i] = (unsigned char)(c->id * 131u + c->seq * 31u + i);
}

static void want_out(struct conn *c, bool on)
{
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = c->id };
    if (epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        fail("epoll_ctl failed", c);
}

/* Sends what is left of the current message; watches for EPOLLOUT only
 * while the socket buffer has taken part of it. */
static void try_send(struct conn *c)
{
    size_t left = (size_t)opt.size - c->sent;
    ssize_t n = send(c->fd, c->tx + c->sent, left, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        fail(strerror(errno), c);
        return;
    }
    if (n > 0)
        c->sent += (uint32_t)n;
    bool need = c->sent < (uint32_t)opt.size;
    if (need != c->out_watched) {
        want_out(c, need);
        c->out_watched = need;
    }
}

static void send_msg(struct conn *c, uint64_t now)
{
    c->seq++;
    fill_msg(c);
    c->sent = c->got = 0;
    c->t_send = now;
    try_send(c);
}

static void record(uint64_t ns)
{
    uint64_t us = ns / 1000;
    L.hist[us < HIST_US ? us : HIST_US - 1]++;
}

/* A whole echo is back: check it, count it, send the next message. */
static void complete(struct conn *c)
{
    if (memcmp(c->rx, c->tx, (size_t)opt.size) != 0) {
        fail("echoed bytes differ from the bytes sent", c);
        return;
    }
    /* One clock read per round trip: the end of this one is the start of
     * the next, so latency needs no second read. */
    uint64_t now = now_ns();
    L.total++;
    if (L.phase == MEASURE) {
        L.measured++;
        record(now - c->t_send);
    }
    if (L.phase == DRAIN)
        L.in_flight--;
    else
        send_msg(c, now);
}

static void on_readable(struct conn *c)
{
    size_t want = (size_t)opt.size - c->got;
    ssize_t n = recv(c->fd, c->rx + c->got, want, 0);
    if (n <= 0) {
        if (n == 0)
            fail("the server closed the connection", c);
        else if (errno != EAGAIN)
            fail(strerror(errno), c);
        return;
    }
    if (c->got + (size_t)n > c->sent) {
        fail("an echo of bytes not sent yet", c);
        return;
    }
    c->got += (uint32_t)n;
    if (c->got == (uint32_t)opt.size)
        complete(c);
}

/* ---- connections ---------------------------------------------------------------- */

/* Connects one socket; retries a refused connection until `deadline` so
 * that the server may still be starting. */
static int connect_one(const struct sockaddr_in *sa, uint64_t deadline)
{
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            return fd;
        }
        int err = errno;
        close(fd);
        if (err != ECONNREFUSED || now_ns() >= deadline) {
            errno = err;
            return -1;
        }
        nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
    }
}

static int open_all(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(opt.port)) };
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_load: --host must be a numeric IPv4 address\n");
        return -1;
    }
    uint64_t deadline = now_ns() + (uint64_t)opt.connect_wait_ms * 1000000u;
    for (int i = 0; i < opt.conns; i++) {
        struct conn *c = &L.c[i];
        c->id = (uint32_t)i;
        c->fd = connect_one(&sa, deadline);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = c->id };
        if (c->fd < 0 || epoll_ctl(L.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            fprintf(stderr, "echo_load: connection %d to %s:%s: %s\n", i, opt.host, opt.port,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* After the drain: a byte still arriving would be one the server made up. */
static void check_quiet(void)
{
    for (int i = 0; i < opt.conns && !L.failure; i++) {
        char b;
        if (recv(L.c[i].fd, &b, 1, MSG_DONTWAIT) >= 0 || errno != EAGAIN)
            fail("bytes after the last echo", &L.c[i]);
    }
}

static void close_all(void)
{
    for (int i = 0; i < opt.conns; i++)
        if (L.c[i].fd >= 0)
            close(L.c[i].fd);
}

/* ---- CPU accounting ---------------------------------------------------------------- */

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
         + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds (user + system, all threads) of process pid; -1 if unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields are counted after its ')'.
     * utime and stime are fields 14 and 15, i.e. the 12th and 13th after. */
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy CPU seconds of the whole machine (all CPUs, everything but idle
 * and iowait); -1 if unknown.  Compared with this process's and the
 * server's, it shows whether something else ran meanwhile. */
static double machine_cpu_s(void)
{
    unsigned long long v[8] = { 0 };
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];   /* not idle, iowait */
    return (double)busy / (double)sysconf(_SC_CLK_TCK);
}

struct window {
    uint64_t t;
    double self, server, machine;
};

static struct window snapshot(void)
{
    return (struct window){ now_ns(), self_cpu_s(), proc_cpu_s(opt.pid), machine_cpu_s() };
}

/* ---- the run --------------------------------------------------------------------- */

static void handle_events(const struct epoll_event *ev, int n)
{
    for (int i = 0; i < n && !L.failure; i++) {
        struct conn *c = &L.c[ev[i].data.u32];
        if ((ev[i].events & EPOLLOUT) && c->sent < (uint32_t)opt.size)
            try_send(c);
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
    }
}

/* Moves to the next phase when its time has come; returns the ms until
 * the next change (for epoll_wait's timeout). */
static int advance(uint64_t now, uint64_t t_measure, uint64_t t_end,
                   struct window *w0, struct window *w1)
{
    if (L.phase == WARMUP && now >= t_measure) {
        *w0 = snapshot();
        L.phase = MEASURE;
    }
    if (L.phase == MEASURE && now >= t_end) {
        *w1 = snapshot();
        L.phase = DRAIN;
        L.in_flight = opt.conns;
    }
    uint64_t next = L.phase == WARMUP ? t_measure : L.phase == MEASURE ? t_end
                  : t_end + (uint64_t)DRAIN_MS * 1000000u;
    return next > now ? (int)((next - now) / 1000000u) + 1 : 0;
}

static void run(struct window *w0, struct window *w1)
{
    static struct epoll_event ev[MAX_EVENTS];
    uint64_t t0 = now_ns();
    uint64_t t_measure = t0 + (uint64_t)opt.warmup_s * 1000000000u;
    uint64_t t_end = t_measure + (uint64_t)opt.time_s * 1000000000u;
    for (int i = 0; i < opt.conns && !L.failure; i++)
        send_msg(&L.c[i], t0);
    while (!L.failure && !(L.phase == DRAIN && L.in_flight == 0)) {
        uint64_t now = now_ns();
        if (L.phase == DRAIN && now >= t_end + (uint64_t)DRAIN_MS * 1000000u) {
            fail("echoes still missing after the drain", NULL);
            break;
        }
        int timeout = advance(now, t_measure, t_end, w0, w1);
        int n = epoll_wait(L.ep, ev, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait failed", NULL);
        handle_events(ev, n > 0 ? n : 0);
    }
}

/* The smallest latency (us) at or below which a share p of the samples lie. */
static unsigned percentile(double p)
{
    uint64_t rank = (uint64_t)(p * (double)L.measured + 0.999999), seen = 0;
    for (unsigned us = 0; us < HIST_US; us++) {
        seen += L.hist[us];
        if (seen >= rank && seen > 0)
            return us;
    }
    return HIST_US - 1;
}

static int report(const struct window *w0, const struct window *w1)
{
    double secs = w1->t > w0->t ? (double)(w1->t - w0->t) / 1e9 : 0;
    double rate = secs > 0 ? (double)L.measured / secs : 0;
    double load = secs > 0 ? (w1->self - w0->self) / secs : 0;
    double server = secs > 0 && w0->server >= 0 && w1->server >= 0
                  ? (w1->server - w0->server) / secs : -1;
    double machine = secs > 0 && w0->machine >= 0 && w1->machine >= 0
                   ? (w1->machine - w0->machine) / secs : -1;
    bool ok = !L.failure && L.measured > 0;
    printf("INFO echo_load conns=%d size=%d warmup_s=%d time_s=%.3f measured=%llu total=%llu\n",
           opt.conns, opt.size, opt.warmup_s, secs, (unsigned long long)L.measured,
           (unsigned long long)L.total);
    if (load >= SATURATED)
        printf("INFO echo_load saturated its core (load_cpu=%.2f): the figure may be the load"
               " generator's limit, not the server's\n", load);
    printf("RESULT bench=echo impl=%s threads=%s value=%.2f unit=msgs_per_s check=%s"
           " p50_us=%u p99_us=%u conns=%d load_cpu=%.2f server_cpu=%.2f machine_cpu=%.2f\n",
           opt.impl, opt.threads, ok ? rate : 0.0, ok ? "ok" : "FAIL", percentile(0.50),
           percentile(0.99), opt.conns, load, server, machine);
    return ok ? 0 : 1;
}

/* ---- set-up ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_echo_load [--host A] [--port P] [--conns N] [--size S]"
                    " [--warmup W] [--time T] [--impl NAME] [--threads X] [--pid PID]"
                    " [--connect-wait MS]\n");
    exit(2);
}

static void parse(int argc, char **argv)
{
    static const struct option opts[] = {
        { "host", 1, NULL, 'H' }, { "port", 1, NULL, 'p' }, { "conns", 1, NULL, 'n' },
        { "size", 1, NULL, 's' }, { "warmup", 1, NULL, 'w' }, { "time", 1, NULL, 't' },
        { "impl", 1, NULL, 'i' }, { "threads", 1, NULL, 'T' }, { "pid", 1, NULL, 'P' },
        { "connect-wait", 1, NULL, 'c' }, { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'n': opt.conns = atoi(optarg); break;
        case 's': opt.size = atoi(optarg); break;
        case 'w': opt.warmup_s = atoi(optarg); break;
        case 't': opt.time_s = atoi(optarg); break;
        case 'i': opt.impl = optarg; break;
        case 'T': opt.threads = optarg; break;
        case 'P': opt.pid = atoi(optarg); break;
        case 'c': opt.connect_wait_ms = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.conns <= 0 || opt.conns > 1000000 || opt.size <= 0
        || opt.size > (1 << 20) || opt.warmup_s < 0 || opt.time_s <= 0 || opt.connect_wait_ms < 0)
        usage();
}

/* One descriptor per connection: lift the soft limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static int setup(void)
{
    size_t n = (size_t)opt.conns, s = (size_t)opt.size;
    L.c = calloc(n, sizeof *L.c);
    unsigned char *bufs = calloc(n, 2 * s);
    L.hist = calloc(HIST_US, sizeof *L.hist);
    if (!L.c || !bufs || !L.hist) {
        fprintf(stderr, "echo_load: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        L.c[i].fd = -1;
        L.c[i].tx = bufs + 2 * s * i;
        L.c[i].rx = L.c[i].tx + s;
    }
    if ((L.ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("echo_load: epoll_create1");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    raise_nofile();
    if (setup() != 0 || open_all() != 0) {
        close_all();
        return 2;
    }
    struct window w0 = { 0 }, w1 = { 0 };
    run(&w0, &w1);
    if (!L.failure)
        check_quiet();
    close_all();
    return report(&w0, &w1);
}
