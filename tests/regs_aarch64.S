/* tests/regs_aarch64.S — helpers that prove the context switch preserves
 * callee-saved registers on AArch64 (see regs_x86_64.S for the contract).
 *
 * int gh_test_switch_keep(void **save, void *to, void *arg);
 *   x19-x28 := 0x1313..-0x1c1c.., d8-d15 := 0x8888..-0x8f8f.., x29 := sp;
 *   switch, then returns a bit mask of what changed: bits 0-9 x19-x28,
 *   bits 10-17 d8-d15, bit 18 x29 (0: all preserved).
 * void gh_test_switch_clobber(void **save, void *to, void *arg);
 *   sets every callee-saved register to garbage, switches, and restores
 *   the caller's registers properly on return. */
    .text
    .globl  gh_test_switch_keep
    .type   gh_test_switch_keep, %function
    .p2align 2
gh_test_switch_keep:
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
    ldr     x19, =0x1313131313131313
    ldr     x20, =0x1414141414141414
    ldr     x21, =0x1515151515151515
    ldr     x22, =0x1616161616161616
    ldr     x23, =0x1717171717171717
    ldr     x24, =0x1818181818181818
    ldr     x25, =0x1919191919191919
    ldr     x26, =0x1a1a1a1a1a1a1a1a
    ldr     x27, =0x1b1b1b1b1b1b1b1b
    ldr     x28, =0x1c1c1c1c1c1c1c1c
    ldr     x9, =0x8888888888888888
    fmov    d8, x9
    ldr     x9, =0x8989898989898989
    fmov    d9, x9
    ldr     x9, =0x8a8a8a8a8a8a8a8a
    fmov    d10, x9
    ldr     x9, =0x8b8b8b8b8b8b8b8b
    fmov    d11, x9
    ldr     x9, =0x8c8c8c8c8c8c8c8c
    fmov    d12, x9
    ldr     x9, =0x8d8d8d8d8d8d8d8d
    fmov    d13, x9
    ldr     x9, =0x8e8e8e8e8e8e8e8e
    fmov    d14, x9
    ldr     x9, =0x8f8f8f8f8f8f8f8f
    fmov    d15, x9
    bl      gh__ctx_switch
    mov     w0, #0
    ldr     x9, =0x1313131313131313
    cmp     x19, x9
    b.eq    1f
    orr     w0, w0, #1
1:
    ldr     x9, =0x1414141414141414
    cmp     x20, x9
    b.eq    1f
    orr     w0, w0, #2
1:
    ldr     x9, =0x1515151515151515
    cmp     x21, x9
    b.eq    1f
    orr     w0, w0, #4
1:
    ldr     x9, =0x1616161616161616
    cmp     x22, x9
    b.eq    1f
    orr     w0, w0, #8
1:
    ldr     x9, =0x1717171717171717
    cmp     x23, x9
    b.eq    1f
    orr     w0, w0, #16
1:
    ldr     x9, =0x1818181818181818
    cmp     x24, x9
    b.eq    1f
    orr     w0, w0, #32
1:
    ldr     x9, =0x1919191919191919
    cmp     x25, x9
    b.eq    1f
    orr     w0, w0, #64
1:
    ldr     x9, =0x1a1a1a1a1a1a1a1a
    cmp     x26, x9
    b.eq    1f
    orr     w0, w0, #128
1:
    ldr     x9, =0x1b1b1b1b1b1b1b1b
    cmp     x27, x9
    b.eq    1f
    orr     w0, w0, #256
1:
    ldr     x9, =0x1c1c1c1c1c1c1c1c
    cmp     x28, x9
    b.eq    1f
    orr     w0, w0, #512
1:
    ldr     x9, =0x8888888888888888
    fmov    x10, d8
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #1024
1:
    ldr     x9, =0x8989898989898989
    fmov    x10, d9
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #2048
1:
    ldr     x9, =0x8a8a8a8a8a8a8a8a
    fmov    x10, d10
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #4096
1:
    ldr     x9, =0x8b8b8b8b8b8b8b8b
    fmov    x10, d11
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #8192
1:
    ldr     x9, =0x8c8c8c8c8c8c8c8c
    fmov    x10, d12
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #16384
1:
    ldr     x9, =0x8d8d8d8d8d8d8d8d
    fmov    x10, d13
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #32768
1:
    ldr     x9, =0x8e8e8e8e8e8e8e8e
    fmov    x10, d14
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #65536
1:
    ldr     x9, =0x8f8f8f8f8f8f8f8f
    fmov    x10, d15
    cmp     x10, x9
    b.eq    1f
    orr     w0, w0, #131072
1:
    mov     x9, sp
    cmp     x29, x9
    b.eq    1f
    orr     w0, w0, #262144
1:
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
    .ltorg
    .size   gh_test_switch_keep, .-gh_test_switch_keep

    .globl  gh_test_switch_clobber
    .type   gh_test_switch_clobber, %function
    .p2align 2
gh_test_switch_clobber:
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
    ldr     x19, =0xdeadbeefdeadbeef
    mov     x20, x19
    mov     x21, x19
    mov     x22, x19
    mov     x23, x19
    mov     x24, x19
    mov     x25, x19
    mov     x26, x19
    mov     x27, x19
    mov     x28, x19
    fmov    d8, x19
    fmov    d9, x19
    fmov    d10, x19
    fmov    d11, x19
    fmov    d12, x19
    fmov    d13, x19
    fmov    d14, x19
    fmov    d15, x19
    mov     x29, x19
    bl      gh__ctx_switch
    mov     x29, sp
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
    .ltorg
    .size   gh_test_switch_clobber, .-gh_test_switch_clobber
    .section .note.GNU-stack,"",%progbits
