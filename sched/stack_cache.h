/* sched/stack_cache.h — how many released stacks a hub keeps untrimmed
 * (stack.c, "Caching"); here rather than in internal.h so that tests can
 * check the policy without the rest of the internals. */
#ifndef GH_STACK_CACHE_H
#define GH_STACK_CACHE_H

/* HOT_MAX always (a guess; bounds what idle hubs keep resident), and
 * DIRTY_MAX more while the hub is busy (covers bursts of a few thousand
 * greenlets; a busy hub keeps at most this many stacks' touched pages). */
enum { GH_STACK_HOT_MAX = 64, GH_STACK_DIRTY_MAX = 2048 };

#endif
