/* sched/stack.c — greenlet stacks: mmap'd, guarded, cached per hub.
 *
 * Layout.  Stacks of the runtime's default size are carved from segments of
 * SEG_STACKS slots; a slot is one guard page followed by the usable stack:
 *
 *     segment: | guard | stack 0 ...... | guard | stack 1 ...... | ...
 *
 * The kernel commits stack pages on first touch, so a greenlet that touched
 * 4 KiB of its 256 KiB costs 4 KiB.  Stacks of other sizes get a mapping of
 * their own (guard + stack) and are unmapped when released.
 *
 * Guards (decided once per process, see gh_stack_guard_mode()):
 *   madvise   MADV_GUARD_INSTALL (Linux 6.13+) on each guard page: a real
 *             guard without splitting the mapping, so a million stacks cost
 *             ~16,000 map entries (one per segment), not two million.
 *   mprotect  PROT_NONE guard pages: each splits its mapping (two entries per
 *             stack), so they are used only while the process stays under a
 *             budget of (vm.max_map_count - MAP_MARGIN) / 2 guards; stacks
 *             carved after that get a canary.
 *   canary    the guard page stays writable (a red zone) filled with
 *             CANARY; the hub checks the whole page whenever the greenlet
 *             switches out.  An overflow that jumps over the whole red zone
 *             without writing to it (a frame larger than a page) is not
 *             caught, and one is caught only at the greenlet's next switch.
 * A guard hit is reported by a SIGSEGV handler running on the hub's
 * alternate signal stack; a canary hit by the hub.  Both print
 *   greenhub: greenlet '<name>' (#<id>) overflowed its <N> KiB stack
 * and abort.
 *
 * Caching.  A hub keeps up to HOT_MAX released stacks untrimmed (reused
 * with no system call: this is what makes spawn+join cheap).  Beyond that,
 * while the hub is busy, up to DIRTY_MAX more wait untrimmed too, and the
 * hub trims them (MADV_DONTNEED: the pages go back to the kernel) onto the
 * global free list TRIM_BATCH at a time once it has nothing to run
 * (gh__stack_trim_idle, from the hub loop); past DIRTY_MAX a released
 * stack is trimmed at once.  Why not trim each at once: with more than one
 * hub every MADV_DONTNEED is a TLB shootdown, an interrupt on every other
 * CPU running the process.  Measured on 2 vCPUs, 4,000 greenlets alive at
 * once (bench_cpu): trimming at once cost a quarter of the throughput of
 * 2 hubs (1.58-1.67x the 1-hub figure; 1.88-2.05x with this).
 *
 * Owners.  Each segment comes with an array of slot descriptors (struct
 * gh__stack_slot, internal.h: the stack's address, its kind, its owner),
 * allocated with the segment and never moved, so the hub caches and the
 * global free list hold descriptor pointers (the canary bit moved into the
 * descriptor's kind) and a greenlet's context points at its own
 * (ctx->slot).  The owner is the hub whose memory the stack's resident
 * pages count as (schedtop's per-hub resident figure), written where a
 * stack changes hands, never on the switch fast path:
 *   carved for a greenlet spawned on hub h   owner h (gh__stack_alloc)
 *   taken from, or put into, h's cache       none: it is h's already (a
 *                                            greenlet ends on the hub it
 *                                            last ran on)
 *   greenlet runs on a hub other than        owner that hub (set_running
 *   the one it last ran on (or first runs)   in hub.c, its cold branch)
 *   trimmed onto the global free list        GH_STACK_NOBODY, before it is
 *                                            on the list (trim)
 * So spawn+join from a warm cache writes no owner, and a greenlet's first
 * run writes one (the cold branch that counts `arrived`).  Only the
 * monitor reads owners, once per gh__stack_resident_by_hub pass, together
 * with one mincore per segment.  The owner is a snapshot, like every
 * figure the monitor publishes: a stack that changes hands during a pass
 * counts for one side or the other.  Stacks of their own size have no
 * descriptor (ctx->slot NULL) and count nowhere in the resident figures,
 * as they counted nowhere before. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef GH_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#define GH_VG_REGISTER(lo, hi) ((void)VALGRIND_STACK_REGISTER((lo), (hi)))
#else
#define GH_VG_REGISTER(lo, hi) ((void)0)
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102   /* Linux 6.13 uapi; Debian 12 headers lack it */
#endif

enum { SEG_STACKS = 64 };        /* stacks per segment: a guess; 16 MiB of
                                    address space per segment at 256 KiB */
enum { HOT_MAX = GH_STACK_HOT_MAX, DIRTY_MAX = GH_STACK_DIRTY_MAX };
enum { TRIM_BATCH = 64 };        /* trimmed per idle pass: bounds how long a
                                    hub with nothing to run looks away */
enum { MAP_MARGIN = 4096 };      /* map entries left to the rest of the
                                    process in mprotect mode: a guess */
#define CANARY 0x6768737461636b21ULL   /* "ghstack!" */

enum guard_mode { GUARD_NONE = 0, GUARD_MADVISE, GUARD_MPROTECT, GUARD_CANARY };

/* Owner: its hub.  nhot and ndirty are also read by the monitor thread
 * (gh__stack_cached), so the owner writes them with relaxed atomic stores
 * (plain movs); the cache itself is freed only after the monitor stopped.
 * Every slot in it has this hub as its owner.  A hot entry keeps the
 * stack's address next to its slot, so that a spawn need not wait for a
 * load of the slot to learn where to write the first frame.  Measured
 * (bench_spawn, 2 vCPUs): with bare slot pointers spawn+join took ~1 ns
 * longer than with the tagged addresses cached before owners existed;
 * with this, and the slow paths out of line (carve), ~0.5 ns less. */
struct hot_ent {
    char *lo;                    /* == d->lo */
    struct gh__stack_slot *d;
};
struct gh__stack_cache {
    struct hot_ent hot[HOT_MAX];
    size_t nhot;
    struct gh__stack_slot *dirty[DIRTY_MAX];  /* released while busy, not
                                                 trimmed yet */
    size_t ndirty;
};

static inline void count_set(size_t *c, size_t v)
{
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Keeps stack e (at lo) in the cache if there is room (hot first).  The
 * counts are read into locals: a relaxed atomic store would make the
 * compiler load them again. */
static inline bool cache_put(struct gh__stack_cache *c, struct gh__stack_slot *e, char *lo)
{
    size_t n = c->nhot;
    if (n < HOT_MAX) {
        c->hot[n].lo = lo;
        c->hot[n].d = e;
        count_set(&c->nhot, n + 1);
        return true;
    }
    n = c->ndirty;
    if (n < DIRTY_MAX) {
        c->dirty[n] = e;
        count_set(&c->ndirty, n + 1);
        return true;
    }
    return false;
}

/* A stack from the cache (hot first) and its address in *lo, or NULL. */
static inline struct gh__stack_slot *cache_take(struct gh__stack_cache *c, char **lo)
{
    size_t n = c->nhot;
    if (n) {
        count_set(&c->nhot, n - 1);
        *lo = c->hot[n - 1].lo;
        return c->hot[n - 1].d;
    }
    n = c->ndirty;
    if (n) {
        count_set(&c->ndirty, n - 1);
        *lo = c->dirty[n - 1]->lo;
        return c->dirty[n - 1];
    }
    return NULL;
}

/* A segment and its slots' descriptors (slot i's guard page is at
 * base + i * S.slot, its stack one page above).  Made whole under S.mu
 * before anyone sees it; freed at gh__stack_global_destroy. */
struct seg {
    char *base;                               /* immutable */
    struct gh__stack_slot slot[SEG_STACKS];
};

static struct {
    pthread_mutex_t mu;          /* protects everything below but the mode */
    size_t page, size, slot;     /* immutable after init */
    enum guard_mode mode;        /* process-wide, decided once */
    long guard_budget;           /* mprotect guards left */
    unsigned carved;             /* slots of the newest segment carved */
    struct seg **segs;           /* every segment, unmapped at destroy */
    size_t nsegs, segs_cap;      /* nsegs: atomic stores (gh__stack_mapped) */
    _Atomic uint64_t own_bytes;  /* mapped by stacks of their own size */
    struct gh__stack_slot **free;  /* trimmed free stacks; owner NOBODY */
    size_t nfree, free_cap;
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *const mode_names[] = { NULL, "madvise", "mprotect", "canary" };

const char *gh_stack_guard_mode(void)
{
    return mode_names[S.mode];
}

static enum guard_mode detect_mode(void)
{
    const char *env = getenv("GREENHUB_GUARD");
    if (env && *env) {
        for (int m = GUARD_MADVISE; m <= GUARD_CANARY; m++)
            if (strcmp(env, mode_names[m]) == 0)
                return (enum guard_mode)m;
        fprintf(stderr, "greenhub: GREENHUB_GUARD=%s unknown; probing\n", env);
    }
    char *p = mmap(NULL, 2 * S.page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return GUARD_MPROTECT;
    int ok = madvise(p, S.page, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * S.page);
    return ok ? GUARD_MADVISE : GUARD_MPROTECT;
}

static long read_max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

int gh__stack_global_init(size_t default_size)
{
    S.page = (size_t)sysconf(_SC_PAGESIZE);
    S.size = (default_size + S.page - 1) & ~(S.page - 1);
    S.slot = S.size + S.page;
    if (S.mode == GUARD_NONE || getenv("GREENHUB_GUARD"))
        S.mode = detect_mode();
    long budget = (read_max_map_count() - MAP_MARGIN) / 2;
    S.guard_budget = budget > 0 ? budget : 0;
    return 0;
}

void gh__stack_global_destroy(void)
{
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.nsegs; i++) {
        munmap(S.segs[i]->base, SEG_STACKS * S.slot);
        free(S.segs[i]);
    }
    free(S.segs);
    free(S.free);
    S.segs = NULL;
    S.free = NULL;
    count_set(&S.nsegs, 0);
    S.segs_cap = S.nfree = S.free_cap = 0;
    S.carved = 0;
    pthread_mutex_unlock(&S.mu);
}

/* Guards the page below `lo`.  Returns 1 if the stack relies on a canary.
 * Caller holds S.mu (for the budget) or owns the mapping alone. */
static int guard_install(char *lo)
{
    char *g = lo - S.page;
    if (S.mode == GUARD_MADVISE && madvise(g, S.page, MADV_GUARD_INSTALL) == 0)
        return 0;
    if (S.mode == GUARD_MPROTECT && S.guard_budget > 0 &&
        mprotect(g, S.page, PROT_NONE) == 0) {
        S.guard_budget--;
        return 0;
    }
    uint64_t *rz = (uint64_t *)g;
    for (size_t i = 0; i < S.page / sizeof *rz; i++)
        rz[i] = CANARY;
    return 1;
}

static int grow_array(void *arrp, size_t *cap, size_t elem)
{
    size_t n = *cap ? *cap * 2 : 64;
    void *a = realloc(*(void **)arrp, n * elem);
    if (!a)
        return ENOMEM;
    *(void **)arrp = a;
    *cap = n;
    return 0;
}

/* Maps a new segment with its descriptors (every owner NOBODY) and makes
 * it the one to carve from.  Caller holds S.mu.  False: no memory. */
static bool seg_new_locked(void)
{
    if (S.nsegs == S.segs_cap && grow_array(&S.segs, &S.segs_cap, sizeof *S.segs))
        return false;
    struct seg *sg = malloc(sizeof *sg);
    if (!sg)
        return false;
    sg->base = mmap(NULL, SEG_STACKS * S.slot, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (sg->base == MAP_FAILED) {
        free(sg);
        return false;
    }
    for (unsigned i = 0; i < SEG_STACKS; i++) {
        sg->slot[i].lo = sg->base + i * S.slot + S.page;
        sg->slot[i].kind = GH_STACK_CACHED;
        atomic_init(&sg->slot[i].owner, GH_STACK_NOBODY);
    }
    S.segs[S.nsegs] = sg;
    count_set(&S.nsegs, S.nsegs + 1);
    S.carved = 0;
    return true;
}

/* A default-size stack from the global free list or a segment; its owner
 * is NOBODY.  Caller holds S.mu.  NULL if there is no memory. */
static struct gh__stack_slot *carve_locked(void)
{
    if (S.nfree)
        return S.free[--S.nfree];
    if ((S.nsegs == 0 || S.carved == SEG_STACKS) && !seg_new_locked())
        return NULL;
    struct gh__stack_slot *d = &S.segs[S.nsegs - 1]->slot[S.carved++];
    GH_VG_REGISTER(d->lo, d->lo + S.size);
    if (guard_install(d->lo))
        d->kind |= GH_STACK_CANARY;
    return d;
}

/* gh__stack_alloc's way when h's cache is empty (or h is NULL): a stack
 * from carve_locked, owned by h; a plain thread's stays NOBODY until its
 * greenlet runs.  Out of line, as are the other cold paths below: the
 * cache paths of gh__stack_alloc and gh__stack_free then need no frame. */
__attribute__((noinline)) static struct gh__stack_slot *carve(struct gh__hub *h)
{
    pthread_mutex_lock(&S.mu);
    struct gh__stack_slot *d = carve_locked();
    pthread_mutex_unlock(&S.mu);
    if (d && h)
        atomic_store_explicit(&d->owner, (int32_t)h->index, memory_order_relaxed);
    return d;
}

/* A stack of its own size (not the default): a mapping of its own. */
__attribute__((noinline)) static int own_alloc(size_t size, struct gh__ctx *ctx, int *kind)
{
    char *m = mmap(NULL, size + S.page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return ENOMEM;
    ctx->slot = NULL;
    ctx->stack_lo = m + S.page;
    ctx->stack_size = size;
    atomic_fetch_add_explicit(&S.own_bytes, size + S.page, memory_order_relaxed);
    pthread_mutex_lock(&S.mu);
    int canary = guard_install(ctx->stack_lo);
    pthread_mutex_unlock(&S.mu);
    GH_VG_REGISTER(ctx->stack_lo, ctx->stack_lo + size);
    *kind = GH_STACK_OWN | (canary ? GH_STACK_CANARY : 0);
    return 0;
}

int gh__stack_alloc(struct gh__hub *h, size_t size, struct gh__ctx *ctx, int *kind)
{
    size = (size + S.page - 1) & ~(S.page - 1);
    if (size == 0 || size > ((size_t)1 << 40))
        return EINVAL;
    if (size != S.size)
        return own_alloc(size, ctx, kind);
    char *lo = NULL;
    struct gh__stack_slot *d = h ? cache_take(h->stacks, &lo) : NULL;   /* h's already */
    if (!d) {
        if (!(d = carve(h)))
            return ENOMEM;
        lo = d->lo;
    }
    ctx->slot = d;
    ctx->stack_lo = lo;
    ctx->stack_size = S.size;
    *kind = d->kind;
    return 0;
}

/* Gives the pages of stacks e[0..n) back to the kernel and puts the
 * stacks on the global free list, owned by nobody (set before they are on
 * it: from then on a carver may own them).  Whole stacks only: the guard
 * page below each stays as it is (and a canary red zone keeps its
 * pattern). */
static void trim(struct gh__hub *h, struct gh__stack_slot *const *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        madvise(e[i]->lo, S.size, MADV_DONTNEED);
        atomic_store_explicit(&e[i]->owner, GH_STACK_NOBODY, memory_order_relaxed);
    }
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < n; i++)
        if (S.nfree < S.free_cap || !grow_array(&S.free, &S.free_cap, sizeof *S.free))
            S.free[S.nfree++] = e[i];
        /* else: the stack stays mapped (in its segment) but unused until
         * the runtime ends: memory is short, nothing breaks. */
    pthread_mutex_unlock(&S.mu);
    if (h)
        gh__stat_add(&h->st.stacks_trimmed, n);
}

bool gh__stack_trim_idle(struct gh__hub *h)
{
    struct gh__stack_cache *c = h->stacks;
    size_t n = c->ndirty < TRIM_BATCH ? c->ndirty : TRIM_BATCH;
    if (!n)
        return false;
    count_set(&c->ndirty, c->ndirty - n);
    trim(h, &c->dirty[c->ndirty], n);
    return true;
}

/* gh__stack_free's cold paths: a stack that finds no room in the cache, and
 * a stack of its own size. */
__attribute__((noinline)) static void trim_one(struct gh__hub *h, struct gh__stack_slot *e)
{
    trim(h, &e, 1);
}

__attribute__((noinline)) static void own_free(struct gh__ctx *ctx, int kind)
{
    if (!(kind & GH_STACK_CANARY) && S.mode == GUARD_MPROTECT) {
        pthread_mutex_lock(&S.mu);
        S.guard_budget++;
        pthread_mutex_unlock(&S.mu);
    }
    munmap(ctx->stack_lo - S.page, ctx->stack_size + S.page);
    atomic_fetch_sub_explicit(&S.own_bytes, ctx->stack_size + S.page, memory_order_relaxed);
}

void gh__stack_free(struct gh__hub *h, struct gh__ctx *ctx, int kind)
{
    if ((kind & 0xff) == GH_STACK_OWN) {
        own_free(ctx, kind);
    } else if ((kind & 0xff) == GH_STACK_CACHED) {
        /* Its greenlet ended on h, the hub it last ran on: the slot's owner
         * is h already, as a slot in h's cache must be. */
        if (!h || !cache_put(h->stacks, ctx->slot, ctx->stack_lo))
            trim_one(h, ctx->slot);
    }
    ctx->slot = NULL;
    ctx->stack_lo = NULL;
    ctx->stack_size = 0;
}

/* Canary mode: the whole red-zone page must still hold CANARY.  A single
 * word is not enough: a recursion whose frames leave gaps (sanitizer
 * redzones, large arrays written sparsely) can step over it.  One
 * sequential 4 KiB read per switch, paid only in this fallback mode. */
void gh__stack_check_canary(const gh_greenlet *g)
{
    if (!(g->stack_kind & GH_STACK_CANARY))
        return;
    const uint64_t *rz = (const uint64_t *)(g->ctx.stack_lo - S.page);
    uint64_t diff = 0;
    for (size_t i = 0; i < S.page / sizeof *rz; i++)
        diff |= rz[i] ^ CANARY;
    if (diff) {
        fprintf(stderr, "greenhub: greenlet '%s' (#%llu) overflowed its %zu KiB stack\n",
                gh_name(g), (unsigned long long)g->id, g->ctx.stack_size / 1024);
        gh__monitor_on_death();
        abort();
    }
}

int gh__stack_hub_init(struct gh__hub *h)
{
    h->stacks = calloc(1, sizeof *h->stacks);
    if (!h->stacks)
        return ENOMEM;
    /* The alternate signal stack the overflow handler runs on. */
    size_t alt = 64 * 1024;
    h->altstack = mmap(NULL, alt, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h->altstack == MAP_FAILED) {
        h->altstack = NULL;
        return ENOMEM;
    }
    stack_t ss = { .ss_sp = h->altstack, .ss_size = alt, .ss_flags = 0 };
    return sigaltstack(&ss, &h->altstack_before) == 0 ? 0 : errno;
}

void gh__stack_hub_destroy(struct gh__hub *h)
{
    if (h->altstack) {
        /* The thread's alternate stack before this hub's, or none: a hub
         * on gh_run's own thread leaves it as it found it. */
        stack_t ss = h->altstack_before;
        if (!ss.ss_sp)
            ss = (stack_t){ .ss_flags = SS_DISABLE };
#ifdef SS_AUTODISARM
        ss.ss_flags &= SS_DISABLE | SS_AUTODISARM;
#else
        ss.ss_flags &= SS_DISABLE;
#endif
        sigaltstack(&ss, NULL);
        munmap(h->altstack, 64 * 1024);
        h->altstack = NULL;
    }
    /* h->stacks stays until gh__stack_hub_free: the monitor may still read
     * its counts.  The stacks in it belong to segments, unmapped by
     * gh__stack_global_destroy. */
}

void gh__stack_hub_free(struct gh__hub *h)
{
    free(h->stacks);
    h->stacks = NULL;
}

size_t gh__stack_cached(const struct gh__hub *h)
{
    const struct gh__stack_cache *c = h->stacks;
    if (!c)
        return 0;
    return (__atomic_load_n(&c->nhot, __ATOMIC_RELAXED) +
            __atomic_load_n(&c->ndirty, __ATOMIC_RELAXED)) * S.size;
}

uint64_t gh__stack_mapped(void)
{
    return (uint64_t)__atomic_load_n(&S.nsegs, __ATOMIC_RELAXED) * SEG_STACKS * S.slot +
           atomic_load_explicit(&S.own_bytes, memory_order_relaxed);
}

size_t gh__stack_default_size(void)
{
    return S.size;
}

/* Adds the resident bytes of segment sg to its slots' owners (per_hub,
 * nhubs entries) or to *unowned; vec holds the segment's pages.  A slot's
 * pages are its guard and its stack.  Guard pages are resident only as
 * canary red zones, which count with their stack, as they always did. */
static uint64_t segment_resident(const struct seg *sg, unsigned char *vec,
                                 uint64_t *per_hub, unsigned nhubs, uint64_t *unowned)
{
    size_t slot_pages = S.slot / S.page;
    if (mincore(sg->base, SEG_STACKS * S.slot, vec) != 0)
        return 0;
    uint64_t total = 0;
    for (unsigned i = 0; i < SEG_STACKS; i++) {
        uint64_t n = 0;
        for (size_t k = i * slot_pages; k < (i + 1) * slot_pages; k++)
            n += vec[k] & 1;
        n *= S.page;
        int32_t o = atomic_load_explicit(&sg->slot[i].owner, memory_order_relaxed);
        if (o >= 0 && (unsigned)o < nhubs)
            per_hub[o] += n;
        else
            *unowned += n;
        total += n;
    }
    return total;
}

uint64_t gh__stack_resident_by_hub(uint64_t *per_hub, unsigned nhubs, uint64_t *unowned)
{
    /* Copy the segment list (segments and their descriptors stay until
     * the runtime ends), then ask the kernel without holding the lock. */
    pthread_mutex_lock(&S.mu);
    size_t n = S.nsegs;
    struct seg **segs = n ? malloc(n * sizeof *segs) : NULL;
    if (segs)
        memcpy(segs, S.segs, n * sizeof *segs);
    pthread_mutex_unlock(&S.mu);
    unsigned char *vec = segs ? malloc(SEG_STACKS * S.slot / S.page) : NULL;
    uint64_t total = 0;
    memset(per_hub, 0, nhubs * sizeof *per_hub);
    *unowned = 0;
    for (size_t i = 0; vec && i < n; i++)
        total += segment_resident(segs[i], vec, per_hub, nhubs, unowned);
    free(vec);
    free(segs);
    return total;
}

/* ---- overflow report ------------------------------------------------------
 * Async-signal-safe: formats with no stdio and writes with write(2). */

static struct sigaction old_segv;   /* the handler we chain to */

static char *fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    struct gh__hub *h = gh__hub_self();
    gh_greenlet *g = h ? h->current : NULL;
    char *a = si->si_addr;
    if (g && g->ctx.stack_lo && a < g->ctx.stack_lo && a >= g->ctx.stack_lo - S.page) {
        char buf[160], *p = buf;
        const char *s1 = "greenhub: greenlet '", *s2 = "' (#", *s3 = ") overflowed its ",
                   *s4 = " KiB stack\n";
        p = stpcpy(p, s1);
        const char *nm = gh_name(g);   /* pure reads: signal-safe */
        for (const char *n = nm; *n && n < nm + GH_NAME_MAX; n++)
            *p++ = *n;
        p = stpcpy(p, s2);
        p = fmt_u64(p, g->id);
        p = stpcpy(p, s3);
        p = fmt_u64(p, g->ctx.stack_size / 1024);
        p = stpcpy(p, s4);
        ssize_t w = write(STDERR_FILENO, buf, (size_t)(p - buf));
        (void)w;
        gh__monitor_on_death();
        abort();
    }
    /* Not ours: hand the fault to whoever handled it before us. */
    if (old_segv.sa_flags & SA_SIGINFO) {
        if (old_segv.sa_sigaction) {
            old_segv.sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL);   /* returning re-faults into the default */
}

/* At every gh_run start: our handler goes in front of whatever handles
 * SIGSEGV now (faults that are not guard hits are handed to it).  Installing
 * once per process is not enough: test harnesses and crash reporters
 * replace the handler between runs. */
void gh__overflow_handler_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

/* At gh_run end: puts the previous handler back, unless someone replaced
 * ours meanwhile (then theirs stays). */
void gh__overflow_handler_remove(void)
{
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_segv)
        sigaction(SIGSEGV, &old_segv, NULL);
}
