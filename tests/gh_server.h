/* tests/gh_server.h — helpers for the tests that run a real server
 * (redis-server, postgres) as a child process of the test, on loopback:
 * a temporary directory, a free loopback port, a child that dies with the
 * test, a wait with a time limit, and removal of what was made.
 *
 * All of it runs on the test's main thread, before or after gh_run, where
 * the interposition layer passes every call through to libc, or in the
 * tests' atexit cleanup, which can run on a hub thread (an assertion that
 * failed in a greenlet ends the process there): it sleeps with libc's own
 * nanosleep.  The child is started with fork + exec from that thread; it is
 * killed (SIGKILL) if the thread that forked it dies (PR_SET_PDEATHSIG,
 * set after any change of user, which clears it), so a test that crashes
 * or is killed by ctest's timeout leaves no server behind (a postmaster's
 * backends notice its death and exit). */
#ifndef GH_SERVER_H
#define GH_SERVER_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <greenhub.h>

static inline uint64_t srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A sleep of the calling thread, libc's own (not the layer's green sleep):
 * the cleanup at exit may run on a hub thread, inside the greenlet whose
 * assertion failed, where a green sleep would park it mid-exit. */
static inline void srv_sleep_ms(long ms)
{
    int (*real_nanosleep)(const struct timespec *, struct timespec *);
    void *p = gh_syscall_real("nanosleep");
    memcpy(&real_nanosleep, &p, sizeof p);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (real_nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Makes $TMPDIR/<tag>.XXXXXX (/tmp without TMPDIR) into out; 0 or errno. */
static inline int srv_mkdtemp(const char *tag, char *out, size_t len)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if ((size_t)snprintf(out, len, "%s/%s.XXXXXX", base, tag) >= len)
        return ENAMETOOLONG;
    return mkdtemp(out) ? 0 : errno;
}

static inline int srv_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

/* rm -rf dir (nothing if dir is empty). */
static inline void srv_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, srv_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A loopback TCP port that was free a moment ago (the server may still
 * lose it to someone else: callers retry with another). */
static inline int srv_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The user a server runs as: the caller itself, or `nobody` when the
 * caller is root (initdb and postgres refuse to run as root; nobody exists
 * on every Debian system).  Returns false if root and there is no nobody. */
struct srv_user {
    bool drop;   /* setuid to uid/gid in the child */
    uid_t uid;
    gid_t gid;
};

static inline bool srv_user_get(struct srv_user *u)
{
    *u = (struct srv_user){ .drop = false, .uid = getuid(), .gid = getgid() };
    if (geteuid() != 0)
        return true;
    struct passwd *pw = getpwnam("nobody");
    if (!pw)
        return false;
    *u = (struct srv_user){ .drop = true, .uid = pw->pw_uid, .gid = pw->pw_gid };
    return true;
}

/* Starts argv[0] (a path) with argv, its stdin /dev/null and stdout and
 * stderr appended to log, in directory cwd, as user u (NULL: the
 * caller).  Returns the pid, or -1. */
static inline pid_t srv_spawn(char *const argv[], const char *log, const char *cwd,
                              const struct srv_user *u)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* the child: system calls only, until exec */
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(126);
    if (u && u->drop &&
        (setgroups(1, &u->gid) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0))
        _exit(125);
    if (cwd && chdir(cwd) != 0)
        _exit(124);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(123);
    execv(argv[0], argv);
    _exit(127);
}

/* Waits up to ms for pid to end.  Returns 0 (*status set), ETIMEDOUT, or
 * errno of waitpid. */
static inline int srv_wait(pid_t pid, long ms, int *status)
{
    uint64_t until = srv_now_ms() + (uint64_t)ms;
    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);
        if (w == pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return errno;
        if (srv_now_ms() >= until)
            return ETIMEDOUT;
        srv_sleep_ms(5);
    }
}

/* Ends *pid (if > 0): signal sig, up to ms for it to go, then SIGKILL.
 * Returns 0 if it ended after sig (its status in *status, if not NULL),
 * ETIMEDOUT if it took the SIGKILL; *pid becomes 0. */
static inline int srv_stop(pid_t *pid, int sig, long ms, int *status)
{
    int st = 0, r = 0;
    if (*pid <= 0)
        return 0;
    kill(*pid, sig);
    if (srv_wait(*pid, ms, &st) != 0) {
        r = ETIMEDOUT;
        kill(*pid, SIGKILL);
        srv_wait(*pid, 10000, &st);
    }
    if (status)
        *status = st;
    *pid = 0;
    return r;
}

/* Waits up to ms for the server *pid to answer (ready(arg) true).  True
 * if it did.  False if it ended first (its port taken, say: *pid becomes
 * 0) or did not answer in time (then it is killed); the caller may start
 * it again on another port. */
static inline bool srv_wait_up(pid_t *pid, long ms, bool (*ready)(void *), void *arg)
{
    uint64_t until = srv_now_ms() + (uint64_t)ms;
    int st;
    while (srv_now_ms() < until) {
        if (ready(arg))
            return true;
        if (srv_wait(*pid, 0, &st) == 0) {
            *pid = 0;
            return false;
        }
        srv_sleep_ms(20);
    }
    srv_stop(pid, SIGKILL, 5000, NULL);
    return false;
}

/* Copies the file at path to stderr (a server's log, on failure). */
static inline void srv_print_file(const char *what, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "(%s: %s: %s)\n", what, path, strerror(errno));
        return;
    }
    fprintf(stderr, "---- %s (%s) ----\n", what, path);
    char line[1024];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fprintf(stderr, "---- end of %s ----\n", what);
    fclose(f);
}

#endif
