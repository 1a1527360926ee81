// spawn.cpp: cost of one Boost.Fiber launch + join, strictly sequential
// (like bench/spawn.c and go/spawn.go).  For N iterations (default
// 1,000,000, argv[1]) the main fiber launches one fiber that adds its index
// into a shared sum, and joins it before launching the next one.  Result:
// elapsed / N ns per spawn+join, after a warm-up of N/10.
// Threads: BOOST_FIBER_THREADS (default: all CPUs), each on
// work_stealing(threads) (see ws_pool.hpp), so an idle thread may steal the
// new fiber and the join may cross threads, as with Go and greenhub.
// Self-check: the sum of indices must equal N*(N-1)/2.
#include "ws_pool.hpp"

#include <cinttypes>
#include <cstdint>

static std::uint64_t run(long n) {
    std::uint64_t sum = 0;
    for (long i = 0; i < n; ++i) {
        boost::fibers::fiber f(std::allocator_arg, ws_stack(), [&sum, i] {
            sum += static_cast<std::uint64_t>(i);   // join orders this before the next launch
        });
        f.join();
    }
    return sum;
}

int main(int argc, char **argv) {
    long n = ws_arg(argc, argv, 1, 1000000, "spawn [N>0]");
    ws_pool pool(ws_threads_from_env());

    run(n / 10);   // warm-up
    double t0 = ws_now_ns();
    std::uint64_t sum = run(n);
    double ns = (ws_now_ns() - t0) / static_cast<double>(n);

    std::uint64_t want = static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(n - 1) / 2;
    bool ok = sum == want;
    if (!ok)
        std::fprintf(stderr, "spawn: sum of indices %" PRIu64 ", want %" PRIu64 "\n", sum, want);
    std::printf("RESULT bench=spawn impl=boost threads=%u value=%.2f unit=ns_per_spawn check=%s\n",
                pool.threads(), ns, ok ? "ok" : "FAIL");
    std::fflush(stdout);
    return ok ? 0 : 1;
}
