/* SPDX-License-Identifier: Apache-2.0 */
/*
 * herald-http-floor: the CPU floor under herald's CPU per append.
 *
 * An HTTP/1.1 server on one libuv loop that does nothing but answer: every
 * POST gets the same 201 with an append's answer, GET /metrics gets the
 * process's CPU seconds. Run `herald bench --rate R --server` against it
 * and compare its server CPU per append to herald's: what is left is
 * herald's own work. The answer is the size and shape of heraldd's (the
 * same seq every time: only the bench's CPU figure means anything here).
 * Same parser (http_parser), same loop (libuv), same sockets as heraldd;
 * nothing of herald's.
 *
 * usage: herald-http-floor PORT
 */
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define FLOOR_BUF 65536

struct floor_conn {
    uv_tcp_t tcp;
    http_parser parser;
    bool metrics;       /* the request in hand is GET /metrics */
    char buf[FLOOR_BUF];
};

static const char floor_answer[] =
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 72\r\n\r\n"
    "{\"channel\":\"bench-1\",\"seq\":1,\"ts\":\"1796591970.295501\",\"duplicate\":false}";

static double floor_cpu_seconds(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static void floor_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void floor_send(struct floor_conn *c, const char *data, size_t len)
{
    /* libuv writes at once when the socket takes it: the copy only lives
     * until then, or until the write callback. */
    uv_write_t *w = malloc(sizeof *w + len);
    if (w == NULL) {
        return;
    }
    memcpy(w + 1, data, len);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)len);
    if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, floor_written) != 0) {
        free(w);
    }
}

static int floor_on_url(http_parser *p, const char *at, size_t len)
{
    struct floor_conn *c = p->data;
    c->metrics = p->method == HTTP_GET && len >= 8 && memcmp(at, "/metrics", 8) == 0;
    return 0;
}

static int floor_on_message_complete(http_parser *p)
{
    struct floor_conn *c = p->data;
    if (!c->metrics) {
        floor_send(c, floor_answer, sizeof floor_answer - 1);
        return 0;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char body[160], head[320];
    int bl = snprintf(body, sizeof body,
                      "process_cpu_seconds_total %.6f\nprocess_resident_memory_bytes %ld\n",
                      floor_cpu_seconds(&ru), ru.ru_maxrss * 1024L);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
                      bl, body);
    floor_send(c, head, (size_t)hl);
    return 0;
}

static const http_parser_settings floor_settings = {
    .on_url = floor_on_url,
    .on_message_complete = floor_on_message_complete,
};

static void floor_closed(uv_handle_t *h) { free(h); }

static void floor_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    struct floor_conn *c = (struct floor_conn *)h;
    *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void floor_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct floor_conn *c = (struct floor_conn *)s;
    if (n < 0) {
        uv_close((uv_handle_t *)s, floor_closed);
        return;
    }
    if (http_parser_execute(&c->parser, &floor_settings, b->base, (size_t)n) != (size_t)n) {
        uv_close((uv_handle_t *)s, floor_closed);
    }
}

static void floor_accept(uv_stream_t *server, int status)
{
    if (status != 0) {
        return;
    }
    struct floor_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, floor_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, floor_alloc, floor_read);
}

int main(int argc, char **argv)
{
    int port = argc == 2 ? atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: herald-http-floor PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rv = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&server, 1024, floor_accept);
    }
    if (rv != 0) {
        fprintf(stderr, "herald-http-floor: 127.0.0.1:%d: %s\n", port, uv_strerror(rv));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
