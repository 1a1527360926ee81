/* bench/echo_load.c — the echo benchmark's load generator: plain C, L
 * threads (default 1), each with its own level-triggered epoll set, no
 * greenhub, the same for every server it measures.
 *
 *   bench_echo_load [--host A] [--port P] [--conns N] [--size S]
 *                   [--warmup W] [--time T] [--impl NAME] [--threads X]
 *                   [--load-threads L] [--pid PID] [--connect-wait MS]
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
 *          machine_cpu=.. load_threads=L
 * (one line; X is only a label, the server's thread or hub count; latency
 * per round trip over the measured seconds; load_cpu: this process's CPU
 * time, all its threads, over the measured seconds, 1.00 = one core
 * saturated, so up to L with L threads; server_cpu: the same for process
 * PID when --pid is given; machine_cpu: busy cores of the whole machine,
 * which shows whether something else ran meanwhile),
 * and an INFO line with total=<round trips over the whole run> for
 * system-call counts (with L > 1, one more INFO line per thread: its
 * connections, round trips measured and CPU).  A wrong or missing byte, an
 * extra byte, or a connection the server closes, on any thread, prints
 * check=FAIL and exits 1.
 *
 * Threads.  Connection i belongs to exactly one thread: thread k owns the
 * connections [k*N/L, (k+1)*N/L) (as even as integer division allows), its
 * epoll set and its latency histogram and counters; nothing is locked
 * while it runs.  The main thread is thread 0, and the clock-keeper: it
 * moves the shared phase (warm-up, measure, drain) at the planned instants
 * and takes the CPU snapshots there; every thread reads that phase once
 * per round trip, so all of them count the same measured interval.  All
 * threads start together (a barrier, after every connection is open); the
 * first failure on any thread raises a shared stop flag that ends the
 * others.  At the end the main thread joins them and merges: round trips
 * summed, percentiles over every thread's samples together.
 *
 * Why it stays light: per round trip it makes exactly one send and one
 * recv (messages fit the socket buffers, so neither is ever partial in
 * practice), never touches the epoll set (interest is registered once;
 * EPOLLOUT only after a short send), reads the clock once and the shared
 * phase once (a plain load), and shares one epoll_wait with every
 * connection of its thread that became ready meanwhile. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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
/* The longest a thread sleeps in epoll_wait: how soon an idle thread sees
 * another thread's failure or the end of the drain. */
enum { POLL_MS = 100 };
/* Load threads at most (each has its own 4 MB histogram). */
enum { MAX_LOAD_THREADS = 1024 };
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

/* One load thread.  From the start barrier to its return, thread k alone
 * touches its worker (but cpu_at) and its connections c[first, first + n)
 * with their buffers and epoll set; the main thread reads the worker after
 * joining it.  cpu_at is written by thread 0 at the phase changes, and
 * read by it (the main thread) in report().  Cache-line aligned: the
 * counters of two threads never share a line. */
struct worker {
    _Alignas(64) int k;
    int ep;                  /* this thread's epoll set */
    int first, n;            /* its connections */
    enum phase phase;        /* DRAIN once it has seen the drain begin */
    int in_flight;           /* during DRAIN: its echoes not yet back */
    uint64_t measured;       /* round trips finished while measuring */
    uint64_t total;          /* round trips finished in the whole run */
    uint32_t *hist;          /* latencies of the measured round trips */
    const char *failure;     /* its first failure, or NULL */
    pthread_t thread;
    clockid_t clock;         /* its CPU-time clock */
    double cpu_at[2];        /* its CPU seconds when measuring began, ended */
};

/* Options: immutable after parse(). */
static struct {
    const char *host, *port, *impl, *threads;
    int conns, size, warmup_s, time_s, pid, connect_wait_ms, load_threads;
} opt = { "127.0.0.1", "7000", "unknown", "1", 100, 64, 1, 5, 0, 5000, 1 };

/* Shared by the threads.  c, w and the planned instants are written by the
 * main thread before the start barrier and only read after it; phase is
 * written by thread 0 alone; stop by whichever thread fails first. */
static struct {
    struct conn *c;
    struct worker *w;
    uint64_t t_measure, t_end;   /* ns: measuring begins, ends (planned) */
    pthread_barrier_t start;
    _Atomic int phase;           /* enum phase */
    atomic_bool stop;            /* a thread failed: every thread stops */
} G;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static enum phase phase_now(void)
{
    return (enum phase)atomic_load_explicit(&G.phase, memory_order_relaxed);
}

/* Records this thread's first failure and stops every thread; only the
 * first failure of the whole run is printed. */
static void fail(struct worker *w, const char *why, const struct conn *c)
{
    if (w->failure)
        return;
    w->failure = why;
    if (atomic_exchange(&G.stop, true))
        return;
    if (c)
        fprintf(stderr, "echo_load: connection %u, message %u: %s\n", c->id, c->seq, why);
    else
        fprintf(stderr, "echo_load: %s\n", why);
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

static void want_out(struct worker *w, struct conn *c, bool on)
{
    struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = c->id };
    if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        fail(w, "epoll_ctl failed", c);
}

/* Sends what is left of the current message; watches for EPOLLOUT only
 * while the socket buffer has taken part of it. */
static void try_send(struct worker *w, struct conn *c)
{
    size_t left = (size_t)opt.size - c->sent;
    ssize_t n = send(c->fd, c->tx + c->sent, left, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        fail(w, strerror(errno), c);
        return;
    }
    if (n > 0)
        c->sent += (uint32_t)n;
    bool need = c->sent < (uint32_t)opt.size;
    if (need != c->out_watched) {
        want_out(w, c, need);
        c->out_watched = need;
    }
}

static void send_msg(struct worker *w, struct conn *c, uint64_t now)
{
    c->seq++;
    fill_msg(c);
    c->sent = c->got = 0;
    c->t_send = now;
    try_send(w, c);
}

static void record(struct worker *w, uint64_t ns)
{
    uint64_t us = ns / 1000;
    w->hist[us < HIST_US ? us : HIST_US - 1]++;
}

/* A whole echo is back: check it, count it, send the next message.  Until
 * a thread sees the drain begin, each of its connections has exactly one
 * message in flight: at the first echo it sees in DRAIN, n are. */
static void complete(struct worker *w, struct conn *c)
{
    if (memcmp(c->rx, c->tx, (size_t)opt.size) != 0) {
        fail(w, "echoed bytes differ from the bytes sent", c);
        return;
    }
    /* One clock read per round trip: the end of this one is the start of
     * the next, so latency needs no second read. */
    uint64_t now = now_ns();
    enum phase ph = phase_now();
    w->total++;
    if (ph == MEASURE) {
        w->measured++;
        record(w, now - c->t_send);
    }
    if (ph != DRAIN) {
        send_msg(w, c, now);
        return;
    }
    if (w->phase != DRAIN) {
        w->phase = DRAIN;
        w->in_flight = w->n;
    }
    w->in_flight--;
}

static void on_readable(struct worker *w, struct conn *c)
{
    size_t want = (size_t)opt.size - c->got;
    ssize_t n = recv(c->fd, c->rx + c->got, want, 0);
    if (n <= 0) {
        if (n == 0)
            fail(w, "the server closed the connection", c);
        else if (errno != EAGAIN)
            fail(w, strerror(errno), c);
        return;
    }
    if (c->got + (size_t)n > c->sent) {
        fail(w, "an echo of bytes not sent yet", c);
        return;
    }
    c->got += (uint32_t)n;
    if (c->got == (uint32_t)opt.size)
        complete(w, c);
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

/* Opens connection i and registers it in its owner's epoll set (the main
 * thread does this for every thread, before any of them starts). */
static int open_conn(const struct sockaddr_in *sa, uint64_t deadline, int ep, int i)
{
    struct conn *c = &G.c[i];
    c->id = (uint32_t)i;
    c->fd = connect_one(sa, deadline);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = c->id };
    if (c->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        fprintf(stderr, "echo_load: connection %d to %s:%s: %s\n", i, opt.host, opt.port,
                strerror(errno));
        return -1;
    }
    return 0;
}

static int open_all(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(opt.port)) };
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echo_load: --host must be a numeric IPv4 address\n");
        return -1;
    }
    uint64_t deadline = now_ns() + (uint64_t)opt.connect_wait_ms * 1000000u;
    for (int k = 0; k < opt.load_threads; k++) {
        const struct worker *w = &G.w[k];
        for (int i = w->first; i < w->first + w->n; i++)
            if (open_conn(&sa, deadline, w->ep, i) != 0)
                return -1;
    }
    return 0;
}

/* After the drain: a byte still arriving would be one the server made up. */
static void check_quiet(struct worker *w)
{
    for (int i = w->first; i < w->first + w->n && !w->failure; i++) {
        char b;
        if (recv(G.c[i].fd, &b, 1, MSG_DONTWAIT) >= 0 || errno != EAGAIN)
            fail(w, "bytes after the last echo", &G.c[i]);
    }
}

static void close_all(void)
{
    for (int i = 0; i < opt.conns; i++)
        if (G.c[i].fd >= 0)
            close(G.c[i].fd);
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

/* CPU seconds of one load thread; -1 if unknown (e.g. it has ended). */
static double thread_cpu_s(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return -1;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct window {
    uint64_t t;
    double self, server, machine;
};

/* Taken by thread 0 when measuring begins (at = 0) and ends (at = 1). */
static struct window snapshot(int at)
{
    struct window s = { now_ns(), self_cpu_s(), proc_cpu_s(opt.pid), machine_cpu_s() };
    for (int k = 0; k < opt.load_threads; k++)
        G.w[k].cpu_at[at] = thread_cpu_s(G.w[k].clock);
    return s;
}

/* ---- the run --------------------------------------------------------------------- */

static void handle_events(struct worker *w, const struct epoll_event *ev, int n)
{
    for (int i = 0; i < n && !w->failure; i++) {
        struct conn *c = &G.c[ev[i].data.u32];
        if ((ev[i].events & EPOLLOUT) && c->sent < (uint32_t)opt.size)
            try_send(w, c);
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(w, c);
    }
}

/* Thread 0 only: moves the shared phase on when its time has come; returns
 * the ms until the next change (for epoll_wait's timeout). */
static int advance(uint64_t now, struct window *w0, struct window *w1)
{
    enum phase ph = phase_now();
    if (ph == WARMUP && now >= G.t_measure) {
        *w0 = snapshot(0);
        atomic_store_explicit(&G.phase, ph = MEASURE, memory_order_release);
    }
    if (ph == MEASURE && now >= G.t_end) {
        *w1 = snapshot(1);
        atomic_store_explicit(&G.phase, ph = DRAIN, memory_order_release);
    }
    uint64_t next = ph == WARMUP ? G.t_measure : ph == MEASURE ? G.t_end
                  : G.t_end + (uint64_t)DRAIN_MS * 1000000u;
    return next > now ? (int)((next - now) / 1000000u) + 1 : 0;
}

/* The epoll_wait timeout of this turn of thread w's loop. */
static int wait_ms(const struct worker *w, uint64_t now, struct window *w0, struct window *w1)
{
    int ms = w->k == 0 ? advance(now, w0, w1) : POLL_MS;
    return ms < POLL_MS ? ms : POLL_MS;
}

static bool drained(const struct worker *w)
{
    return w->phase == DRAIN && w->in_flight == 0;
}

static bool drain_overdue(uint64_t now)
{
    return phase_now() == DRAIN && now >= G.t_end + (uint64_t)DRAIN_MS * 1000000u;
}

/* One thread's run, from the start barrier to the end of its drain (or the
 * first failure of any thread).  w0 and w1 are used by thread 0 only. */
static void run(struct worker *w, struct window *w0, struct window *w1)
{
    struct epoll_event ev[MAX_EVENTS];
    uint64_t t0 = now_ns();
    for (int i = w->first; i < w->first + w->n && !w->failure; i++)
        send_msg(w, &G.c[i], t0);
    while (!w->failure && !drained(w) && !atomic_load_explicit(&G.stop, memory_order_relaxed)) {
        uint64_t now = now_ns();
        if (drain_overdue(now)) {
            fail(w, "echoes still missing after the drain", NULL);
            break;
        }
        int n = epoll_wait(w->ep, ev, MAX_EVENTS, wait_ms(w, now, w0, w1));
        if (n < 0 && errno != EINTR)
            fail(w, "epoll_wait failed", NULL);
        handle_events(w, ev, n > 0 ? n : 0);
    }
    if (!w->failure && !atomic_load(&G.stop))
        check_quiet(w);
}

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&G.start);
    run(w, NULL, NULL);
    return NULL;
}

/* Starts threads 1..L-1 (each waits at the barrier) and notes every
 * thread's CPU clock. */
static void start_threads(void)
{
    G.w[0].thread = pthread_self();
    for (int k = 1; k < opt.load_threads; k++) {
        int err = pthread_create(&G.w[k].thread, NULL, thread_main, &G.w[k]);
        if (err) {
            fprintf(stderr, "echo_load: pthread_create: %s\n", strerror(err));
            exit(2);   /* the threads already started wait at the barrier */
        }
    }
    for (int k = 0; k < opt.load_threads; k++)
        if (pthread_getcpuclockid(G.w[k].thread, &G.w[k].clock) != 0)
            G.w[k].clock = (clockid_t)-1;
}

/* The whole run: plans the phases, releases every thread at once, runs
 * thread 0 here, and joins the others. */
static void run_all(struct window *w0, struct window *w1)
{
    start_threads();
    uint64_t t0 = now_ns();
    G.t_measure = t0 + (uint64_t)opt.warmup_s * 1000000000u;
    G.t_end = G.t_measure + (uint64_t)opt.time_s * 1000000000u;
    pthread_barrier_wait(&G.start);
    run(&G.w[0], w0, w1);
    for (int k = 1; k < opt.load_threads; k++)
        pthread_join(G.w[k].thread, NULL);
}

/* ---- the result ------------------------------------------------------------------ */

/* Every thread's counts and samples, added into thread 0's (after the
 * join); returns the first failure, or NULL. */
static const char *merge(void)
{
    struct worker *m = &G.w[0];
    const char *failure = m->failure;
    for (int k = 1; k < opt.load_threads; k++) {
        const struct worker *w = &G.w[k];
        m->measured += w->measured;
        m->total += w->total;
        for (unsigned us = 0; us < HIST_US; us++)
            m->hist[us] += w->hist[us];
        if (!failure)
            failure = w->failure;
    }
    return failure;
}

/* The smallest latency (us) at or below which a share p of the merged
 * samples lie. */
static unsigned percentile(double p)
{
    const struct worker *m = &G.w[0];
    uint64_t rank = (uint64_t)(p * (double)m->measured + 0.999999), seen = 0;
    for (unsigned us = 0; us < HIST_US; us++) {
        seen += m->hist[us];
        if (seen >= rank && seen > 0)
            return us;
    }
    return HIST_US - 1;
}

/* CPUs this process may run on (its affinity mask), 0 if unknown. */
static int allowed_cpus(void)
{
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
}

/* With L > 1: one line per thread (its share; before the merge). */
static void report_threads(double secs)
{
    if (opt.load_threads == 1)
        return;
    for (int k = 0; k < opt.load_threads; k++) {
        const struct worker *w = &G.w[k];
        double cpu = secs > 0 && w->cpu_at[0] >= 0 && w->cpu_at[1] >= 0
                   ? (w->cpu_at[1] - w->cpu_at[0]) / secs : -1;
        printf("INFO echo_load thread=%d conns=%d measured=%llu thread_cpu=%.2f\n", k, w->n,
               (unsigned long long)w->measured, cpu);
    }
}

/* The busiest thread's share of a core over the measured seconds. */
static double busiest(double secs, int *which)
{
    double max = -1;
    for (int k = 0; k < opt.load_threads && secs > 0; k++) {
        const struct worker *w = &G.w[k];
        double cpu = (w->cpu_at[1] - w->cpu_at[0]) / secs;
        if (w->cpu_at[0] >= 0 && w->cpu_at[1] >= 0 && cpu > max)
            max = cpu, *which = k;
    }
    return max;
}

/* Says when the load generator may have been the limit: with one thread,
 * its core saturated; with more, every CPU it may use, or one thread's. */
static void report_saturation(double load, double secs)
{
    if (opt.load_threads == 1) {
        if (load >= SATURATED)
            printf("INFO echo_load saturated its core (load_cpu=%.2f): the figure may be the load"
                   " generator's limit, not the server's\n", load);
        return;
    }
    int cpus = allowed_cpus(), k = 0;
    int room = cpus > 0 && cpus < opt.load_threads ? cpus : opt.load_threads;
    double top = busiest(secs, &k);
    if (load >= SATURATED * room)
        printf("INFO echo_load saturated the %d CPU(s) its %d threads may use (load_cpu=%.2f):"
               " the figure may be the load generator's limit, not the server's\n", room,
               opt.load_threads, load);
    else if (top >= SATURATED)
        printf("INFO echo_load thread %d saturated its core (thread_cpu=%.2f): the figure may"
               " be the load generator's limit, not the server's\n", k, top);
}

static int report(const struct window *w0, const struct window *w1)
{
    double secs = w1->t > w0->t ? (double)(w1->t - w0->t) / 1e9 : 0;
    report_threads(secs);
    const char *failure = merge();
    const struct worker *m = &G.w[0];
    double rate = secs > 0 ? (double)m->measured / secs : 0;
    double load = secs > 0 ? (w1->self - w0->self) / secs : 0;
    double server = secs > 0 && w0->server >= 0 && w1->server >= 0
                  ? (w1->server - w0->server) / secs : -1;
    double machine = secs > 0 && w0->machine >= 0 && w1->machine >= 0
                   ? (w1->machine - w0->machine) / secs : -1;
    bool ok = !failure && m->measured > 0;
    printf("INFO echo_load conns=%d size=%d warmup_s=%d time_s=%.3f measured=%llu total=%llu\n",
           opt.conns, opt.size, opt.warmup_s, secs, (unsigned long long)m->measured,
           (unsigned long long)m->total);
    report_saturation(load, secs);
    printf("RESULT bench=echo impl=%s threads=%s value=%.2f unit=msgs_per_s check=%s"
           " p50_us=%u p99_us=%u conns=%d load_cpu=%.2f server_cpu=%.2f machine_cpu=%.2f"
           " load_threads=%d\n",
           opt.impl, opt.threads, ok ? rate : 0.0, ok ? "ok" : "FAIL", percentile(0.50),
           percentile(0.99), opt.conns, load, server, machine, opt.load_threads);
    return ok ? 0 : 1;
}

/* ---- set-up ---------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_echo_load [--host A] [--port P] [--conns N] [--size S]"
                    " [--warmup W] [--time T] [--impl NAME] [--threads X] [--load-threads L]"
                    " [--pid PID] [--connect-wait MS]\n"
                    "  (1 <= L <= N, L <= %d)\n", MAX_LOAD_THREADS);
    exit(2);
}

static void parse(int argc, char **argv)
{
    static const struct option opts[] = {
        { "host", 1, NULL, 'H' }, { "port", 1, NULL, 'p' }, { "conns", 1, NULL, 'n' },
        { "size", 1, NULL, 's' }, { "warmup", 1, NULL, 'w' }, { "time", 1, NULL, 't' },
        { "impl", 1, NULL, 'i' }, { "threads", 1, NULL, 'T' }, { "pid", 1, NULL, 'P' },
        { "connect-wait", 1, NULL, 'c' }, { "load-threads", 1, NULL, 'L' },
        { NULL, 0, NULL, 0 },
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
        case 'L': opt.load_threads = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc || opt.conns <= 0 || opt.conns > 1000000 || opt.size <= 0
        || opt.size > (1 << 20) || opt.warmup_s < 0 || opt.time_s <= 0 || opt.connect_wait_ms < 0
        || opt.load_threads < 1 || opt.load_threads > opt.conns
        || opt.load_threads > MAX_LOAD_THREADS)
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

/* Thread k's share: connections [k*N/L, (k+1)*N/L), its histogram and its
 * epoll set. */
static int setup_worker(int k)
{
    struct worker *w = &G.w[k];
    long long n = opt.conns, l = opt.load_threads;
    w->k = k;
    w->first = (int)(k * n / l);
    w->n = (int)((k + 1) * n / l) - w->first;
    w->hist = calloc(HIST_US, sizeof *w->hist);
    if (!w->hist) {
        fprintf(stderr, "echo_load: out of memory\n");
        return -1;
    }
    if ((w->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("echo_load: epoll_create1");
        return -1;
    }
    return 0;
}

static int setup(void)
{
    size_t n = (size_t)opt.conns, s = (size_t)opt.size, l = (size_t)opt.load_threads;
    G.c = calloc(n, sizeof *G.c);
    unsigned char *bufs = calloc(n, 2 * s);
    G.w = aligned_alloc(_Alignof(struct worker), l * sizeof *G.w);
    if (!G.c || !bufs || !G.w) {
        fprintf(stderr, "echo_load: out of memory\n");
        return -1;
    }
    memset(G.w, 0, l * sizeof *G.w);
    for (size_t i = 0; i < n; i++) {
        G.c[i].fd = -1;
        G.c[i].tx = bufs + 2 * s * i;
        G.c[i].rx = G.c[i].tx + s;
    }
    for (int k = 0; k < opt.load_threads; k++)
        if (setup_worker(k) != 0)
            return -1;
    return pthread_barrier_init(&G.start, NULL, (unsigned)opt.load_threads) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    raise_nofile();
    if (setup() != 0)
        return 2;
    if (open_all() != 0) {
        close_all();
        return 2;
    }
    struct window w0 = { 0 }, w1 = { 0 };
    run_all(&w0, &w1);
    close_all();
    return report(&w0, &w1);
}
