// ws_pool.hpp: what the Boost.Fiber peers (cpu.cpp, spawn.cpp, skynet.cpp)
// share: the thread count, a work-stealing pool of N threads, the stack
// allocator, a clock.
//
// ws_pool(n) makes the calling thread plus n-1 std::threads into one pool in
// which every thread runs boost::fibers::algo::work_stealing(n):
//  - each thread installs the algorithm with use_scheduling_algorithm (the
//    main thread too: it takes part, and the benchmark's fibers are
//    launched from its main fiber);
//  - all n threads then meet at a barrier before the constructor returns.
//    In Boost 1.74 the work_stealing constructor only registers itself in a
//    static table sized n; a thread that looked for work before the others
//    had registered would steal from a null scheduler.  So no fiber is
//    launched (and no worker blocks, which is when its dispatcher starts
//    stealing) until all n have registered;
//  - a worker thread's main fiber then waits on a fiber condition variable
//    (the documented way to keep a worker thread's scheduler running);
//    meanwhile its dispatcher steals ready fibers from the others.  The
//    destructor signals it and joins the threads.
// suspend stays false (Boost's default): an idle thread keeps looking for
// work to steal instead of sleeping.  With true, a sleeping thread is woken
// only by work for its own scheduler, so work launched elsewhere would not
// spread.
// n == 1: work_stealing(1) cannot be used: with its own queue empty it looks
// for a victim other than itself for ever.  One thread uses round_robin,
// the single-thread algorithm that work_stealing(n) is a distributed
// version of (a FIFO ready queue).
#ifndef GH_PEERS_WS_POOL_HPP
#define GH_PEERS_WS_POOL_HPP

#include <boost/fiber/all.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

// Worker threads: BOOST_FIBER_THREADS from the environment, default: all
// CPUs (std::thread::hardware_concurrency).
inline unsigned ws_threads_from_env() {
    unsigned n = std::thread::hardware_concurrency();
    if (const char *s = std::getenv("BOOST_FIBER_THREADS")) {
        char *end;
        long v = std::strtol(s, &end, 10);
        if (*end || v <= 0 || v > 4096) {
            std::fprintf(stderr, "BOOST_FIBER_THREADS must be a positive integer\n");
            std::exit(2);
        }
        n = static_cast<unsigned>(v);
    }
    return n ? n : 1;
}

// Positional argument i (a positive integer), or dflt when absent.
inline long ws_arg(int argc, char **argv, int i, long dflt, const char *usage) {
    if (argc <= i)
        return dflt;
    char *end;
    long v = std::strtol(argv[i], &end, 10);
    if (*end || v <= 0) {
        std::fprintf(stderr, "usage: %s\n", usage);
        std::exit(2);
    }
    return v;
}

// Fiber stacks: boost::fibers::fixedsize_stack of 16 KiB, which every
// fiber of these benchmarks fits in (Go starts goroutines on 8 KiB; Boost's
// own skynet benchmark uses two pages).  The default size, 128 KiB, is at
// glibc malloc's mmap threshold, so each stack would cost an mmap and an
// munmap: the cost of the allocator, not of the scheduler.
inline boost::fibers::fixedsize_stack ws_stack() {
    return boost::fibers::fixedsize_stack(16 * 1024);
}

inline double ws_now_ns() {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch()).count());
}

class ws_pool {
public:
    explicit ws_pool(unsigned n) : n_(n), arrived_(0) {
        for (unsigned i = 1; i < n_; ++i)
            workers_.emplace_back([this] {
                install();
                std::unique_lock<boost::fibers::mutex> lk(mtx_);
                done_cv_.wait(lk, [this] { return done_; });
            });
        install();
    }

    ~ws_pool() {
        {
            std::unique_lock<boost::fibers::mutex> lk(mtx_);
            done_ = true;
        }
        done_cv_.notify_all();
        for (auto &t : workers_)
            t.join();
    }

    ws_pool(const ws_pool &) = delete;
    ws_pool &operator=(const ws_pool &) = delete;

    unsigned threads() const { return n_; }

private:
    // Installs this thread's scheduler, then waits (blocking the thread, no
    // fiber has run yet) until all n threads have installed theirs.
    void install() {
        if (n_ == 1)
            boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
        else
            boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n_);
        std::unique_lock<std::mutex> lk(start_mtx_);
        if (++arrived_ == n_)
            start_cv_.notify_all();
        else
            start_cv_.wait(lk, [this] { return arrived_ == n_; });
    }

    unsigned n_;
    std::vector<std::thread> workers_;
    std::mutex start_mtx_;
    std::condition_variable start_cv_;
    unsigned arrived_;
    boost::fibers::mutex mtx_;
    boost::fibers::condition_variable done_cv_;
    bool done_ = false;
};

#endif
