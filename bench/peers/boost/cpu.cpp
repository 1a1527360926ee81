// cpu.cpp: the core-scaling CPU-bound workload with Boost.Fiber on
// work_stealing (the same work as bench/cpu.c and go/cpu.go).
// The main fiber launches T fibers (default 4000, argv[1]); fiber i runs
// ITERS (default 100000, argv[2], divisible by 4) xorshift64 steps from seed
// i+1 in 4 equal chunks, with boost::this_fiber::yield() between chunks (3
// yields per fiber), and stores its final x; the main fiber joins them all
// and sums the results (wrapping uint64) into a checksum.  Every fiber is
// launched from the main thread, so only stealing spreads them.
// Threads: BOOST_FIBER_THREADS (default: all CPUs), each on
// work_stealing(threads) (see ws_pool.hpp).  Reports tasks/s, plus
// INFO checksum= elapsed_ms=.
// Self-check: the checksum must equal a serial recomputation of the same
// work (done after the timed part); defaults give 4745450445450876050.
#include "ws_pool.hpp"

#include <cinttypes>
#include <cstdint>

static std::uint64_t work(std::uint64_t x, long n) {
    for (long i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

int main(int argc, char **argv) {
    const char *usage = "cpu [T>0] [ITERS>0, divisible by 4]";
    long t = ws_arg(argc, argv, 1, 4000, usage);
    long iters = ws_arg(argc, argv, 2, 100000, usage);
    if (iters % 4) {
        std::fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    const long chunk = iters / 4;
    ws_pool pool(ws_threads_from_env());

    std::vector<std::uint64_t> res(static_cast<std::size_t>(t));
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(res.size());
    double t0 = ws_now_ns();
    for (long i = 0; i < t; ++i)
        fibers.emplace_back(std::allocator_arg, ws_stack(), [i, chunk, &res] {
            std::uint64_t x = static_cast<std::uint64_t>(i) + 1;
            for (int c = 0; c < 4; ++c) {
                if (c > 0)
                    boost::this_fiber::yield();
                x = work(x, chunk);
            }
            res[static_cast<std::size_t>(i)] = x;
        });
    for (auto &f : fibers)
        f.join();
    std::uint64_t sum = 0;
    for (std::uint64_t x : res)
        sum += x;
    double ms = (ws_now_ns() - t0) / 1e6;

    std::uint64_t want = 0;   // serial reference, not timed
    for (long i = 0; i < t; ++i)
        want += work(static_cast<std::uint64_t>(i) + 1, chunk * 4);

    bool ok = sum == want;
    if (!ok)
        std::fprintf(stderr, "cpu: checksum %" PRIu64 ", serial recomputation gives %" PRIu64 "\n", sum, want);
    std::printf("RESULT bench=cpu impl=boost threads=%u value=%.1f unit=tasks_per_s check=%s\n",
                pool.threads(), static_cast<double>(t) / (ms / 1e3), ok ? "ok" : "FAIL");
    std::printf("INFO checksum=%" PRIu64 " elapsed_ms=%.2f\n", sum, ms);
    std::fflush(stdout);
    return ok ? 0 : 1;
}
