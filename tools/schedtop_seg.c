/* tools/schedtop_seg.c — finding, checking and reading the segment of one
 * greenhub process (sched/shm_layout.h), telling a live process from a dead
 * or reused pid, and rates from two samples. */
#include "schedtop.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* A runtime creates its segment empty, sizes it, fills it and publishes
 * its first sample: a reader that finds it on the way waits up to this long
 * (10 x 50 ms, a guess far above the microseconds that takes) before
 * judging it. */
#define ST_INIT_TRIES 10
#define ST_INIT_WAIT_MS 50
/* A live process started no later than its runtime; one whose start is
 * later than the segment's start_unix_ns by more than this is another
 * process that got the pid.  The slack (a guess) covers clock ticks and
 * small steps of the wall clock between the two readings. */
#define ST_REUSE_SLACK_NS 2000000000ull

const char *const st_rate_names[ST_R_COUNT] = {
    "switches", "steals", "stolen", "parks", "io_waits", "sleeps", "wakeups",
};

/* Time ------------------------------------------------------------------ */

uint64_t st_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t st_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void st_sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Processes ---------------------------------------------------------------- */

/* Reads the start of a file into buf (NUL-terminated); returns its length
 * or -1. */
static ssize_t read_text(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, buf, len - 1);
    close(fd);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    return got;
}

/* read_text of /proc/<pid>/<what>. */
static ssize_t proc_read(pid_t pid, const char *what, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    return read_text(path, buf, len);
}

/* 1 if pid names a process that has not ended (a zombie has ended: it only
 * waits for its parent), else 0. */
int st_proc_alive(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno != EPERM)
        return 0;
    char buf[512];
    if (proc_read(pid, "stat", buf, sizeof buf) < 0)
        return errno != ENOENT;
    const char *p = strrchr(buf, ')');   /* comm may hold ')' and spaces */
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* The command name as the kernel has it (any bytes but NUL; print it
 * through st_printable); "?" when unknown. */
void st_proc_comm(pid_t pid, char *out, size_t len)
{
    ssize_t got = proc_read(pid, "comm", out, len);
    if (got <= 0)
        snprintf(out, len, "?");
    else if (out[got - 1] == '\n')
        out[got - 1] = '\0';
}

/* Wall-clock start of pid in ns, or 0 when unknown. */
static uint64_t proc_start_unix_ns(pid_t pid)
{
    char buf[1024];
    if (proc_read(pid, "stat", buf, sizeof buf) < 0)
        return 0;
    const char *p = strrchr(buf, ')');
    unsigned long long ticks = 0;
    /* After ")": state is field 3, starttime field 22. */
    if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                     "%*s %*s %*s %*s %*s %*s %*s %llu", &ticks) != 1)
        return 0;
    /* starttime counts clock ticks since boot, on CLOCK_BOOTTIME. */
    long hz = sysconf(_SC_CLK_TCK);
    struct timespec boot;
    if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return 0;
    uint64_t since_boot = (uint64_t)boot.tv_sec * 1000000000u + (uint64_t)boot.tv_nsec;
    uint64_t boot_unix = st_real_ns() - since_boot;
    return boot_unix + ticks * (1000000000ull / (unsigned long long)hz);
}

/* 1 if pid maps the segment file, 0 if not, -1 if it cannot be told. */
static int proc_maps_file(pid_t pid, dev_t dev, ino_t ino)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned maj, min;
        unsigned long long inode;
        if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &inode) == 3)
            found = inode == (unsigned long long)ino && inode != 0 &&
                    makedev(maj, min) == dev;
    }
    fclose(f);
    return found;
}

/* The segment's pid runs, but is it the process that made the segment?
 * Not if that process does not map it (or its maps cannot be read) and it
 * started after the runtime did: a process cannot start after its own
 * runtime, so a live segment is never taken for a stale one. */
static int pid_reused(const struct st_seg *seg, uint64_t start_unix_ns)
{
    if (proc_maps_file(seg->pid, seg->dev, seg->ino) == 1)
        return 0;
    uint64_t started = proc_start_unix_ns(seg->pid);
    return started != 0 && started > start_unix_ns + ST_REUSE_SLACK_NS;
}

/* Opening and checking ------------------------------------------------------- */

static void seg_reset(struct st_seg *seg, pid_t pid)
{
    memset(seg, 0, sizeof *seg);
    seg->pid = pid;
    seg->fd = -1;
    snprintf(seg->name, sizeof seg->name, "%s%d", GH_SHM_PREFIX, (int)pid);
    snprintf(seg->path, sizeof seg->path, "%s/%s%d", GH_SHM_DIR,
             GH_SHM_FILE_PREFIX, (int)pid);
}

void st_seg_close(struct st_seg *seg)
{
    if (seg->map)
        munmap((void *)seg->map, seg->map_size);
    if (seg->fd >= 0)
        close(seg->fd);
    free(seg->buf);
    seg->map = NULL;
    seg->buf = NULL;
    seg->fd = -1;
}

static enum st_result open_fd(struct st_seg *seg, int alive, char *err, size_t n)
{
    seg->fd = shm_open(seg->name, O_RDONLY, 0);
    if (seg->fd >= 0)
        return ST_OK;
    if (errno == ENOENT && !alive) {
        snprintf(err, n, "no process %d", (int)seg->pid);
        return ST_NO_PROCESS;
    }
    if (errno == ENOENT) {
        char raw[64], comm[256];
        st_proc_comm(seg->pid, raw, sizeof raw);
        st_printable(raw, sizeof raw, comm, sizeof comm);
        snprintf(err, n, "process %d (%s) is not a greenhub process (no %s)",
                 (int)seg->pid, comm, seg->path);
        return ST_NOT_GREENHUB;
    }
    if (errno == EACCES)
        snprintf(err, n, "%s: permission denied (the segment belongs to "
                 "another user)", seg->path);
    else
        snprintf(err, n, "%s: %s", seg->path, strerror(errno));
    return ST_ERROR;
}

static int check_file(struct st_seg *seg, struct stat *st, char *err, size_t n)
{
    if (fstat(seg->fd, st) != 0) {
        snprintf(err, n, "%s: %s", seg->path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, n, "%s is not a regular file", seg->path);
        return -1;
    }
    if (st->st_uid != getuid()) {
        struct passwd *pw = getpwuid(st->st_uid);
        snprintf(err, n, "%s belongs to %s (uid %u), not to you: refused",
                 seg->path, pw ? pw->pw_name : "another user", (unsigned)st->st_uid);
        return -1;
    }
    seg->dev = st->st_dev;
    seg->ino = st->st_ino;
    return 0;
}

/* Whether the runtime has published its first sample: it fills the fields
 * that never change while seq is odd, then the first sample's release of
 * seq (even, non-zero) publishes them. */
static int published(const struct gh_shm_header *h)
{
    uint32_t seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
    return seq != 0 && (seq & 1) == 0 && __atomic_load_n(&h->magic, __ATOMIC_RELAXED) != 0;
}

/* Maps the header.  A segment is created empty, sized, filled, then
 * published: one caught on the way gets ST_INIT_TRIES waits before it is
 * judged.  *st is the file as last seen. */
static const struct gh_shm_header *map_header(struct st_seg *seg, struct stat *st,
                                              char *err, size_t n)
{
    for (int i = 0;; i++) {
        if (fstat(seg->fd, st) != 0) {
            snprintf(err, n, "%s: %s", seg->path, strerror(errno));
            return NULL;
        }
        size_t size = (size_t)st->st_size;
        if (size >= sizeof(struct gh_shm_header)) {
            const struct gh_shm_header *h = mmap(NULL, sizeof *h, PROT_READ, MAP_SHARED,
                                                 seg->fd, 0);
            if (h == MAP_FAILED) {
                snprintf(err, n, "%s: mmap: %s", seg->path, strerror(errno));
                return NULL;
            }
            if (published(h) || i >= ST_INIT_TRIES)
                return h;
            munmap((void *)h, sizeof *h);
        } else if (size != 0 || i >= ST_INIT_TRIES) {   /* sized at once, or never */
            snprintf(err, n, "%s is truncated: %zu bytes, shorter than a header (%zu)",
                     seg->path, size, sizeof(struct gh_shm_header));
            return NULL;
        }
        st_sleep_ms(ST_INIT_WAIT_MS);
    }
}

/* Judges the header; 0 if this schedtop can read the segment. */
static int check_header(const struct st_seg *seg, const struct gh_shm_header *h,
                        off_t size, char *err, size_t n)
{
    uint64_t want = h->header_size + (uint64_t)h->nhubs * h->hub_size;
    if (h->magic != GH_SHM_MAGIC)
        snprintf(err, n, "%s is not a greenhub segment (magic %#llx, expected %#llx)",
                 seg->path, (unsigned long long)h->magic, GH_SHM_MAGIC);
    else if (h->version != GH_SHM_VERSION)
        snprintf(err, n, "%s has layout version %u; this schedtop reads version %u",
                 seg->path, h->version, GH_SHM_VERSION);
    else if (h->header_size < sizeof *h || h->hub_size < sizeof(struct gh_shm_hub))
        snprintf(err, n, "%s is malformed: header_size %u, hub_size %u (at least "
                 "%zu and %zu)", seg->path, h->header_size, h->hub_size, sizeof *h,
                 sizeof(struct gh_shm_hub));
    else if (h->nhubs == 0 || h->nhubs > ST_MAX_HUBS)
        snprintf(err, n, "%s is malformed: %u hubs", seg->path, h->nhubs);
    else if (h->total_size != want)
        snprintf(err, n, "%s is malformed: total_size %llu, but header and hubs "
                 "take %llu", seg->path, (unsigned long long)h->total_size,
                 (unsigned long long)want);
    else if (h->total_size > (uint64_t)size)
        snprintf(err, n, "%s is truncated: the file has %lld bytes, its header "
                 "says %llu", seg->path, (long long)size, (unsigned long long)h->total_size);
    else if (h->pid != seg->pid)
        snprintf(err, n, "%s is malformed: its pid field says %d", seg->path, (int)h->pid);
    else
        return 0;
    return -1;
}

/* Maps the header, checks it, then maps the whole segment.  Returns the
 * runtime's start time through *start_unix_ns. */
static int map_checked(struct st_seg *seg, uint64_t *start_unix_ns, char *err, size_t n)
{
    struct stat st;
    const struct gh_shm_header *h = map_header(seg, &st, err, n);
    if (!h)
        return -1;
    int r = check_header(seg, h, st.st_size, err, n);
    seg->nhubs = h->nhubs;
    seg->header_size = h->header_size;
    seg->hub_size = h->hub_size;
    seg->map_size = (size_t)h->total_size;
    *start_unix_ns = h->start_unix_ns;
    munmap((void *)h, sizeof *h);
    if (r != 0)
        return -1;
    void *m = mmap(NULL, seg->map_size, PROT_READ, MAP_SHARED, seg->fd, 0);
    seg->buf = malloc(seg->map_size);
    if (m == MAP_FAILED || !seg->buf) {
        snprintf(err, n, "%s: cannot map %zu bytes", seg->path, seg->map_size);
        if (m != MAP_FAILED)
            munmap(m, seg->map_size);
        return -1;
    }
    seg->map = m;
    return 0;
}

/* Unlinks the segment if its name still leads to the file that was checked
 * (a new runtime with the same pid may have replaced it meanwhile).
 * Returns 1 if it was removed, 0 if it was not there any more, or -errno. */
int st_seg_remove_stale(struct st_seg *seg)
{
    struct stat now;
    if (stat(seg->path, &now) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (now.st_dev != seg->dev || now.st_ino != seg->ino)
        return 0;
    if (shm_unlink(seg->name) == 0)
        return 1;
    return errno == ENOENT ? 0 : -errno;
}

static enum st_result remove_stale(struct st_seg *seg, const char *why, char *err, size_t n)
{
    int e = st_seg_remove_stale(seg);
    st_seg_close(seg);
    if (e < 0) {
        snprintf(err, n, "%s; cannot remove its stale segment %s: %s", why,
                 seg->path, strerror(-e));
        return ST_ERROR;
    }
    snprintf(err, n, "%s: removed its stale segment %s", why, seg->path);
    return ST_STALE_REMOVED;
}

/* Opens, checks and maps pid's segment.  On ST_OK the caller owns *seg (see
 * st_seg_close); otherwise err says why, in one line, and a stale segment
 * has been removed. */
enum st_result st_seg_open(struct st_seg *seg, pid_t pid, char *err, size_t n)
{
    char why[96];
    struct stat st;
    uint64_t start = 0;
    seg_reset(seg, pid);
    int alive = st_proc_alive(pid);
    enum st_result r = open_fd(seg, alive, err, n);
    if (r != ST_OK)
        return r;
    if (check_file(seg, &st, err, n) != 0)
        goto fail;
    if (!alive) {
        snprintf(why, sizeof why, "process %d no longer exists", (int)pid);
        return remove_stale(seg, why, err, n);
    }
    if (map_checked(seg, &start, err, n) != 0)
        goto fail;
    if (pid_reused(seg, start)) {
        snprintf(why, sizeof why, "pid %d now belongs to another process", (int)pid);
        return remove_stale(seg, why, err, n);
    }
    return ST_OK;
fail:
    st_seg_close(seg);
    return ST_ERROR;
}

/* Sampling ----------------------------------------------------------------- */

int st_snap_init(struct st_snap *s, uint32_t nhubs)
{
    memset(s, 0, sizeof *s);
    s->hubs = calloc(nhubs, sizeof *s->hubs);
    s->nhubs = nhubs;
    return s->hubs ? 0 : -1;
}

void st_snap_free(struct st_snap *s)
{
    free(s->hubs);
    s->hubs = NULL;
}

/* The mapping stays valid after the process exits; only a file cut short
 * under it raises SIGBUS, caught here so it ends with a message. */
static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
    (void)sig;
    siglongjmp(bus_jmp, 1);
}

/* One consistent copy into seg->buf: 0, or -1 after ST_READ_TRIES. */
static int read_consistent(struct st_seg *seg, char *err, size_t n)
{
    struct sigaction sa = { .sa_handler = on_sigbus }, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    int r = -1;
    if (sigsetjmp(bus_jmp, 1) != 0) {
        r = -1;   /* r's value from before the jump is not to be trusted */
        snprintf(err, n, "%s shrank while it was read", seg->path);
        goto out;
    }
    for (int i = 0; i < ST_READ_TRIES && r != 0; i++) {
        r = gh_shm_read(seg->map, seg->buf, seg->map_size);
        if (r != 0)
            usleep(ST_READ_RETRY_US);
    }
    if (r != 0)
        snprintf(err, n, "%s kept changing: no consistent sample in %d tries",
                 seg->path, ST_READ_TRIES);
out:
    sigaction(SIGBUS, &old, NULL);
    return r;
}

/* Copies the sample out of seg->buf, checking the fields that never change. */
static int parse(const struct st_seg *seg, struct st_snap *s, char *err, size_t n)
{
    const char *b = seg->buf;
    memcpy(&s->h, b, sizeof s->h);
    if (s->h.magic != GH_SHM_MAGIC || s->h.nhubs != seg->nhubs ||
        s->h.header_size != seg->header_size || s->h.hub_size != seg->hub_size ||
        s->h.total_size != seg->map_size || s->nhubs != seg->nhubs) {
        snprintf(err, n, "%s changed its layout while watched", seg->path);
        return -1;
    }
    for (uint32_t i = 0; i < seg->nhubs; i++)
        memcpy(&s->hubs[i], b + seg->header_size + (size_t)i * seg->hub_size,
               sizeof s->hubs[i]);
    return 0;
}

/* Takes one sample.  ST_EXITED (with a message) once the process ended or
 * its runtime stopped. */
enum st_result st_take(struct st_seg *seg, struct st_snap *s, char *err, size_t n)
{
    int r = read_consistent(seg, err, n);
    if (!st_proc_alive(seg->pid)) {
        snprintf(err, n, "process %d exited", (int)seg->pid);
        return ST_EXITED;
    }
    if (r != 0 || parse(seg, s, err, n) != 0)
        return ST_ERROR;
    if (s->h.running == 0) {
        snprintf(err, n, "process %d stopped its greenhub runtime", (int)seg->pid);
        return ST_EXITED;
    }
    return ST_OK;
}

/* Two samples at least ST_ONCE_GAP_MS apart, for rates.  The second is
 * retaken until the monitor has published anew (bounded by two of its
 * periods, at most 5 s, plus 1 s); if it never does, both carry the same
 * updated_ns and the rates come out not valid. */
enum st_result st_take_two(struct st_seg *seg, struct st_snap *a, struct st_snap *b,
                           char *err, size_t n)
{
    enum st_result r = st_take(seg, a, err, n);
    if (r != ST_OK)
        return r;
    uint64_t wait = a->h.period_ns < 2500000000ull ? a->h.period_ns * 2 : 5000000000ull;
    uint64_t deadline = st_mono_ns() + wait + 1000000000ull;
    st_sleep_ms(ST_ONCE_GAP_MS);
    for (;;) {
        r = st_take(seg, b, err, n);
        if (r != ST_OK || b->h.updated_ns != a->h.updated_ns || st_mono_ns() > deadline)
            return r;
        st_sleep_ms(20);
    }
}

/* Rates ---------------------------------------------------------------------- */

int st_rates_init(struct st_rates *r, uint32_t nhubs)
{
    memset(r, 0, sizeof *r);
    r->nhubs = nhubs;
    r->hub = calloc((size_t)nhubs * ST_R_COUNT, sizeof *r->hub);
    return r->hub ? 0 : -1;
}

void st_rates_free(struct st_rates *r)
{
    free(r->hub);
    r->hub = NULL;
}

uint64_t st_hub_counter(const struct gh_shm_hub *h, enum st_rate which)
{
    switch (which) {
    case ST_R_SWITCHES: return h->switches;
    case ST_R_STEALS: return h->steals;
    case ST_R_STOLEN: return h->stolen;
    case ST_R_PARKS: return h->parks;
    case ST_R_IO_WAITS: return h->io_waits;
    case ST_R_SLEEPS: return h->sleeps;
    case ST_R_WAKEUPS: return h->wakeups;
    case ST_R_COUNT: break;
    }
    return 0;
}

/* Per-second rates from prev to cur (counters that went backwards count as
 * 0).  Not valid when no newer sample was published in between. */
void st_rates_compute(struct st_rates *r, const struct st_snap *prev,
                      const struct st_snap *cur)
{
    memset(r->total, 0, sizeof r->total);
    r->valid = cur->h.updated_ns > prev->h.updated_ns && prev->nhubs == cur->nhubs &&
               cur->nhubs == r->nhubs;
    r->interval_ns = r->valid ? cur->h.updated_ns - prev->h.updated_ns : 0;
    if (!r->valid)
        return;
    double secs = (double)r->interval_ns / 1e9;
    for (uint32_t i = 0; i < r->nhubs; i++) {
        for (int k = 0; k < ST_R_COUNT; k++) {
            uint64_t c1 = st_hub_counter(&cur->hubs[i], (enum st_rate)k);
            uint64_t c0 = st_hub_counter(&prev->hubs[i], (enum st_rate)k);
            double v = c1 >= c0 ? (double)(c1 - c0) / secs : 0.0;
            r->hub[(size_t)i * ST_R_COUNT + (size_t)k] = v;
            r->total[k] += v;
        }
    }
}

const char *st_state_name(uint32_t state)
{
    switch (state) {
    case GH_SHM_HUB_RUNNING: return "running";
    case GH_SHM_HUB_SEARCHING: return "searching";
    case GH_SHM_HUB_SLEEPING: return "sleeping";
    case GH_SHM_HUB_BLOCKED: return "BLOCKED";
    case GH_SHM_HUB_STOPPED: return "stopped";
    default: return "?";
    }
}
