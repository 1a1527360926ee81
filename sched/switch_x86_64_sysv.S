/* sched/switch_x86_64_sysv.S — the first entry of a new context on x86-64.
 *
 * The switch itself is inline assembly (gh__ctx_switch_inline in
 * context.h): it resumes a context with a jmp to the address saved in the
 * context's struct gh__ctx.  gh__ctx_make puts this trampoline's address
 * there for a new context, and the top of its stack as its stack pointer,
 * so the first switch to it arrives here with rdx = arg (the hub) and rsp
 * 16-byte aligned.  Calls gh__greenlet_entry(arg), which never returns (a
 * dead greenlet switches away for good). */
    .text
    .globl  gh__ctx_trampoline
    .hidden gh__ctx_trampoline
    .type   gh__ctx_trampoline, @function
    .p2align 4
gh__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* end of the call chain for debuggers */
    movq    %rdx, %rdi          /* first argument: the hub */
    xorl    %ebp, %ebp          /* no frame above this one */
    call    gh__greenlet_entry
    ud2                         /* gh__greenlet_entry does not return */
    .cfi_endproc
    .size   gh__ctx_trampoline, .-gh__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
