/* tests/regs_x86_64.S — helpers that prove the context switch preserves
 * callee-saved registers: they set every callee-saved register to a known
 * value, switch away, and check (or clobber) the values when control
 * comes back.
 *
 * int gh_test_switch_keep(void *from, void *to, void *arg);
 *   rbx, rbp, r12-r15 := 0x1111.. .. 0x6666.., switch, then returns a bit
 *   mask of the registers whose value changed (0: all preserved).
 * void *gh_test_switch_clobber(void *from, void *to, void *arg);
 *   sets every callee-saved register to garbage, switches, and restores
 *   the caller's registers properly on return (so it is a well-behaved
 *   function itself); returns what the switch returned (rax untouched). */
    .text
    .globl gh_test_switch_keep
    .type gh_test_switch_keep, @function
gh_test_switch_keep:
    push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15
    sub $8, %rsp
    movabs $0x1111111111111111, %rbx
    movabs $0x2222222222222222, %rbp
    movabs $0x3333333333333333, %r12
    movabs $0x4444444444444444, %r13
    movabs $0x5555555555555555, %r14
    movabs $0x6666666666666666, %r15
    call gh__ctx_switch
    xor %eax, %eax
    movabs $0x1111111111111111, %rcx; cmp %rcx, %rbx; je 1f; or $1, %eax
1:  movabs $0x2222222222222222, %rcx; cmp %rcx, %rbp; je 1f; or $2, %eax
1:  movabs $0x3333333333333333, %rcx; cmp %rcx, %r12; je 1f; or $4, %eax
1:  movabs $0x4444444444444444, %rcx; cmp %rcx, %r13; je 1f; or $8, %eax
1:  movabs $0x5555555555555555, %rcx; cmp %rcx, %r14; je 1f; or $16, %eax
1:  movabs $0x6666666666666666, %rcx; cmp %rcx, %r15; je 1f; or $32, %eax
1:  add $8, %rsp
    pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp
    ret
    .size gh_test_switch_keep, .-gh_test_switch_keep

    .globl gh_test_switch_clobber
    .type gh_test_switch_clobber, @function
gh_test_switch_clobber:
    push %rbp; push %rbx; push %r12; push %r13; push %r14; push %r15
    sub $8, %rsp
    movabs $0xdeadbeefdeadbeef, %rbx
    mov %rbx, %rbp; mov %rbx, %r12; mov %rbx, %r13; mov %rbx, %r14; mov %rbx, %r15
    call gh__ctx_switch
    add $8, %rsp
    pop %r15; pop %r14; pop %r13; pop %r12; pop %rbx; pop %rbp
    ret
    .size gh_test_switch_clobber, .-gh_test_switch_clobber
    .section .note.GNU-stack,"",%progbits
