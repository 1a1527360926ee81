/* tests/test_switch.c — the context switch and stacks: callee-saved and FPU
 * state survive a switch, deep recursion fits, and an overflow is reported
 * by name in every guard mode. */
#include "gh_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* Under ASan: let greenhub's SIGSEGV handler report guard-page hits (GCC's
 * libasan ignores user SEGV handlers unless told; see README, "Sanitizers"). */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allow_user_segv_handler=1"; }
#endif

#include "context.h"

/* tests/regs_<arch>.S: they call gh__ctx_switch with these arguments. */
int gh_test_switch_keep(void *from, void *to, void *arg);
void *gh_test_switch_clobber(void *from, void *to, void *arg);
/* gh__ctx_switch's arguments for contexts `from` and `to`: the contexts
 * themselves on x86-64, &from->sp and to->sp on AArch64 (context.h). */
#if defined(__x86_64__)
#define SW_FROM(c) ((void *)(c))
#define SW_TO(c) ((void *)(c))
#else
#define SW_FROM(c) ((void *)&(c)->sp)
#define SW_TO(c) ((c)->sp)
#endif

/* ---- raw switch: two contexts, no scheduler ------------------------------ */

static struct gh__ctx main_ctx, b_ctx;
static unsigned b_rounds;
static int b_fpu_ok = 1;

/* The FPU control state that travels with a context, as one word:
 * x86-64: MXCSR | x87 control word << 32; AArch64: FPCR.  fpu_pairs lists
 * what the main context and context B each set (exceptions all masked). */
#if defined(__x86_64__)
static uint64_t fpu_get(void)
{
    uint32_t mx;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return mx | (uint64_t)cw << 32;
}
static void fpu_set(uint64_t v)
{
    uint32_t mx = (uint32_t)v;
    uint16_t cw = (uint16_t)(v >> 32);
    __asm__ volatile("ldmxcsr %0" : : "m"(mx));
    __asm__ volatile("fldcw %0" : : "m"(cw));
}
/* {main's, B's}: both words differ; only the x87 control word differs;
 * only MXCSR differs; the same (the switch skips reloading equal words,
 * so every combination is a different path through it). */
static const uint64_t fpu_pairs[][2] = {
    { 0x7f80u | (uint64_t)0x0c7fu << 32, 0x5f80u | (uint64_t)0x087fu << 32 },
    { 0x1f80u | (uint64_t)0x0c7fu << 32, 0x1f80u | (uint64_t)0x087fu << 32 },
    { 0x7f80u | (uint64_t)0x037fu << 32, 0x5f80u | (uint64_t)0x037fu << 32 },
    { 0x1f80u | (uint64_t)0x037fu << 32, 0x1f80u | (uint64_t)0x037fu << 32 },
};
#elif defined(__aarch64__)
static uint64_t fpu_get(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void fpu_set(uint64_t v) { __asm__ volatile("msr fpcr, %0" : : "r"(v)); }
/* {main's, B's}: round toward zero vs round up (RMode); the same. */
static const uint64_t fpu_pairs[][2] = {
    { (uint64_t)3 << 22, (uint64_t)1 << 22 },
    { (uint64_t)1 << 22, (uint64_t)1 << 22 },
};
#endif
static uint64_t fpu_b;   /* what context B sets */
static void *arg_sent;   /* what the main context last passed to B */
static int b_arg_ok = 1;

/* Context B: clobbers every callee-saved register, sets its own FPU
 * control state and checks it is still there each time it comes back. */
static void b_entry(void)
{
    fpu_set(fpu_b);
    for (;;) {
        b_rounds++;
        void *got = gh_test_switch_clobber(SW_FROM(&b_ctx), SW_TO(&main_ctx), NULL);
        if (got != arg_sent)
            b_arg_ok = 0;
        if (fpu_get() != fpu_b)
            b_fpu_ok = 0;
    }
}

/* A context whose first switch-in enters entry (as if called, so entry
 * must never return), with the caller's FPU control state. */
static void make_ctx(struct gh__ctx *c, char *stack, size_t size, void (*entry)(void))
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    uint64_t fpu = fpu_get();
    memset(c, 0, sizeof *c);
#if defined(__x86_64__)
    c->sp = (void *)(top - 8);     /* 8 mod 16, as a call leaves it */
    c->pc = (void *)(uintptr_t)entry;
    c->mxcsr = (uint32_t)fpu;
    c->fpucw = (uint16_t)(fpu >> 32);
#else
    uint64_t *f = (uint64_t *)(top - 0xb0);       /* sp = top at entry */
    memset(f, 0, 0xb0);
    f[11] = (uint64_t)(uintptr_t)entry;           /* x30 */
    f[20] = fpu;                                  /* FPCR */
    c->sp = f;
#endif
}

static void test_switch_preserves_registers(void **state)
{
    (void)state;
    enum { NPAIRS = sizeof fpu_pairs / sizeof fpu_pairs[0] };
    size_t sz = 64 * 1024;
    uint64_t fpu0 = fpu_get();
    /* A stack of its own for each context, all mapped until the end: a
     * context never returns, so under ASan the red zones of its frames stay
     * poisoned, and a new mapping at the same address would inherit them. */
    char *stacks[NPAIRS];
    for (size_t p = 0; p < NPAIRS; p++) {
        stacks[p] = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(stacks[p] != MAP_FAILED);
    }
    for (size_t p = 0; p < NPAIRS; p++) {
        char *stack = stacks[p];
        fpu_b = fpu_pairs[p][1];
        b_rounds = 0;
        make_ctx(&b_ctx, stack, sz, b_entry);
        fpu_set(fpu_pairs[p][0]);
        for (int i = 0; i < 1000; i++) {
            arg_sent = (void *)(uintptr_t)(0x5000 + i);
            int changed = gh_test_switch_keep(SW_FROM(&main_ctx), SW_TO(&b_ctx), arg_sent);
            assert_int_equal(changed, 0);
            assert_true(fpu_get() == fpu_pairs[p][0]);
        }
        fpu_set(fpu0);
        assert_int_equal(b_rounds, 1000);
        assert_int_equal(b_fpu_ok, 1);
        assert_int_equal(b_arg_ok, 1);   /* B's first entry took no arg */
    }
    for (size_t p = 0; p < NPAIRS; p++)
        munmap(stacks[p], sz);
}

#if defined(__x86_64__)
/* The inline switch (x86-64) tells the compiler that every register but
 * rsp and rbp dies across it.  Here sixteen doubles are live across the
 * switch in a function the switch is inlined into, and the other context
 * overwrites all sixteen xmm registers: with an xmm register missing from
 * the clobber list the compiler keeps a value there and the sum is wrong.
 * The arg each side passes must arrive on the other side too. */
static struct gh__ctx x_main, x_b;
static int x_arg_ok = 1;
static volatile double x_seed = 1.5;

static void xmm_b_entry(void)
{
    for (;;) {
        __asm__ volatile("pcmpeqd %%xmm0, %%xmm0\n\t"
                         "movdqa %%xmm0, %%xmm1\n\tmovdqa %%xmm0, %%xmm2\n\t"
                         "movdqa %%xmm0, %%xmm3\n\tmovdqa %%xmm0, %%xmm4\n\t"
                         "movdqa %%xmm0, %%xmm5\n\tmovdqa %%xmm0, %%xmm6\n\t"
                         "movdqa %%xmm0, %%xmm7\n\tmovdqa %%xmm0, %%xmm8\n\t"
                         "movdqa %%xmm0, %%xmm9\n\tmovdqa %%xmm0, %%xmm10\n\t"
                         "movdqa %%xmm0, %%xmm11\n\tmovdqa %%xmm0, %%xmm12\n\t"
                         "movdqa %%xmm0, %%xmm13\n\tmovdqa %%xmm0, %%xmm14\n\t"
                         "movdqa %%xmm0, %%xmm15"
                         ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
                             "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                             "xmm13", "xmm14", "xmm15");
        if (gh__ctx_switch_inline(&x_b, &x_main, &x_b) != &x_main)
            x_arg_ok = 0;
    }
}

/* The empty asm pins each value into an xmm register once it is computed,
 * so the compiler cannot sink the arithmetic below the switch. */
#define XMM_VAL(i) double v##i = a * ((i) + 1) + 0.25 * (i); __asm__("" : "+x"(v##i))
static __attribute__((noinline)) double xmm_live_across_switch(void)
{
    double a = x_seed;
    XMM_VAL(0); XMM_VAL(1); XMM_VAL(2); XMM_VAL(3); XMM_VAL(4); XMM_VAL(5);
    XMM_VAL(6); XMM_VAL(7); XMM_VAL(8); XMM_VAL(9); XMM_VAL(10); XMM_VAL(11);
    XMM_VAL(12); XMM_VAL(13); XMM_VAL(14); XMM_VAL(15);
    if (gh__ctx_switch_inline(&x_main, &x_b, &x_main) != &x_b)
        x_arg_ok = 0;
    return v0 * 2 + v1 * 3 + v2 * 4 + v3 * 5 + v4 * 6 + v5 * 7 + v6 * 8 +
           v7 * 9 + v8 * 10 + v9 * 11 + v10 * 12 + v11 * 13 + v12 * 14 +
           v13 * 15 + v14 * 16 + v15 * 17;
}

static void test_inline_switch_keeps_values_live_in_xmm(void **state)
{
    (void)state;
    size_t sz = 64 * 1024;
    char *stack = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(stack != MAP_FAILED);
    make_ctx(&x_b, stack, sz, xmm_b_entry);
    double want = 0;
    for (int i = 0; i < 16; i++)
        want += (x_seed * (i + 1) + 0.25 * i) * (i + 2);
    for (int round = 0; round < 100; round++)
        assert_true(xmm_live_across_switch() == want);
    /* B's first entry took no arg; every later one must have. */
    assert_int_equal(x_arg_ok, 1);
    /* The stack stays mapped: B never returns, so under ASan its frames'
     * red zones stay poisoned (see test_switch_preserves_registers). */
}
#endif

/* ---- through the runtime ------------------------------------------------------ */

/* A frame of ~512 bytes (more under sanitizers) that the compiler cannot
 * elide; records where the frames at depth 1 and 0 were, so tests can size
 * their recursion by the real frame size of this build. */
static uintptr_t frame_at[2];

static __attribute__((noinline)) uint64_t recurse(unsigned n)
{
    volatile char pad[480];
    pad[0] = (char)n;
    pad[479] = (char)(n >> 8);
    if (n < 2)
        frame_at[n] = (uintptr_t)&pad[0];
    if (n == 0)
        return 1;
    return recurse(n - 1) + (uint64_t)(unsigned char)pad[0] + (uint64_t)(unsigned char)pad[479];
}

static size_t frame_size(void)
{
    recurse(1);
    return frame_at[1] - frame_at[0];
}

static uint64_t recurse_expect(unsigned depth)
{
    uint64_t e = 1;
    for (unsigned n = 1; n <= depth; n++)
        e += (n & 0xff) + ((n >> 8) & 0xff);
    return e;
}

/* Uses about three quarters of a 256 KiB stack. */
static void *deep_fn(void *arg)
{
    (void)arg;
    unsigned depth = (unsigned)(192 * 1024 / frame_size());
    return (void *)(uintptr_t)(recurse(depth) == recurse_expect(depth));
}

static void *deep_main(void *arg)
{
    (void)arg;
    /* 256 KiB stack: 400 frames of ~512 B use ~200 KiB of it. */
    gh_spawn_opts o = { .name = "deep", .stack_size = 256 * 1024 };
    gh_greenlet *g = gh_spawn_with(&o, deep_fn, NULL);
    assert_non_null(g);
    void *r = NULL;
    assert_int_equal(gh_join(g, &r), 0);
    assert_int_equal((uintptr_t)r, 1);
    return NULL;
}

static void test_deep_recursion_fits(void **state)
{
    (void)state;
    gh_test_run(2, deep_main, NULL);
}

/* Overflows a 64 KiB stack by less than the 4 KiB red zone (the greenlet
 * has used well under 1 KiB when it starts recursing), then yields, so a
 * canary is checked even where no guard page stopped it. */
static void *overflow_fn(void *arg)
{
    (void)arg;
    uint64_t r = recurse((unsigned)((64 * 1024 + 1024) / frame_size()) + 1);
    gh_yield();
    return (void *)(uintptr_t)r;
}

static void *overflow_main(void *arg)
{
    (void)arg;
    gh_spawn_opts o = { .name = "deep-diver", .stack_size = 64 * 1024 };
    gh_greenlet *g = gh_spawn_with(&o, overflow_fn, NULL);
    gh_join(g, NULL);
    return NULL;
}

/* Runs the overflow in a child with GREENHUB_GUARD=mode; checks it died of
 * SIGABRT after printing the message, and took its schedtop segment with
 * it (a later process given its pid must find the name free). */
static void overflow_death(const char *mode)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        setenv("GREENHUB_GUARD", mode, 1);
        gh_config cfg = { .hubs = 2 };
        gh_run(&cfg, overflow_main, NULL, NULL);
        _exit(0);   /* reaching here means no overflow was detected */
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("mode %s: child did not abort (status 0x%x); stderr:\n%s", mode, st, buf);
    if (!strstr(buf, "greenhub: greenlet 'deep-diver' (#") ||
        !strstr(buf, ") overflowed its 64 KiB stack"))
        fail_msg("mode %s: message missing; stderr:\n%s", mode, buf);
    char seg[64];
    snprintf(seg, sizeof seg, "/greenhub.%d", (int)pid);
    int fd = shm_open(seg, O_RDONLY, 0);
    if (fd >= 0) {
        shm_unlink(seg);
        fail_msg("mode %s: the dead child's segment %s was left behind", mode, seg);
    }
    assert_int_equal(errno, ENOENT);
}

static void test_overflow_madvise(void **state) { (void)state; overflow_death("madvise"); }
static void test_overflow_mprotect(void **state) { (void)state; overflow_death("mprotect"); }
static void test_overflow_canary(void **state) { (void)state; overflow_death("canary"); }

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_switch_preserves_registers),
#if defined(__x86_64__)
    cmocka_unit_test(test_inline_switch_keeps_values_live_in_xmm),
#endif
    cmocka_unit_test(test_deep_recursion_fits),
    cmocka_unit_test(test_overflow_madvise),
    cmocka_unit_test(test_overflow_mprotect),
    cmocka_unit_test(test_overflow_canary),
};
GH_TEST_MAIN(tests)
