/* cpu_serial.c: serial reference for the core-scaling CPU workload.
 * Computes, on one thread with no yields, exactly the work of go/cpu.go:
 * T tasks (default 4000, argv[1]); task i runs ITERS (default 100000,
 * argv[2], divisible by 4) xorshift64 steps from seed i+1 in 4 chunks of
 * ITERS/4; the final values are summed (wrapping uint64) into a checksum.
 * Prints the checksum (the driver's reference) and the serial time.
 * Self-check: recomputes task 0 and the last task without chunking and
 * checks that chunked == unchunked, and that no task result is 0 (the
 * xorshift step maps nonzero to nonzero). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t work(uint64_t seed, long iters) {
    uint64_t x = seed;
    for (long i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long arg(int argc, char **argv, int i, long def) {
    if (argc <= i) return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v <= 0) {
        fprintf(stderr, "usage: cpu_serial [T>0] [ITERS>0, divisible by 4]\n");
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    long t = arg(argc, argv, 1, 4000);
    long iters = arg(argc, argv, 2, 100000);
    if (iters % 4) { fprintf(stderr, "cpu_serial: ITERS must be divisible by 4\n"); return 2; }
    long chunk = iters / 4;

    uint64_t sum = 0, first = 0, last = 0;
    int zero = 0;
    double t0 = now_ms();
    for (long i = 0; i < t; i++) {
        uint64_t x = (uint64_t)i + 1;
        for (int c = 0; c < 4; c++)
            x = work(x, chunk);
        if (i == 0) first = x;
        if (i == t - 1) last = x;
        zero |= x == 0;
        sum += x;
    }
    double ms = now_ms() - t0;

    int ok = !zero && first == work(1, iters) && last == work((uint64_t)t, iters);
    if (!ok)
        fprintf(stderr, "cpu_serial: chunked and unchunked results differ (or a result is 0)\n");
    printf("RESULT bench=cpu impl=serial threads=1 value=%.1f unit=tasks_per_s check=%s\n",
           t / (ms / 1e3), ok ? "ok" : "FAIL");
    printf("INFO checksum=%" PRIu64 " elapsed_ms=%.2f\n", sum, ms);
    return ok ? 0 : 1;
}
