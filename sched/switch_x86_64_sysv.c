/* sched/switch_x86_64_sysv.c — the x86-64 switch as a function.
 *
 * The library switches with gh__ctx_switch_inline (context.h) inlined at
 * each site.  This out-of-line copy is what tests/test_switch.c calls to
 * prove the inline form's clobber list: the compiler saves and restores
 * around it exactly the callee-saved registers that list names, so a
 * register missing from the list shows up as a changed register there. */
#include "context.h"

__attribute__((noinline, visibility("hidden")))
void *gh__ctx_switch(struct gh__ctx *from, struct gh__ctx *to, void *arg)
{
    return gh__ctx_switch_inline(from, to, arg);
}
