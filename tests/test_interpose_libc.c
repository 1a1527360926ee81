/* tests/test_interpose_libc.c — the interposition layer where libc does
 * the work out of the hooks' sight: descriptors closed inside libc
 * (fclose, pclose, close_range, a raw close(2)) while a hub watches their
 * number, and streams made with fdopen, whose reads are libc's own.
 *
 * And signal handlers: what they call is libc's, never a green call.
 *
 * The closing cases share one shape: a green read leaves the hub watching
 * fd N (the watch stays armed after its waiter woke, see io/poll.c); N is
 * closed some way; a new descriptor gets N; a green wait on it must see
 * it become ready.  A stale watch makes libuv believe N is registered
 * already, so the new file never reaches epoll and the wait runs into its
 * deadline scope: each case fails in 2 s instead of hanging. */
#include "gh_witness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <greenhub/interpose.h>

enum { LIMIT_MS = 2000 };

/* A greenlet that writes n bytes of buf to fd once the reader parked. */
struct later {
    int fd;
    const void *buf;
    size_t n;
};

static void *write_later(void *arg)
{
    struct later *l = arg;
    gh_yield();
    gh_yield();
    assert_int_equal(write(l->fd, l->buf, l->n), (ssize_t)l->n);
    return NULL;
}

static gh_greenlet *spawn_here(gh_fn fn, void *arg)
{
    gh_spawn_opts o = { .hub = gh_hub_index(), .pinned = 1 };
    return gh_spawn_with(&o, fn, arg);
}

/* A green read on sv[0] that parks until another greenlet writes: the hub
 * then watches sv[0], armed for reading. */
static void watch_by_reading(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct later l = { sv[1], "x", 1 };
    gh_greenlet *w = spawn_here(write_later, &l);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    gh_join(w, NULL);
}

/* An eventfd (made where the layer cannot see it: it is not a call the
 * layer takes) that gets number n, just freed.  Other threads of the
 * process (the monitor's /proc reads) open and close descriptors of their
 * own meanwhile: a lower number that came free is held until n comes;
 * n itself, taken for a moment by another thread, is waited for. */
static int eventfd_at(int n)
{
    int extra[64], k = 0, e = -1;
    for (int tries = 0; tries < 2000 && e != n; tries++) {
        e = eventfd(0, EFD_CLOEXEC);
        if (e >= 0 && e < n && k < 64) {
            extra[k++] = e;
        } else if (e != n) {
            close(e);
            gh_sleep_ms(1);
        }
    }
    while (k)
        close(extra[--k]);
    return e;
}

/* An eventfd at number n, and a green poll on it that another greenlet
 * ends by writing to it. */
static void eventfd_at_is_watched(int n)
{
    int e = eventfd_at(n);
    assert_int_equal(e, n);
    uint64_t one = 1;
    struct later l = { e, &one, sizeof one };
    gh_greenlet *w = spawn_here(write_later, &l);
    struct pollfd p = { .fd = e, .events = POLLIN };
    /* A deadline scope, not poll's own timeout: a poll that times out
     * looks once more and would find the write made meanwhile. */
    int64_t t = gh_timeout_begin(LIMIT_MS);
    int r = poll(&p, 1, -1);
    int err = errno;
    gh_timeout_end(t);
    gh_join(w, NULL);
    if (r != 1)
        fail_msg("poll on the new fd %d: %d (%s): the old watch was not retired", e, r,
                 strerror(err));
    assert_true(p.revents & POLLIN);
    close(e);
}

/* ---- fclose ---------------------------------------------------------------------- */

static void *fclose_main(void *arg)
{
    (void)arg;
    int sv[2];
    watch_by_reading(sv);
    FILE *f = fdopen(sv[0], "r");
    assert_non_null(f);
    assert_int_equal(fclose(f), 0);   /* closes sv[0] inside libc */
    assert_int_equal(close(sv[1]), 0);
    eventfd_at_is_watched(sv[0]);
    return NULL;
}

static void test_fclose_retires_the_watch(void **state)
{
    (void)state;
    gh_test_run(1, fclose_main, NULL);
}

/* ---- pclose ---------------------------------------------------------------------- */

static _Atomic int ran;

static void *note_run(void *arg)
{
    (void)arg;
    atomic_store(&ran, 1);
    return NULL;
}

static void *pclose_main(void *arg)
{
    (void)arg;
    FILE *p = popen("echo hi; sleep 0.2; exit 3", "r");
    assert_non_null(p);
    int fd = fileno(p);
    struct pollfd pf = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&pf, 1, LIMIT_MS), 1);   /* green: the hub watches fd */
    char line[8];
    assert_non_null(fgets(line, sizeof line, p));
    assert_string_equal(line, "hi\n");
    /* pclose waits 0.2 s for the command: the hub runs other greenlets */
    atomic_store(&ran, 0);
    gh_greenlet *g = spawn_here(note_run, NULL);
    int st = pclose(p);
    assert_true(atomic_load(&ran));
    gh_join(g, NULL);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    eventfd_at_is_watched(fd);
    return NULL;
}

static void test_pclose_retires_the_watch_and_parks(void **state)
{
    (void)state;
    gh_test_run(1, pclose_main, NULL);
}

/* ---- close_range ----------------------------------------------------------------- */

static void *close_range_main(void *arg)
{
    (void)arg;
    int sv[2];
    watch_by_reading(sv);
    assert_int_equal(close_range((unsigned)sv[0], (unsigned)sv[0], 0), 0);
    assert_int_equal(close(sv[1]), 0);
    eventfd_at_is_watched(sv[0]);
    /* CLOSE_RANGE_CLOEXEC closes nothing: the watch stays and works */
    watch_by_reading(sv);
    assert_int_equal(close_range((unsigned)sv[0], (unsigned)sv[0], CLOSE_RANGE_CLOEXEC), 0);
    assert_true(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
    struct later l = { sv[1], "y", 1 };
    gh_greenlet *w = spawn_here(write_later, &l);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    gh_join(w, NULL);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_close_range_retires_the_watches(void **state)
{
    (void)state;
    gh_test_run(1, close_range_main, NULL);
}

/* ---- a close no hook saw --------------------------------------------------------- */

/* A socket pair whose first gets number n, just freed (as eventfd_at).
 * n must not be closed through the layer on the way: that would retire
 * the watch this case is about. */
static void socketpair_at(int n, int nv[2])
{
    int extra[64], k = 0;
    for (int tries = 0; tries < 2000; tries++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
        if (nv[0] == n)
            break;
        if (nv[1] == n) {
            extra[k++] = nv[0];
            syscall(SYS_close, nv[1]);
        } else if (nv[0] < n && k < 63) {
            extra[k++] = nv[0];
            extra[k++] = nv[1];
        } else {
            close(nv[0]);
            close(nv[1]);
            gh_sleep_ms(1);
        }
        if (k >= 63)
            break;
    }
    while (k)
        close(extra[--k]);
}

/* The number is reused by a descriptor the layer makes (socketpair): it
 * finds the hub still watching the number and retires that first. */
static void *raw_close_main(void *arg)
{
    (void)arg;
    int sv[2], nv[2];
    watch_by_reading(sv);
    assert_int_equal(syscall(SYS_close, sv[0]), 0);   /* behind the layer's back */
    assert_int_equal(close(sv[1]), 0);
    socketpair_at(sv[0], nv);
    assert_int_equal(nv[0], sv[0]);
    struct later l = { nv[1], "z", 1 };
    gh_greenlet *w = spawn_here(write_later, &l);
    int64_t t = gh_timeout_begin(LIMIT_MS);
    char c;
    ssize_t r = read(nv[0], &c, 1);
    int e = errno;
    gh_timeout_end(t);
    gh_join(w, NULL);
    if (r != 1)
        fail_msg("read on the reused fd %d: %zd (%s)", nv[0], r, strerror(e));
    close(nv[0]);
    close(nv[1]);
    return NULL;
}

static void test_reused_number_retires_a_stale_watch(void **state)
{
    (void)state;
    gh_test_run(1, raw_close_main, NULL);
}

/* ---- fdopen ---------------------------------------------------------------------- */

static void *write_line_late(void *arg)
{
    int fd = *(int *)arg;
    struct timespec ts = { 0, 50000000 };
    nanosleep(&ts, NULL);   /* a plain thread: a real sleep */
    assert_int_equal(write(fd, "line two\n", 9), 9);
    return NULL;
}

/* After green reads made the socket non-blocking underneath, a stream on
 * it must still block as the caller believes, not fail with EAGAIN: its
 * reads are libc's own, which no hook sees. */
static void *fdopen_main(void *arg)
{
    (void)arg;
    int sv[2];
    watch_by_reading(sv);
    assert_true(kernel_nonblock(sv[0]));
    FILE *f = fdopen(sv[0], "r");
    assert_non_null(f);
    assert_false(kernel_nonblock(sv[0]));
    assert_int_equal(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_line_late, &sv[1]), 0);
    char line[16];
    char *s = fgets(line, sizeof line, f);   /* blocks this hub: nothing else runs */
    int e = errno;
    pthread_join(t, NULL);
    if (!s)
        fail_msg("fgets on an fdopen'd socket failed: %s", strerror(e));
    assert_string_equal(line, "line two\n");
    fclose(f);
    close(sv[1]);
    return NULL;
}

static void test_fdopen_stream_blocks_as_believed(void **state)
{
    (void)state;
    gh_test_run(1, fdopen_main, NULL);
}

/* A descriptor the caller made non-blocking stays so: its stream sees
 * EAGAIN as it would without the layer. */
static void *fdopen_nb_main(void *arg)
{
    (void)arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    FILE *f = fdopen(sv[0], "r");
    assert_non_null(f);
    assert_true(kernel_nonblock(sv[0]));
    char line[16];
    errno = 0;
    assert_null(fgets(line, sizeof line, f));
    assert_int_equal(errno, EAGAIN);
    fclose(f);
    close(sv[1]);
    return NULL;
}

static void test_fdopen_keeps_callers_nonblocking(void **state)
{
    (void)state;
    gh_test_run(1, fdopen_nb_main, NULL);
}

/* ---- signal handlers ------------------------------------------------------------- */

/* What a handler's read of a managed socket (blocking for the caller,
 * non-blocking underneath, no data) returned. */
static int h_fd = -1;
static volatile sig_atomic_t h_runs;
static ssize_t h_r;
static int h_errno;

/* Under ThreadSanitizer the layer does not wrap handlers (TSan runs them
 * from its own code, see io/real.h): the read is left out there, the rest
 * of the case still runs. */
#ifdef __SANITIZE_THREAD__
enum { HANDLER_READS = 0 };
#else
enum { HANDLER_READS = 1 };
#endif

static void handler_reads(int sig)
{
    (void)sig;
    int e = errno;
    char c;
    if (HANDLER_READS) {
        h_r = read(h_fd, &c, 1);
        h_errno = errno;
    }
    h_runs++;
    errno = e;
}

static void info_handler_reads(int sig, siginfo_t *si, void *uc)
{
    (void)si, (void)uc;
    handler_reads(sig);
}

/* Raises SIGUSR1 on this greenlet (its hub's thread runs the handler at
 * once) inside a deadline scope: a handler whose read went green would
 * park the greenlet from inside the handler until the scope ends. */
static void raise_and_check(void)
{
    int before = h_runs;
    int64_t t = gh_timeout_begin(LIMIT_MS);
    raise(SIGUSR1);
    gh_timeout_end(t);
    assert_int_equal(h_runs, before + 1);
    if (HANDLER_READS && (h_r != -1 || h_errno != EAGAIN))
        fail_msg("the handler's read: %zd (%s), not libc's EAGAIN", h_r, strerror(h_errno));
}

static void *handler_main(void *arg)
{
    (void)arg;
    int sv[2];
    watch_by_reading(sv);   /* sv[0]: non-blocking underneath, empty */
    assert_true(kernel_nonblock(sv[0]));
    h_fd = sv[0];

    struct sigaction a, o;
    memset(&a, 0, sizeof a);
    a.sa_handler = handler_reads;
    assert_int_equal(sigaction(SIGUSR1, &a, &o), 0);
    assert_ptr_equal(o.sa_handler, SIG_DFL);
    raise_and_check();
    /* the program sees its own handler, however asked */
    assert_int_equal(sigaction(SIGUSR1, NULL, &o), 0);
    assert_ptr_equal(o.sa_handler, handler_reads);
    assert_false(o.sa_flags & SA_SIGINFO);
    assert_ptr_equal(signal(SIGUSR1, handler_reads), handler_reads);
    raise_and_check();   /* installed by signal() */

    /* SA_SIGINFO, and SA_RESETHAND: the kernel's reset shows */
    a.sa_flags = SA_SIGINFO | SA_RESETHAND;
    a.sa_sigaction = info_handler_reads;
    assert_int_equal(sigaction(SIGUSR1, &a, &o), 0);
    assert_ptr_equal(o.sa_handler, handler_reads);
    assert_int_equal(sigaction(SIGUSR1, NULL, &o), 0);
    assert_true(o.sa_flags & SA_SIGINFO);
    assert_ptr_equal(o.sa_sigaction, info_handler_reads);
    raise_and_check();
    assert_int_equal(sigaction(SIGUSR1, NULL, &o), 0);
    assert_ptr_equal(o.sa_handler, SIG_DFL);

    /* SIG_IGN and SIG_DFL pass through */
    assert_ptr_equal(signal(SIGUSR1, SIG_IGN), SIG_DFL);
    raise(SIGUSR1);
    assert_ptr_equal(signal(SIGUSR1, SIG_DFL), SIG_IGN);
    /* ... also given with SA_SIGINFO (the same storage): ignored stays
     * ignored, not a call to address 1 */
    a.sa_flags = SA_SIGINFO;
    a.sa_handler = SIG_IGN;
    assert_int_equal(sigaction(SIGUSR1, &a, NULL), 0);
    raise(SIGUSR1);
    assert_int_equal(sigaction(SIGUSR1, NULL, &o), 0);
    assert_ptr_equal(o.sa_handler, SIG_IGN);
    /* and the default stays the default: SIGUSR1 ends a child (not under
     * ThreadSanitizer, where the layer leaves sigaction to TSan's own
     * interceptor, which takes this for a handler the same way) */
    pid_t pid = HANDLER_READS ? fork() : -2;
    assert_true(pid >= 0 || pid == -2);
    if (pid == 0) {
        a.sa_handler = SIG_DFL;
        sigaction(SIGUSR1, &a, NULL);
        raise(SIGUSR1);
        _exit(0);
    }
    int st = 0;
    if (pid > 0) {
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);
    }
    assert_ptr_equal(signal(SIGUSR1, SIG_DFL), SIG_IGN);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_signal_handlers_get_libc_calls(void **state)
{
    (void)state;
    gh_test_run(1, handler_main, NULL);
}

/* A handler that leaves by siglongjmp: the layer is back on for the code
 * it jumps to (a green read under a deadline scope ends with ETIMEDOUT; a
 * libc read of the non-blocking-underneath socket would give EAGAIN). */
static sigjmp_buf jump_back;

static void jump_out(int sig)
{
    (void)sig;
    siglongjmp(jump_back, 1);
}

static int scoped_read_errno(int fd)
{
    char c;
    int64_t t = gh_timeout_begin(30);
    ssize_t r = read(fd, &c, 1);
    int e = errno;
    gh_timeout_end(t);
    return r < 0 ? e : 0;
}

static void *longjmp_main(void *arg)
{
    (void)arg;
    int sv[2];
    watch_by_reading(sv);
    assert_int_equal(scoped_read_errno(sv[0]), ETIMEDOUT);
    assert_ptr_equal(signal(SIGUSR2, jump_out), SIG_DFL);
    if (sigsetjmp(jump_back, 1) == 0) {
        raise(SIGUSR2);
        fail_msg("the handler did not jump");
    }
    assert_int_equal(scoped_read_errno(sv[0]), ETIMEDOUT);
    signal(SIGUSR2, SIG_DFL);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

static void test_jump_out_of_a_handler_turns_the_layer_back_on(void **state)
{
    (void)state;
    gh_test_run(1, longjmp_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fclose_retires_the_watch),
    cmocka_unit_test(test_pclose_retires_the_watch_and_parks),
    cmocka_unit_test(test_close_range_retires_the_watches),
    cmocka_unit_test(test_reused_number_retires_a_stale_watch),
    cmocka_unit_test(test_fdopen_stream_blocks_as_believed),
    cmocka_unit_test(test_fdopen_keeps_callers_nonblocking),
    cmocka_unit_test(test_signal_handlers_get_libc_calls),
    cmocka_unit_test(test_jump_out_of_a_handler_turns_the_layer_back_on),
};
GH_TEST_MAIN(tests)
