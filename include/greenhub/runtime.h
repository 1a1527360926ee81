/* greenhub/runtime.h — the runtime and its greenlets.
 *
 * A greenlet is a function running on its own stack, switched cooperatively:
 * it gives up its hub only at a blocking call (gh_join, gh_sleep_ms,
 * gh_event_wait, the green I/O calls, ...) or at gh_yield.  Greenlets are
 * scheduled M:N over one hub (an OS thread pinned to one CPU core) per core;
 * an idle hub steals runnable greenlets from busy ones, so a greenlet may
 * resume on another hub after any switch point.  See "Migration" below.
 *
 * Conventions: functions returning int return 0 or a positive errno value,
 * like pthread_*.  Timeouts are int64_t milliseconds: -1 waits forever, 0
 * polls.  Every call also works on a plain thread (outside a greenlet), by
 * blocking that thread.
 *
 * Migration.  The library saves errno when a greenlet switches out and
 * restores it on the thread where it resumes.  Do not keep the address of a
 * thread-local variable across a blocking call: after it the greenlet may run
 * on another thread.  A greenlet that must stay on one thread (because it
 * uses thread-local state of some library) is spawned with
 * gh_spawn_opts.pinned.
 *
 * errno.  glibc declares __errno_location() `const`, so an optimising
 * compiler may compute &errno once per function and keep it across a call
 * that switches; after a migration such code reads the errno of the thread
 * it left (libgo issue 256, LLVM issue 49257; tests/test_sched.c shows it
 * with gcc -O2).  This header therefore redefines `errno` as
 * (*gh_errno_location()), which the compiler must call again after every
 * switch point.  Code compiled without this header (unmodified libraries)
 * does not get this protection.  Define GH_KEEP_LIBC_ERRNO before including
 * greenhub.h to keep libc's definition.
 */
#ifndef GREENHUB_RUNTIME_H
#define GREENHUB_RUNTIME_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* Marks the public API (the library is built with hidden visibility). */
#ifndef GH_API
#define GH_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* &errno of the calling thread, as __errno_location() but not `const`:
 * see "errno" above. */
GH_API int *gh_errno_location(void);
#if !defined(GH_KEEP_LIBC_ERRNO) && !defined(GH_BUILDING)
#undef errno
#define errno (*gh_errno_location())
#endif

/* The function a greenlet runs; its return value is what gh_join yields. */
typedef void *(*gh_fn)(void *arg);

/* Runtime configuration.  Zero in any field means "the default".
 *   hubs        number of hubs; default: one per physical core (hwloc).
 *   stack_size  default greenlet stack size in bytes; default 256 KiB.
 *               Rounded up to whole pages.
 *   no_pin      non-zero: do not pin hub threads to cores.
 *   name        a name for the process's runtime (shown by schedtop; at
 *               most 31 bytes are kept).
 *   block_ms    blocking detector: a greenlet that runs this many ms
 *               without switching (a CPU hog, or a blocking call greenhub
 *               does not know about) is reported by name in schedtop.
 *               0 = the default, 100 ms; negative = detector off.
 *   block_report non-zero: the detector also prints each report to stderr,
 *               "greenhub: greenlet '<name>' (#<id>) has blocked hub <i>
 *               for <n> ms" when it sees it and "... blocked hub <i> for
 *               <n> ms in all" when the greenlet switches at last.
 *   sched_batch non-zero: hub threads run under SCHED_BATCH (sched(7)):
 *               a hub that wakes on a core where another thread runs
 *               does not preempt it, but waits until that thread blocks
 *               or the scheduler's tick finds its slice used up (one or
 *               more ticks).  For hubs that share their cores with a busy
 *               peer they depend on (a load generator, a proxy and its
 *               backend on one machine): there, with the default policy,
 *               every hub wakeup preempts the peer (2 hubs on 2 cores
 *               sharing them with an echo load generator: 42,000
 *               preemptions of it in 3 s, 139k msgs/s; SCHED_BATCH: 821,
 *               233k).  Costs latency where hubs share cores with work
 *               they do not depend on: one hub sharing its core with a
 *               busy loop, 2 echo connections: p50 4 ms and 506 msgs/s,
 *               against 55 us and 19,500 by default.  So it is off by
 *               default.  Best effort: where the system refuses the
 *               policy, the hubs run under the default one, silently.
 *               A thread a greenlet starts with pthread_create inherits
 *               it; libuv's thread pool (gh_blocking, gh_getaddrinfo),
 *               which is process-wide, does not: it starts with the
 *               policy (and CPU affinity) of the thread that called
 *               gh_run.  Off, hub threads inherit the policy of the thread
 *               that calls gh_run.
 *   no_publish  non-zero: do not publish the hubs for schedtop.  By default
 *               the runtime keeps a shared-memory segment
 *               /dev/shm/greenhub.<pid> (mode 0600: readable by the same
 *               user only) that a monitor thread refreshes a few times a
 *               second; it is removed when gh_run returns.  The monitor
 *               thread runs while either the segment or the detector is on.
 *               It keeps a descriptor table of its own (see gh_run) with
 *               only a copy of stderr as gh_run found it: its reports go
 *               there even if the program points fd 2 elsewhere later,
 *               and that copy stays open until gh_run returns.
 * Environment variables override the fields: GREENHUB_HUBS=N,
 * GREENHUB_STACK_SIZE=bytes, GREENHUB_PIN=0 (do not pin) or 1.
 * GREENHUB_BLOCK_MS=N (0: detector off), GREENHUB_BLOCK_REPORT=1 (print
 * reports), GREENHUB_PUBLISH=0 (no segment) or 1, GREENHUB_SCHED_BATCH=1
 * (hub threads SCHED_BATCH) or 0.
 * GREENHUB_GUARD=madvise|mprotect|canary forces a stack guard mode (see
 * gh_stack_guard_mode).  GREENHUB_SPIN_US=N (tuning): how long an idle hub
 * keeps looking for work to steal before it sleeps, default 10; 0 sleeps at
 * once.  Spinning saves CPU-bound work a ~12 us cross-core wakeup; a
 * many-core I/O-bound server, whose hubs get their work from their own
 * epoll, may spend less CPU with a shorter spin. */
typedef struct gh_config {
    unsigned hubs;
    size_t stack_size;
    int no_pin;
    const char *name;
    int block_ms;
    int block_report;
    int no_publish;
    int sched_batch;
} gh_config;

/* Starts the hubs, runs main_fn(arg) as the first greenlet (named "main"),
 * and when it returns stops the hubs and returns.  *result (if result is not
 * NULL) receives main_fn's return value.  cfg may be NULL for defaults.
 *
 * When main_fn returns the runtime stops: greenlets that are still alive
 * are not run any further and their stacks are released (like goroutines
 * when Go's main returns).  Handles to them become invalid.
 *
 * Hub 0 runs on the thread that calls gh_run (the others get threads of
 * their own), so that thread is busy as long as the runtime runs, as it
 * would be waiting anyway.  Greenlets on hub 0 see that thread's
 * thread-local variables (greenlets move between hubs: keep per-greenlet
 * state in gh_local, not in thread-locals).  With pinning, the thread runs
 * on hub 0's core meanwhile; gh_run gives it back its CPU affinity,
 * scheduling policy and alternate signal stack as it found them (a
 * realtime policy only where the process may set it: RLIMIT_RTPRIO or
 * CAP_SYS_NICE), and never changes its name or signal mask.  A thread with less than 256 KiB
 * of stack left gets a thread for hub 0 instead (the hub loop runs on the
 * caller's stack).  So a one-hub runtime is one thread (plus the monitor,
 * which keeps a descriptor table of its own, and libuv's thread pool once
 * something needs it): the kernel then skips a reference count per system
 * call on a descriptor, as in a single-threaded libuv program.
 *
 * Returns 0; EBUSY if a runtime is already running in this process; EINVAL
 * for a NULL main_fn or an unusable configuration; ENOMEM or EAGAIN if
 * memory or threads could not be had.  gh_run may be called again after it
 * returns. */
GH_API int gh_run(const gh_config *cfg, gh_fn main_fn, void *arg, void **result);

typedef struct gh_greenlet gh_greenlet;

/* Options for gh_spawn_with; zero-initialised means defaults.
 *   name        shown in crash reports and tools (copied; at most 31 bytes
 *               are kept).  Default "(unnamed)".
 *   stack_size  this greenlet's stack size in bytes (rounded up to pages);
 *               0 = the runtime default.
 *   hub         with pinned: the 0-based hub it runs on (must be < hubs).
 *   pinned      non-zero: runs only on hub `hub`, never stolen.  Otherwise
 *               `hub` is ignored. */
typedef struct gh_spawn_opts {
    const char *name;
    size_t stack_size;
    int hub;
    int pinned;
} gh_spawn_opts;

/* Creates a greenlet running fn(arg) and makes it runnable.  Works from a
 * greenlet on any hub and from a plain thread while a runtime is running.
 * The new greenlet usually runs on the spawning hub as soon as the spawner
 * blocks or yields; idle hubs steal it otherwise.
 *
 * Returns a handle that must be given back exactly once, with gh_join,
 * gh_join_timeout (when it succeeds) or gh_detach.  On failure returns NULL
 * and sets errno: EINVAL (NULL fn, bad opts), ESRCH (no runtime running),
 * ENOMEM (no memory or address space for the stack). */
GH_API gh_greenlet *gh_spawn(gh_fn fn, void *arg);
GH_API gh_greenlet *gh_spawn_with(const gh_spawn_opts *opts, gh_fn fn, void *arg);

/* Waits for g to finish, stores its return value in *result (if result is
 * not NULL) and releases g.  Returns 0; EINVAL for a NULL handle; EDEADLK if
 * g is the caller itself; EBUSY if another caller is already joining g;
 * ECANCELED if the caller was killed while waiting (g is not released). */
GH_API int gh_join(gh_greenlet *g, void **result);

/* gh_join with a timeout: ETIMEDOUT if g did not finish within timeout_ms
 * (0 polls).  On ETIMEDOUT or ECANCELED g is not released and may be joined
 * again or detached. */
GH_API int gh_join_timeout(gh_greenlet *g, int64_t timeout_ms, void **result);

/* Gives up the handle: g's resources are released when it finishes (at
 * once if it has already finished).  NULL is ignored. */
GH_API void gh_detach(gh_greenlet *g);

/* Cancels g: the call it is parked in returns ECANCELED, and so does every
 * later call of g that has to wait (gh_sleep_ms returns ECANCELED at once).  A call that can complete
 * without waiting (gh_event_wait on a set event, gh_join of a finished
 * greenlet) still completes, as in gevent, where a kill is seen only at a
 * switch.  The greenlet is expected to clean up and return.  Returns 0, EINVAL for NULL, ESRCH if g
 * has already finished. */
GH_API int gh_kill(gh_greenlet *g);

/* Lets every other runnable greenlet of this hub run once before the caller
 * continues.  On a plain thread, sched_yield(). */
GH_API void gh_yield(void);

/* Sleeps at least ms milliseconds (never wakes early).  Returns 0, EINVAL
 * for ms < 0, ECANCELED if the greenlet was killed, ETIMEDOUT if its
 * deadline scope expired first. */
GH_API int gh_sleep_ms(int64_t ms);

/* Deadline scopes (gevent's Timeout): between gh_timeout_begin(ms) and the
 * matching gh_timeout_end, every blocking call of the calling greenlet (or
 * plain thread) -- joins, sleeps, event waits, every green I/O call --
 * returns ETIMEDOUT once ms milliseconds have passed since the begin, even
 * if its own timeout is longer or -1.  Scopes nest; the earliest deadline
 * of the open ones applies.  A call that can complete without waiting
 * still completes.
 *
 *     int t = gh_timeout_begin(500);
 *     ssize_t n = gh_read(fd, buf, sizeof buf);  // -1/ETIMEDOUT after 500 ms
 *     gh_timeout_end(t);
 *
 * gh_timeout_begin returns a token (>= 0) for gh_timeout_end, or -1 with
 * errno EINVAL (ms < 0) or ENOMEM.  gh_timeout_end(token) closes that scope
 * and every scope opened inside it; a token already closed is ignored
 * (tokens are not reused).  Scopes a greenlet leaves open end with it.
 * gh_blocking's fn runs on a pool thread: the caller's scopes do not bound
 * what fn does there. */
GH_API int gh_timeout_begin(int64_t ms);
GH_API void gh_timeout_end(int token);

/* The calling greenlet; NULL outside a greenlet. */
GH_API gh_greenlet *gh_self(void);

/* A greenlet's id: unique within the process, never reused, > 0.  The main
 * greenlet of a runtime is the first id that runtime hands out.  0 for
 * NULL. */
GH_API uint64_t gh_id(const gh_greenlet *g);

/* The name given at spawn ("(unnamed)" by default, "main" for the main
 * greenlet); "" for NULL. */
GH_API const char *gh_name(const gh_greenlet *g);

/* The 0-based index of the hub the caller runs on; -1 outside a hub.  The
 * answer may be stale after the next switch point. */
GH_API int gh_hub_index(void);

/* Number of hubs of the running runtime; 0 when none runs. */
GH_API unsigned gh_hub_count(void);

/* How stacks are guarded in this process (decided at the first gh_run):
 *   "madvise"  guard page installed with MADV_GUARD_INSTALL (Linux 6.13+):
 *              every stack has a real guard at almost no kernel map entries.
 *   "mprotect" guard page made with mprotect: two map entries per stack, so
 *              used only up to a budget derived from vm.max_map_count, after
 *              which new stacks fall back to "canary".
 *   "canary"   no hardware guard: a canary word below the stack is checked
 *              at every switch; an overflow is reported at the next switch
 *              (one that skips past the 4 KiB red zone is not detected).
 * NULL before the first gh_run. */
GH_API const char *gh_stack_guard_mode(void);

#ifdef __cplusplus
}
#endif
#endif
