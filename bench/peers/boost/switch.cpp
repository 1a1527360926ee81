// switch.cpp: raw Boost.Context fiber switch cost.
// main and one boost::context::fiber ping-pong with resume() N times
// (default 10,000,000, argv[1]); each round trip is two switches, so the
// result is elapsed / (2*N) ns per switch.
// Self-check: the fiber counts the resumes it saw; it must be exactly N.
#include <boost/context/fiber.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <utility>

namespace ctx = boost::context;

static double now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

// Run n round trips; returns the number of resumes the fiber observed.
static long pingpong(long n) {
    long seen = 0;
    bool stop = false;
    ctx::fiber f{[&seen, &stop](ctx::fiber &&caller) {
        for (;;) {
            caller = std::move(caller).resume();
            if (stop) break;
            ++seen;
        }
        return std::move(caller);
    }};
    f = std::move(f).resume();          // fiber starts, parks at its first resume
    for (long i = 0; i < n; ++i)
        f = std::move(f).resume();
    stop = true;
    f = std::move(f).resume();          // let the fiber finish
    return seen;
}

int main(int argc, char **argv) {
    long n = 10000000;
    if (argc > 1) {
        char *end;
        n = strtol(argv[1], &end, 10);
        if (*end || n <= 0) { fprintf(stderr, "usage: switch [N>0]\n"); return 2; }
    }
    pingpong(n / 10 < 100000 ? n / 10 : 100000);  // warm-up

    double t0 = now_ns();
    long seen = pingpong(n);
    double ns = (now_ns() - t0) / (2.0 * n);

    if (seen != n) {
        fprintf(stderr, "switch: fiber saw %ld resumes, want %ld\n", seen, n);
        printf("RESULT bench=switch impl=boost threads=1 value=%.2f unit=ns_per_switch check=FAIL\n", ns);
        return 1;
    }
    printf("RESULT bench=switch impl=boost threads=1 value=%.2f unit=ns_per_switch check=ok\n", ns);
    return 0;
}
