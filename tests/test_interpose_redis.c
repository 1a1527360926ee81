/* tests/test_interpose_redis.c — unmodified hiredis (its blocking API:
 * redisConnect, redisCommand) on greenlets, through the interposition
 * layer, against a real redis-server that the test starts on a free
 * loopback port, without persistence, in a temporary directory.
 *
 * 500 greenlets on 2 hubs each open their own connection and block in
 * BLPOP key:<i> 0.  All 500 are blocked in the server at once (its
 * blocked_clients says so), which two hub threads blocking in read(2)
 * could never be: every blocked hiredis call parked its greenlet.  Then
 * one greenlet pushes a distinct value to every key and each of the 500
 * wakes with its own value.  The server is shut down (SHUTDOWN NOSAVE)
 * and reaped by the test; an atexit handler kills it and removes the
 * directory if the test fails on the way. */
#include "gh_test.h"
#include "gh_server.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

enum { CLIENTS = 500, WATCHDOG_MS = 60000 };

/* ---- the server ------------------------------------------------------------------- */

static struct {
    pid_t pid;
    int port;
    char dir[256];
    char log[300];
} srv;

static void srv_cleanup(void)
{
    srv_stop(&srv.pid, SIGKILL, 10000, NULL);
    srv_rmtree(srv.dir);
    srv.dir[0] = 0;
}

static const char *redis_server_path(void)
{
    const char *p = getenv("GH_REDIS_SERVER");
    if (p && *p)
        return p;
    return access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : NULL;
}

/* PING from this (plain) thread; true on PONG. */
static bool redis_ping(int port)
{
    struct timeval tv = { 1, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static bool redis_ready(void *arg)
{
    (void)arg;
    return redis_ping(srv.port);
}

/* Starts redis-server on a free loopback port and waits until it answers
 * PING.  A port taken meanwhile ends the server at once: another port is
 * tried then. */
static void redis_start(void)
{
    const char *bin = redis_server_path();
    if (!bin)
        fail_msg("redis-server not found (Debian: redis-server; tools/deps.sh installs it)");
    atexit(srv_cleanup);
    assert_int_equal(srv_mkdtemp("gh-redis", srv.dir, sizeof srv.dir), 0);
    snprintf(srv.log, sizeof srv.log, "%s/redis.log", srv.dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        srv.port = srv_free_port();
        assert_true(srv.port > 0);
        char port[16], clients[16];
        snprintf(port, sizeof port, "%d", srv.port);
        snprintf(clients, sizeof clients, "%d", CLIENTS + 100);
        char *argv[] = {
            (char *)bin,
            "--bind", "127.0.0.1", "--port", port,
            "--save", "", "--appendonly", "no",   /* no persistence */
            "--dir", srv.dir, "--daemonize", "no",
            "--maxclients", clients, "--loglevel", "notice",
            NULL
        };
        srv.pid = srv_spawn(argv, srv.log, srv.dir, NULL);
        assert_true(srv.pid > 0);
        if (srv_wait_up(&srv.pid, 20000, redis_ready, NULL))
            return;
    }
    srv_print_file("redis log", srv.log);
    fail_msg("redis-server did not come up");
}

/* SHUTDOWN NOSAVE from this (plain) thread; the server must exit with
 * status 0 and be reaped. */
static void redis_shutdown(void)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisReply *r = redisCommand(c, "SHUTDOWN NOSAVE");
    /* success is the connection closing without a reply */
    if (r) {
        fprintf(stderr, "SHUTDOWN NOSAVE answered: type %d '%s'\n", r->type,
                r->str ? r->str : "");
        freeReplyObject(r);
    }
    redisFree(c);
    int st = 0;
    int err = srv_stop(&srv.pid, SIGTERM, 10000, &st);
    assert_int_equal(err, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- the clients ---------------------------------------------------------------------- */

static char got[CLIENTS][192];      /* what BLPOP key:<i> returned, or why not */
static _Atomic int woke;           /* BLPOPs that returned, well or not */
static _Atomic int connected;      /* clients whose redisConnect worked */

static void value_of(int i, char *buf, size_t len)
{
    snprintf(buf, len, "value-%d-%d", i, i * 7919 % 1000);
}

static void *blpop_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    if (!c || c->err) {
        snprintf(got[i], sizeof got[i], "connect: %s", c ? c->errstr : "no memory");
        if (c)
            redisFree(c);
        atomic_fetch_add(&woke, 1);
        return NULL;
    }
    atomic_fetch_add(&connected, 1);
    redisReply *r = redisCommand(c, "BLPOP key:%d 0", i);
    atomic_fetch_add(&woke, 1);
    char key[32];
    snprintf(key, sizeof key, "key:%d", i);
    if (!r)
        snprintf(got[i], sizeof got[i], "error %d: %s", c->err, c->errstr);
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
             r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, key) != 0 ||
             r->element[1]->type != REDIS_REPLY_STRING)
        snprintf(got[i], sizeof got[i], "unexpected reply (type %d)", r->type);
    else
        snprintf(got[i], sizeof got[i], "%s", r->element[1]->str);
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* blocked_clients from INFO clients, or -1. */
static int blocked_clients(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO clients");
    int n = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "blocked_clients:");
        if (p)
            n = atoi(p + strlen("blocked_clients:"));
    }
    if (r)
        freeReplyObject(r);
    return n;
}

struct outcome {
    int blocked;          /* the last blocked_clients seen */
    int woke_early;       /* BLPOPs that had returned before the pushes */
    int pushed;           /* RPUSHes answered 1 */
    uint64_t block_ms;    /* from the spawns until all were blocked */
    uint64_t wake_ms;     /* from the first push until all woke */
};

static void *blpop_main(void *arg)
{
    struct outcome *o = arg;
    uint64_t t0 = srv_now_ms();
    static gh_greenlet *g[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        g[i] = gh_spawn(blpop_one, (void *)(intptr_t)i);
        assert_non_null(g[i]);
    }
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    /* Until the server holds all 500 in BLPOP (or every client gave up:
     * a connect that failed), with short green sleeps; 30 s at most. */
    uint64_t until = srv_now_ms() + 30000;
    while ((o->blocked = blocked_clients(c)) != CLIENTS &&
           atomic_load(&woke) < CLIENTS && srv_now_ms() < until)
        gh_sleep_ms(5);
    o->block_ms = srv_now_ms() - t0;
    o->woke_early = atomic_load(&woke);
    /* Push to every key whatever was seen, so every BLPOP ends (one that
     * has not started yet finds its value at once). */
    uint64_t t1 = srv_now_ms();
    char v[64];
    for (int i = 0; i < CLIENTS; i++) {
        value_of(i, v, sizeof v);
        redisReply *r = redisCommand(c, "RPUSH key:%d %s", i, v);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1)
            o->pushed++;
        if (r)
            freeReplyObject(r);
    }
    for (int i = 0; i < CLIENTS; i++)
        gh_join(g[i], NULL);
    o->wake_ms = srv_now_ms() - t1;
    redisFree(c);
    return NULL;
}

/* The watchdog, a plain thread: if the run has not ended after
 * WATCHDOG_MS (hub threads blocked in hiredis's read, where nothing can
 * push), it pushes to every key itself, so the BLPOPs end and the test
 * fails on its assertions instead of hanging until ctest's timeout. */
static _Atomic int run_over, watchdog_fired;

static void *watchdog(void *arg)
{
    (void)arg;
    uint64_t until = srv_now_ms() + WATCHDOG_MS;
    while (!atomic_load(&run_over) && srv_now_ms() < until)
        srv_sleep_ms(10);
    if (atomic_load(&run_over))
        return NULL;
    atomic_store(&watchdog_fired, 1);
    fprintf(stderr, "watchdog: the run is stuck after %d ms; pushing to every key\n",
            WATCHDOG_MS);
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    for (int i = 0; c && !c->err && i < CLIENTS; i++) {
        redisReply *r = redisCommand(c, "RPUSH key:%d watchdog", i);
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return NULL;
}

static void test_redis_500_blpop(void **state)
{
    (void)state;
    assert_true(gh_interposed());
    redis_start();
    struct outcome o = { 0 };
    pthread_t wd;
    assert_int_equal(pthread_create(&wd, NULL, watchdog, NULL), 0);
    gh_test_run(2, blpop_main, &o);
    atomic_store(&run_over, 1);
    pthread_join(wd, NULL);
    printf("redis: %d connections; blocked_clients reached %d after %llu ms; "
           "all woke %llu ms after the first push\n",
           atomic_load(&connected), o.blocked, (unsigned long long)o.block_ms,
           (unsigned long long)o.wake_ms);
    int bad = 0;
    char want[64];
    for (int i = 0; i < CLIENTS; i++) {
        value_of(i, want, sizeof want);
        if (strcmp(got[i], want) != 0 && bad++ < 10)
            fprintf(stderr, "client %d: got '%s', want '%s'\n", i, got[i], want);
    }
    redis_shutdown();
    srv_cleanup();
    assert_int_equal(atomic_load(&watchdog_fired), 0);
    assert_int_equal(atomic_load(&connected), CLIENTS);
    assert_int_equal(o.blocked, CLIENTS);   /* all 500 blocked at once */
    assert_int_equal(o.woke_early, 0);      /* and none had returned */
    assert_int_equal(o.pushed, CLIENTS);
    assert_int_equal(bad, 0);               /* each woke with its own value */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_500_blpop),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
