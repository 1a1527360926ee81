/* bench/echo_server.c — the echo benchmark's server: ONE blocking-style
 * connection handler, handle(), started either as one OS thread per
 * connection (--threads) or as one greenlet per connection (--greenlets).
 * The two modes differ only in start_thread() / start_greenlet(): the
 * acceptor, the handler and the shutdown are the same code, and the same
 * gh_* calls block a plain thread or park a greenlet.
 *
 *   bench_echo_server --greenlets|--threads [--port P] [--hubs N]
 *                     [--cpu K] [--duration S]
 *
 * Listens on 127.0.0.1:P (default 7000).  Stops on SIGTERM or SIGINT, or
 * after S seconds (0, the default: only on a signal), then prints
 *   INFO echo_server mode=.. hubs=.. accepted=.. closed=.. bytes=.. resets=.. errors=..
 * and exits 1 if any connection failed with an unexpected error (resets
 * by the peer are counted, not failures).  The bytes are checked by the
 * load generator (echo_load.c), which sees every echo.
 *
 * Pinning.  --cpu K restricts the whole process to CPU K before any thread
 * starts (threads inherit the mask), in both modes; in greenlet mode it
 * also turns hwloc hub pinning off (gh_config.no_pin), which would
 * otherwise put hub i on core i whatever the mask (GREENHUB_PIN=1 in the
 * environment overrides that).  bench/echo.sh uses `taskset -c 0` instead:
 * with one hub, hwloc pins it to CPU 0 too, so the two agree. */
#define _GNU_SOURCE
#include "bench.h"

#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

/* Bytes read at once: far above the benchmark's 64-byte messages, so one
 * read takes a whole message; small enough for a greenlet's stack. */
enum { BUF_SIZE = 16384 };
/* How long the acceptor backs off when out of descriptors: accepting again
 * at once would spin, since the pending connection stays readable. */
enum { EMFILE_BACKOFF_MS = 10 };

/* Starts fn(arg) concurrently and detached: the only difference between
 * the two modes.  Returns 0 or an errno value. */
typedef int (*start_fn)(void *(*fn)(void *), void *arg);

static struct {
    start_fn start;          /* immutable after main's parsing */
    const char *port;
    int sigfd;               /* SIGTERM/SIGINT, read by wait_stop() */
    int64_t duration_ms;     /* -1: until a signal */
    unsigned hubs;           /* set by serve_main: the runtime's hub count */
} opt = { .port = "7000", .sigfd = -1, .duration_ms = -1 };

/* Totals, bumped once per connection (not per message) so that handlers
 * on different hubs do not fight over these cache lines. */
static atomic_ulong n_accepted, n_closed, n_bytes, n_resets, n_errors;

/* ---- the handler: one connection, blocking style ---------------------------- */

/* Writes all of buf; 0 or an errno value. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = gh_write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void conn_done(unsigned long bytes, int err)
{
    atomic_fetch_add_explicit(&n_bytes, bytes, memory_order_relaxed);
    if (err == ECONNRESET || err == EPIPE)
        atomic_fetch_add_explicit(&n_resets, 1, memory_order_relaxed);
    else if (err) {
        fprintf(stderr, "echo_server: connection failed: %s\n", strerror(err));
        atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&n_closed, 1, memory_order_release);
}

/* Echoes until EOF: what a thread-per-connection server would write. */
static void handle(int fd)
{
    char buf[BUF_SIZE];
    unsigned long echoed = 0;
    int err = 0;
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if ((err = write_all(fd, buf, (size_t)n)) != 0)
            break;
        echoed += (unsigned long)n;
    }
    gh_close(fd);
    conn_done(echoed, err);
}

static void *conn_main(void *arg)
{
    handle((int)(intptr_t)arg);
    return NULL;
}

/* ---- the two ways to start it ---------------------------------------------------- */

static int start_thread(void *(*fn)(void *), void *arg)
{
    pthread_attr_t a;
    pthread_t t;
    int err = pthread_attr_init(&a);
    if (err)
        return err;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return err;
}

static int start_greenlet(void *(*fn)(void *), void *arg)
{
    gh_greenlet *g = gh_spawn(fn, arg);
    if (!g)
        return errno;
    gh_detach(g);
    return 0;
}

/* ---- accepting, serving, stopping (shared by both modes) ------------------------- */

/* Replies are small and sent right after a request arrives: Nagle's
 * algorithm could hold one back waiting for an ACK.  Go and libuv servers
 * set it too (Go by default). */
static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Returns true when the acceptor should go on after this error. */
static bool accept_error_ok(int err)
{
    if (err == EINTR || err == ECONNABORTED)
        return true;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        gh_sleep_ms(EMFILE_BACKOFF_MS);
        return true;
    }
    fprintf(stderr, "echo_server: accept: %s\n", strerror(err));
    atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
    return false;
}

static void *acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = gh_accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (accept_error_ok(errno))
                continue;
            return NULL;
        }
        set_nodelay(fd);
        atomic_fetch_add_explicit(&n_accepted, 1, memory_order_relaxed);
        int err = opt.start(conn_main, (void *)(intptr_t)fd);
        if (err) {
            fprintf(stderr, "echo_server: cannot start a handler: %s\n", strerror(err));
            atomic_fetch_add_explicit(&n_errors, 1, memory_order_relaxed);
            gh_close(fd);
        }
    }
}

/* Waits for SIGTERM/SIGINT (through the signalfd) or the duration. */
static void wait_stop(void)
{
    int err = gh_wait_fd(opt.sigfd, GH_READ, opt.duration_ms);
    if (err && err != ETIMEDOUT)
        fprintf(stderr, "echo_server: waiting for a signal: %s\n", strerror(err));
}

/* Listens, starts the acceptor the mode's way, and returns when told to
 * stop.  Returns an errno value (0 when it served). */
static int serve(void)
{
    int lfd = gh_tcp_listen("127.0.0.1", opt.port, 0);
    if (lfd < 0) {
        int err = errno;
        fprintf(stderr, "echo_server: listen on 127.0.0.1:%s: %s\n", opt.port, strerror(err));
        return err;
    }
    int err = opt.start(acceptor, (void *)(intptr_t)lfd);
    if (err) {
        fprintf(stderr, "echo_server: cannot start the acceptor: %s\n", strerror(err));
        return err;
    }
    printf("INFO echo_server listening=127.0.0.1:%s pid=%ld\n", opt.port, (long)getpid());
    fflush(stdout);
    wait_stop();
    return 0;
}

static void *serve_main(void *arg)
{
    (void)arg;
    opt.hubs = gh_hub_count();
    return (void *)(intptr_t)serve();
}

/* ---- process set-up -------------------------------------------------------------- */

/* Signals are taken through a signalfd, so they must be blocked in every
 * thread: done before any thread (hub or handler) exists, which inherit
 * the mask. */
static int make_sigfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* One descriptor per connection: 1,000 connections need more than the
 * usual soft limit of 1,024. */
static void raise_nofile(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static int pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_echo_server --greenlets|--threads [--port P] [--hubs N]"
                    " [--cpu K] [--duration S]\n");
    exit(2);
}

static void parse(int argc, char **argv, gh_config *cfg, int *cpu)
{
    static const struct option opts[] = {
        { "greenlets", no_argument, NULL, 'g' }, { "threads", no_argument, NULL, 't' },
        { "port", required_argument, NULL, 'p' }, { "hubs", required_argument, NULL, 'h' },
        { "cpu", required_argument, NULL, 'c' }, { "duration", required_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'g': opt.start = start_greenlet; break;
        case 't': opt.start = start_thread; break;
        case 'p': opt.port = optarg; break;
        case 'h': cfg->hubs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'c': *cpu = atoi(optarg); break;
        case 'd': opt.duration_ms = strtoll(optarg, NULL, 10) * 1000; break;
        default: usage();
        }
    }
    if (!opt.start || optind != argc || *cpu < -1)
        usage();
    if (opt.duration_ms <= 0)
        opt.duration_ms = -1;
}

static int report(const char *mode, unsigned hubs, int serve_err)
{
    unsigned long errors = atomic_load(&n_errors) + (serve_err != 0);
    printf("INFO echo_server mode=%s hubs=%u accepted=%lu closed=%lu bytes=%lu resets=%lu errors=%lu\n",
           mode, hubs, atomic_load(&n_accepted), atomic_load(&n_closed),
           atomic_load(&n_bytes), atomic_load(&n_resets), errors);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    gh_config cfg = { .name = "echo_server" };
    int cpu = -1;
    parse(argc, argv, &cfg, &cpu);
    raise_nofile();
    if (cpu >= 0) {
        int err = pin_to_cpu(cpu);
        if (err) {
            fprintf(stderr, "echo_server: cannot pin to CPU %d: %s\n", cpu, strerror(err));
            return 2;
        }
        cfg.no_pin = 1;
    }
    if ((opt.sigfd = make_sigfd()) < 0) {
        perror("echo_server: signalfd");
        return 2;
    }
    if (opt.start == start_thread)
        return report("threads", 0, serve());
    void *res = NULL;
    int err = gh_run(&cfg, serve_main, NULL, &res);
    if (err) {
        fprintf(stderr, "echo_server: gh_run: %s\n", strerror(err));
        return 2;
    }
    return report("greenlets", opt.hubs, (int)(intptr_t)res);
}
