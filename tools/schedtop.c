/* tools/schedtop.c — schedtop, top for the hubs of greenhub processes: with
 * no argument it lists the current user's greenhub processes; with a PID it
 * watches that process's hubs live, or prints one snapshot (--once, --json).
 * It reads the segment each process publishes (sched/shm_layout.h), never
 * writes it, and does not link the library. */
#include "schedtop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
"usage: schedtop              list your greenhub processes\n"
"       schedtop PID          watch the hubs of process PID, live (full screen)\n"
"       schedtop --once PID   print one snapshot as text\n"
"       schedtop --json PID   print one snapshot as one JSON object\n"
"       schedtop --help       this text\n"
"\n"
"A greenhub process publishes its hubs in /dev/shm/greenhub.<pid>, readable\n"
"by its owner only.  schedtop reads it, never writes it, refuses a segment\n"
"of another user, and removes segments whose process is gone.\n"
"\n"
"Live view keys: q quit; s sort the hub rows (index, switches/s, runnable,\n"
"greenlets); + / - longer / shorter refresh interval (0.25 s to 10 s,\n"
"1 s at start); Ctrl-L repaint.  Rows that do not fit the terminal are cut.\n"
"\n"
"Hub columns: CORE the cpu it is pinned to; STATE running, searching (for\n"
"work), sleeping (in epoll), BLOCKED (one greenlet ran past the block\n"
"threshold), stopped; RUNQ greenlets queued on it; GLETS alive greenlets\n"
"that last ran on it; SWITCH/s, STEAL/s (greenlets it took from other\n"
"hubs), STOLEN/s (taken from it), PARK/s, IOWAIT/s (fd waits that parked);\n"
"TIMERS pending; STK MiB stack address space held; RES MiB of it resident\n"
"(default-size stacks of the greenlets that last ran there and of its\n"
"cache, refreshed at most every second; the all row leaves out stacks on\n"
"no hub, which the memory line counts); CURRENT the greenlet running\n"
"(name #id) and how long since it last switched.  Rates are per second\n"
"between two samples of the process's monitor: in the live view the last\n"
"two, with --once and --json two taken at least 200 ms apart.\n"
"Blocking reports: greenlets that held their hub past the threshold\n"
"(GREENHUB_BLOCK_MS), most recent first.\n"
"\n"
"--json: the fields of sched/shm_layout.h by name, plus \"command\",\n"
"\"rates\" and \"rates_interval_ns\" (null when the monitor did not sample\n"
"again), \"hubs\" (an array) and \"blocked\" (an array, most recent first).\n"
"\n"
"Exit status: 0 on success (the live view: after q or Ctrl-C); 1 on an\n"
"error, a stale segment (removed), or when the watched process exits;\n"
"2 on bad usage.\n";

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "schedtop: %s%s%s\n", what, arg ? " " : "", arg ? arg : "");
    fprintf(stderr, "try: schedtop --help\n");
    return ST_EXIT_USAGE;
}

/* A decimal pid, 1 .. INT_MAX, nothing around it; 0 or -1. */
static int parse_pid(const char *s, pid_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno != 0 || v <= 0 || v > INT_MAX)
        return -1;
    *out = (pid_t)v;
    return 0;
}

/* The process list ---------------------------------------------------------- */

/* The pid of a segment file name, if the name is exactly greenhub.<pid>
 * and the file a regular one of the current user; else 0. */
static pid_t segment_pid(int dirfd, const char *name)
{
    size_t plen = strlen(GH_SHM_FILE_PREFIX);
    char canon[64];
    pid_t pid;
    struct stat st;
    if (strncmp(name, GH_SHM_FILE_PREFIX, plen) != 0 || parse_pid(name + plen, &pid) != 0)
        return 0;
    snprintf(canon, sizeof canon, "%s%d", GH_SHM_FILE_PREFIX, (int)pid);
    if (strcmp(canon, name) != 0)
        return 0;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_uid != getuid())
        return 0;
    return pid;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* The pids of the current user's segments, sorted; -1 if the directory
 * cannot be read. */
static int find_segments(pid_t **out, size_t *n)
{
    DIR *d = opendir(GH_SHM_DIR);
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : -1;
    for (struct dirent *e; (e = readdir(d));) {
        pid_t pid = segment_pid(dirfd(d), e->d_name);
        if (!pid)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            pid_t *v = realloc(*out, cap * sizeof *v);
            if (!v)
                break;
            *out = v;
        }
        (*out)[(*n)++] = pid;
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, cmp_pid);
    return 0;
}

/* Lists one process; 1 if it was listed.  Stale segments are removed and
 * bad ones reported, one line each on stderr. */
static int list_one(pid_t pid, int listed)
{
    struct st_seg seg;
    struct st_snap s = { 0 };
    char err[ST_ERR_LEN], raw[64], comm[256], up[32];
    enum st_result r = st_seg_open(&seg, pid, err, sizeof err);
    if (r == ST_STALE_REMOVED || r == ST_ERROR)
        fprintf(stderr, "schedtop: %s\n", err);
    if (r != ST_OK)
        return 0;
    if (st_snap_init(&s, seg.nhubs) == 0 && (r = st_take(&seg, &s, err, sizeof err)) == ST_OK) {
        st_proc_comm(pid, raw, sizeof raw);
        st_printable(raw, sizeof raw, comm, sizeof comm);
        uint64_t now = st_real_ns();
        st_fmt_span(up, sizeof up, now > s.h.start_unix_ns ?
                    (now - s.h.start_unix_ns) / 1000000000u : 0);
        if (!listed)
            printf("%7s  %-16s %5s %9s  %s\n", "PID", "COMMAND", "HUBS", "ALIVE", "UPTIME");
        printf("%7d  %-16s %5u %9llu  %s\n", (int)pid, comm, s.h.nhubs,
               (unsigned long long)s.h.alive, up);
    } else if (r == ST_ERROR) {
        fprintf(stderr, "schedtop: %s\n", err);
    }
    st_snap_free(&s);
    st_seg_close(&seg);
    return r == ST_OK;
}

static int list_processes(void)
{
    pid_t *pids;
    size_t n;
    int listed = 0;
    if (find_segments(&pids, &n) != 0) {
        fprintf(stderr, "schedtop: cannot read %s: %s\n", GH_SHM_DIR, strerror(errno));
        return ST_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++)
        listed += list_one(pids[i], listed);
    free(pids);
    if (!listed)
        printf("no greenhub processes\n");
    return fflush(stdout) == 0 ? ST_EXIT_OK : ST_EXIT_FAIL;
}

/* One process ------------------------------------------------------------------ */

enum mode { M_LIST, M_WATCH, M_ONCE, M_JSON };

static int one_process(enum mode mode, pid_t pid)
{
    struct st_seg seg;
    char err[ST_ERR_LEN], raw[64], comm[256];
    if (st_seg_open(&seg, pid, err, sizeof err) != ST_OK) {
        fprintf(stderr, "schedtop: %s\n", err);
        return ST_EXIT_FAIL;
    }
    st_proc_comm(pid, raw, sizeof raw);
    st_printable(raw, sizeof raw, comm, sizeof comm);
    int status;
    if (mode == M_ONCE)
        status = st_print_once(&seg, comm);
    else if (mode == M_JSON)
        status = st_print_json(&seg, raw);
    else
        status = st_watch(&seg, comm);
    st_seg_close(&seg);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "once", no_argument, NULL, 'o' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    enum mode mode = M_LIST;
    pid_t pid;
    int c;
    /* Character classes only: JSON numbers need the C decimal point. */
    setlocale(LC_CTYPE, "");
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return ST_EXIT_OK;
        }
        if (c == '?')
            return usage_error("unknown option", argv[optind - 1]);
        if (mode != M_LIST)
            return usage_error("--once and --json exclude each other", NULL);
        mode = c == 'o' ? M_ONCE : M_JSON;
    }
    if (argc - optind > 1)
        return usage_error("too many arguments:", argv[optind + 1]);
    if (optind == argc && mode != M_LIST)
        return usage_error(mode == M_ONCE ? "--once needs a PID" : "--json needs a PID", NULL);
    if (optind == argc)
        return list_processes();
    if (parse_pid(argv[optind], &pid) != 0) {
        fprintf(stderr, "schedtop: '%s' is not a process id\n", argv[optind]);
        return ST_EXIT_USAGE;
    }
    return one_process(mode == M_LIST ? M_WATCH : mode, pid);
}
