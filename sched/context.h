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
    char *stack_lo;      /* lowest usable byte of the stack */
    size_t stack_size;   /* usable bytes above stack_lo */
    void *asan_fake;     /* ASan fake-stack handle while switched out */
    void *tsan_fiber;    /* TSan fiber of this context */
    struct gh__stack_slot *slot;  /* the stack's segment slot (stack.c,
                                   * "Owners"); NULL for a stack of its
                                   * own size and for a hub's context */
};

void *gh__ctx_switch(void **save_sp, void *to_sp, void *arg);

/* Writes the frame gh__ctx_switch expects (see switch_<arch>.S) at the top
 * of ctx's stack, so that the first switch to it enters the trampoline with
 * a 16-byte aligned stack.  The FPU control state is inherited from the
 * creating thread, as a new thread inherits it. */
#if defined(__x86_64__)
static inline void gh__ctx_make(struct gh__ctx *ctx)
{
    uintptr_t top = (uintptr_t)(ctx->stack_lo + ctx->stack_size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 16 - 0x40);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(f, 0, 0x40);
    memcpy((char *)f, &mxcsr, 4);
    memcpy((char *)f + 4, &fpucw, 2);
    f[7] = 0;   /* no return address: gh__ctx_switch enters the trampoline */
    ctx->sp = f;
}
#elif defined(__aarch64__)
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
    arg = gh__ctx_switch(&from->sp, to->sp, arg);
    gh__asan_arrive(from);
    return arg;
}

#endif
