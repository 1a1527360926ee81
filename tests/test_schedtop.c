/* tests/test_schedtop.c — tools/schedtop against tests/shm_fake.c, a fake
 * publisher whose counters follow the clock (so its rates are known): the
 * process list, --json (valid JSON, fields by name, counters that move,
 * rates, escaped names), --once, the live view under a pseudo-terminal (q,
 * s, +, resize, a process that stops or is killed while watched), and every
 * error: bad arguments, no process, no segment, a stale segment (removed),
 * wrong magic or version, a truncated file, a segment that never settles,
 * another user's segment.  Both programs run as child processes.
 *
 * Where it may (as root), each case runs in a mount namespace of its own
 * with an empty /dev/shm, so it neither sees nor removes the segments of
 * other processes on the machine; elsewhere the cases that need an empty
 * /dev/shm skip that part.
 *
 * Not on gh_test.h: that brings greenhub.h, whose errno is the library's,
 * and neither program here links the library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shm_layout.h"   /* sizes, for the messages about them */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SCHEDTOP_BIN
#error "SCHEDTOP_BIN: the path of tools/schedtop (tests/CMakeLists.txt sets it)"
#endif
#ifndef DEMO_BIN
#error "DEMO_BIN: the path of the schedtop demo (tests/CMakeLists.txt sets it)"
#endif
#ifndef SHM_FAKE_BIN
#error "SHM_FAKE_BIN: the path of tests/shm_fake (tests/CMakeLists.txt sets it)"
#endif

#define RUN_TIMEOUT_MS 15000

static int isolated;   /* this process has a private, empty /dev/shm */

/* A private /dev/shm for this process and its children, when allowed. */
static void isolate(void)
{
    static int tried;
    if (tried++)
        return;
    isolated = unshare(CLONE_NEWNS) == 0 &&
               mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
               mount("schedtop-test", "/dev/shm", "tmpfs", 0, "mode=1777") == 0;
    if (!isolated)
        fprintf(stderr, "test_schedtop: no private /dev/shm (%s); using the "
                "machine's\n", strerror(errno));
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Children --------------------------------------------------------------------- */

/* Starts argv[0] with stdout / stderr on out / err (-1: inherited); it gets
 * `death` if this process dies first. */
static pid_t spawn(const char *const argv[], int out, int err, int death)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, death);
        if (out >= 0)
            dup2(out, STDOUT_FILENO);
        if (err >= 0)
            dup2(err, STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Waits for pid's end; its exit status, or 128 + the signal that ended it.
 * Fails the test (after killing it) past timeout_ms. */
static int wait_exit(pid_t pid, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        assert_true(r >= 0);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("process %d did not end within %u ms", (int)pid, timeout_ms);
        }
        sleep_ms(5);
    }
}

/* A pid that no process has: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(wait_exit(pid, 5000), 0);
    return pid;
}

/* Starts shm_fake with up to two arguments and waits for its "ready". */
static pid_t fake_start(const char *a1, const char *a2)
{
    int p[2];
    char buf[16] = { 0 };
    assert_int_equal(pipe(p), 0);
    const char *argv[] = { SHM_FAKE_BIN, a1, a2, NULL };
    pid_t pid = spawn(argv, p[1], -1, SIGTERM);
    close(p[1]);
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    if (poll(&pfd, 1, 5000) != 1 || read(p[0], buf, sizeof buf - 1) <= 0)
        fail_msg("shm_fake %s did not get ready", a1 ? a1 : "");
    close(p[0]);
    assert_string_equal(buf, "ready\n");
    return pid;
}

/* SIGTERM: the fake stops like a runtime (running = 0, unlink). */
static void fake_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid, 5000), 0);
}

static int segment_exists(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/greenhub.%d", (int)pid);
    return access(path, F_OK) == 0;
}

/* Running schedtop -------------------------------------------------------------- */

struct run {
    int status;
    char out[65536];
    char err[8192];
};

static void read_all(int fd, char *buf, size_t len)
{
    ssize_t got = pread(fd, buf, len - 1, 0);
    buf[got > 0 ? got : 0] = '\0';
    close(fd);
}

/* Runs schedtop with up to three arguments; checks that it ended by itself
 * (never a crash: no signal). */
static void run_tool(struct run *r, const char *a1, const char *a2, const char *a3)
{
    int out = memfd_create("out", 0), err = memfd_create("err", 0);
    assert_true(out >= 0 && err >= 0);
    const char *argv[] = { SCHEDTOP_BIN, a1, a2, a3, NULL };
    r->status = wait_exit(spawn(argv, out, err, SIGKILL), RUN_TIMEOUT_MS);
    read_all(out, r->out, sizeof r->out);
    read_all(err, r->err, sizeof r->err);
    if (r->status >= 128)
        fail_msg("schedtop died of signal %d; stderr: %s", r->status - 128, r->err);
}

/* schedtop [opt] pid */
static void run_pid(struct run *r, const char *opt, pid_t pid)
{
    char arg[16];
    snprintf(arg, sizeof arg, "%d", (int)pid);
    if (opt)
        run_tool(r, opt, arg, NULL);
    else
        run_tool(r, arg, NULL, NULL);
}

/* Fails, showing both outputs, unless `hay` holds `needle`. */
#define assert_has(r, hay, needle)                                                 \
    do {                                                                           \
        if (!strstr((hay), (needle)))                                             \
            fail_msg("expected \"%s\" in schedtop's output\nstdout:\n%s\nstderr:\n%s", \
                     (needle), (r)->out, (r)->err);                                \
    } while (0)

/* JSON --------------------------------------------------------------------------- */

static const char *jv_value(const char *p);

static const char *jv_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
        p++;
    return p;
}

static const char *jv_string(const char *p)
{
    for (p++; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p != '\\')
            continue;
        p++;
        if (*p == 'u') {
            for (int i = 1; i <= 4; i++)
                if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                    return NULL;
            p += 4;
        } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *jv_number(const char *p)
{
    const char *start;
    if (*p == '-')
        p++;
    for (start = p; *p >= '0' && *p <= '9'; p++)
        ;
    if (p == start)
        return NULL;
    if (*p == '.') {
        for (start = ++p; *p >= '0' && *p <= '9'; p++)
            ;
        if (p == start)
            return NULL;
    }
    return p;
}

/* '{' members '}' or '[' values ']'. */
static const char *jv_container(const char *p, char close, int members)
{
    p = jv_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (members) {
            if (*p != '"' || !(p = jv_string(p)) || *(p = jv_ws(p)) != ':')
                return NULL;
            p++;
        }
        if (!(p = jv_value(p)))
            return NULL;
        p = jv_ws(p);
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p = jv_ws(p + 1);
    }
}

static const char *jv_value(const char *p)
{
    p = jv_ws(p);
    switch (*p) {
    case '{': return jv_container(p, '}', 1);
    case '[': return jv_container(p, ']', 0);
    case '"': return jv_string(p);
    case 't': return strncmp(p, "true", 4) ? NULL : p + 4;
    case 'f': return strncmp(p, "false", 5) ? NULL : p + 5;
    case 'n': return strncmp(p, "null", 4) ? NULL : p + 4;
    default: return jv_number(p);
    }
}

static int json_valid(const char *s)
{
    const char *p = jv_value(s);
    return p && *jv_ws(p) == '\0';
}

/* The number after the first "key": at or after `from`. */
static double json_num(const char *from, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = from ? strstr(from, k) : NULL;
    if (!p)
        fail_msg("no \"%s\" in %s", key, from ? from : "(null)");
    return strtod(p + strlen(k), NULL);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* The cases ---------------------------------------------------------------------- */

/* The real runtime: schedtop_demo (bench/schedtop_demo.c) on 2 hubs, an
 * uneven load whose "blocker" sleeps 300 ms in usleep every 400 ms. */
static pid_t demo_start(void)
{
    int p[2];
    char buf[256] = { 0 };
    assert_int_equal(pipe(p), 0);
    setenv("GREENHUB_HUBS", "2", 1);
    setenv("GREENHUB_PIN", "0", 1);
    const char *argv[] = { DEMO_BIN, "0", "400", NULL };
    pid_t pid = spawn(argv, p[1], -1, SIGTERM);
    close(p[1]);
    struct pollfd pfd = { .fd = p[0], .events = POLLIN };
    if (poll(&pfd, 1, 10000) != 1 || read(p[0], buf, sizeof buf - 1) <= 0 ||
        !strstr(buf, "watch it with"))
        fail_msg("schedtop_demo did not start: <%s>", buf);
    close(p[0]);
    return pid;
}

/* Sum of a hub counter over the "hubs" array of a --json output. */
static double hubs_sum(const char *json, const char *key)
{
    const char *p = strstr(json, "\"hubs\":[");
    const char *end = p ? strstr(p, "\"blocked\":") : NULL;
    double sum = 0;
    assert_non_null(p);
    for (p = strstr(p, "\"index\":"); p && (!end || p < end); p = strstr(p + 1, "\"index\":"))
        sum += json_num(p, key);
    return sum;
}

static void test_json_of_a_real_runtime_moves_steals_and_names_blocker(void **state)
{
    (void)state;
    isolate();
    pid_t demo = demo_start();
    struct run r1, r2;
    run_pid(&r1, "--json", demo);
    assert_int_equal(r1.status, 0);
    if (!json_valid(r1.out))
        fail_msg("not JSON: %s", r1.out);
    assert_has(&r1, r1.out, "\"runtime_name\":\"schedtop-demo\"");
    assert_int_equal((int)json_num(r1.out, "nhubs"), 2);
    assert_true(json_num(r1.out, "alive") >= 200);   /* the sleepers at least */
    assert_true(json_num(r1.out, "stack_resident") > 0);
    /* Counters move; the feeder's bursts get stolen; the blocker is named
     * (it may take a few of its 400 ms rounds on a loaded machine). */
    int named = 0;
    for (int i = 0; i < 40 && !named; i++) {
        sleep_ms(250);
        run_pid(&r2, "--json", demo);
        assert_int_equal(r2.status, 0);
        named = strstr(r2.out, "\"name\":\"blocker\"") != NULL;
    }
    if (!named)
        fail_msg("no report names the blocker after 10 s: %s", r2.out);
    if (!(hubs_sum(r2.out, "switches") > hubs_sum(r1.out, "switches")) ||
        !(hubs_sum(r2.out, "steals") > 0) ||
        hubs_sum(r2.out, "steals") != hubs_sum(r2.out, "stolen"))
        fail_msg("switches %.0f -> %.0f, steals %.0f, stolen %.0f",
                 hubs_sum(r1.out, "switches"), hubs_sum(r2.out, "switches"),
                 hubs_sum(r2.out, "steals"), hubs_sum(r2.out, "stolen"));
    /* It stops cleanly on SIGTERM, and its segment goes with it. */
    kill(demo, SIGTERM);
    assert_int_equal(wait_exit(demo, 10000), 0);
    assert_false(segment_exists(demo));
}


static void test_help_and_bad_arguments(void **state)
{
    (void)state;
    struct run r;
    run_tool(&r, "--help", NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_has(&r, r.out, "usage: schedtop");
    assert_has(&r, r.out, "--json PID");
    run_tool(&r, "--bogus", NULL, NULL);
    assert_int_equal(r.status, 2);
    assert_has(&r, r.err, "unknown option --bogus");
    run_tool(&r, "--once", NULL, NULL);
    assert_int_equal(r.status, 2);
    assert_has(&r, r.err, "--once needs a PID");
    run_tool(&r, "--once", "--json", "1");
    assert_int_equal(r.status, 2);
    const char *bad[] = { "abc", "12x", "0", " 5", "+7", "99999999999", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_tool(&r, "--once", bad[i], NULL);
        assert_int_equal(r.status, 2);
        assert_has(&r, r.err, "is not a process id");
    }
    run_tool(&r, "1", "2", NULL);
    assert_int_equal(r.status, 2);
    assert_has(&r, r.err, "too many arguments");
}

static void test_json_has_every_field_and_counters_move(void **state)
{
    (void)state;
    isolate();
    pid_t fake = fake_start(NULL, NULL);
    struct run r1, r2;
    run_pid(&r1, "--json", fake);
    run_pid(&r2, "--json", fake);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    if (!json_valid(r1.out))
        fail_msg("not valid JSON:\n%s", r1.out);
    assert_true(json_valid(r2.out));
    if (strstr(r1.out, "\"rates\":null"))
        fail_msg("no rates (the fake publishes every 10 ms):\n%s", r1.out);
    assert_int_equal((int)json_num(r1.out, "pid"), (int)fake);
    assert_int_equal((int)json_num(r1.out, "nhubs"), 2);
    assert_int_equal((int)json_num(r1.out, "version"), GH_SHM_VERSION);
    assert_int_equal((int)json_num(r1.out, "running"), 1);
    assert_has(&r1, r1.out, "\"magic\":3549493225444427079,");   /* GH_SHM_MAGIC */
    assert_has(&r1, r1.out, "\"guard_mode\":\"madvise\"");
    assert_has(&r1, r1.out, "\"command\":\"shm_fake\"");
    assert_has(&r1, r1.out, "\"runtime_name\":\"fake-rt\"");
    assert_has(&r1, r1.out, "\"stack_resident\":1048576,");
    assert_has(&r1, r1.out, "\"stack_resident_unowned\":131072,");
    assert_int_equal(count(r1.out, "\"index\":"), 2);
    /* Per hub: resident stack bytes, after the cached ones. */
    const char *hub0 = strstr(r1.out, "\"index\":0"), *hub1 = strstr(r1.out, "\"index\":1");
    assert_non_null(hub0);
    assert_non_null(hub1);
    assert_has(&r1, hub0, "\"stack_cached\":262144,\"stack_resident\":393216,");
    assert_has(&r1, hub1, "\"stack_cached\":262144,\"stack_resident\":524288,");
    assert_true(strstr(hub0, "\"stack_resident\":393216,") < hub1);
    /* Both hubs' counters grew between the two runs. */
    const char *h1 = strstr(r1.out, "\"hubs\":["), *h2 = strstr(r2.out, "\"hubs\":[");
    double s1 = json_num(h1, "switches"), s2 = json_num(h2, "switches");
    if (!(s2 > s1))
        fail_msg("hub 0 switches did not grow: %.0f then %.0f", s1, s2);
    assert_true(json_num(strstr(h2, "\"index\":1"), "switches") >
                json_num(strstr(h1, "\"index\":1"), "switches"));
    /* Rates: the fake's hub 0 switches 100,000/s, hub 1 50,000/s. */
    double r0 = json_num(strstr(h1, "\"rates\":{"), "switches");
    double rr1 = json_num(strstr(strstr(h1, "\"index\":1"), "\"rates\":{"), "switches");
    if (r0 < 90000 || r0 > 110000 || rr1 < 45000 || rr1 > 55000)
        fail_msg("rates %.1f and %.1f, expected about 100000 and 50000", r0, rr1);
    assert_true(json_num(r1.out, "rates_interval_ns") >= 150e6);
    /* Names: quote, backslash and tab escaped; one blocking report. */
    assert_has(&r1, r1.out, "\"name\":\"say \\\"hi\\\" \\\\ now\"");
    assert_has(&r1, r1.out, "\"current_name\":\"worker-b\\tx\"");
    assert_int_equal(count(r1.out, "\"seqno\":"), 1);
    assert_int_equal((int)json_num(strstr(r1.out, "\"blocked\":["), "greenlet_id"), 7);
    fake_stop(fake);
}

static void test_once_prints_one_snapshot(void **state)
{
    (void)state;
    isolate();
    pid_t fake = fake_start(NULL, NULL);
    struct run r;
    char pidline[64];
    run_pid(&r, "--once", fake);
    assert_int_equal(r.status, 0);
    snprintf(pidline, sizeof pidline, "pid %d (shm_fake)  runtime \"fake-rt\"", (int)fake);
    assert_has(&r, r.out, pidline);
    assert_has(&r, r.out, "hubs 2");
    assert_has(&r, r.out, "guard madvise, block threshold 100 ms");
    assert_has(&r, r.out, "greenlets: ");
    assert_has(&r, r.out, "20 alive: 2 running, 6 runnable, 12 waiting");
    assert_has(&r, r.out, "memory: stacks 3.0 MiB mapped, 1.0 MiB resident; process rss 8.0 MiB");
    assert_has(&r, r.out, "two samples at least 200 ms apart");
    assert_has(&r, r.out, "\n  0    0 running ");
    assert_has(&r, r.out, "\n  1    1 searching ");
    assert_has(&r, r.out, "worker-a #100");
    assert_has(&r, r.out, "worker-b\\x09x #101");   /* the tab, made visible */
    /* STK MiB, then RES MiB (resident: 0.375 and 0.5 MiB; all: 0.875). */
    assert_has(&r, r.out, " TIMERS STK MiB RES MiB  CURRENT\n");
    assert_has(&r, r.out, "      2     1.0     0.4  worker-a #100 ");
    assert_has(&r, r.out, "      2     2.0     0.5  worker-b\\x09x #101 ");
    assert_has(&r, r.out, "      4     3.0     0.9  \n");
    assert_has(&r, r.out, "\nall ");
    assert_has(&r, r.out, "1 so far, most recent first");
    assert_has(&r, r.out, "hub 1   say \"hi\" \\ now (#7)  350 ms");
    assert_true(strstr(r.out, "SWITCH/s") != NULL && strstr(r.out, "\n  0 ") != NULL);
    fake_stop(fake);
}

static void test_list_shows_processes_and_removes_stale_segments(void **state)
{
    (void)state;
    isolate();
    struct run r;
    char row[32], note[128];
    pid_t dead = dead_pid();
    snprintf(row, sizeof row, "%d", (int)dead);
    assert_int_equal(wait_exit(fake_start("--stale", row), 5000), 0);
    assert_true(segment_exists(dead));
    pid_t fake = fake_start(NULL, NULL);
    run_tool(&r, NULL, NULL, NULL);
    assert_int_equal(r.status, 0);
    assert_has(&r, r.out, "COMMAND");
    snprintf(row, sizeof row, "%7d  shm_fake", (int)fake);
    assert_has(&r, r.out, row);
    snprintf(note, sizeof note, "process %d no longer exists: removed its stale "
             "segment /dev/shm/greenhub.%d", (int)dead, (int)dead);
    assert_has(&r, r.err, note);
    assert_false(segment_exists(dead));
    assert_true(segment_exists(fake));
    fake_stop(fake);
    assert_false(segment_exists(fake));
    if (isolated) {
        run_tool(&r, NULL, NULL, NULL);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.out, "no greenhub processes\n");
    }
}

static void test_stale_segment_of_a_dead_pid_is_removed(void **state)
{
    (void)state;
    isolate();
    struct run r;
    char arg[16], msg[128];
    pid_t dead = dead_pid();
    snprintf(arg, sizeof arg, "%d", (int)dead);
    assert_int_equal(wait_exit(fake_start("--stale", arg), 5000), 0);
    assert_true(segment_exists(dead));
    run_pid(&r, "--once", dead);
    assert_int_equal(r.status, 1);
    snprintf(msg, sizeof msg, "process %d no longer exists: removed its stale segment", (int)dead);
    assert_has(&r, r.err, msg);
    assert_false(segment_exists(dead));
    run_pid(&r, "--json", dead);
    assert_int_equal(r.status, 1);
    snprintf(msg, sizeof msg, "schedtop: no process %d\n", (int)dead);
    assert_string_equal(r.err, msg);
    assert_string_equal(r.out, "");
}

static void test_stale_segment_of_a_reused_pid_is_removed(void **state)
{
    (void)state;
    isolate();
    struct run r;
    char arg[16], msg[128];
    pid_t other = fork();   /* a process that started after the segment's runtime */
    assert_true(other >= 0);
    if (other == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pause();
        _exit(0);
    }
    snprintf(arg, sizeof arg, "%d", (int)other);
    assert_int_equal(wait_exit(fake_start("--stale", arg), 5000), 0);
    run_pid(&r, "--once", other);
    kill(other, SIGKILL);
    wait_exit(other, 5000);
    assert_int_equal(r.status, 1);
    snprintf(msg, sizeof msg, "pid %d now belongs to another process: removed its "
             "stale segment", (int)other);
    assert_has(&r, r.err, msg);
    assert_false(segment_exists(other));
}

static void test_a_process_without_segment_is_not_greenhub(void **state)
{
    (void)state;
    isolate();
    struct run r;
    char msg[128];
    run_pid(&r, "--once", getpid());
    assert_int_equal(r.status, 1);
    snprintf(msg, sizeof msg, "process %d (test_schedtop) is not a greenhub process",
             (int)getpid());
    assert_has(&r, r.err, msg);
    run_pid(&r, NULL, getpid());   /* the live view checks first, too */
    assert_int_equal(r.status, 1);
    assert_has(&r, r.err, "is not a greenhub process");
}

/* Starts a bad fake, runs --once on it, checks the message and that the
 * segment of a live process was left alone. */
static void check_bad_segment(const char *mode, const char *message)
{
    isolate();
    struct run r;
    pid_t fake = fake_start(mode, NULL);
    uint64_t t0 = now_ms();
    run_pid(&r, "--once", fake);
    assert_int_equal(r.status, 1);
    assert_has(&r, r.err, message);
    assert_int_equal(count(r.err, "\n"), 1);   /* one line */
    if (now_ms() - t0 > 5000)
        fail_msg("%s took %llu ms", mode, (unsigned long long)(now_ms() - t0));
    assert_true(segment_exists(fake));
    run_tool(&r, NULL, NULL, NULL);   /* the list reports it, goes on */
    assert_int_equal(r.status, 0);
    assert_has(&r, r.err, message);
    fake_stop(fake);
}

static void test_wrong_magic_is_refused(void **state)
{
    (void)state;
    check_bad_segment("--bad-magic", "is not a greenhub segment (magic 0x1122334455667788");
}

static void test_unknown_version_is_refused(void **state)
{
    (void)state;
    check_bad_segment("--bad-version", "has layout version 99; this schedtop reads version 2");
}

static void test_truncated_segment_is_refused(void **state)
{
    (void)state;
    char msg[128];
    size_t hub = sizeof(struct gh_shm_hub), total = sizeof(struct gh_shm_header) + 2 * hub;
    snprintf(msg, sizeof msg, "is truncated: the file has %zu bytes, its header says %zu",
             total - hub, total);
    check_bad_segment("--truncated", msg);
}

static void test_a_segment_that_never_settles_is_reported(void **state)
{
    (void)state;
    check_bad_segment("--stuck", "kept changing: no consistent sample in 100 tries");
}

static void test_another_users_segment_is_refused(void **state)
{
    (void)state;
    if (getuid() != 0)
        skip();   /* only root can give a file away */
    isolate();
    struct run r;
    pid_t fake = fake_start("--chown", "65534");
    run_pid(&r, "--json", fake);
    assert_int_equal(r.status, 1);
    assert_has(&r, r.err, "(uid 65534), not to you: refused");
    assert_string_equal(r.out, "");
    char pid[16];
    snprintf(pid, sizeof pid, "%7d", (int)fake);
    run_tool(&r, NULL, NULL, NULL);   /* not listed either */
    assert_int_equal(r.status, 0);
    if (strstr(r.out, pid))
        fail_msg("another user's process listed:\n%s", r.out);
    fake_stop(fake);
}

/* The live view, under a pseudo-terminal ------------------------------------------ */

struct pty {
    int fd;
    pid_t pid;
    size_t n;
    char buf[1 << 20];   /* everything schedtop wrote (the last MiB) */
};

static struct pty tty;

static void pty_start(struct pty *t, pid_t target, int cols, int rows)
{
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    char arg[16];
    snprintf(arg, sizeof arg, "%d", (int)target);
    t->n = 0;
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TERM", "xterm", 1);
        unsetenv("LINES");
        unsetenv("COLUMNS");
        execl(SCHEDTOP_BIN, SCHEDTOP_BIN, arg, (char *)NULL);
        _exit(127);
    }
}

/* Reads what schedtop wrote for up to ms milliseconds. */
static void pty_pump(struct pty *t, int ms)
{
    struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
    while (poll(&pfd, 1, ms) == 1) {
        if (t->n > sizeof t->buf - 4096) {
            memmove(t->buf, t->buf + sizeof t->buf / 2, t->n - sizeof t->buf / 2);
            t->n -= sizeof t->buf / 2;
        }
        ssize_t got = read(t->fd, t->buf + t->n, sizeof t->buf - t->n);
        if (got <= 0)
            return;   /* EIO: the other side is closed */
        t->n += (size_t)got;
        ms = 0;
    }
}

/* Waits (up to timeout_ms) until the output after `from` holds needle. */
static void pty_expect_within(struct pty *t, size_t from, const char *needle,
                              unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!memmem(t->buf + from, t->n - from, needle, strlen(needle))) {
        if (now_ms() > end)
            fail_msg("the live view never showed \"%s\"; it wrote %zu bytes",
                     needle, t->n);
        pty_pump(t, 50);
    }
}

static void pty_expect(struct pty *t, size_t from, const char *needle)
{
    pty_expect_within(t, from, needle, 10000);
}

static void pty_key(struct pty *t, const char *keys)
{
    assert_int_equal(write(t->fd, keys, strlen(keys)), (ssize_t)strlen(keys));
}

/* schedtop's exit status, reading its output meanwhile. */
static int pty_wait_exit(struct pty *t, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    int st;
    for (;;) {
        pty_pump(t, 20);
        pid_t r = waitpid(t->pid, &st, WNOHANG);
        if (r == t->pid) {
            pty_pump(t, 50);
            close(t->fd);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (now_ms() > end) {
            kill(t->pid, SIGKILL);
            fail_msg("the live view did not end within %u ms", timeout_ms);
        }
    }
}

static void test_live_view_keys_resize_and_q(void **state)
{
    (void)state;
    isolate();
    pid_t fake = fake_start(NULL, NULL);
    pty_start(&tty, fake, 130, 30);
    pty_expect(&tty, 0, "worker-a");      /* one row per hub */
    pty_expect(&tty, 0, "worker-b");
    pty_expect(&tty, 0, "sort: index");
    pty_expect(&tty, 0, "rates: - until the next sample");   /* the first frame */
    pty_expect(&tty, 0, "per second over the last");        /* the second */
    /* curses sends only what changed: each key is followed by Ctrl-L, so the
     * whole status line is sent again. */
    size_t mark = tty.n;
    pty_key(&tty, "s\f");
    pty_expect(&tty, mark, "sort: switches/s");
    mark = tty.n;
    pty_key(&tty, "+\f");
    pty_expect(&tty, mark, "refresh: 2 s");
    mark = tty.n;
    pty_key(&tty, "--\f");
    pty_expect(&tty, mark, "refresh: 0.5 s");
    mark = tty.n;
    pty_key(&tty, "+++++\f");   /* stops at 10 s */
    pty_expect(&tty, mark, "refresh: 10 s");
    /* A resize redraws at once (no refresh is due for 10 s).  13 lines
     * leave one for the hub rows: they give way to a note. */
    struct winsize ws = { .ws_row = 13, .ws_col = 60 };
    mark = tty.n;
    assert_int_equal(ioctl(tty.fd, TIOCSWINSZ, &ws), 0);
    pty_expect_within(&tty, mark, "2 more hubs", 3000);
    pty_key(&tty, "q");
    int status = pty_wait_exit(&tty, 5000);
    if (status != 0)
        fail_msg("exit status %d after q; output tail: %.300s", status,
                 tty.buf + (tty.n > 300 ? tty.n - 300 : 0));
    assert_true(segment_exists(fake));   /* a reader leaves it alone */
    fake_stop(fake);
}

static void test_live_view_ends_when_the_runtime_stops(void **state)
{
    (void)state;
    isolate();
    char msg[64];
    pid_t fake = fake_start(NULL, NULL);
    pty_start(&tty, fake, 130, 30);
    pty_expect(&tty, 0, "worker-b");
    size_t mark = tty.n;
    fake_stop(fake);   /* running = 0, unlink, exit (reaped) */
    assert_int_equal(pty_wait_exit(&tty, 5000), 1);
    snprintf(msg, sizeof msg, "schedtop: process %d exited", (int)fake);
    pty_expect(&tty, mark, msg);
}

static void test_live_view_ends_when_the_runtime_stops_in_a_live_process(void **state)
{
    (void)state;
    isolate();
    char msg[96];
    pid_t fake = fake_start(NULL, NULL);
    pty_start(&tty, fake, 130, 30);
    pty_expect(&tty, 0, "worker-a");
    size_t mark = tty.n;
    kill(fake, SIGUSR1);   /* running = 0, unlink; the process lives on */
    assert_int_equal(pty_wait_exit(&tty, 5000), 1);
    snprintf(msg, sizeof msg, "schedtop: process %d stopped its greenhub runtime", (int)fake);
    pty_expect(&tty, mark, msg);
    assert_int_equal(kill(fake, 0), 0);
    fake_stop(fake);
}

static void test_live_view_ends_when_the_process_is_killed(void **state)
{
    (void)state;
    isolate();
    char msg[128];
    pid_t fake = fake_start(NULL, NULL);
    pty_start(&tty, fake, 130, 30);
    pty_expect(&tty, 0, "worker-a");
    size_t mark = tty.n;
    kill(fake, SIGKILL);   /* no clean-up: the segment stays, still running = 1 */
    assert_int_equal(wait_exit(fake, 5000), 128 + SIGKILL);
    assert_int_equal(pty_wait_exit(&tty, 5000), 1);
    snprintf(msg, sizeof msg, "schedtop: process %d exited; removed its stale segment",
             (int)fake);
    pty_expect(&tty, mark, msg);
    assert_false(segment_exists(fake));
}

static void test_live_view_needs_a_terminal(void **state)
{
    (void)state;
    isolate();
    struct run r;
    pid_t fake = fake_start(NULL, NULL);
    run_pid(&r, NULL, fake);   /* stdout is a memfd */
    assert_int_equal(r.status, 1);
    assert_has(&r, r.err, "the live view needs a terminal (use --once or --json)");
    fake_stop(fake);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_help_and_bad_arguments),
    cmocka_unit_test(test_json_has_every_field_and_counters_move),
    cmocka_unit_test(test_once_prints_one_snapshot),
    cmocka_unit_test(test_list_shows_processes_and_removes_stale_segments),
    cmocka_unit_test(test_stale_segment_of_a_dead_pid_is_removed),
    cmocka_unit_test(test_stale_segment_of_a_reused_pid_is_removed),
    cmocka_unit_test(test_a_process_without_segment_is_not_greenhub),
    cmocka_unit_test(test_wrong_magic_is_refused),
    cmocka_unit_test(test_unknown_version_is_refused),
    cmocka_unit_test(test_truncated_segment_is_refused),
    cmocka_unit_test(test_a_segment_that_never_settles_is_reported),
    cmocka_unit_test(test_another_users_segment_is_refused),
    cmocka_unit_test(test_live_view_keys_resize_and_q),
    cmocka_unit_test(test_live_view_ends_when_the_runtime_stops),
    cmocka_unit_test(test_live_view_ends_when_the_runtime_stops_in_a_live_process),
    cmocka_unit_test(test_live_view_ends_when_the_process_is_killed),
    cmocka_unit_test(test_live_view_needs_a_terminal),
    cmocka_unit_test(test_json_of_a_real_runtime_moves_steals_and_names_blocker),
};

/* With an argument, runs only the case of that name (ctest runs each case
 * in its own process, like gh_test.h's main). */
int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
