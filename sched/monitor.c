/* sched/monitor.c — the monitor thread: publishes the hubs for schedtop and
 * detects greenlets that block their hub.
 *
 * One thread per runtime.  The segment is made before the hubs start (so
 * it exists when the first greenlet runs); the thread starts after they all
 * started and stops after they were joined.  Every period it samples each
 * hub's counters (which the hub writes into its own memory with relaxed
 * stores: the hubs never wait for the monitor), then
 *   - runs the blocking detector over the samples, and
 *   - copies them into the shared-memory segment (shm_layout.h) between two
 *     increments of its seqcount, so a reader in another process detects a
 *     torn copy instead of showing it.
 *
 * Blocking detector.  A hub whose switch counter and current greenlet are
 * both unchanged between two samples has run that one greenlet the whole
 * time in between: nothing can switch in without counting a switch.  Its
 * tick (scheduling decisions) must be unchanged too: a greenlet that calls
 * gh_yield when nothing else is runnable keeps running without a switch,
 * and it is not blocking anyone.  A stretch is timed from the first sample
 * that saw it to the last, so a reported duration is a lower bound, short
 * by less than two periods.  Once it reaches block_ns the detector records
 * a report (id, name, hub, duration; the duration keeps growing while the
 * stretch lasts) and, with block_report, prints one line then and one when
 * the greenlet finally switches.  A hub thread the OS does not run (a
 * machine overloaded with real-time processes) looks the same and is
 * reported the same...  unless the kernel tells them apart, and it does:
 * between two samples of a stretch the greenlet is blamed for the CPU time
 * its hub thread used (a CPU hog), or for the whole interval if the thread
 * is asleep in the kernel (state S or D in /proc/self/task/<tid>/stat: a
 * blocking call), never for time the thread was runnable but not run (the
 * machine was busy with other processes: real-time ones on its core, say).
 * A report's duration is that blamed time: on a machine shared with other
 * busy processes, a hog is blamed for the CPU it got, not the wall time.  Those two reads
 * (the thread's CPU clock, its state) happen only while a stretch lasts,
 * i.e. while a greenlet has run a whole period without switching.
 *
 * Reading a greenlet the monitor does not own.  h->current is stored with
 * release (gh__hub_set_current) and loaded here with acquire; control
 * blocks are type-stable until the runtime ends, after this thread; the id
 * and name are written at spawn with relaxed atomic stores and read here
 * the same way, then the sample is validated: if the hub's switch counter
 * and current greenlet are still the same afterwards, the greenlet was
 * running (hence alive and not being reused) throughout, and what was read
 * is its own.
 *
 * Cost.  The period is a quarter of block_ns, clamped to [1 ms, 250 ms]
 * (250 ms with the detector off).  A sample reads a few cache lines per
 * hub; the resident size is read from /proc/self/statm at most every
 * 250 ms, and the resident stack pages (in all and per hub, one mincore
 * pass: read_stack_resident) at most every second.  An idle process is
 * not woken 40 times a second for nothing: after IDLE_SAMPLES samples in
 * a row with every hub asleep the monitor waits PERIOD_MAX_NS (it still
 * publishes, for schedtop), and the first hub to wake kicks it back to the
 * short period (gh__monitor_kick), so a greenlet that blocks a hub right
 * after an idle spell is timed from its start like any other.  The
 * handshake is Dekker's: the monitor stores rt->monitor_idle then checks
 * every hub's sleep counters, a hub stores its woke counter then checks
 * rt->monitor_idle, all seq_cst: one of the two sees the other.  At most
 * one kick per idle spell of IDLE_SAMPLES periods, so a lightly loaded hub
 * does not pay a futex wake per epoll. */
#include "internal.h"
#include "shm_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { MS = 1000000 };
#define PERIOD_MIN_NS (1ull * MS)
#define PERIOD_MAX_NS (250ull * MS)
#define RSS_EVERY_NS (250ull * MS)
#define STACK_RES_EVERY_NS (1000ull * MS)
enum { IDLE_SAMPLES = 4 };

/* What the detector remembers of one hub between samples. */
struct watch {
    gh_greenlet *g;              /* current at the last sample */
    uint64_t switches;           /* switch counter at the last sample */
    uint32_t tick;               /* scheduling decisions, ditto */
    uint64_t since_ns;           /* first sample of this stretch (monotonic) */
    uint64_t since_unix_ns;
    uint64_t sample_ns;          /* the last sample of this stretch */
    uint64_t cpu_ns;             /* the hub thread's CPU time then */
    uint64_t blamed_ns;          /* of the stretch, the greenlet's doing */
    uint64_t report;             /* report seqno for this stretch, 0: none */
    uint64_t id;                 /* g's id and name, once validated */
    char name[GH_SHM_NAME_LEN];
    bool named;
};

struct gh__monitor {
    pthread_t thread;
    bool started;                /* the thread runs (gh__monitor_start) */
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* CLOCK_MONOTONIC */
    bool stop;                   /* under mu */
    /* Everything below: the monitor thread only (and start/stop, before
     * the thread starts and after it is joined). */
    struct gh__runtime *rt;
    struct gh_shm_header *seg;   /* NULL when not publishing */
    size_t seg_size;
    char seg_name[32];
    int statm_fd;                /* /proc/self/statm; -1: not open yet,
                                  * -2: cannot be */
    bool private_fds;            /* the thread has its own descriptor
                                  * table (fds_private) */
    uint64_t period_ns;
    uint64_t rss, rss_at_ns;
    uint64_t stack_res, stack_res_at_ns, stack_res_cost_ns;
    uint64_t stack_res_unowned;  /* of stack_res, on no hub */
    uint64_t *stack_res_hub;     /* of stack_res, per hub */
    unsigned idle_samples;       /* in a row with every hub asleep */
    uint64_t nreports;
    struct gh_shm_blocked reports[GH_SHM_BLOCKED_MAX];
    struct watch *w;             /* one per hub */
    int *stat_fd;                /* per hub /proc/self/task/<tid>/stat,
                                  * -1: not open yet, -2: cannot be */
    struct gh_shm_hub *hubs;     /* this sample, one per hub */
};

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the segment ----------------------------------------------------------- */

/* The segment's name for a process about to die (gh__monitor_on_death):
 * written before seg_live is set, read only after winning the exchange. */
static char dying_name[32];
static atomic_bool seg_live;
static pid_t dying_pid;   /* whose segment: a forked child's death must not take it */

static void seg_open(struct gh__monitor *m)
{
    snprintf(m->seg_name, sizeof m->seg_name, GH_SHM_PREFIX "%d", (int)getpid());
    m->seg_size = sizeof(struct gh_shm_header) + m->rt->nhubs * sizeof(struct gh_shm_hub);
    int fd = shm_open(m->seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        /* Ours by name, so stale: an earlier process with this pid died
         * without removing it (no live process can share our pid). */
        shm_unlink(m->seg_name);
        fd = shm_open(m->seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return;   /* no /dev/shm: run unpublished */
    void *p = MAP_FAILED;
    if (fchmod(fd, 0600) == 0 && ftruncate(fd, (off_t)m->seg_size) == 0)
        p = mmap(NULL, m->seg_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        shm_unlink(m->seg_name);
        return;
    }
    m->seg = p;
    memcpy(dying_name, m->seg_name, sizeof dying_name);
    dying_pid = getpid();
    atomic_store(&seg_live, true);
}

/* A process that aborts (stack overflow, gh__die) takes its segment with
 * it, so /dev/shm is not littered and a later process given the same pid
 * finds the name free.  Signal-safe: shm_unlink is unlink(2) on a name
 * built on the stack.  SIGKILL cannot be caught; schedtop's listing removes
 * what such processes leave. */
void gh__monitor_on_death(void)
{
    /* getpid is signal-safe; a child of a fork inherits seg_live but the
     * segment is its parent's, alive. */
    if (getpid() == dying_pid && atomic_exchange(&seg_live, false))
        shm_unlink(dying_name);
}

static void seg_close(struct gh__monitor *m)
{
    if (!m->seg)
        return;
    atomic_store(&seg_live, false);
    shm_unlink(m->seg_name);
    munmap(m->seg, m->seg_size);
    m->seg = NULL;
}

/* The fields that never change, written once before the first sample. */
static void seg_fill_static(struct gh__monitor *m)
{
    struct gh__runtime *rt = m->rt;
    struct gh_shm_header *s = m->seg;
    s->seq = 1;   /* odd: not readable until the first sample completes */
    s->magic = GH_SHM_MAGIC;
    s->version = GH_SHM_VERSION;
    s->header_size = sizeof *s;
    s->hub_size = sizeof(struct gh_shm_hub);
    s->nhubs = rt->nhubs;
    s->total_size = m->seg_size;
    s->pid = (int32_t)getpid();
    s->start_unix_ns = clock_ns(CLOCK_REALTIME);
    s->period_ns = m->period_ns;
    s->pin = rt->pin;
    s->stack_size = gh__stack_default_size();
    s->block_ns = rt->block_ns;
    snprintf(s->guard_mode, sizeof s->guard_mode, "%s", gh_stack_guard_mode());
    snprintf(s->runtime_name, sizeof s->runtime_name, "%s", rt->name);
}

/* Copies the census and the samples in, under the seqcount. */
static void seg_publish(struct gh__monitor *m, const struct gh_shm_header *census,
                        uint64_t now, bool running)
{
    struct gh_shm_header *s = m->seg;
    uint32_t seq = s->seq | 1u;   /* odd from the static fill, or even */
    __atomic_store_n(&s->seq, seq, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    s->updated_ns = now;
    s->running = running;
    s->spawned = census->spawned;
    s->alive = census->alive;
    s->running_now = census->running_now;
    s->runnable = census->runnable;
    s->waiting = census->waiting;
    s->stack_mapped = census->stack_mapped;
    s->rss = census->rss;
    s->stack_resident = census->stack_resident;
    s->blocked_total = m->nreports;
    memcpy(s->blocked, m->reports, sizeof s->blocked);
    memcpy((char *)s + s->header_size, m->hubs, m->rt->nhubs * sizeof *m->hubs);
    __atomic_store_n(&s->seq, seq + 1, __ATOMIC_RELEASE);
}

/* ---- sampling ----------------------------------------------------------------- */

/* g's id and name as of now; false if g stopped running on h meanwhile. */
static bool read_greenlet(const struct gh__hub *h, gh_greenlet *g, uint64_t switches,
                          uint64_t *id, char *name)
{
    *id = __atomic_load_n(&g->id, __ATOMIC_RELAXED);
    size_t n = 0;
    for (; n < GH_SHM_NAME_LEN - 1; n++)
        if (!(name[n] = __atomic_load_n(&g->name[n], __ATOMIC_RELAXED)))
            break;
    name[n] = '\0';
    if (!name[0])
        memcpy(name, "(unnamed)", sizeof "(unnamed)");
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&h->current, __ATOMIC_RELAXED) == g &&
           atomic_load_explicit(&h->st.switches, memory_order_relaxed) == switches;
}

static void report_print(const struct gh__monitor *m, const struct gh_shm_blocked *r)
{
    if (!m->rt->block_report)
        return;
    if (r->ongoing)
        fprintf(stderr, "greenhub: greenlet '%s' (#%llu) has blocked hub %u for %llu ms\n",
                r->name, (unsigned long long)r->greenlet_id, r->hub,
                (unsigned long long)(r->duration_ns / MS));
    else
        fprintf(stderr, "greenhub: greenlet '%s' (#%llu) blocked hub %u for %llu ms in all\n",
                r->name, (unsigned long long)r->greenlet_id, r->hub,
                (unsigned long long)(r->duration_ns / MS));
}

static struct gh_shm_blocked *report_of(struct gh__monitor *m, uint64_t seqno)
{
    struct gh_shm_blocked *r = &m->reports[(seqno - 1) % GH_SHM_BLOCKED_MAX];
    return r->seqno == seqno ? r : NULL;   /* NULL: overwritten since */
}

/* CPU time hub i's thread has used, in ns (0 if unknown). */
static uint64_t hub_cpu_ns(const struct gh__monitor *m, unsigned i)
{
    struct timespec ts;
    if (clock_gettime(m->rt->hubs[i].cpuclock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Is hub i's thread asleep in the kernel (state S or D)? */
static bool hub_in_kernel_sleep(struct gh__monitor *m, unsigned i)
{
    if (m->stat_fd[i] == -1) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%d/stat", m->rt->hubs[i].tid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        m->stat_fd[i] = fd >= 0 ? fd : -2;
    }
    char buf[256];
    ssize_t n = m->stat_fd[i] >= 0 ? pread(m->stat_fd[i], buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* the name may hold anything */
    return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* Blame for the interval since the stretch's last sample (see the top). */
static void stretch_blame(struct gh__monitor *m, unsigned i, struct watch *w, uint64_t now)
{
    uint64_t interval = now - w->sample_ns, cpu = hub_cpu_ns(m, i);
    uint64_t used = cpu > w->cpu_ns ? cpu - w->cpu_ns : 0;
    if (!cpu || hub_in_kernel_sleep(m, i))
        w->blamed_ns += interval;   /* no CPU clock: wall time, as a fallback */
    else
        w->blamed_ns += used < interval ? used : interval;
    w->sample_ns = now;
    w->cpu_ns = cpu;
}

/* The stretch hub i was in has ended (it switched): close its report. */
static void stretch_end(struct gh__monitor *m, struct watch *w)
{
    struct gh_shm_blocked *r = w->report ? report_of(m, w->report) : NULL;
    if (r) {
        r->ongoing = 0;
        report_print(m, r);
    }
    w->report = 0;
    w->named = false;
}

static void stretch_report(struct gh__monitor *m, struct watch *w, unsigned hub,
                           uint64_t dur)
{
    if (w->report) {
        struct gh_shm_blocked *r = report_of(m, w->report);
        if (r)
            r->duration_ns = dur;
        return;
    }
    w->report = ++m->nreports;
    struct gh_shm_blocked *r = &m->reports[(w->report - 1) % GH_SHM_BLOCKED_MAX];
    *r = (struct gh_shm_blocked){ .seqno = w->report, .greenlet_id = w->id,
                                  .duration_ns = dur, .since_unix_ns = w->since_unix_ns,
                                  .hub = hub, .ongoing = 1 };
    memcpy(r->name, w->name, sizeof r->name);
    report_print(m, r);
}

/* Detector step for hub i, whose sample is g (current) and switches. */
static void detect(struct gh__monitor *m, unsigned i, gh_greenlet *g, uint64_t switches,
                   uint64_t now)
{
    struct watch *w = &m->w[i];
    struct gh__hub *h = &m->rt->hubs[i];
    uint32_t tick = __atomic_load_n(&h->tick, __ATOMIC_RELAXED);
    if (!g || g != w->g || switches != w->switches || tick != w->tick) {
        stretch_end(m, w);
        w->g = g;
        w->switches = switches;
        w->tick = tick;
        w->since_ns = w->sample_ns = now;
        w->since_unix_ns = clock_ns(CLOCK_REALTIME);
        w->cpu_ns = g ? hub_cpu_ns(m, i) : 0;
        w->blamed_ns = 0;
        return;
    }
    if (!w->named && read_greenlet(h, g, switches, &w->id, w->name))
        w->named = true;
    stretch_blame(m, i, w, now);
    if (w->named && m->rt->block_ns && w->blamed_ns >= m->rt->block_ns)
        stretch_report(m, w, i, w->blamed_ns);
}

/* Samples hub i into m->hubs[i]; returns 1 if it sleeps. */
static int sample_hub(struct gh__monitor *m, unsigned i, uint64_t now)
{
    struct gh__hub *h = &m->rt->hubs[i];
    struct gh_shm_hub *o = &m->hubs[i];
    /* woke before sleeps (see gh_stats_hubs): sleeps > woke means asleep. */
    uint64_t woke = atomic_load_explicit(&h->st.woke, memory_order_acquire);
    uint64_t sleeps = atomic_load_explicit(&h->st.sleeps, memory_order_relaxed);
    uint64_t switches = atomic_load_explicit(&h->st.switches, memory_order_relaxed);
    gh_greenlet *g = __atomic_load_n(&h->current, __ATOMIC_ACQUIRE);
    detect(m, i, g, switches, now);
    const struct watch *w = &m->w[i];
    o->core = h->core;
    o->state = sleeps > woke ? GH_SHM_HUB_SLEEPING
             : !g            ? GH_SHM_HUB_SEARCHING
             : w->report     ? GH_SHM_HUB_BLOCKED
                             : GH_SHM_HUB_RUNNING;
    o->switches = switches;
    o->steals = atomic_load_explicit(&h->st.steals, memory_order_relaxed);
    o->stolen = atomic_load_explicit(&h->sh.stolen, memory_order_relaxed);
    o->parks = atomic_load_explicit(&h->st.parks, memory_order_relaxed);
    o->io_waits = atomic_load_explicit(&h->st.io_waits, memory_order_relaxed);
    o->sleeps = sleeps;
    o->wakeups = atomic_load_explicit(&h->st.wakeups, memory_order_relaxed);
    o->runnable = gh__hub_runnable(h);
    o->greenlets = gh__hub_alive(h);
    o->timers = atomic_load_explicit(&h->st.timers, memory_order_relaxed);
    o->stack_cached = gh__stack_cached(h);
    o->stack_mapped = o->greenlets * gh__stack_default_size() + o->stack_cached;
    o->stack_resident = m->stack_res_hub[i];   /* read_stack_resident's */
    o->current_id = g && w->named ? w->id : 0;
    o->current_ns = g && w->named ? now - w->since_ns : 0;
    if (g && w->named)
        memcpy(o->current_name, w->name, GH_SHM_NAME_LEN);
    else
        memset(o->current_name, 0, GH_SHM_NAME_LEN);
    return o->state == GH_SHM_HUB_SLEEPING;
}

/* Resident stack bytes, in all, per hub and on no hub (one pass, so the
 * total is the sum of the parts), refreshed at most every second and at
 * most 1% of the monitor's time (a million stacks are ~16,000 mincore
 * calls).  Results in m->stack_res, m->stack_res_hub, m->stack_res_unowned.
 * A zero while stacks are mapped is refreshed as soon as the 1% allows:
 * the first pass often runs before the main greenlet touched its stack,
 * and schedtop showed 0 for the program's first second (a CI failure of
 * test_schedtop's real-runtime case under ASan). */
static void read_stack_resident(struct gh__monitor *m, uint64_t now)
{
    uint64_t every = m->stack_res_cost_ns * 100;
    if (every < STACK_RES_EVERY_NS && !(m->stack_res == 0 && gh__stack_mapped() > 0))
        every = STACK_RES_EVERY_NS;
    if (m->stack_res_at_ns && now - m->stack_res_at_ns < every)
        return;
    m->stack_res = gh__stack_resident_by_hub(m->stack_res_hub, m->rt->nhubs,
                                             &m->stack_res_unowned);
    uint64_t end = clock_ns(CLOCK_MONOTONIC);
    m->stack_res_cost_ns = end - now;
    m->stack_res_at_ns = end;
}

static uint64_t read_rss(struct gh__monitor *m, uint64_t now)
{
    if (m->statm_fd == -1) {
        int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        m->statm_fd = fd >= 0 ? fd : -2;
    }
    if (m->statm_fd < 0 || now - m->rss_at_ns < RSS_EVERY_NS)
        return m->rss;
    char buf[128];
    ssize_t n = pread(m->statm_fd, buf, sizeof buf - 1, 0);
    unsigned long size, res;
    if (n > 0) {
        buf[n] = '\0';
        if (sscanf(buf, "%lu %lu", &size, &res) == 2)
            m->rss = (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
    }
    m->rss_at_ns = now;
    return m->rss;
}

/* One sample of every hub and the census.  Returns true if all hubs sleep. */
static bool sample(struct gh__monitor *m, uint64_t now, struct gh_shm_header *c)
{
    struct gh__runtime *rt = m->rt;
    unsigned asleep = 0;
    uint64_t spawned = atomic_load_explicit(&rt->spawned_ext, memory_order_relaxed), ended = 0;
    *c = (struct gh_shm_header){ 0 };
    read_stack_resident(m, now);   /* before the hubs: sample_hub copies it */
    c->runnable = atomic_load_explicit(&rt->inject.len, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nhubs; i++) {
        asleep += (unsigned)sample_hub(m, i, now);
        spawned += atomic_load_explicit(&rt->hubs[i].st.spawned, memory_order_relaxed);
        ended += atomic_load_explicit(&rt->hubs[i].st.ended, memory_order_relaxed);
        c->runnable += m->hubs[i].runnable;
        c->running_now += m->w[i].g != NULL;
    }
    /* Independent counters: clamp what a sample in flight can skew. */
    c->spawned = spawned;
    c->alive = spawned > ended ? spawned - ended : 0;
    if (c->running_now > c->alive)
        c->running_now = c->alive;
    if (c->runnable > c->alive - c->running_now)
        c->runnable = c->alive - c->running_now;
    c->waiting = c->alive - c->running_now - c->runnable;
    c->stack_mapped = gh__stack_mapped();
    c->rss = read_rss(m, now);
    c->stack_resident = m->stack_res;
    c->stack_resident_unowned = m->stack_res_unowned;
    return asleep == rt->nhubs;
}

/* Every hub asleep right now?  (seq_cst loads: Dekker with hub_sleep.) */
static bool all_asleep(const struct gh__runtime *rt)
{
    for (unsigned i = 0; i < rt->nhubs; i++) {
        const struct gh__hub *h = &rt->hubs[i];
        uint64_t woke = atomic_load(&h->st.woke);
        if (atomic_load(&h->st.sleeps) <= woke)
            return false;
    }
    return true;
}

/* How long to wait before the next sample.  Called with m->mu held. */
static uint64_t next_wait(struct gh__monitor *m, bool idle)
{
    struct gh__runtime *rt = m->rt;
    m->idle_samples = idle ? m->idle_samples + 1 : 0;
    if (m->idle_samples < IDLE_SAMPLES || m->period_ns >= PERIOD_MAX_NS)
        return m->period_ns;
    atomic_store(&rt->monitor_idle, 1);
    if (all_asleep(rt))
        return PERIOD_MAX_NS;   /* a hub that wakes from now on kicks us */
    atomic_store(&rt->monitor_idle, 0);
    m->idle_samples = 0;
    return m->period_ns;
}

/* ---- the thread's own descriptor table ------------------------------------------
 *
 * The monitor thread gives up its share of the process's descriptor table
 * and keeps a table of its own holding only stderr (its reports), where it
 * opens its /proc files.  The process's table is then used by the hubs
 * (and libuv's thread pool, once started) alone: with one hub, by one
 * thread, and the kernel's descriptor lookups skip the reference count on
 * the file (runtime.c, "Hub 0 on the caller's thread").
 *
 * close_range(3, ~0, CLOSE_RANGE_UNSHARE) makes the new table with the
 * descriptors below 3 only, so no other file is held open by the copy even
 * for an instant (a socket the program closes is closed at once).  Where
 * the kernel lacks it (before Linux 5.9) the thread shares the table as
 * before.  Not in the sanitizer builds: ThreadSanitizer tracks descriptors
 * by number, process-wide, and would take the monitor's private /proc
 * descriptors for the hubs' sockets of the same number.
 *
 * The descriptors the thread opens are its table's: it closes them itself
 * before it ends (fds_close), and the last sample, taken on gh_run's thread
 * after the join, opens its own in the process's table. */
#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

static void fds_private(struct gh__monitor *m)
{
#if defined(SYS_close_range) && !defined(GH_ASAN) && !defined(GH_TSAN)
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_UNSHARE) != 0)
        return;
    syscall(SYS_close, 0);   /* stdin and stdout are not the monitor's */
    syscall(SYS_close, 1);
    m->private_fds = true;
#else
    (void)m;
#endif
}

/* In the private table (own_table) each close is the system call itself:
 * close() may be the interposition layer's gh_close, which would retire
 * the hubs' watches on the same number in the process's table. */
static void fd_close(int fd, bool own_table)
{
    if (own_table)
        syscall(SYS_close, fd);
    else
        close(fd);
}

static void fds_close(struct gh__monitor *m, bool own_table)
{
    if (m->statm_fd >= 0)
        fd_close(m->statm_fd, own_table);
    m->statm_fd = -1;
    for (unsigned i = 0; m->stat_fd && i < m->rt->nhubs; i++) {
        if (m->stat_fd[i] >= 0)
            fd_close(m->stat_fd[i], own_table);
        m->stat_fd[i] = -1;
    }
}

static void *monitor_main(void *arg)
{
    struct gh__monitor *m = arg;
    struct gh_shm_header census;
    gh__thread_as_caller(m->rt);   /* not hub 0's core: it watches hub 0 too */
    fds_private(m);
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->mu);
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        bool idle = sample(m, now, &census);
        if (m->seg)
            seg_publish(m, &census, now, true);
        pthread_mutex_lock(&m->mu);
        uint64_t next = now + next_wait(m, idle);
        struct timespec ts = { .tv_sec = (time_t)(next / 1000000000u),
                               .tv_nsec = (long)(next % 1000000000u) };
        while (!m->stop && atomic_load(&m->rt->monitor_idle) != 2 &&
               pthread_cond_timedwait(&m->cv, &m->mu, &ts) != ETIMEDOUT)
            ;
        atomic_store(&m->rt->monitor_idle, 0);
    }
    pthread_mutex_unlock(&m->mu);
    if (m->private_fds)
        fds_close(m, true);
    return NULL;
}

void gh__monitor_kick(struct gh__runtime *rt)
{
    struct gh__monitor *m = rt->monitor;
    int idle = 1;
    if (!m || !atomic_compare_exchange_strong(&rt->monitor_idle, &idle, 2))
        return;   /* not idle, or another hub kicked it already */
    pthread_mutex_lock(&m->mu);
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* ---- start and stop ----------------------------------------------------------- */

static uint64_t period_for(uint64_t block_ns)
{
    if (!block_ns)
        return PERIOD_MAX_NS;
    uint64_t p = block_ns / 4;
    return p < PERIOD_MIN_NS ? PERIOD_MIN_NS : p > PERIOD_MAX_NS ? PERIOD_MAX_NS : p;
}

static void monitor_free(struct gh__monitor *m)
{
    seg_close(m);
    fds_close(m, false);
    free(m->stat_fd);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->w);
    free(m->hubs);
    free(m->stack_res_hub);
    free(m);
}

static struct gh__monitor *monitor_new(struct gh__runtime *rt)
{
    struct gh__monitor *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->rt = rt;
    m->statm_fd = -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->w = calloc(rt->nhubs, sizeof *m->w);
    m->hubs = calloc(rt->nhubs, sizeof *m->hubs);
    m->stack_res_hub = calloc(rt->nhubs, sizeof *m->stack_res_hub);
    m->stat_fd = malloc(rt->nhubs * sizeof *m->stat_fd);
    for (unsigned i = 0; m->stat_fd && i < rt->nhubs; i++)
        m->stat_fd[i] = -1;
    if (!m->w || !m->hubs || !m->stack_res_hub || !m->stat_fd) {
        monitor_free(m);
        return NULL;
    }
    m->period_ns = period_for(rt->block_ns);
    if (rt->publish)
        seg_open(m);
    if (m->seg)
        seg_fill_static(m);
    return m;
}

void gh__monitor_open(struct gh__runtime *rt)
{
    if (rt->publish || rt->block_ns)
        rt->monitor = monitor_new(rt);
}

void gh__monitor_start(struct gh__runtime *rt)
{
    struct gh__monitor *m = rt->monitor;
    if (!m)
        return;
    /* The thread takes no signals: they stay with the threads that expect
     * them (uv_signal, gh_signal_wait). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = gh__thread_create(rt, &m->thread, monitor_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err)
        return;   /* gh__monitor_stop still removes the segment */
    m->started = true;
    pthread_setname_np(m->thread, "gh-monitor");
}

void gh__monitor_stop(struct gh__runtime *rt)
{
    struct gh__monitor *m = rt->monitor;
    if (!m)
        return;
    if (m->started) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        pthread_cond_signal(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
    }
    /* A last sample, so a reader sees the final counts and `running` 0. */
    struct gh_shm_header census;
    uint64_t now = clock_ns(CLOCK_MONOTONIC);
    sample(m, now, &census);
    for (unsigned i = 0; i < rt->nhubs; i++) {
        stretch_end(m, &m->w[i]);
        m->hubs[i].state = GH_SHM_HUB_STOPPED;
    }
    if (m->seg)
        seg_publish(m, &census, now, false);
    monitor_free(m);
    rt->monitor = NULL;
}
