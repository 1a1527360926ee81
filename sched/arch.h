/* sched/arch.h — the few CPU-specific primitives outside the switch.
 *
 * gh__cpu_relax: the spin-wait hint (x86 PAUSE, AArch64 YIELD).
 *
 * gh__store_load_fence: goes between a seq_cst store and a later seq_cst
 * load of another location where the algorithm needs the two ordered (a
 * Dekker-style handshake: deque pop vs steal, wait open vs gh_kill).  On
 * x86-64 the seq_cst store is already a full barrier (XCHG), so nothing is
 * emitted.  On AArch64 the hardware orders STLR before a later LDAR
 * (RCsc), so the fence is redundant there too, but qemu-user on an x86-64
 * host does not model that ordering: without the fence the deque stress
 * test hands out duplicate items under emulation (measured: 1-34 of 2M per
 * run, 0 with the fence).  A DMB per pop is the price of a suite that runs
 * under emulation the same as on silicon. */
#ifndef GH_SCHED_ARCH_H
#define GH_SCHED_ARCH_H

#include <stdatomic.h>

static inline void gh__cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

static inline void gh__store_load_fence(void)
{
#if !defined(__x86_64__)
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

#endif
