/* tests/gh_test.h — shared helpers for the cmocka tests.
 *
 * Each test case runs in its own process (ctest runs `test_x CASE`), with a
 * timeout, so one deadlock cannot take the suite down.  An assertion that
 * fails inside a greenlet on hub 0 (which runs on the test's own thread,
 * the one that called gh_run) fails the test as on the test's thread.  On
 * another hub's thread it ends the process with status 255: cmocka keeps
 * its message in a per-thread buffer that nobody prints then, so
 * gh_test_main prints a line saying so (find the assertion with gdb:
 * `break _fail`), and the test fails, visibly.  Where the reason
 * matters, use fail_msg() after printing what was seen. */
#ifndef GH_TEST_H
#define GH_TEST_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <cmocka.h>

#include <greenhub.h>

/* Runs fn as the main greenlet with `hubs` hubs and checks gh_run's
 * result.  GH_TEST_MAX_HUBS=N in the environment caps the hub count (see
 * the ThreadSanitizer note on the interposition tests in
 * tests/CMakeLists.txt). */
static inline void *gh_test_run(unsigned hubs, gh_fn fn, void *arg)
{
    const char *cap = getenv("GH_TEST_MAX_HUBS");
    if (cap && atoi(cap) > 0 && (unsigned)atoi(cap) < hubs)
        hubs = (unsigned)atoi(cap);
    gh_config cfg = { .hubs = hubs };
    void *res = NULL;
    assert_int_equal(gh_run(&cfg, fn, arg, &res), 0);
    return res;
}

/* How many threads this process has, and in *tid (if not NULL) the id of
 * one whose name starts with `name` (0 if none), from /proc/self/task. */
static inline int gh_test_threads(const char *name, pid_t *tid)
{
    int n = 0;
    if (tid)
        *tid = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = tid ? fopen(path, "r") : NULL;
        if (f && fgets(comm, sizeof comm, f) && strncmp(comm, name, strlen(name)) == 0)
            *tid = (pid_t)atoi(e->d_name);
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

/* main() for a test file: with an argument, runs only the test of that
 * name (ctest gives every test case its own process). */
static int gh_test_finished;   /* set once the runner returned */

static inline void gh_test_exit_early(void)
{
    if (!gh_test_finished)
        fprintf(stderr, "gh_test: the process exited inside a test: a cmocka "
                "assertion failed on a hub thread (its message is lost)\n");
}

static inline int gh_test_main(int argc, char **argv,
                               const struct CMUnitTest *tests, size_t n,
                               const char *group)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    atexit(gh_test_exit_early);
    int r = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    gh_test_finished = 1;
    return r;
}
#define GH_TEST_MAIN(tests) \
    int main(int argc, char **argv) \
    { return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__); }

#endif
