/* io/process.c — child processes: gh_process_spawn, _wait, _kill.
 *
 * A child is spawned with posix_spawnp and watched through a pidfd
 * (Linux >= 5.3): the pidfd becomes readable when the child exits, so a
 * wait is an ordinary fd wait (gh__io_wait: a greenlet parks on any hub, a
 * plain thread polls), and a kill through it can never hit a recycled
 * pid.  DESIGN.md planned uv_spawn; a uv_process_t would tie the child to
 * one hub's loop (its exit callback, its close) and give plain threads no
 * loop to wait on.  The pidfd needs neither.
 *
 * Pipes: the child's ends are plain blocking pipe ends dup'ed onto 0-2;
 * the parent's ends are non-blocking and close-on-exec, for gh_read and
 * gh_write, and belong to the caller (gh_close them; closing the stdin
 * pipe is how a child like cat sees EOF). */
#include "io_internal.h"
#include "real.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct gh_process {
    pid_t pid;
    int pidfd;                 /* -1: the child was reaped elsewhere before
                                * we could open it (then `gone`) */
    bool gone;                 /* immutable after spawn */
    int fd[3];                 /* the parent's pipe ends, -1 where none */
    pthread_mutex_t mu;        /* reaping: one waiter calls waitpid */
    bool reaped;               /* under mu */
    int status;                /* waitpid's, once reaped */
};

/* The pipe for stdio slot `which`: the child's end in *child, the
 * parent's (non-blocking) in p->fd[which]. */
static int make_pipe(struct gh_process *p, int which, int *child)
{
    int pp[2];
    if (GH_REAL(pipe2)(pp, O_CLOEXEC) < 0)
        return errno;
    int mine = which == 0 ? pp[1] : pp[0];
    *child = which == 0 ? pp[0] : pp[1];
    p->fd[which] = mine;
    if (GH_REAL(fcntl)(mine, F_SETFL, O_NONBLOCK) < 0)
        return errno;
    gh__fd_mark_nonblock(gh__fdstate_get(mine));
    return 0;
}

/* File actions for the child's stdio; child ends to close afterwards go
 * to close_after[]. */
static int stdio_actions(struct gh_process *p, const gh_process_opts *o,
                         posix_spawn_file_actions_t *fa, int close_after[3])
{
    for (int i = 0; i < 3; i++) {
        int err = 0, child = -1;
        switch (o->stdio[i]) {
        case GH_STDIO_INHERIT:
            continue;
        case GH_STDIO_PIPE:
            err = make_pipe(p, i, &child);
            if (!err)
                err = posix_spawn_file_actions_adddup2(fa, child, i);
            close_after[i] = child;
            break;
        case GH_STDIO_NULL:
            err = posix_spawn_file_actions_addopen(fa, i, "/dev/null",
                                                   i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        default:
            err = EINVAL;
        }
        if (err)
            return err;
    }
    if (o->cwd)
        return posix_spawn_file_actions_addchdir_np(fa, o->cwd);
    return 0;
}

/* The child starts with SIGPIPE at its default: the library ignores it
 * in this process (io.h), and an ignored disposition survives exec --
 * `producer | head` would then never stop the producer. */
static int child_signals(posix_spawnattr_t *at)
{
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    int err = posix_spawnattr_setsigdefault(at, &def);
    return err ? err : posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGDEF);
}

static void process_destroy(struct gh_process *p)
{
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            gh_close(p->fd[i]);   /* also forgets its O_NONBLOCK */
    pthread_mutex_destroy(&p->mu);
    free(p);
}

gh_process *gh_process_spawn(const gh_process_opts *o)
{
    if (!o || !o->argv || !o->argv[0]) {
        errno = EINVAL;
        return NULL;
    }
    struct gh_process *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->fd[0] = p->fd[1] = p->fd[2] = p->pidfd = -1;
    pthread_mutex_init(&p->mu, NULL);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    int close_after[3] = { -1, -1, -1 };
    int err = stdio_actions(p, o, &fa, close_after);
    if (!err)
        err = child_signals(&at);
    if (!err)
        err = posix_spawnp(&p->pid, o->argv[0], &fa, &at, o->argv,
                           o->envp ? o->envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 3; i++)
        if (close_after[i] >= 0)
            GH_REAL(close)(close_after[i]);
    if (!err && (p->pidfd = pidfd_open(p->pid, 0)) < 0 && errno == ESRCH) {
        /* A zombie still has its pid, so the child is gone altogether:
         * reaped behind our back (SIGCHLD ignored, a waitpid(-1)
         * elsewhere), which a quick child can be before we get here.  The
         * spawn did succeed; the wait reports ECHILD as for any child
         * reaped elsewhere.  (pidfd_spawn, glibc 2.39, would close this
         * window; Debian 12 has 2.36.) */
        p->gone = true;
    } else if (!err && p->pidfd < 0) {
        /* (EMFILE, most likely.)  The child runs unwatched: stop it and
         * reap it rather than leak it; it is ours until reaped, so the pid
         * cannot have been reused (unless SIGCHLD is ignored: then
         * waitpid says ECHILD and there is nothing left to do). */
        err = errno;
        if (waitpid(p->pid, NULL, WNOHANG) == 0) {
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (err) {
        process_destroy(p);
        errno = err;
        return NULL;
    }
    return p;
}

int gh_process_pid(const gh_process *p)
{
    return p ? p->pid : -1;
}

int gh_process_fd(const gh_process *p, int which)
{
    return p && which >= 0 && which < 3 ? p->fd[which] : -1;
}

/* Reaps the child if it has exited: 0 once reaped, EAGAIN while it runs,
 * ECHILD if someone else reaped it (SIGCHLD ignored, a waitpid(-1)
 * elsewhere in the program). */
static int try_reap(struct gh_process *p)
{
    pthread_mutex_lock(&p->mu);
    int err = 0;
    if (p->gone) {
        err = ECHILD;
    } else if (!p->reaped) {
        pid_t r;
        while ((r = waitpid(p->pid, &p->status, WNOHANG)) < 0 && errno == EINTR)
            ;
        if (r == p->pid)
            p->reaped = true;
        else
            err = r == 0 ? EAGAIN : errno;
    }
    pthread_mutex_unlock(&p->mu);
    return err;
}

/* Waits (bounded by the caller's scope) until the pidfd says the child
 * exited, then reaps it. */
static int wait_reap(struct gh_process *p, int64_t timeout_ms)
{
    int err;
    while ((err = try_reap(p)) == EAGAIN) {
        /* Readable once the child has exited; a wait that times out or is
         * cancelled leaves the child alone. */
        if ((err = gh__io_wait(p->pidfd, GH_READ, timeout_ms)))
            break;
    }
    return err;
}

int gh_process_wait(gh_process *p, int64_t timeout_ms, int *status)
{
    if (!p || timeout_ms < -1)
        return EINVAL;
    /* A scope makes timeout_ms one deadline over every pass of the loop. */
    int tok = timeout_ms > 0 ? gh_timeout_begin(timeout_ms) : -1;
    if (timeout_ms > 0 && tok < 0)
        return errno;
    int err = wait_reap(p, timeout_ms == 0 ? 0 : -1);
    if (tok >= 0)
        gh_timeout_end(tok);
    if (!err && status)
        *status = p->status;
    return err;
}

int gh_process_kill(gh_process *p, int signum)
{
    if (!p)
        return EINVAL;
    if (p->gone)
        return ESRCH;
    return pidfd_send_signal(p->pidfd, signum, NULL, 0) < 0 ? errno : 0;
}

void gh_process_free(gh_process *p)
{
    if (!p)
        return;
    if (p->pidfd >= 0)
        gh_close(p->pidfd);
    p->fd[0] = p->fd[1] = p->fd[2] = -1;   /* the caller's to close */
    process_destroy(p);
}
