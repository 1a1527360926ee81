/* tests/test_monitor.c — the monitor thread: the shared-memory segment
 * schedtop reads (sched/shm_layout.h) and the blocking detector. */
#include "gh_test.h"
#include "shm_layout.h"

#include <alloca.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char seg_name[64];

static const char *our_seg(void)
{
    snprintf(seg_name, sizeof seg_name, GH_SHM_PREFIX "%d", (int)getpid());
    return seg_name;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Maps our own segment read-only, as schedtop does; NULL if absent. */
static const struct gh_shm_header *seg_map(size_t *size)
{
    int fd = shm_open(our_seg(), O_RDONLY, 0);
    if (fd < 0)
        return NULL;
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(p != MAP_FAILED);
    *size = (size_t)st.st_size;
    return p;
}

/* One consistent copy of the segment (malloc'd); fails the test if the
 * monitor never lets a copy through. */
static struct gh_shm_header *seg_snapshot(const struct gh_shm_header *seg, size_t size)
{
    struct gh_shm_header *c = malloc(size);
    assert_non_null(c);
    for (int i = 0; i < 1000; i++) {
        if (gh_shm_read(seg, c, size) == 0 && c->magic == GH_SHM_MAGIC)
            return c;
        gh_sleep_ms(1);
    }
    fail_msg("no consistent snapshot of the segment in 1000 tries");
    return NULL;
}

/* Waits (in greenlet time) until the monitor has published a sample newer
 * than `after` (monotonic ns). */
static struct gh_shm_header *seg_fresh(const struct gh_shm_header *seg, size_t size,
                                       uint64_t after)
{
    for (int i = 0; i < 2000; i++) {
        struct gh_shm_header *c = seg_snapshot(seg, size);
        if (c->updated_ns > after)
            return c;
        free(c);
        gh_sleep_ms(5);
    }
    fail_msg("the monitor published nothing for 10 s");
    return NULL;
}

/* ---- the segment ------------------------------------------------------------ */

static _Atomic int stop_spinners;

static void *yielder(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_spinners))
        gh_yield();
    return NULL;
}

static void *parked_fn(void *arg)
{
    gh_event_wait((gh_event *)arg, -1);
    return NULL;
}

static void *segment_main(void *arg)
{
    (void)arg;
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    /* Created for us alone. */
    struct stat st;
    char path[80];
    snprintf(path, sizeof path, GH_SHM_DIR "/%s", our_seg() + 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, getuid());

    gh_event evs, *ev = &evs;
    assert_int_equal(gh_event_init(ev), 0);
    enum { PARKED = 300 };
    gh_greenlet *p[PARKED], *y[4];
    for (int i = 0; i < PARKED; i++)
        assert_non_null(p[i] = gh_spawn(parked_fn, ev));
    for (int i = 0; i < 4; i++)
        assert_non_null(y[i] = gh_spawn(yielder, NULL));
    gh_sleep_ms(20);

    struct gh_shm_header *a = seg_fresh(seg, size, now_ns());
    gh_sleep_ms(50);
    /* Every parked greenlet has run up to its wait once the census says
     * so; slow builds (TSan) take a while with 4 yielders about.  The
     * resident stack figure is refreshed once a second. */
    struct gh_shm_header *b = seg_fresh(seg, size, a->updated_ns);
    for (int i = 0; i < 400 && (b->waiting < PARKED ||
                                b->stack_resident < PARKED * 4096ull); i++) {
        uint64_t t = b->updated_ns;
        free(b);
        gh_sleep_ms(10);
        b = seg_fresh(seg, size, t);
    }
    assert_int_equal(a->version, GH_SHM_VERSION);
    assert_int_equal(a->nhubs, 2);
    assert_int_equal(a->pid, getpid());
    assert_int_equal(a->running, 1);
    assert_int_equal(a->total_size, size);
    assert_int_equal(a->stack_size, 256 * 1024);
    assert_string_equal(a->runtime_name, "monitor-test");
    /* The census counts what we made: main, the parked, the yielders. */
    assert_true(b->spawned >= PARKED + 4 + 1);
    assert_true(b->alive >= PARKED + 4 + 1);
    if (b->waiting < PARKED)
        fail_msg("census: %llu waiting of %llu alive (%llu running, %llu runnable)",
                 (unsigned long long)b->waiting, (unsigned long long)b->alive,
                 (unsigned long long)b->running_now, (unsigned long long)b->runnable);
    assert_true(b->stack_mapped >= (PARKED + 4) * 256 * 1024ull);
    assert_true(b->rss > 0);
    /* Each parked greenlet has touched its stack: some pages resident,
     * never more than mapped. */
    assert_true(b->stack_resident >= PARKED * 4096ull);
    assert_true(b->stack_resident <= b->stack_mapped);
    uint64_t sw_a = 0, sw_b = 0, greenlets = 0;
    for (unsigned i = 0; i < 2; i++) {
        sw_a += GH_SHM_HUB(a, i)->switches;
        sw_b += GH_SHM_HUB(b, i)->switches;
        greenlets += GH_SHM_HUB(b, i)->greenlets;
        assert_true(GH_SHM_HUB(b, i)->state >= GH_SHM_HUB_RUNNING &&
                    GH_SHM_HUB(b, i)->state <= GH_SHM_HUB_BLOCKED);
    }
    assert_true(sw_b > sw_a);          /* the yielders make the counts move */
    assert_true(greenlets >= PARKED);  /* the parked ran once, on some hub */
    free(a);
    free(b);

    atomic_store(&stop_spinners, 1);
    gh_event_set(ev);
    for (int i = 0; i < PARKED; i++)
        assert_int_equal(gh_join(p[i], NULL), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(gh_join(y[i], NULL), 0);
    assert_int_equal(gh_event_destroy(ev), 0);
    munmap((void *)seg, size);
    return NULL;
}

static void test_segment_published_private_and_moving(void **state)
{
    (void)state;
    unsetenv("GREENHUB_PUBLISH");
    gh_config cfg = { .hubs = 2, .name = "monitor-test" };
    assert_int_equal(gh_run(&cfg, segment_main, NULL, NULL), 0);
    /* Gone once the runtime stopped. */
    errno = 0;
    assert_int_equal(shm_open(our_seg(), O_RDONLY, 0), -1);
    assert_int_equal(errno, ENOENT);
}

/* A segment left by a dead process that had our pid is replaced. */
static void *stale_main(void *arg)
{
    (void)arg;
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    struct gh_shm_header *c = seg_fresh(seg, size, 0);
    assert_int_equal(c->magic, GH_SHM_MAGIC);
    assert_int_equal(c->pid, getpid());
    free(c);
    munmap((void *)seg, size);
    return NULL;
}

static void test_stale_segment_of_our_pid_replaced(void **state)
{
    (void)state;
    /* A real one may be there already: a process killed before it could
     * remove its segment had our pid. */
    shm_unlink(our_seg());
    int fd = shm_open(our_seg(), O_RDWR | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "stale", 5), 5);
    close(fd);
    gh_test_run(2, stale_main, NULL);
    assert_int_equal(shm_open(our_seg(), O_RDONLY, 0), -1);
}

static void *unpublished_main(void *arg)
{
    (void)arg;
    size_t size;
    assert_null(seg_map(&size));
    return NULL;
}

static void test_no_segment_when_publish_is_off(void **state)
{
    (void)state;
    gh_config cfg = { .hubs = 2, .no_publish = 1 };
    assert_int_equal(gh_run(&cfg, unpublished_main, NULL, NULL), 0);
    setenv("GREENHUB_PUBLISH", "0", 1);
    gh_test_run(1, unpublished_main, NULL);
    unsetenv("GREENHUB_PUBLISH");
}

/* ---- resident stacks per hub ------------------------------------------------------ */

/* Hub roles: the driver's hub D, hubs A, B and C, and E, which runs
 * nothing.  None of them is X, where main waits (its stack counts there). */
enum { RES_HUBS = 6 };
struct res_roles { int x, d, a, b, c, e; };
enum { RES_NA = 40, RES_NB = 20, RES_NC = 30 };   /* greenlets on A, B, C */
#define RES_TOUCH (64 * 1024)   /* stack bytes each of them touches */
#define RES_SLACK (32 * 1024)   /* and at most this much more (frames, the
                                 * top page; a guess with room for ASan) */

/* Touches RES_TOUCH bytes of its own stack, one write per page (alloca:
 * on the greenlet's stack even under ASan, whose fake stacks take only
 * fixed-size frames), then waits on ev if there is one. */
static void *toucher_fn(void *arg)
{
    volatile char *p = alloca(RES_TOUCH);
    for (size_t i = 0; i < RES_TOUCH; i += 4096)
        p[i] = 1;
    if (arg)
        gh_event_wait((gh_event *)arg, -1);
    return NULL;
}

static void spawn_pinned(gh_greenlet **g, int n, int hub, gh_event *ev)
{
    gh_spawn_opts o = { .name = "toucher", .hub = hub, .pinned = 1 };
    for (int i = 0; i < n; i++)
        assert_non_null(g[i] = gh_spawn_with(&o, toucher_fn, ev));
}

/* A, B and C show at least their greenlets' touched pages: a mincore pass
 * has seen them all (C's in its cache), and main waits. */
static bool res_settled(const struct gh_shm_header *c, const struct res_roles *r)
{
    return GH_SHM_HUB(c, r->a)->stack_resident >= RES_NA * (uint64_t)RES_TOUCH &&
           GH_SHM_HUB(c, r->b)->stack_resident >= RES_NB * (uint64_t)RES_TOUCH &&
           GH_SHM_HUB(c, r->c)->stack_resident >= RES_NC * (uint64_t)RES_TOUCH &&
           c->waiting >= RES_NA + RES_NB + 1;
}

static void res_print(const struct gh_shm_header *c)
{
    for (unsigned i = 0; i < c->nhubs; i++) {
        const struct gh_shm_hub *h = GH_SHM_HUB(c, i);
        fprintf(stderr, "hub %u: %llu greenlets, %llu B cached, %llu B resident\n", i,
                (unsigned long long)h->greenlets, (unsigned long long)h->stack_cached,
                (unsigned long long)h->stack_resident);
    }
    fprintf(stderr, "all: %llu B resident, %llu B of it on no hub\n",
            (unsigned long long)c->stack_resident,
            (unsigned long long)c->stack_resident_unowned);
}

/* Hub i's resident figure is within [lo, hi]. */
static void res_expect(const struct gh_shm_header *c, int i, const char *role,
                       uint64_t lo, uint64_t hi)
{
    uint64_t v = GH_SHM_HUB(c, i)->stack_resident;
    if (v < lo || v > hi) {
        res_print(c);
        fail_msg("hub %d (%s): %llu B resident, expected %llu to %llu", i, role,
                 (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    }
}

static void res_check(const struct gh_shm_header *c, const struct res_roles *r)
{
    uint64_t slot = c->stack_size + 4096, sum = 0;
    res_expect(c, r->a, "A", RES_NA * (uint64_t)RES_TOUCH,
               RES_NA * (uint64_t)(RES_TOUCH + RES_SLACK));
    res_expect(c, r->b, "B", RES_NB * (uint64_t)RES_TOUCH,
               RES_NB * (uint64_t)(RES_TOUCH + RES_SLACK));
    /* C's greenlets ended there: their stacks, in its cache, are its. */
    res_expect(c, r->c, "C", RES_NC * (uint64_t)RES_TOUCH,
               RES_NC * (uint64_t)(RES_TOUCH + RES_SLACK));
    assert_int_equal(GH_SHM_HUB(c, r->c)->greenlets, 0);
    assert_int_equal(GH_SHM_HUB(c, r->c)->stack_cached, RES_NC * c->stack_size);
    /* D has the driver's stack alone, X main's; E nothing at all. */
    res_expect(c, r->d, "D, the driver", 4096, slot);
    res_expect(c, r->x, "X, main", 4096, slot);
    assert_int_equal(GH_SHM_HUB(c, r->e)->greenlets, 0);
    assert_int_equal(GH_SHM_HUB(c, r->e)->stack_cached, 0);
    res_expect(c, r->e, "E, idle", 0, 0);
    /* One pass: the hubs and the stacks of no hub make up the total.
     * Nothing was trimmed, every greenlet has run: next to nothing is on
     * no hub. */
    for (unsigned i = 0; i < c->nhubs; i++)
        sum += GH_SHM_HUB(c, i)->stack_resident;
    if (sum > c->stack_resident || sum + c->stack_resident_unowned != c->stack_resident ||
        c->stack_resident_unowned >= RES_TOUCH) {
        res_print(c);
        fail_msg("the hubs' resident stacks sum to %llu B", (unsigned long long)sum);
    }
}

static void *res_driver(void *arg)
{
    const struct res_roles *r = arg;
    assert_int_equal(gh_hub_index(), r->d);
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    gh_greenlet *pa[RES_NA], *pb[RES_NB], *pc[RES_NC];
    spawn_pinned(pa, RES_NA, r->a, &ev);
    spawn_pinned(pb, RES_NB, r->b, &ev);
    spawn_pinned(pc, RES_NC, r->c, NULL);
    for (int i = 0; i < RES_NC; i++)
        assert_int_equal(gh_join(pc[i], NULL), 0);
    /* The per-hub figures are refreshed once a second (slower under a
     * sanitizer: at most 1% of the monitor's time). */
    struct gh_shm_header *c = seg_fresh(seg, size, now_ns());
    uint64_t give_up = now_ns() + 30000000000ull;
    while (!res_settled(c, r) && now_ns() < give_up) {
        uint64_t t = c->updated_ns;
        free(c);
        gh_sleep_ms(20);
        c = seg_fresh(seg, size, t);
    }
    assert_int_equal(c->nhubs, RES_HUBS);
    res_check(c, r);
    free(c);
    assert_int_equal(gh_event_set(&ev), 0);
    for (int i = 0; i < RES_NA; i++)
        assert_int_equal(gh_join(pa[i], NULL), 0);
    for (int i = 0; i < RES_NB; i++)
        assert_int_equal(gh_join(pb[i], NULL), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    munmap((void *)seg, size);
    return NULL;
}

/* Main stays parked in the join on hub X all along; the roles go to the
 * other hubs. */
static void *resident_main(void *arg)
{
    (void)arg;
    struct res_roles r = { .x = gh_hub_index() };
    int *role[] = { &r.d, &r.a, &r.b, &r.c, &r.e }, k = 0;
    for (int i = 0; i < RES_HUBS; i++)
        if (i != r.x)
            *role[k++] = i;
    gh_spawn_opts o = { .name = "driver", .hub = r.d, .pinned = 1 };
    gh_greenlet *d = gh_spawn_with(&o, res_driver, &r);
    assert_non_null(d);
    assert_int_equal(gh_join(d, NULL), 0);
    return NULL;
}

static void test_resident_stacks_counted_per_hub(void **state)
{
    (void)state;
    unsetenv("GREENHUB_PUBLISH");
    gh_test_run(RES_HUBS, resident_main, NULL);
}

/* ---- the blocking detector ------------------------------------------------------ */

static void spin_ms(unsigned ms)
{
    uint64_t end = now_ns() + ms * 1000000ull;
    while (now_ns() < end)
        ;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins for arg ms of wall time, never switching; returns the CPU time it
 * got (less than the wall time when other processes share the core). */
static void *hog_fn(void *arg)
{
    uint64_t cpu0 = thread_cpu_ns();
    spin_ms((unsigned)(uintptr_t)arg);
    return (void *)(uintptr_t)((thread_cpu_ns() - cpu0) / 1000000u);
}

/* Well behaved: as much CPU in all, but switching every millisecond. */
static void *polite_fn(void *arg)
{
    unsigned ms = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < ms; i++) {
        spin_ms(1);
        gh_yield();
    }
    return NULL;
}

/* The reports in a snapshot, by seqno order. */
static unsigned reports_named(const struct gh_shm_header *c, const char *name,
                              uint64_t *max_ms)
{
    unsigned n = 0;
    for (unsigned i = 0; i < GH_SHM_BLOCKED_MAX; i++) {
        const struct gh_shm_blocked *r = &c->blocked[i];
        if (r->seqno && strcmp(r->name, name) == 0) {
            n++;
            if (max_ms && r->duration_ns / 1000000u > *max_ms)
                *max_ms = r->duration_ns / 1000000u;
        }
    }
    return n;
}

static void *detector_main(void *arg)
{
    (void)arg;
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    gh_spawn_opts polite = { .name = "polite" }, hog = { .name = "hog" };
    gh_greenlet *p1 = gh_spawn_with(&polite, polite_fn, (void *)(uintptr_t)400);
    gh_greenlet *p2 = gh_spawn_with(&polite, polite_fn, (void *)(uintptr_t)400);
    assert_int_equal(gh_join(p1, NULL), 0);
    assert_int_equal(gh_join(p2, NULL), 0);
    struct gh_shm_header *c = seg_fresh(seg, size, now_ns());
    if (c->blocked_total != 0)
        fail_msg("%llu blocking reports for polite greenlets, the first: '%s' %llu ms",
                 (unsigned long long)c->blocked_total, c->blocked[0].name,
                 (unsigned long long)c->blocked[0].duration_ns / 1000000u);
    free(c);

    gh_greenlet *h = gh_spawn_with(&hog, hog_fn, (void *)(uintptr_t)300);
    void *cpu_ms;
    assert_int_equal(gh_join(h, &cpu_ms), 0);
    c = seg_fresh(seg, size, now_ns());
    /* It is blamed for the CPU it got (all 300 ms on an idle machine), as
     * a lower bound short by less than two periods (25 ms here).  A
     * machine that gave it too little CPU to cross the threshold surely
     * leaves nothing to check. */
    uint64_t got = (uintptr_t)cpu_ms, max_ms = 0;
    unsigned n = reports_named(c, "hog", &max_ms);
    if (got >= 100 + 2 * 25 + 10 &&
        (n != 1 || c->blocked_total != 1 || c->blocked[0].ongoing != 0 ||
         max_ms + 2 * 25 + 10 < got || max_ms > 300 + 100))
        fail_msg("%u reports for the hog (%llu in all), longest %llu ms; it spun 300 ms "
                 "and got %llu ms of CPU", n, (unsigned long long)c->blocked_total,
                 (unsigned long long)max_ms, (unsigned long long)got);
    if (got < 100 + 2 * 25 + 10)
        fprintf(stderr, "note: the hog got only %llu ms of CPU: not judged\n",
                (unsigned long long)got);
    assert_int_equal(reports_named(c, "polite", NULL), 0);
    free(c);
    munmap((void *)seg, size);
    return NULL;
}

static void test_detector_reports_hog_by_name_not_polite(void **state)
{
    (void)state;
    unsetenv("GREENHUB_BLOCK_MS");
    unsetenv("GREENHUB_PUBLISH");
    gh_test_run(2, detector_main, NULL);
}

/* A blocking libc call greenhub does not know about: the hub thread sleeps
 * in the kernel, the greenlet is to blame all the same. */
static void *usleep_fn(void *arg)
{
    (void)arg;
    usleep(300000);
    return NULL;
}

static void *libc_block_main(void *arg)
{
    (void)arg;
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    gh_spawn_opts o = { .name = "in usleep" };
    gh_greenlet *g = gh_spawn_with(&o, usleep_fn, NULL);
    assert_int_equal(gh_join(g, NULL), 0);
    struct gh_shm_header *c = seg_fresh(seg, size, now_ns());
    uint64_t max_ms = 0;
    if (reports_named(c, "in usleep", &max_ms) != 1 || max_ms < 300 - 2 * 25 - 10)
        fail_msg("%llu reports in all, %u for 'in usleep' (longest %llu ms)",
                 (unsigned long long)c->blocked_total, reports_named(c, "in usleep", NULL),
                 (unsigned long long)max_ms);
    free(c);
    munmap((void *)seg, size);
    return NULL;
}

static void test_detector_reports_blocking_libc_call(void **state)
{
    (void)state;
    unsetenv("GREENHUB_BLOCK_MS");
    unsetenv("GREENHUB_PUBLISH");
    gh_test_run(2, libc_block_main, NULL);
}

/* GREENHUB_BLOCK_REPORT=1: the report on stderr, checked in a child. */
static void *report_main(void *arg)
{
    (void)arg;
    gh_spawn_opts hog = { .name = "cpu hog" };
    gh_greenlet *h = gh_spawn_with(&hog, hog_fn, (void *)(uintptr_t)300);
    assert_int_equal(gh_join(h, NULL), 0);
    return NULL;
}

static void test_detector_prints_report_with_env(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        setenv("GREENHUB_BLOCK_REPORT", "1", 1);
        setenv("GREENHUB_BLOCK_MS", "50", 1);
        gh_config cfg = { .hubs = 2 };
        _exit(gh_run(&cfg, report_main, NULL, NULL) == 0 ? 0 : 1);
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (!strstr(buf, "greenhub: greenlet 'cpu hog' (#") || !strstr(buf, "has blocked hub") ||
        !strstr(buf, "ms in all"))
        fail_msg("stderr of the child: <%s>", buf);
}

/* GREENHUB_BLOCK_MS=0 turns the detector off: the same hog, no report. */
static void *off_main(void *arg)
{
    (void)arg;
    size_t size;
    const struct gh_shm_header *seg = seg_map(&size);
    assert_non_null(seg);
    gh_spawn_opts hog = { .name = "hog" };
    gh_greenlet *h = gh_spawn_with(&hog, hog_fn, (void *)(uintptr_t)200);
    assert_int_equal(gh_join(h, NULL), 0);
    struct gh_shm_header *c = seg_fresh(seg, size, now_ns());
    assert_int_equal(c->block_ns, 0);
    assert_int_equal(c->blocked_total, 0);
    free(c);
    munmap((void *)seg, size);
    return NULL;
}

static void test_detector_off_with_block_ms_zero(void **state)
{
    (void)state;
    setenv("GREENHUB_BLOCK_MS", "0", 1);
    gh_test_run(2, off_main, NULL);
    unsetenv("GREENHUB_BLOCK_MS");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_published_private_and_moving),
        cmocka_unit_test(test_stale_segment_of_our_pid_replaced),
        cmocka_unit_test(test_no_segment_when_publish_is_off),
        cmocka_unit_test(test_resident_stacks_counted_per_hub),
        cmocka_unit_test(test_detector_reports_hog_by_name_not_polite),
        cmocka_unit_test(test_detector_reports_blocking_libc_call),
        cmocka_unit_test(test_detector_prints_report_with_env),
        cmocka_unit_test(test_detector_off_with_block_ms_zero),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
