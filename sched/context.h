/* sched/context.h — a switchable context (a stack and its saved state), and
 * the switch with its AddressSanitizer / ThreadSanitizer hooks.
 *
 * The hooks compile to empty inline functions unless the library is built
 * with the sanitizer in question, so call sites carry no #ifdefs. */
#ifndef GH_SCHED_CONTEXT_H
#define GH_SCHED_CONTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arch.h"

#if defined(__SANITIZE_ADDRESS__)
#define GH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GH_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GH_TSAN 1
#endif
#endif

struct gh__stack_slot;

struct gh__ctx {
    void *sp;            /* saved stack pointer while switched out */
#if defined(__x86_64__)
    /* The rest of the suspended state the x86-64 switch keeps here rather
     * than on the stack (see gh__ctx_switch_inline): */
    void *pc;            /* where the context resumes */
    void *bp;            /* its rbp */
    uint32_t mxcsr;      /* its SSE control/status word */
    uint16_t fpucw;      /* its x87 control word */
    uint16_t pad_;
#endif
    char *stack_lo;      /* lowest usable byte of the stack */
    size_t stack_size;   /* usable bytes above stack_lo */
    struct gh__stack_slot *slot;  /* the stack's segment slot (stack.c,
                                   * "Owners"); NULL for a stack of its
                                   * own size and for a hub's context */
    /* Only in the builds that use them: a greenlet's hot fields follow
     * its context (internal.h). */
#ifdef GH_ASAN
    void *asan_fake;     /* ASan fake-stack handle while switched out */
#endif
#ifdef GH_TSAN
    void *tsan_fiber;    /* TSan fiber of this context */
#endif
};

/* The switch, out of line: saves the caller's state, loads the target's
 * and returns `arg` in the resumed context.  On x86-64 it is
 * gh__ctx_switch_inline below behind a call (switch_x86_64_sysv.c), there
 * for the tests that prove the inline form's register list, and it takes
 * the two contexts; on AArch64 it is switch_aarch64_aapcs.S and takes
 * &from->sp and to->sp. */
#if defined(__x86_64__)
void *gh__ctx_switch(struct gh__ctx *from, struct gh__ctx *to, void *arg);
#else
void *gh__ctx_switch(void **save_sp, void *to_sp, void *arg);
#endif
void gh__ctx_trampoline(void);

#if defined(__x86_64__)
/* The x86-64 switch is inline assembly, not a function: a call pushes a
 * return address on the CPU's return stack buffer that the matching `ret`
 * would pop in *another* context, so every `ret` after a switch was
 * predicted from the wrong context's call chain, and a switch between two
 * different call sites (a greenlet parking into the scheduler loop) paid a
 * misprediction on each.  Inline, a switch stores a resume address and
 * ends in an indirect `jmp` to the target's (predicted from branch
 * history), and calls and returns stay paired within each context.
 * Measured with two raw contexts switching from different call sites:
 * 10.1 ns per switch with call/ret, 2.5 ns inline; Boost.Context's
 * jump_fcontext 3.7 ns.
 *
 * What a suspended context needs besides its stack pointer (the resume
 * address, rbp, MXCSR and the x87 control word) is kept in its struct
 * gh__ctx, not pushed on its stack: the scheduler has just read that struct
 * to pick the target, so the switch reads warm memory, while the target's
 * stack is often cold (a server with a thousand connections resumes each
 * greenlet once per request: the first load from its stack was 5% of the
 * echo server's CPU samples).  It also writes nothing below rsp, so the
 * red zone of the function around the switch needs no care.
 *
 * Only rbp is saved by hand (it may be the frame pointer, which cannot be
 * named as clobbered).  Every other register is in the clobber list, so
 * the compiler saves the ones live across the switch in the frame of the
 * function the switch is inlined into.  The FPU control words are
 * callee-saved state (the ABI) and travel with the context; they are
 * reloaded only when the target's differ (ldmxcsr and fldcw are
 * microcoded; nearly every program keeps one setting).  MXCSR's sticky
 * exception flags (bits 0-5) are caller-saved, as FPSR on AArch64, and do
 * not count as a difference: one context that raised "inexact" would
 * otherwise make every switch to and from it take the slow path.
 *
 * The signal mask does not travel with a context (that would be a system
 * call per switch, as in swapcontext).
 *
 * Arrival: rsp, rbp as saved, rdx = arg, at the resume address; for a new
 * context that is gh__ctx_trampoline (switch_x86_64_sysv.S).  Whoever
 * switches to a context tells it through arg which hub it now runs on. */
#define GH__CTX_PC 8
#define GH__CTX_BP 16
#define GH__CTX_MXCSR 24
#define GH__CTX_FPUCW 28
_Static_assert(offsetof(struct gh__ctx, sp) == 0, "switch: sp");
_Static_assert(offsetof(struct gh__ctx, pc) == GH__CTX_PC, "switch: pc");
_Static_assert(offsetof(struct gh__ctx, bp) == GH__CTX_BP, "switch: bp");
_Static_assert(offsetof(struct gh__ctx, mxcsr) == GH__CTX_MXCSR, "switch: mxcsr");
_Static_assert(offsetof(struct gh__ctx, fpucw) == GH__CTX_FPUCW, "switch: fpucw");
#define GH__STR_(x) #x
#define GH__STR(x) GH__STR_(x)
#if defined(__AVX512F__)
#define GH__SWITCH_CLOBBER_AVX512 , "xmm16", "xmm17", "xmm18", "xmm19", \
    "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", \
    "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"
#else
#define GH__SWITCH_CLOBBER_AVX512
#endif
/* A call gets a vzeroupper from the compiler when AVX code may have left
 * the upper halves dirty (SSE code after it would pay a transition); the
 * asm must say it itself.  Free: every ymm register is clobbered anyway. */
#if defined(__AVX__)
#define GH__SWITCH_VZEROUPPER "vzeroupper\n\t"
#else
#define GH__SWITCH_VZEROUPPER
#endif
static inline __attribute__((always_inline)) void *
gh__ctx_switch_inline(struct gh__ctx *from, struct gh__ctx *to, void *arg)
{
    __asm__ volatile(
        GH__SWITCH_VZEROUPPER
        "leaq   1f(%%rip), %%rax\n\t"
        "movq   %%rax, " GH__STR(GH__CTX_PC) "(%%rdi)\n\t"
        "movq   %%rbp, " GH__STR(GH__CTX_BP) "(%%rdi)\n\t"
        "stmxcsr " GH__STR(GH__CTX_MXCSR) "(%%rdi)\n\t"
        "fnstcw " GH__STR(GH__CTX_FPUCW) "(%%rdi)\n\t"
        "movq   %%rsp, (%%rdi)\n\t"
        /* the target's FPU words the same as ours (as nearly always)?
         * Each loaded with the width of its store, so the loads forward. */
        "movl   " GH__STR(GH__CTX_MXCSR) "(%%rdi), %%eax\n\t"
        "xorl   " GH__STR(GH__CTX_MXCSR) "(%%rsi), %%eax\n\t"
        "testl  $-64, %%eax\n\t"        /* the control bits (6-15) only */
        "jne    2f\n\t"
        "movzwl " GH__STR(GH__CTX_FPUCW) "(%%rdi), %%eax\n\t"
        "cmpw   %%ax, " GH__STR(GH__CTX_FPUCW) "(%%rsi)\n\t"
        "jne    2f\n"
        "3:\n\t"
        "movq   " GH__STR(GH__CTX_BP) "(%%rsi), %%rbp\n\t"
        "movq   (%%rsi), %%rsp\n\t"     /* now on the target's stack */
        "jmp    *" GH__STR(GH__CTX_PC) "(%%rsi)\n"
        "2:\n\t"                         /* no: load them */
        "ldmxcsr " GH__STR(GH__CTX_MXCSR) "(%%rsi)\n\t"
        "fldcw  " GH__STR(GH__CTX_FPUCW) "(%%rsi)\n\t"
        "jmp    3b\n"
        "1:"                               /* resumed: rdx = arg */
        : "+d"(arg), "+D"(from), "+S"(to)
        :
        : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
          "r15", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
          "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
          "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)",
          "st(6)", "st(7)" GH__SWITCH_CLOBBER_AVX512);
    return arg;
}

/* A new context resumes in the trampoline at the top of its stack (16-byte
 * aligned, as the trampoline's call needs), with the FPU control state of
 * the creating thread, as a new thread inherits it. */
static inline void gh__ctx_make(struct gh__ctx *ctx)
{
    uintptr_t top = (uintptr_t)(ctx->stack_lo + ctx->stack_size) & ~(uintptr_t)15;
    __asm__ volatile("stmxcsr %0" : "=m"(ctx->mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(ctx->fpucw));
    ctx->sp = (void *)top;
    ctx->pc = (void *)(uintptr_t)gh__ctx_trampoline;
    ctx->bp = NULL;
}
#elif defined(__aarch64__)
/* Writes the frame gh__ctx_switch expects (switch_aarch64_aapcs.S) at the
 * top of ctx's stack, so that the first switch to it enters the trampoline
 * with a 16-byte aligned stack. */
static inline void gh__ctx_make(struct gh__ctx *ctx)
{
    uintptr_t top = (uintptr_t)(ctx->stack_lo + ctx->stack_size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 0xb0);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(f, 0, 0xb0);
    /* x30 (f[11]) = 0: gh__ctx_switch then enters the trampoline. */
    f[20] = fpcr;
    ctx->sp = f;
}
#else
#error "greenhub has a context switch for x86-64 and AArch64 only"
#endif

/* A context about to run a new greenlet has no sanitizer state yet (the
 * TSan fiber is made at its first switch-in, see gh__tsan_leave). */
static inline void gh__ctx_san_reset(struct gh__ctx *c)
{
#ifdef GH_ASAN
    c->asan_fake = NULL;
#endif
#ifdef GH_TSAN
    c->tsan_fiber = NULL;
#endif
    (void)c;
}

#ifdef GH_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
/* Before leaving `from` for `to`; from_dies: `from` never runs again. */
static inline void gh__asan_leave(struct gh__ctx *from, const struct gh__ctx *to,
                                  int from_dies)
{
    __sanitizer_start_switch_fiber(from_dies ? NULL : &from->asan_fake,
                                   to->stack_lo, to->stack_size);
}
/* First thing after arriving in ctx. */
static inline void gh__asan_arrive(struct gh__ctx *ctx)
{
    __sanitizer_finish_switch_fiber(ctx->asan_fake, NULL, NULL);
}
#else
static inline void gh__asan_leave(struct gh__ctx *from, const struct gh__ctx *to,
                                  int from_dies)
{
    (void)from; (void)to; (void)from_dies;
}
static inline void gh__asan_arrive(struct gh__ctx *ctx) { (void)ctx; }
#endif

#ifdef GH_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
static inline void gh__tsan_fiber_current(struct gh__ctx *c) { c->tsan_fiber = __tsan_get_current_fiber(); }
static inline void gh__tsan_fiber_free(struct gh__ctx *c)
{
    if (c->tsan_fiber) __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
}
/* The fiber of a greenlet is made at its first switch-in, not at spawn:
 * TSan counts every live fiber against its limit of 8128 threads, and a
 * greenlet that has not started yet needs none. */
static inline void gh__tsan_leave(struct gh__ctx *to)
{
    if (!to->tsan_fiber)
        to->tsan_fiber = __tsan_create_fiber(0);
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
}
#else
static inline void gh__tsan_fiber_current(struct gh__ctx *c) { (void)c; }
static inline void gh__tsan_fiber_free(struct gh__ctx *c) { (void)c; }
static inline void gh__tsan_leave(struct gh__ctx *to) { (void)to; }
#endif

/* Switches from `from` to `to`, passing arg; returns the arg given by
 * whoever switches back to `from`. */
static inline void *gh__ctx_jump(struct gh__ctx *from, struct gh__ctx *to,
                                 void *arg, int from_dies)
{
    gh__asan_leave(from, to, from_dies);
    gh__tsan_leave(to);
#if defined(__x86_64__)
    arg = gh__ctx_switch_inline(from, to, arg);
#else
    arg = gh__ctx_switch(&from->sp, to->sp, arg);
#endif
    gh__asan_arrive(from);
    return arg;
}

#endif
