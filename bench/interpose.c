/* bench/interpose.c — what the interposition layer costs a call it does
 * not make green: read() outside a greenlet (a plain thread, here main
 * before any runtime), through the hook, against libc's own read taken
 * from the layer's table (gh_syscall_real), in the same run.
 *
 *   /dev/zero      a descriptor the layer did not make: its state is
 *                  looked up and found unmanaged;
 *   socket         one it made (socketpair through the hook), blocking
 *                  for the caller: looked up, managed, not on a greenlet;
 *                  each round writes 1 byte and reads it back, both hooked
 *                  or both libc's.
 *
 * Rounds alternate hooked and libc's, 7 of each; the medians are printed,
 * with their difference per call.  Usage: interpose [calls per round =
 * 1000000] */
#include "bench.h"

#include <fcntl.h>
#include <greenhub/interpose.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);

enum { ROUNDS = 7 };

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ns per call of n reads of 1 byte from fd with r (and, with w, a write
 * of 1 byte to wfd before each).  Checks every call. */
static double round_ns(read_fn r, write_fn w, int fd, int wfd, long n, int *bad)
{
    char c = 'z';
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (w && w(wfd, &c, 1) != 1)
            (*bad)++;
        if (r(fd, &c, 1) != 1)
            (*bad)++;
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

static void measure(const char *what, read_fn real_r, write_fn real_w, int fd, int wfd,
                    long n, int *bad)
{
    double hooked[ROUNDS], plain[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        hooked[k] = round_ns(read, wfd >= 0 ? write : NULL, fd, wfd, n, bad);
        plain[k] = round_ns(real_r, wfd >= 0 ? real_w : NULL, fd, wfd, n, bad);
    }
    qsort(hooked, ROUNDS, sizeof *hooked, cmp_double);
    qsort(plain, ROUNDS, sizeof *plain, cmp_double);
    double h = hooked[ROUNDS / 2], p = plain[ROUNDS / 2];
    int calls = wfd >= 0 ? 2 : 1;
    printf("%-10s hooked %7.1f ns  libc %7.1f ns  per round (%d call%s): +%.1f ns per call\n",
           what, h, p, calls, calls > 1 ? "s" : "", (h - p) / calls);
    printf("RESULT bench=interpose_%s impl=greenhub threads=1 value=%.2f unit=ns_per_call_overhead "
           "check=%s\n", what, (h - p) / calls, *bad ? "FAIL" : "ok");
}

int main(int argc, char **argv)
{
    long n = bench_arg(argc, argv, 1, 1000000);
    if (!gh_interposed()) {
        fprintf(stderr, "interpose: the layer is not loaded\n");
        return 2;
    }
    read_fn real_r;
    write_fn real_w;
    void *p = gh_syscall_real("read"), *q = gh_syscall_real("write");
    memcpy(&real_r, &p, sizeof p);
    memcpy(&real_w, &q, sizeof q);
    int bad = 0;
    int z = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    int sv[2];
    if (z < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        perror("interpose");
        return 2;
    }
    measure("devzero", real_r, real_w, z, -1, n, &bad);
    measure("socket", real_r, real_w, sv[0], sv[1], n, &bad);
    return bad ? 1 : 0;
}
