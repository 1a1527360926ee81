/* sched/switch_aarch64_aapcs.S — context switch for AArch64 (AAPCS64).
 *
 * void *gh__ctx_switch(void **save_sp, void *to_sp, void *arg);
 *   The same contract as the x86-64 switch (switch_x86_64_sysv.S): saves
 *   the callee-saved state of the caller on its own stack, stores the stack
 *   pointer in *save_sp, loads to_sp, restores the state found there and
 *   returns `arg` in the resumed context.
 *
 * The frame a suspended context leaves on its stack (to_sp points here,
 * 16-byte aligned; the frame is 0xb0 bytes, so sp is aligned again after
 * the switch pops it):
 *
 *   to_sp + 0x00  | x19 | x20 |
 *   to_sp + 0x10  | x21 | x22 |
 *   to_sp + 0x20  | x23 | x24 |
 *   to_sp + 0x30  | x25 | x26 |
 *   to_sp + 0x40  | x27 | x28 |
 *   to_sp + 0x50  | x29 (frame pointer) | x30 (return address) |
 *   to_sp + 0x60  | d8  | d9  |
 *   to_sp + 0x70  | d10 | d11 |
 *   to_sp + 0x80  | d12 | d13 |
 *   to_sp + 0x90  | d14 | d15 |
 *   to_sp + 0xa0  | FPCR | pad |
 *
 * AAPCS64 makes x19-x29, sp and the low halves of v8-v15 callee-saved; x30
 * is the return address.  FPCR (rounding mode, flush-to-zero, default NaN)
 * travels with the context as MXCSR's control bits do on x86-64; FPSR (the
 * sticky exception flags) does not, as it is caller-saved.  FPCR is written
 * only when the target's differs from ours: `msr fpcr` is slow on many
 * cores and two contexts of one program nearly always agree.
 *
 * A new context is made by gh__ctx_make (context.h): x29 = 0 and x30 = 0,
 * which sends the switch to gh__ctx_trampoline by a direct branch (a `ret`
 * there would be mispredicted on every spawn, the return stack predicting
 * the switcher's own call site).
 */
    .text
    .globl  gh__ctx_switch
    .hidden gh__ctx_switch
    .type   gh__ctx_switch, %function
    .p2align 4
gh__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #0xb0
    .cfi_adjust_cfa_offset 0xb0
    stp     x19, x20, [sp, #0x00]
    stp     x21, x22, [sp, #0x10]
    stp     x23, x24, [sp, #0x20]
    stp     x25, x26, [sp, #0x30]
    stp     x27, x28, [sp, #0x40]
    stp     x29, x30, [sp, #0x50]
    .cfi_rel_offset x29, 0x50
    .cfi_rel_offset x30, 0x58
    stp     d8,  d9,  [sp, #0x60]
    stp     d10, d11, [sp, #0x70]
    stp     d12, d13, [sp, #0x80]
    stp     d14, d15, [sp, #0x90]
    mrs     x9, fpcr
    str     x9, [sp, #0xa0]

    mov     x10, sp
    str     x10, [x0]               /* *save_sp = our stack pointer */
    mov     sp, x1                  /* now on the target's stack */

    ldr     x10, [sp, #0xa0]        /* the target's FPCR, if it differs */
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:
    ldp     x19, x20, [sp, #0x00]
    ldp     x21, x22, [sp, #0x10]
    ldp     x23, x24, [sp, #0x20]
    ldp     x25, x26, [sp, #0x30]
    ldp     x27, x28, [sp, #0x40]
    ldp     x29, x30, [sp, #0x50]
    ldp     d8,  d9,  [sp, #0x60]
    ldp     d10, d11, [sp, #0x70]
    ldp     d12, d13, [sp, #0x80]
    ldp     d14, d15, [sp, #0x90]
    add     sp, sp, #0xb0
    mov     x0, x2                  /* hand `arg` to the resumed context */
    cbz     x30, gh__ctx_trampoline /* a new context */
    ret                             /* x30: the target's caller */
    .cfi_endproc
    .size   gh__ctx_switch, .-gh__ctx_switch

/* First entry of a new context: x0 = arg (the hub), sp 16-byte aligned.
 * Calls gh__greenlet_entry(arg), which never returns. */
    .globl  gh__ctx_trampoline
    .hidden gh__ctx_trampoline
    .type   gh__ctx_trampoline, %function
    .p2align 4
gh__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30              /* end of the call chain for debuggers */
    mov     x29, #0
    bl      gh__greenlet_entry
    brk     #0x1                    /* gh__greenlet_entry does not return */
    .cfi_endproc
    .size   gh__ctx_trampoline, .-gh__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
