/* tests/shm_fake.c — a stand-in for a greenhub process, for
 * tests/test_schedtop.c: creates /greenhub.<pid> the way the runtime does
 * (sched/shm_layout.h: O_CREAT | O_EXCL, mode 0600, sized, filled, magic
 * last) and updates it like the monitor, under the seqcount, every 10 ms.
 * Its counters follow the clock, so their rates are known exactly:
 *
 *   hub 0: switches 100,000/s, stolen 10/s, parks 1,000/s, io_waits 500/s
 *   hub 1: switches  50,000/s, steals 10/s, parks 1,000/s, io_waits 500/s
 *
 * Hub 0 runs "worker-a", hub 1 "worker-b<TAB>x"; their stacks: 1 and 2 MiB
 * mapped, 0.375 and 0.5 MiB resident, of 1 MiB resident in all (128 KiB
 * on no hub).  One blocking report names `say "hi" \ now`.  Prints
 * "ready" on stdout once the segment is in place.  On SIGTERM or SIGINT
 * it does what the runtime does when it stops: running = 0, unlink, exit
 * 0.  On SIGUSR1 it does the same but lives on (a program whose gh_run
 * returned), until SIGTERM.
 *
 * usage: shm_fake                a live segment
 *        shm_fake --bad-magic    wrong magic, then waits
 *        shm_fake --bad-version  version 99, then waits
 *        shm_fake --truncated    the header says 2 hubs, the file holds 1
 *        shm_fake --stuck        seq stays odd (a writer that never ends)
 *        shm_fake --chown UID    live, but the file belongs to UID (root)
 *        shm_fake --stale PID    a segment for PID whose runtime started an
 *                                hour ago, left behind at exit */
#include "shm_layout.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NHUBS 2
#define PERIOD_NS 10000000ull
#define TOTAL (sizeof(struct gh_shm_header) + NHUBS * sizeof(struct gh_shm_hub))

static volatile sig_atomic_t stop, stop_runtime;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    stop_runtime = 1;
}

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Creates the segment of `pid`, `size` bytes long, mapped read-write;
 * gives it to `owner` unless that is -1. */
static struct gh_shm_header *create(pid_t pid, size_t size, long owner)
{
    char name[40];
    snprintf(name, sizeof name, "%s%d", GH_SHM_PREFIX, (int)pid);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        die("shm_fake: shm_open");
    if (ftruncate(fd, (off_t)size) != 0)
        die("shm_fake: ftruncate");
    if (owner != -1 && fchown(fd, (uid_t)owner, (gid_t)owner) != 0)
        die("shm_fake: fchown");
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("shm_fake: mmap");
    close(fd);
    return m;
}

static void fill_hub(struct gh_shm_hub *h, int i)
{
    h->core = i;
    h->state = i == 0 ? GH_SHM_HUB_RUNNING : GH_SHM_HUB_SEARCHING;
    h->runnable = 3;
    h->greenlets = 10u + (unsigned)i;
    h->timers = 2;
    h->stack_mapped = 1048576u * (unsigned)(i + 1);
    h->stack_cached = 262144;
    h->stack_resident = i == 0 ? 393216 : 524288;   /* 0.375 and 0.5 MiB */
    h->current_id = 100u + (unsigned)i;
    snprintf(h->current_name, sizeof h->current_name, i == 0 ? "worker-a" : "worker-b\tx");
}

/* Everything but magic and the clock-driven counters. */
static void fill(struct gh_shm_header *h, pid_t pid, uint32_t version)
{
    h->version = version;
    h->header_size = sizeof *h;
    h->hub_size = sizeof(struct gh_shm_hub);
    h->nhubs = NHUBS;
    h->total_size = TOTAL;
    h->pid = pid;
    h->start_unix_ns = now_ns(CLOCK_REALTIME);
    h->period_ns = PERIOD_NS;
    h->running = 1;
    h->pin = 1;
    h->stack_size = 262144;
    h->block_ns = 100000000;
    snprintf(h->guard_mode, sizeof h->guard_mode, "madvise");
    snprintf(h->runtime_name, sizeof h->runtime_name, "fake-rt");
    h->alive = 20;
    h->running_now = 2;
    h->runnable = 6;
    h->waiting = 12;
    h->stack_mapped = 3145728;
    h->stack_resident = 1048576;          /* the hubs' + 128 KiB on no hub */
    h->stack_resident_unowned = 131072;
    h->rss = 8388608;
    h->blocked_total = 1;
    struct gh_shm_blocked *b = &h->blocked[0];
    b->seqno = 1;
    b->greenlet_id = 7;
    b->duration_ns = 350000000;
    b->since_unix_ns = h->start_unix_ns;
    b->hub = 1;
    snprintf(b->name, sizeof b->name, "say \"hi\" \\ now");
}

/* One monitor sample taken at `now` (CLOCK_MONOTONIC), t ns after start:
 * counters and updated_ns from the same reading, so rates come out exact
 * however late this runs. */
static void update(struct gh_shm_header *h, uint64_t now, uint64_t t, int nhubs)
{
    uint32_t s = h->seq;
    __atomic_store_n(&h->seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (int i = 0; i < nhubs; i++) {
        struct gh_shm_hub *hub = GH_SHM_HUB(h, i);
        hub->switches = t / 10000 / (uint64_t)(i + 1);
        hub->steals = i == 1 ? t / 100000000 : 0;
        hub->stolen = i == 0 ? t / 100000000 : 0;
        hub->parks = t / 1000000;
        hub->io_waits = t / 2000000;
        hub->sleeps = t / 5000000;
        hub->wakeups = t / 5000000;
        hub->current_ns = t % 1000000000;
    }
    h->spawned = 20 + t / 1000000;
    h->updated_ns = now;
    __atomic_store_n(&h->seq, s + 2, __ATOMIC_RELEASE);
}

static void stop_like_runtime(struct gh_shm_header *h, pid_t pid)
{
    char name[40];
    uint32_t s = h->seq;
    __atomic_store_n(&h->seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    h->running = 0;
    __atomic_store_n(&h->seq, s + 2, __ATOMIC_RELEASE);
    snprintf(name, sizeof name, "%s%d", GH_SHM_PREFIX, (int)pid);
    shm_unlink(name);
}

static void ready(void)
{
    printf("ready\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    pid_t pid = getpid();
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGUSR1, on_usr1);
    long owner = -1;
    if (strcmp(mode, "--stale") == 0 && argc > 2)
        pid = (pid_t)atoi(argv[2]);
    if (strcmp(mode, "--chown") == 0 && argc > 2)
        owner = atol(argv[2]);
    int truncated = strcmp(mode, "--truncated") == 0;
    size_t size = truncated ? TOTAL - sizeof(struct gh_shm_hub) : TOTAL;
    struct gh_shm_header *h = create(pid, size, owner);
    int nhubs = truncated ? 1 : NHUBS;
    fill(h, pid, strcmp(mode, "--bad-version") == 0 ? 99 : GH_SHM_VERSION);
    for (int i = 0; i < nhubs; i++)
        fill_hub(GH_SHM_HUB(h, i), i);
    if (strcmp(mode, "--stale") == 0)
        h->start_unix_ns -= 3600 * 1000000000ull;
    uint64_t magic = strcmp(mode, "--bad-magic") == 0 ? 0x1122334455667788ull : GH_SHM_MAGIC;
    uint64_t t0 = now_ns(CLOCK_MONOTONIC);
    update(h, t0, 0, nhubs);
    __atomic_store_n(&h->magic, magic, __ATOMIC_RELEASE);   /* last */
    if (strcmp(mode, "--stuck") == 0)
        __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELEASE);
    ready();
    if (strcmp(mode, "--stale") == 0)
        return 0;
    int live = mode[0] == '\0' || strcmp(mode, "--chown") == 0;
    while (!stop && !stop_runtime) {
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (live)
            update(h, now, now - t0, nhubs);
        usleep(PERIOD_NS / 1000);
    }
    stop_like_runtime(h, pid);
    while (!stop)
        usleep(PERIOD_NS / 1000);
    return 0;
}
