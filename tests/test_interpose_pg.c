/* tests/test_interpose_pg.c — unmodified libpq (PQconnectdb, PQexec) on
 * greenlets, through the interposition layer, against a real PostgreSQL
 * server: a throw-away cluster that the test makes with initdb in a
 * temporary directory and runs with trust authentication on a free
 * loopback port and on a unix socket in that directory.  initdb and
 * postgres refuse to run as root: as root the test runs them as `nobody`
 * (setuid in the forked child), the directory being made theirs.
 *
 * libpq keeps its sockets non-blocking and waits in poll(): the layer
 * leaves its reads and writes to libc (EAGAIN, as libpq expects) and
 * parks the greenlet in the poll.
 *
 *   - 90 greenlets on 2 hubs, each with its own connection (half over
 *     TCP, half over the unix socket), run SELECT pg_sleep(0.2) at once:
 *     every result is right and the whole takes a small multiple of
 *     0.2 s, not 90 x 0.2 s.
 *   - A deadline scope of 50 ms around SELECT pg_sleep(1) ends PQexec
 *     with an error well within 500 ms; the connection then closes
 *     cleanly with PQfinish, and a new connection works.
 *
 * The server is stopped (SIGQUIT: immediate shutdown) and reaped, and the
 * directory removed, by the test; an atexit handler does it if the test
 * fails on the way. */
#include "gh_test.h"
#include "gh_server.h"

#include <glob.h>
#include <libpq-fe.h>
#include <stdatomic.h>

enum { CLIENTS = 90, SLEEP_MS = 200 };

/* ---- the server ------------------------------------------------------------------- */

static struct {
    pid_t pid;
    int port;
    char bindir[256];
    char dir[256];      /* the temporary directory: the socket's too */
    char data[300];     /* dir/data, the cluster */
    char log[300];      /* dir/postgres.log */
    struct srv_user user;
} srv;

static void srv_cleanup(void)
{
    srv_stop(&srv.pid, SIGKILL, 10000, NULL);
    srv_rmtree(srv.dir);
    srv.dir[0] = 0;
}

/* The newest /usr/lib/postgresql/<ver>/bin with initdb and postgres in
 * it (GH_PG_BINDIR overrides). */
static bool pg_find_bindir(void)
{
    const char *env = getenv("GH_PG_BINDIR");
    if (env && *env) {
        snprintf(srv.bindir, sizeof srv.bindir, "%s", env);
        return true;
    }
    glob_t gl;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &gl) != 0)
        return false;
    double best = -1;
    for (size_t i = 0; i < gl.gl_pathc; i++) {
        double ver = atof(gl.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
        char pg[300];
        snprintf(pg, sizeof pg, "%.*s/postgres", (int)(strlen(gl.gl_pathv[i]) - strlen("/initdb")),
                 gl.gl_pathv[i]);
        if (ver > best && access(pg, X_OK) == 0) {
            best = ver;
            snprintf(srv.bindir, sizeof srv.bindir, "%.*s",
                     (int)(strlen(gl.gl_pathv[i]) - strlen("/initdb")), gl.gl_pathv[i]);
        }
    }
    globfree(&gl);
    return best >= 0;
}

/* A connection string: over TCP to 127.0.0.1 or over the unix socket. */
static void conninfo(char *buf, size_t len, bool tcp)
{
    snprintf(buf, len, "host=%s port=%d dbname=postgres user=gh connect_timeout=30",
             tcp ? "127.0.0.1" : srv.dir, srv.port);
}

/* initdb into srv.data, as srv.user. */
static void pg_initdb(void)
{
    char bin[300], log[300];
    snprintf(bin, sizeof bin, "%s/initdb", srv.bindir);
    snprintf(log, sizeof log, "%s/initdb.log", srv.dir);
    char *argv[] = {
        bin, "-D", srv.data, "-A", "trust", "-U", "gh", "-E", "UTF8", "--locale=C",
        "--no-sync", NULL
    };
    pid_t pid = srv_spawn(argv, log, srv.dir, &srv.user);
    assert_true(pid > 0);
    int st = 0;
    int err = srv_wait(pid, 120000, &st);
    if (err) {
        kill(pid, SIGKILL);
        srv_wait(pid, 10000, &st);
    }
    if (err || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        srv_print_file("initdb log", log);
        fail_msg("initdb failed: %s, status 0x%x", err ? strerror(err) : "ended", st);
    }
}

/* Both ways in answer: TCP and the unix socket. */
static bool pg_ready(void *arg)
{
    (void)arg;
    char tcp[512], unx[512];
    conninfo(tcp, sizeof tcp, true);
    conninfo(unx, sizeof unx, false);
    return PQping(tcp) == PQPING_OK && PQping(unx) == PQPING_OK;
}

/* Makes the cluster and starts postgres on a free port; waits until it
 * accepts connections on both TCP and the unix socket. */
static void pg_start(void)
{
    if (!pg_find_bindir())
        fail_msg("PostgreSQL's initdb/postgres not found under /usr/lib/postgresql/*/bin "
                 "(Debian: postgresql; tools/deps.sh installs it)");
    if (!srv_user_get(&srv.user))
        fail_msg("running as root, and there is no user 'nobody' to run postgres as");
    atexit(srv_cleanup);
    /* Under /tmp (not $TMPDIR), which `nobody` can always reach, and
     * short: the socket's path must fit in sun_path. */
    snprintf(srv.dir, sizeof srv.dir, "/tmp/gh-pg.XXXXXX");
    assert_non_null(mkdtemp(srv.dir));
    if (srv.user.drop)
        assert_int_equal(chown(srv.dir, srv.user.uid, srv.user.gid), 0);
    snprintf(srv.data, sizeof srv.data, "%s/data", srv.dir);
    snprintf(srv.log, sizeof srv.log, "%s/postgres.log", srv.dir);
    pg_initdb();
    char bin[300];
    snprintf(bin, sizeof bin, "%s/postgres", srv.bindir);
    for (int attempt = 0; attempt < 5; attempt++) {
        srv.port = srv_free_port();
        assert_true(srv.port > 0);
        char port[16];
        snprintf(port, sizeof port, "%d", srv.port);
        char *argv[] = {
            bin, "-D", srv.data, "-p", port, "-k", srv.dir,
            "-c", "listen_addresses=127.0.0.1",
            "-c", "max_connections=120",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            NULL
        };
        srv.pid = srv_spawn(argv, srv.log, srv.dir, &srv.user);
        assert_true(srv.pid > 0);
        if (srv_wait_up(&srv.pid, 30000, pg_ready, NULL))
            return;
    }
    srv_print_file("postgres log", srv.log);
    fail_msg("postgres did not come up");
}

/* Immediate shutdown (SIGQUIT to the postmaster): it must exit (status 0)
 * and be reaped; then the directory goes. */
static void pg_stop(void)
{
    int st = 0;
    int err = srv_stop(&srv.pid, SIGQUIT, 20000, &st);
    if (err || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        srv_print_file("postgres log", srv.log);
    srv_rmtree(srv.dir);
    srv.dir[0] = 0;
    assert_int_equal(err, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- 90 concurrent pg_sleep(0.2) ---------------------------------------------------- */

static char got[CLIENTS][128];    /* each client's answer, or why not */
static _Atomic uint64_t last_connected_ms;

static void *sleep_query(void *arg)
{
    int i = (int)(intptr_t)arg;
    char ci[512];
    conninfo(ci, sizeof ci, i % 2 == 0);
    PGconn *c = PQconnectdb(ci);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        snprintf(got[i], sizeof got[i], "connect: %s", c ? PQerrorMessage(c) : "no memory");
        PQfinish(c);
        return NULL;
    }
    uint64_t t = srv_now_ms(), prev = atomic_load(&last_connected_ms);
    while (t > prev && !atomic_compare_exchange_weak(&last_connected_ms, &prev, t)) {
    }
    char q[128];
    snprintf(q, sizeof q, "SELECT pg_sleep(%g), %d + 1000 AS id", SLEEP_MS / 1000.0, i);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        snprintf(got[i], sizeof got[i], "query: %s", PQerrorMessage(c));
    else if (PQntuples(r) != 1 || PQnfields(r) != 2)
        snprintf(got[i], sizeof got[i], "%d rows, %d fields", PQntuples(r), PQnfields(r));
    else
        snprintf(got[i], sizeof got[i], "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(c);
    return NULL;
}

static void *sleep_batch(void *arg)
{
    uint64_t *ms = arg;
    static gh_greenlet *g[CLIENTS];
    uint64_t t0 = srv_now_ms();
    for (int i = 0; i < CLIENTS; i++) {
        g[i] = gh_spawn(sleep_query, (void *)(intptr_t)i);
        assert_non_null(g[i]);
    }
    for (int i = 0; i < CLIENTS; i++)
        gh_join(g[i], NULL);
    ms[0] = srv_now_ms() - t0;
    ms[1] = atomic_load(&last_connected_ms) - t0;
    return NULL;
}

static void test_pg_90_concurrent_sleeps(void **state)
{
    (void)state;
    assert_true(gh_interposed());
    pg_start();
    uint64_t ms[2] = { 0, 0 };
    gh_test_run(2, sleep_batch, ms);
    printf("postgres: %d connections each running pg_sleep(%g): %llu ms in all, the last "
           "connection made at %llu ms (serial: %d ms)\n",
           CLIENTS, SLEEP_MS / 1000.0, (unsigned long long)ms[0], (unsigned long long)ms[1],
           CLIENTS * SLEEP_MS);
    int bad = 0;
    for (int i = 0; i < CLIENTS; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i + 1000);
        if (strcmp(got[i], want) != 0 && bad++ < 10)
            fprintf(stderr, "client %d: got '%s', want '%s'\n", i, got[i], want);
    }
    pg_stop();
    assert_int_equal(bad, 0);
    /* The criterion: a small multiple of 0.2 s, not 90 x 0.2 s;
     * asserted with a 4x margin below serial, for a slow shared machine. */
    assert_true(ms[0] < CLIENTS * SLEEP_MS / 4);
}

/* ---- a deadline scope around a slow query --------------------------------------------- */

struct deadline_outcome {
    int status;            /* the result's status, -1 for no result */
    char err[256];         /* PQerrorMessage after it */
    uint64_t exec_ms;      /* PQexec's time under the 50 ms scope */
    uint64_t finish_ms;    /* PQfinish's time */
    char after[64];        /* a new connection's answer to SELECT 2 + 2 */
    char before[64];       /* the first connection's SELECT 1 */
};

static void *deadline(void *arg)
{
    struct deadline_outcome *o = arg;
    char ci[512];
    conninfo(ci, sizeof ci, true);
    PGconn *c = PQconnectdb(ci);
    assert_non_null(c);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT 1");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(o->before, sizeof o->before, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    uint64_t t0 = srv_now_ms();
    int tok = gh_timeout_begin(50);
    assert_true(tok >= 0);
    r = PQexec(c, "SELECT pg_sleep(1)");
    gh_timeout_end(tok);
    o->exec_ms = srv_now_ms() - t0;
    o->status = r ? (int)PQresultStatus(r) : -1;
    snprintf(o->err, sizeof o->err, "%s", PQerrorMessage(c));
    o->err[strcspn(o->err, "\n")] = 0;
    PQclear(r);
    t0 = srv_now_ms();
    PQfinish(c);
    o->finish_ms = srv_now_ms() - t0;

    c = PQconnectdb(ci);
    assert_non_null(c);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect after the deadline: %s", PQerrorMessage(c));
    r = PQexec(c, "SELECT 2 + 2");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(o->after, sizeof o->after, "%s", PQgetvalue(r, 0, 0));
    else
        snprintf(o->after, sizeof o->after, "error: %.50s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return NULL;
}

static void test_pg_deadline_scope(void **state)
{
    (void)state;
    assert_true(gh_interposed());
    pg_start();
    struct deadline_outcome o = { .status = -2 };
    gh_test_run(2, deadline, &o);
    printf("postgres: pg_sleep(1) under a 50 ms deadline scope: PQexec returned after %llu ms "
           "(%s: %s); PQfinish took %llu ms; a new connection: SELECT 2 + 2 = %s\n",
           (unsigned long long)o.exec_ms, o.status < 0 ? "no result" : PQresStatus(o.status),
           o.err, (unsigned long long)o.finish_ms, o.after);
    pg_stop();
    assert_string_equal(o.before, "1");
    assert_true(o.status == -1 || o.status == PGRES_FATAL_ERROR);
    assert_true(o.exec_ms < 500);
    assert_true(o.finish_ms < 5000);   /* no hang (ctest's timeout would be the next) */
    assert_string_equal(o.after, "4");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_90_concurrent_sleeps),
        cmocka_unit_test(test_pg_deadline_scope),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
