/* sched/switch_x86_64_sysv.S — context switch for x86-64, System V ABI.
 *
 * void *gh__ctx_switch(void **save_sp, void *to_sp, void *arg);
 *   Saves the callee-saved state of the caller on its own stack, stores the
 *   stack pointer in *save_sp, loads to_sp and restores the state found
 *   there.  Returns `arg` in the resumed context: whoever switches to a
 *   context tells it (through arg) which hub it now runs on.
 *
 * The frame a suspended context leaves on its stack (to_sp points here):
 *
 *   to_sp + 0x00  | MXCSR (4 bytes) | x87 control word (2) | pad (2) |
 *   to_sp + 0x08  | r15 |
 *   to_sp + 0x10  | r14 |
 *   to_sp + 0x18  | r13 |
 *   to_sp + 0x20  | r12 |
 *   to_sp + 0x28  | rbx |
 *   to_sp + 0x30  | rbp |
 *   to_sp + 0x38  | return address, or 0 in a new context |
 *
 * Caller-saved registers need no saving: the switch is an ordinary call.
 * The floating-point control state (MXCSR, x87 CW) is callee-saved by the
 * ABI, so it travels with the context.  The signal mask does not (that
 * would be a system call per switch, as in swapcontext).  The switch
 * reloads a control word only when the target's differs from the one in
 * force: ldmxcsr and fldcw are microcoded, and nearly every program keeps
 * one setting everywhere (gh_yield 6.9 -> 6.5 ns measured with the skip,
 * together with LOOK_EVERY 64).  The compares load each saved word with
 * the width of the store that wrote it, so the loads forward from the
 * stores; one 8-byte load of both stalled the switch to 10 ns.
 *
 * A new context is made by gh__ctx_make (context.h): it writes this frame
 * with a zero return address, which sends the switch to
 * gh__ctx_trampoline below.
 */
    .text
    .globl  gh__ctx_switch
    .hidden gh__ctx_switch
    .type   gh__ctx_switch, @function
    .p2align 4
gh__ctx_switch:
    .cfi_startproc
    pushq   %rbp                /* callee-saved integer registers */
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    subq    $8, %rsp            /* room for the FPU control words */
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)              /* SSE control/status */
    fnstcw  4(%rsp)             /* x87 control word */

    movq    %rsp, (%rdi)        /* *save_sp = our stack pointer */
    movl    (%rsp), %eax        /* our MXCSR and x87 CW (each load the */
    movzwl  4(%rsp), %ecx       /*   size of its store, so it forwards) */
    movq    %rsi, %rsp          /* now on the target's stack */
    cmpl    %eax, (%rsp)        /* the target's the same (as nearly always)? */
    jne     1f                  /* no: load them (microcoded, ~10 cycles) */
    cmpw    %cx, 4(%rsp)
    jne     1f
0:  cmpq    $0, 0x38(%rsp)      /* a new context (no return address)? */
    leaq    8(%rsp), %rsp       /* (lea: keeps the flags of the cmp) */
    popq    %r15                /* the target's callee-saved registers */
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    movq    %rdx, %rax          /* hand `arg` to the resumed context */
    je      gh__ctx_trampoline
    ret                         /* into the target's caller */
1:  ldmxcsr (%rsp)              /* the target's FPU control state */
    fldcw   4(%rsp)
    jmp     0b
    .cfi_endproc
    .size   gh__ctx_switch, .-gh__ctx_switch

/* First entry of a new context, by the direct branch above (a `ret` into
 * it would be mispredicted on every spawn: the return stack predicts the
 * switcher's own call site; the branch costs ~0.2 ns per switch and saved
 * ~10 ns per spawn+join).  rax = arg (the hub); rsp points at the empty
 * return slot.  Calls gh__greenlet_entry(arg), which never returns (a dead
 * greenlet switches away for good). */
    .globl  gh__ctx_trampoline
    .hidden gh__ctx_trampoline
    .type   gh__ctx_trampoline, @function
    .p2align 4
gh__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip          /* end of the call chain for debuggers */
    addq    $8, %rsp            /* as a ret would: now 16-byte aligned */
    movq    %rax, %rdi          /* first argument: the hub */
    xorl    %ebp, %ebp          /* no frame above this one */
    call    gh__greenlet_entry
    ud2                         /* gh__greenlet_entry does not return */
    .cfi_endproc
    .size   gh__ctx_trampoline, .-gh__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
