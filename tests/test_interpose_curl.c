/* tests/test_interpose_curl.c — unmodified libcurl (easy interface) on
 * greenlets, through the interposition layer: 100 greenlets each fetch a
 * page from a local HTTP server that answers after 200 ms; the whole batch
 * takes a small multiple of 200 ms, not 100 x 200 ms, because every
 * curl_easy_perform parks its greenlet in poll() instead of blocking its
 * hub.  The server is greenhub's own (gh_tcp_listen, gh_read, gh_sleep_ms)
 * in the same runtime. */
#include "gh_test.h"

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

enum { FETCHES = 100, DELAY_MS = 200 };

static int port;

/* ---- the slow server ----------------------------------------------------------------- */

/* Reads the request head; returns the number in "GET /<n> ", or -1. */
static int read_request(int fd)
{
    char buf[2048];
    size_t have = 0;
    while (have < sizeof buf - 1) {
        ssize_t n = gh_read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = 0;
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    int id;
    return sscanf(buf, "GET /%d ", &id) == 1 ? id : -1;
}

static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int id = read_request(fd);
    gh_sleep_ms(DELAY_MS);
    char body[64], resp[256];
    int blen = snprintf(body, sizeof body, "page %d", id);
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                       blen, body);
    gh_write(fd, resp, (size_t)len);
    gh_close(fd);
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < FETCHES; i++) {
        int c = gh_accept(lfd, NULL, NULL);
        assert_true(c >= 0);
        gh_detach(gh_spawn(serve_one, (void *)(intptr_t)c));
    }
    gh_close(lfd);
    return NULL;
}

/* ---- the clients: plain libcurl ------------------------------------------------------------ */

struct page {
    char buf[128];
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct page *pg = arg;
    size_t k = size * n;
    if (pg->len + k >= sizeof pg->buf)
        return 0;   /* too much: curl fails the transfer */
    memcpy(pg->buf + pg->len, p, k);
    pg->len += k;
    pg->buf[pg->len] = 0;
    return k;
}

static _Atomic int fetched_ok;

static void *fetch(void *arg)
{
    int id = (int)(intptr_t)arg;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%d", port, id);
    struct page pg = { .len = 0 };
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    char want[64];
    snprintf(want, sizeof want, "page %d", id);
    if (rc != CURLE_OK || status != 200 || strcmp(pg.buf, want) != 0) {
        fprintf(stderr, "fetch %d: curl %d (%s), status %ld, body '%s'\n", id, (int)rc,
                curl_easy_strerror(rc), status, pg.buf);
        return NULL;
    }
    atomic_fetch_add(&fetched_ok, 1);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *batch(void *arg)
{
    uint64_t *ms = arg;
    int lfd = gh_tcp_listen("127.0.0.1", "0", FETCHES);
    assert_true(lfd >= 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    port = ntohs(a.sin_port);
    gh_greenlet *srv = gh_spawn(server, (void *)(intptr_t)lfd);
    uint64_t t0 = now_ms();
    gh_greenlet *g[FETCHES];
    for (int i = 0; i < FETCHES; i++)
        g[i] = gh_spawn(fetch, (void *)(intptr_t)i);
    for (int i = 0; i < FETCHES; i++)
        gh_join(g[i], NULL);
    *ms = now_ms() - t0;
    gh_join(srv, NULL);
    return NULL;
}

static void test_curl_100_slow_fetches(void **state)
{
    (void)state;
    assert_true(gh_interposed());
    assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), 0);
    uint64_t ms = 0;
    gh_test_run(2, batch, &ms);
    curl_global_cleanup();
    printf("curl: %d fetches of a page that takes %d ms: %llu ms in all (serial: %d ms)\n",
           FETCHES, DELAY_MS, (unsigned long long)ms, FETCHES * DELAY_MS);
    assert_int_equal(atomic_load(&fetched_ok), FETCHES);
    /* The criterion: well under 100 x 200 ms.  A quarter of that,
     * to stay clear of a slow, shared machine; concurrent fetches take
     * about one delay. */
    assert_true(ms < FETCHES * DELAY_MS / 4);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_100_slow_fetches),
    };
    return gh_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], __FILE__);
}
