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
 * 2 hubs (1.58-1.67x the 1-hub figure; 1.88-2.05x with this).  Free stacks
 * are remembered by address; the low bit of an entry marks a
 * canary-guarded stack. */
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
 * (plain movs); the cache itself is freed only after the monitor stopped. */
struct gh__stack_cache {
    uintptr_t hot[HOT_MAX];
    size_t nhot;
    uintptr_t dirty[DIRTY_MAX];  /* released while busy, not trimmed yet */
    size_t ndirty;
};

static inline void count_set(size_t *c, size_t v)
{
    __atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Keeps stack e in the cache if there is room (hot first). */
static inline bool cache_put(struct gh__stack_cache *c, uintptr_t e)
{
    if (c->nhot < HOT_MAX) {
        c->hot[c->nhot] = e;
        count_set(&c->nhot, c->nhot + 1);
        return true;
    }
    if (c->ndirty < DIRTY_MAX) {
        c->dirty[c->ndirty] = e;
        count_set(&c->ndirty, c->ndirty + 1);
        return true;
    }
    return false;
}

/* A stack from the cache (hot first), or 0. */
static inline uintptr_t cache_take(struct gh__stack_cache *c)
{
    if (c->nhot) {
        count_set(&c->nhot, c->nhot - 1);
        return c->hot[c->nhot];
    }
    if (c->ndirty) {
        count_set(&c->ndirty, c->ndirty - 1);
        return c->dirty[c->ndirty];
    }
    return 0;
}

static struct {
    pthread_mutex_t mu;          /* protects everything below but the mode */
    size_t page, size, slot;     /* immutable after init */
    enum guard_mode mode;        /* process-wide, decided once */
    long guard_budget;           /* mprotect guards left */
    char *seg, *seg_end;         /* carving cursor in the newest segment */
    char **segs;                 /* every segment, unmapped at destroy */
    size_t nsegs, segs_cap;      /* nsegs: atomic stores (gh__stack_mapped) */
    _Atomic uint64_t own_bytes;  /* mapped by stacks of their own size */
    uintptr_t *free;             /* trimmed free stacks */
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
    for (size_t i = 0; i < S.nsegs; i++)
        munmap(S.segs[i], SEG_STACKS * S.slot);
    free(S.segs);
    free(S.free);
    S.segs = NULL;
    S.free = NULL;
    count_set(&S.nsegs, 0);
    S.segs_cap = S.nfree = S.free_cap = 0;
    S.seg = S.seg_end = NULL;
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

/* A default-size stack from the global free list or a segment.  Caller
 * holds S.mu.  Returns the tagged address or 0 (errno-style in *err). */
static uintptr_t carve_locked(int *err)
{
    if (S.nfree)
        return S.free[--S.nfree];
    if (S.seg == S.seg_end) {
        if (S.nsegs == S.segs_cap &&
            grow_array(&S.segs, &S.segs_cap, sizeof *S.segs)) {
            *err = ENOMEM;
            return 0;
        }
        char *m = mmap(NULL, SEG_STACKS * S.slot, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            *err = ENOMEM;
            return 0;
        }
        S.segs[S.nsegs] = m;
        count_set(&S.nsegs, S.nsegs + 1);
        S.seg = m;
        S.seg_end = m + SEG_STACKS * S.slot;
    }
    char *lo = S.seg + S.page;
    S.seg += S.slot;
    GH_VG_REGISTER(lo, lo + S.size);
    return (uintptr_t)lo | (uintptr_t)guard_install(lo);
}

static int own_alloc(size_t size, struct gh__ctx *ctx, int *canary)
{
    char *m = mmap(NULL, size + S.page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return ENOMEM;
    ctx->stack_lo = m + S.page;
    ctx->stack_size = size;
    atomic_fetch_add_explicit(&S.own_bytes, size + S.page, memory_order_relaxed);
    pthread_mutex_lock(&S.mu);
    *canary = guard_install(ctx->stack_lo);
    pthread_mutex_unlock(&S.mu);
    GH_VG_REGISTER(ctx->stack_lo, ctx->stack_lo + size);
    return 0;
}

int gh__stack_alloc(struct gh__hub *h, size_t size, struct gh__ctx *ctx, int *kind)
{
    size = (size + S.page - 1) & ~(S.page - 1);
    if (size == 0 || size > ((size_t)1 << 40))
        return EINVAL;
    int canary = 0;
    if (size != S.size) {
        int err = own_alloc(size, ctx, &canary);
        if (err)
            return err;
        *kind = GH_STACK_OWN | (canary ? GH_STACK_CANARY : 0);
        return 0;
    }
    uintptr_t e = h ? cache_take(h->stacks) : 0;
    if (!e) {
        int err = 0;
        pthread_mutex_lock(&S.mu);
        e = carve_locked(&err);
        pthread_mutex_unlock(&S.mu);
        if (!e)
            return err;
    }
    ctx->stack_lo = (char *)(e & ~(uintptr_t)1);
    ctx->stack_size = S.size;
    *kind = GH_STACK_CACHED | ((e & 1) ? GH_STACK_CANARY : 0);
    return 0;
}

/* Gives the pages of stacks e[0..n) back to the kernel and puts the
 * stacks on the global free list.  Whole stacks only: the guard page below
 * each stays as it is (and a canary red zone keeps its pattern). */
static void trim(struct gh__hub *h, const uintptr_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        madvise((void *)(e[i] & ~(uintptr_t)1), S.size, MADV_DONTNEED);
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

void gh__stack_free(struct gh__hub *h, struct gh__ctx *ctx, int kind)
{
    int canary = (kind & GH_STACK_CANARY) != 0;
    if ((kind & 0xff) == GH_STACK_OWN) {
        if (!canary && S.mode == GUARD_MPROTECT) {
            pthread_mutex_lock(&S.mu);
            S.guard_budget++;
            pthread_mutex_unlock(&S.mu);
        }
        munmap(ctx->stack_lo - S.page, ctx->stack_size + S.page);
        atomic_fetch_sub_explicit(&S.own_bytes, ctx->stack_size + S.page, memory_order_relaxed);
    } else if ((kind & 0xff) == GH_STACK_CACHED) {
        uintptr_t e = (uintptr_t)ctx->stack_lo | (uintptr_t)canary;
        if (!h || !cache_put(h->stacks, e))
            trim(h, &e, 1);
    }
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
    return sigaltstack(&ss, NULL) == 0 ? 0 : errno;
}

void gh__stack_hub_destroy(struct gh__hub *h)
{
    if (h->altstack) {
        stack_t ss = { .ss_flags = SS_DISABLE };
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

/* Resident pages of one segment, counted with mincore; vec holds its
 * pages.  Guard pages are never resident, so they count nothing. */
static uint64_t segment_resident(char *seg, unsigned char *vec, size_t pages)
{
    uint64_t n = 0;
    if (mincore(seg, pages * S.page, vec) != 0)
        return 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n * S.page;
}

uint64_t gh__stack_resident(void)
{
    /* Copy the segment list (segments stay mapped until the runtime
     * ends), then ask the kernel without holding the lock. */
    pthread_mutex_lock(&S.mu);
    size_t n = S.nsegs;
    char **segs = n ? malloc(n * sizeof *segs) : NULL;
    if (segs)
        memcpy(segs, S.segs, n * sizeof *segs);
    pthread_mutex_unlock(&S.mu);
    size_t pages = SEG_STACKS * S.slot / S.page;
    unsigned char *vec = segs ? malloc(pages) : NULL;
    uint64_t total = 0;
    for (size_t i = 0; vec && i < n; i++)
        total += segment_resident(segs[i], vec, pages);
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
