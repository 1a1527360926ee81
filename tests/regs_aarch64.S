/* tests/regs_aarch64.S — helpers that prove the context switch preserves
 * callee-saved registers on AArch64 (see regs_x86_64.S for the contract).
 *
 * int gh_test_switch_keep(void *from, void *to, void *arg);
 *   x19-x28 := 0x1313..-0x1c1c.., d8-d15 := 0x8888..-0x8f8f.., x29 := sp;
 *   switch, then returns a bit mask of what changed: bits 0-9 x19-x28,
 *   bits 10-17 d8-d15, bit 18 x29 (0: all preserved).
 * void *gh_test_switch_clobber(void *from, void *to, void *arg);
 *   sets every callee-saved register to garbage, switches, and restores
 *   the caller's registers properly on return; returns what the switch
 *   returned (x0 untouched).
 * from and to are gh__ctx_switch's arguments (tests/test_switch.c, SW_FROM). */

/* A well-behaved frame of our own: saves / restores what AAPCS64 makes
 * callee-saved, so each helper may trash those registers in between. */
    .macro  frame_enter
    stp     x29, x30, [sp, #-0xa0]!
    mov     x29, sp
    stp     x19, x20, [sp, #0x10]
    stp     x21, x22, [sp, #0x20]
    stp     x23, x24, [sp, #0x30]
    stp     x25, x26, [sp, #0x40]
    stp     x27, x28, [sp, #0x50]
    stp     d8,  d9,  [sp, #0x60]
    stp     d10, d11, [sp, #0x70]
    stp     d12, d13, [sp, #0x80]
    stp     d14, d15, [sp, #0x90]
    .endm
    .macro  frame_leave
    ldp     x19, x20, [sp, #0x10]
    ldp     x21, x22, [sp, #0x20]
    ldp     x23, x24, [sp, #0x30]
    ldp     x25, x26, [sp, #0x40]
    ldp     x27, x28, [sp, #0x50]
    ldp     d8,  d9,  [sp, #0x60]
    ldp     d10, d11, [sp, #0x70]
    ldp     d12, d13, [sp, #0x80]
    ldp     d14, d15, [sp, #0x90]
    ldp     x29, x30, [sp], #0xa0
    ret
    .endm

/* x<n> := 0x<n><n>.. (n = 19..28 as hex bytes 0x13..0x1c); d<n> :=
 * 0x(0x80+n) repeated.  set_* load the pattern; check_* set `bit` in w0
 * when the register no longer holds it.  x9, x10 are scratch. */
    .macro  set_x n
    ldr     x\n, =0x0101010101010101 * \n
    .endm
    .macro  set_d n
    ldr     x9, =0x0101010101010101 * (0x80 + \n)
    fmov    d\n, x9
    .endm
    .macro  check_x n, bit
    ldr     x9, =0x0101010101010101 * \n
    cmp     x\n, x9
    b.eq    1f
    orr     w0, w0, #(1 << \bit)
1:
    .endm
    .macro  check_d n, bit
    ldr     x9, =0x0101010101010101 * (0x80 + \n)
    fmov    x10, d\n
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #(1 << \bit)
1:
    .endm

    .text
    .globl  gh_test_switch_keep
    .type   gh_test_switch_keep, %function
    .p2align 2
gh_test_switch_keep:
    frame_enter
    .irp    n, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28
    set_x   \n
    .endr
    .irp    n, 8, 9, 10, 11, 12, 13, 14, 15
    set_d   \n
    .endr
    bl      gh__ctx_switch
    mov     w0, #0
    .irp    n, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28
    check_x \n, (\n - 19)
    .endr
    .irp    n, 8, 9, 10, 11, 12, 13, 14, 15
    check_d \n, (\n + 2)
    .endr
    mov     x9, sp
    cmp     x29, x9
    b.eq    1f
    orr     w0, w0, #(1 << 18)
1:
    frame_leave
    .ltorg
    .size   gh_test_switch_keep, .-gh_test_switch_keep

    .globl  gh_test_switch_clobber
    .type   gh_test_switch_clobber, %function
    .p2align 2
gh_test_switch_clobber:
    frame_enter
    ldr     x19, =0xdeadbeefdeadbeef
    .irp    n, 20, 21, 22, 23, 24, 25, 26, 27, 28
    mov     x\n, x19
    .endr
    .irp    n, 8, 9, 10, 11, 12, 13, 14, 15
    fmov    d\n, x19
    .endr
    mov     x29, x19
    bl      gh__ctx_switch
    frame_leave
    .ltorg
    .size   gh_test_switch_clobber, .-gh_test_switch_clobber
    .section .note.GNU-stack,"",%progbits
