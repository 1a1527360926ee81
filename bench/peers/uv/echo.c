/* peers/uv/echo.c — the echo benchmark's libuv peer: a callback echo server
 * on one uv loop, as a libuv user would write it.
 *
 *   uv_echo [--port P] [--duration S]
 *
 * Listens on 127.0.0.1:P (default 7000).  Each read is written back with
 * uv_try_write (no allocation, no queued request: the common case for
 * small echoes); only what the socket does not take at once is copied into
 * a uv_write request, and reading pauses until it is written, so echoes
 * stay in order and memory stays bounded.  Stops on SIGTERM/SIGINT or
 * after S seconds (0, the default: only on a signal), prints
 *   INFO echo_server mode=libuv accepted=.. closed=.. bytes=.. resets=.. errors=..
 * and exits 1 if a connection failed with an unexpected error.  The load
 * generator (bench/echo_load.c) checks the bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* Bytes read at once: the same as the greenhub server's handler buffer. */
enum { BUF_SIZE = 16384 };

struct conn {
    uv_tcp_t tcp;            /* first: a uv_handle_t * is a struct conn * */
    char buf[BUF_SIZE];
};

struct pending {
    uv_write_t req;          /* first: a uv_write_t * is a struct pending * */
    struct conn *c;
    uv_buf_t b;
};

static unsigned long n_accepted, n_closed, n_bytes, n_resets, n_errors;

static void on_close(uv_handle_t *h)
{
    n_closed++;
    free(h);
}

static void conn_end(struct conn *c, int status)
{
    if (status == UV_ECONNRESET || status == UV_EPIPE)
        n_resets++;
    else if (status != UV_EOF && status != 0) {
        fprintf(stderr, "uv_echo: connection failed: %s\n", uv_strerror(status));
        n_errors++;
    }
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* One buffer per connection is enough: reading pauses while a write of
 * its contents is pending. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct conn *c = (struct conn *)h;
    *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void on_written(uv_write_t *req, int status)
{
    struct pending *p = (struct pending *)req;
    struct conn *c = p->c;
    free(p->b.base);
    free(p);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_end(c, status);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Queues the part of an echo the socket did not take at once. */
static void write_rest(struct conn *c, const char *data, size_t len)
{
    struct pending *p = malloc(sizeof *p);
    char *copy = malloc(len);
    if (!p || !copy) {
        free(p);
        free(copy);
        conn_end(c, UV_ENOMEM);
        return;
    }
    memcpy(copy, data, len);
    p->c = c;
    p->b = uv_buf_init(copy, (unsigned)len);
    uv_read_stop((uv_stream_t *)&c->tcp);
    int err = uv_write(&p->req, (uv_stream_t *)&c->tcp, &p->b, 1, on_written);
    if (err) {
        free(copy);
        free(p);
        conn_end(c, err);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = (struct conn *)s;
    if (n < 0) {
        conn_end(c, (int)n);
        return;
    }
    if (n == 0)
        return;
    n_bytes += (unsigned long)n;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == UV_EAGAIN)
        w = 0;
    if (w < 0)
        conn_end(c, w);
    else if (w < n)
        write_rest(c, b->base + w, (size_t)(n - w));
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "uv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    struct conn *c = malloc(sizeof *c);
    if (!c || uv_tcp_init(server->loop, &c->tcp) != 0) {
        free(c);
        n_errors++;
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    n_accepted++;
    /* Small replies sent at once (the greenhub and Go servers do the same). */
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

static void on_stop_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int listen_on(uv_loop_t *loop, uv_tcp_t *server, int port)
{
    struct sockaddr_in addr;
    int err = uv_ip4_addr("127.0.0.1", port, &addr);
    if (!err)
        err = uv_tcp_init(loop, server);
    if (!err)
        err = uv_tcp_bind(server, (const struct sockaddr *)&addr, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)server, SOMAXCONN, on_connection);
    if (err)
        fprintf(stderr, "uv_echo: listen on 127.0.0.1:%d: %s\n", port, uv_strerror(err));
    return err;
}

static void parse(int argc, char **argv, int *port, long *duration)
{
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            *port = atoi(argv[i + 1]);
        else if (i + 1 < argc && strcmp(argv[i], "--duration") == 0)
            *duration = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: uv_echo [--port P] [--duration S]\n");
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    int port = 7000;
    long duration = 0;
    parse(argc, argv, &port, &duration);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_signal_t sigterm, sigint;
    uv_timer_t timer;
    if (listen_on(loop, &server, port) != 0)
        return 2;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_stop_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_stop_signal, SIGINT);
    uv_timer_init(loop, &timer);
    if (duration > 0)
        uv_timer_start(&timer, on_stop_timer, (uint64_t)duration * 1000, 0);
    printf("INFO echo_server listening=127.0.0.1:%d pid=%ld\n", port, (long)uv_os_getpid());
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("INFO echo_server mode=libuv hubs=1 accepted=%lu closed=%lu bytes=%lu resets=%lu errors=%lu\n",
           n_accepted, n_closed, n_bytes, n_resets, n_errors);
    return n_errors ? 1 : 0;
}
