/* bench/bench.h — helpers shared by the greenhub benchmarks.
 *
 * Every benchmark checks its own result and prints one line
 *   RESULT bench=<name> impl=greenhub threads=<hubs> value=<v> unit=<u> check=ok
 * (check=FAIL and exit status 1 when its result is wrong), the format the
 * peers in bench/peers/ print too, so bench/run.sh compares them. */
#ifndef GH_BENCH_H
#define GH_BENCH_H

#include <greenhub.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline long bench_rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static inline long bench_arg(int argc, char **argv, int i, long dflt)
{
    return argc > i ? strtol(argv[i], NULL, 10) : dflt;
}

/* Prints the RESULT line; returns the process exit status. */
static inline int bench_result(const char *bench, double value, const char *unit, int ok)
{
    printf("RESULT bench=%s impl=greenhub threads=%u value=%.2f unit=%s check=%s\n",
           bench, gh_hub_count() ? gh_hub_count() : 0, value, unit, ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}

/* Runs fn as main with the hub count from GREENHUB_HUBS (or the default). */
static inline void *bench_run(gh_fn fn, void *arg)
{
    void *r = NULL;
    int err = gh_run(NULL, fn, arg, &r);
    if (err) {
        fprintf(stderr, "gh_run: error %d\n", err);
        exit(2);
    }
    return r;
}

#endif
