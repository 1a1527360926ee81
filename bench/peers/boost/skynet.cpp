// skynet.cpp: the skynet benchmark with Boost.Fiber (like bench/skynet.c
// and go/skynet.go).  A 10-ary tree of fibers with 1,000,000 leaves: leaf i
// returns i; each inner node launches its 10 children with
// boost::fibers::async, which gives a boost::fibers::future for each, and
// returns the sum of their get().  Result: ms for one run, after one
// warm-up run.
// The children are launched with launch::dispatch: the child runs at once
// and its parent goes back to the ready queue, where another thread may
// steal it (Boost's own skynet benchmarks launch this way too).  With the
// default launch::post, the FIFO ready queues run the tree breadth first:
// all 1,111,111 fibers and their stacks would exist at once (10 GB).
// async detaches each child, so its stack is freed as soon as it returns
// (a joined boost::fibers::fiber would keep its stack until the join).
// Threads: BOOST_FIBER_THREADS (default: all CPUs), each on
// work_stealing(threads) (see ws_pool.hpp).
// Self-check: the root sum must be 499999500000.
#include "ws_pool.hpp"

#include <cinttypes>
#include <cstdint>

static std::uint64_t skynet(std::uint64_t num, std::uint64_t size) {
    if (size == 1)
        return num;
    const std::uint64_t sub = size / 10;
    boost::fibers::future<std::uint64_t> kids[10];
    for (std::uint64_t i = 0; i < 10; ++i)
        kids[i] = boost::fibers::async(boost::fibers::launch::dispatch, std::allocator_arg, ws_stack(),
                                       skynet, num + i * sub, sub);
    std::uint64_t sum = 0;
    for (auto &k : kids)
        sum += k.get();
    return sum;
}

// The root is a fiber too, launched from the main fiber.
static std::uint64_t run() {
    return boost::fibers::async(boost::fibers::launch::post, std::allocator_arg, ws_stack(), skynet,
                                std::uint64_t{0}, std::uint64_t{1000000}).get();
}

int main() {
    ws_pool pool(ws_threads_from_env());

    std::uint64_t sum = run();   // warm-up
    double t0 = ws_now_ns();
    sum = run();
    double ms = (ws_now_ns() - t0) / 1e6;

    const std::uint64_t want = 499999500000ull;
    bool ok = sum == want;
    if (!ok)
        std::fprintf(stderr, "skynet: sum %" PRIu64 ", want %" PRIu64 "\n", sum, want);
    std::printf("RESULT bench=skynet impl=boost threads=%u value=%.2f unit=ms check=%s\n",
                pool.threads(), ms, ok ? "ok" : "FAIL");
    std::fflush(stdout);
    return ok ? 0 : 1;
}
