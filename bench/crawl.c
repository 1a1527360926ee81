/* bench/crawl.c — the crawler of the project's seed example: fetch N pages
 * with unmodified libcurl (easy interface) from a local HTTP server that
 * answers each after DELAY ms, at most CONC at once, results in input
 * order; once as greenlets (gevent's pool.imap(fetch, urls) in C:
 * gh_pool_imap over plain curl_easy_perform, made cooperative by the
 * interposition layer, greenhub::hooks), once as CONC plain threads.
 * Prints wall time and peak RSS of each, and checks every page.
 *
 *   crawl [greenhub|threads|both] [N=2000] [CONC=200] [DELAY_MS=50]
 *
 * The server is a child process (greenhub's own gh_* calls, one greenlet
 * per connection), so the crawler's RSS is its own.  Both crawlers are
 * this one binary: on plain threads the layer passes every call to libc. */
#define _GNU_SOURCE
#include "bench.h"

#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

static long n_pages, conc, delay_ms;
static int port;

/* ---- the slow server (child process) ------------------------------------------------- */

static void *serve_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[2048];
    size_t have = 0;
    int id = -1;
    for (;;) {   /* keep-alive: requests until the client closes */
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            ssize_t n = have < sizeof buf ? gh_read(fd, buf + have, sizeof buf - have) : -1;
            if (n <= 0) {
                gh_close(fd);
                return NULL;
            }
            have += (size_t)n;
        }
        if (sscanf(buf, "GET /%d ", &id) != 1)
            id = -1;
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
        gh_sleep_ms(delay_ms);
        char resp[256];
        int body = snprintf(NULL, 0, "page %d", id);
        int len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\npage %d", body, id);
        if (gh_write(fd, resp, (size_t)len) != len) {
            gh_close(fd);
            return NULL;
        }
    }
}

static void *server_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = gh_accept(lfd, NULL, NULL);
        if (c >= 0)
            gh_detach(gh_spawn(serve_conn, (void *)(intptr_t)c));
    }
    return NULL;
}

/* Starts the server in a child; returns its pid (port set). */
static pid_t server_start(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0) {
        perror("crawl: server socket");
        exit(2);
    }
    port = ntohs(a.sin_port);
    pid_t pid = fork();
    if (pid == 0) {
        gh_config cfg = { .hubs = 1, .no_publish = 1 };
        gh_run(&cfg, server_main, (void *)(intptr_t)lfd, NULL);
        _exit(0);
    }
    close(lfd);
    return pid;
}

/* ---- fetching ---------------------------------------------------------------------------- */

struct page {
    char buf[64];
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct page *pg = arg;
    size_t k = size * n;
    if (pg->len + k >= sizeof pg->buf)
        return 0;
    memcpy(pg->buf + pg->len, p, k);
    pg->len += k;
    pg->buf[pg->len] = 0;
    return k;
}

/* Fetches page id with a new easy handle (as a crawler written the plain
 * way does); 1 if its body is right. */
static int fetch_page(long id)
{
    char url[64], want[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%ld", port, id);
    snprintf(want, sizeof want, "page %ld", id);
    struct page pg = { .len = 0 };
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK && strcmp(pg.buf, want) == 0;
}

/* ---- greenlets: gh_pool_imap ------------------------------------------------------------ */

static void *fetch_fn(void *arg)
{
    return (void *)(intptr_t)fetch_page((long)(intptr_t)arg);
}

static unsigned hubs_used;

static void *crawl_green(void *arg)
{
    long *ok = arg;
    hubs_used = gh_hub_count();
    void **urls = malloc((size_t)n_pages * sizeof *urls);
    gh_pool *pool = gh_pool_new((size_t)conc);
    if (!urls || !pool)
        return NULL;
    for (long i = 0; i < n_pages; i++)
        urls[i] = (void *)(intptr_t)i;
    gh_imap *it = gh_pool_imap(pool, fetch_fn, urls, (size_t)n_pages);
    void *r;
    while (it && gh_imap_next(it, &r) == 0)
        *ok += (intptr_t)r;
    gh_imap_free(it);
    gh_pool_join(pool, -1);
    gh_pool_free(pool);
    free(urls);
    return NULL;
}

/* ---- threads ------------------------------------------------------------------------------ */

static _Atomic long next_id, threads_ok;

static void *thread_fn(void *arg)
{
    (void)arg;
    long id;
    while ((id = atomic_fetch_add(&next_id, 1)) < n_pages)
        atomic_fetch_add(&threads_ok, fetch_page(id));
    return NULL;
}

static long crawl_threads(void)
{
    pthread_t *t = calloc((size_t)conc, sizeof *t);
    long started = 0;
    for (; t && started < conc; started++)
        if (pthread_create(&t[started], NULL, thread_fn, NULL) != 0)
            break;
    for (long i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    return atomic_load(&threads_ok);
}

/* ---- main -------------------------------------------------------------------------------- */

static long peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

/* Runs one crawler in a child (so each peak RSS is its own); prints its
 * RESULT line; returns 1 if every page was right. */
static int run_one(const char *impl)
{
    pid_t pid = fork();
    if (pid == 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        long ok = 0;
        uint64_t t0 = bench_now_ns();
        if (strcmp(impl, "greenhub") == 0)
            bench_run(crawl_green, &ok);
        else
            ok = crawl_threads();
        double ms = (double)(bench_now_ns() - t0) / 1e6;
        /* threads=: OS threads crawling (hubs, or one per concurrent fetch) */
        printf("RESULT bench=crawl impl=%s threads=%ld value=%.1f unit=ms pages=%ld conc=%ld "
               "delay_ms=%ld rss_kib=%ld check=%s\n", impl,
               strcmp(impl, "greenhub") == 0 ? (long)hubs_used : conc, ms, n_pages, conc, delay_ms,
               peak_rss_kib(), ok == n_pages ? "ok" : "FAIL");
        fflush(stdout);
        _exit(ok == n_pages ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "both";
    n_pages = bench_arg(argc, argv, 2, 2000);
    conc = bench_arg(argc, argv, 3, 200);
    delay_ms = bench_arg(argc, argv, 4, 50);
    if (n_pages <= 0 || conc <= 0 || delay_ms < 0 ||
        (strcmp(mode, "greenhub") && strcmp(mode, "threads") && strcmp(mode, "both"))) {
        fprintf(stderr, "usage: crawl [greenhub|threads|both] [N>0] [CONC>0] [DELAY_MS>=0]\n");
        return 2;
    }
    if (!gh_interposed()) {
        fprintf(stderr, "crawl: built without greenhub::hooks: the fetches would block the hubs\n");
        return 2;
    }
    pid_t srv = server_start();
    int ok = 1;
    if (strcmp(mode, "threads") != 0)
        ok &= run_one("greenhub");
    if (strcmp(mode, "greenhub") != 0)
        ok &= run_one("threads");
    kill(srv, SIGKILL);
    waitpid(srv, NULL, 0);
    return ok ? 0 : 1;
}
