/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 server over libuv TCP: accepts, reads requests, writes responses and streams. */
#include "http_server.h"
#include "http_writer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_out.h"
#include "hd_tls.h"
#include "hd_util.h"

/*
 * A connection moves through these states:
 *
 *   READING --request--> PENDING --respond--> WRITING --written--> READING
 *      |                    |                    (or CLOSING if not keep-alive)
 *      |                    +--stream_begin--> STREAMING --stream_end--> CLOSING
 *      +--protocol error / timeout--> CLOSING (error response, then close)
 *
 * CLOSING is the graceful end: queued output is flushed, the write side is
 * shut down, and input is read and dropped for a moment ("lingering") so
 * that the kernel does not answer unread input with a reset, which could
 * destroy the response before the client reads it (e.g. a 413 sent while
 * the client still uploads). `closing` is the abrupt end: uv_close() has
 * been called on the handles.
 *
 * The socket is read in READING (requests), PENDING and WRITING (held for
 * after the response, up to API_HTTP__HOLD_BYTES, then reading stops: a
 * pipelining client cannot make us buffer more than that plus one read),
 * STREAMING (to notice the client leaving; input is dropped, or handed to
 * the owner of an upgraded connection) and CLOSING (dropped).
 *
 * The conn memory is freed when both handles are closed and the caller does
 * not hold the conn (user_owned), so a lent conn stays valid whatever the
 * client does.
 */

enum conn_state {
    CONN_READING,   /* waiting for (the rest of) a request */
    CONN_PENDING,   /* request lent to the caller, no response yet */
    CONN_WRITING,   /* response queued, waiting for the writes to finish */
    CONN_STREAMING, /* streaming response under way */
    CONN_CLOSING,   /* flushing, shutting down, lingering, or closed */
};

/* What the one timer of a conn is doing. */
enum conn_timer {
    TIMER_NONE,
    TIMER_IDLE,    /* between requests */
    TIMER_REQUEST, /* an incomplete request */
    TIMER_DEFER,   /* 0 ms: finish a response written without a uv_write */
    TIMER_STALL,   /* output queued: check that it makes progress */
    TIMER_LINGER,  /* after shutdown: wait for the client's EOF */
};

#define API_HTTP__BACKLOG 1024
#define API_HTTP__READ_BUF_BYTES (64u * 1024u)
#define API_HTTP__LINGER_MS 2000u
#define API_HTTP__HEAD_STACK_BYTES 1024u
#define API_HTTP__HOLD_BYTES (64u * 1024u)

struct api_http_conn {
    struct api_http_server *srv;   /* owner */
    struct api_http_conn *prev;    /* in srv->conns */
    struct api_http_conn *next;    /* in srv->conns */
    uv_tcp_t tcp;                  /* the socket */
    uv_timer_t timer;              /* see enum conn_timer */
    uv_shutdown_t shutdown_req;    /* CLOSING: the write-side shutdown */
    struct api_http_parse parse;   /* request assembly, holds the lent request */
    enum conn_state state;         /* see above */
    enum conn_timer timer_role;    /* what timer is armed for */
    char *leftover;                /* read but unparsed bytes (pipelining); owned */
    size_t leftover_off;           /* first unparsed byte in leftover */
    size_t leftover_len;           /* unparsed bytes from leftover_off */
    size_t writes_pending;         /* uv_write requests in flight */
    size_t bytes_queued;           /* bytes in those requests not yet completed */
    uint64_t bytes_submitted;      /* all bytes ever given to uv_write */
    uint64_t stall_mark;           /* bytes written at the last stall check */
    int handles_open;              /* tcp and timer not yet closed */
    bool counted;                  /* counts against connections_max */
    bool reading;                  /* uv_read_start is on */
    bool user_owned;               /* lent to the caller */
    bool streaming;                /* stream_begin was called */
    bool in_event;                 /* inside a stream event callback */
    bool close_after;              /* close once the response is written */
    bool head_request;             /* the request was HEAD: no body */
    bool http10;                   /* the request was HTTP/1.0 */
    bool shutdown_started;         /* uv_shutdown issued */
    bool shutdown_done;            /* write side shut down: lingering */
    bool peer_eof;                 /* the client's EOF was read */
    bool closing;                  /* uv_close called on the handles */
    bool feeding_leftover;         /* api_http__conn_feed is parsing leftover, not read_buf */
    bool upgraded;                 /* api_http_upgrade: input goes to data_cb */
    bool read_paused;              /* upgraded: the caller paused input */
    api_http_stream_cb stream_cb;  /* stream events, NULL if none */
    void *stream_arg;              /* for stream_cb */
    api_http_data_cb data_cb;      /* upgraded: input bytes */
    struct hd_tls *tls;            /* TLS port: the session (ciphertext below it), or NULL */
    bool first_read;               /* a byte of this connection was read */
    bool refuse_full;              /* TLS, over connections_max: 503 after the handshake */
    char *peer;                    /* TLS: the client's address, kept for the logs of a
                                      failed handshake (the client may be gone by then) */
    struct http_wconn *w;          /* written by the server's writer thread, or NULL */
    size_t w_bytes;                /* bytes handed to the writer, not yet written */
    uint64_t w_submitted;          /* all bytes ever handed to the writer */
    bool w_finish;                 /* finishing: shut down once the writer lets go */
};

struct api_http_server {
    uv_loop_t *loop;                     /* not owned */
    uv_tcp_t tcp;                        /* listening socket */
    struct api_http_limits limits;       /* resolved */
    api_http_request_cb cb;              /* request callback */
    void *arg;                           /* for cb */
    api_http_head_hook head_hook;        /* per-request headers, NULL if none */
    void *head_hook_arg;                 /* for head_hook */
    struct hd_tls_ctx *tls;              /* new connections speak TLS with it; NULL: plaintext */
    struct api_http_conn *conns;         /* every conn, open or closing */
    size_t n_conns;                      /* entries in conns */
    size_t n_counted;                    /* conns counting against the limit */
    int port;                            /* bound port */
    bool closing;                        /* api_http_server_close was called */
    bool listener_closed;                /* tcp's close callback ran */
    uv_timer_t grace;                    /* closing: ends connections still writing */
    bool grace_open;                     /* grace is initialised and not yet closed */
    bool grace_closing;                  /* its uv_close was called */
    struct http_writer *writer;          /* writes streams on a thread, or NULL */
    void (*close_cb)(void *arg);         /* after the last conn */
    void *close_arg;                     /* for close_cb */
    /* One read buffer for all connections: libuv reads into it and calls
     * api_http__on_read at once, and every byte is parsed (copied) or moved to the
     * conn's leftover before api_http__on_read returns, so nothing outlives a read. */
    char read_buf[API_HTTP__READ_BUF_BYTES];
};

struct api_http__write {
    uv_write_t req;              /* libuv request */
    struct api_http_conn *conn;  /* owner */
    size_t len;                  /* bytes in data */
    char data[];                 /* the copy being written */
};

static void api_http__conn_close(struct api_http_conn *c);
static void api_http__conn_finish(struct api_http_conn *c);
static void api_http__conn_feed(struct api_http_conn *c, const char *data, size_t len);
static void api_http__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void api_http__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static int api_http__from_uv(int uv_err)
{
    if (uv_err == UV_EPIPE || uv_err == UV_ECONNRESET || uv_err == UV_ENOTCONN ||
        uv_err == UV_ECANCELED || uv_err == UV_EOF) {
        return HD_ESHUTDOWN;
    }
    return hd_from_errno(-uv_err);
}

/* ------------------------------------------------------------------ */
/* Conn lifetime                                                       */
/* ------------------------------------------------------------------ */

static void api_http__server_maybe_finish(struct api_http_server *s);
static void api_http__on_writer_stopped(void *arg);

static void api_http__on_grace_closed(uv_handle_t *h)
{
    struct api_http_server *s = h->data;
    s->grace_open = false;
    api_http__server_maybe_finish(s);
}

static void api_http__on_writer_stopped(void *arg)
{
    api_http__server_maybe_finish(arg);
}

static void api_http__server_maybe_finish(struct api_http_server *s)
{
    if (!s->closing || !s->listener_closed || s->n_conns > 0) {
        return;
    }
    if (s->grace_open) {
        if (!s->grace_closing) {
            s->grace_closing = true;
            uv_close((uv_handle_t *)&s->grace, api_http__on_grace_closed);
        }
        return;
    }
    if (s->writer != NULL) {
        struct http_writer *w = s->writer;
        s->writer = NULL;
        http_writer_stop(w, api_http__on_writer_stopped, s);
        return;
    }
    void (*cb)(void *) = s->close_cb;
    void *arg = s->close_arg;
    hd_tls_ctx_free(s->tls);
    hd_free(s);
    if (cb != NULL) {
        cb(arg);
    }
}

static void api_http__conn_maybe_free(struct api_http_conn *c)
{
    if (c->handles_open > 0 || c->user_owned || c->in_event) {
        return;
    }
    HD_ASSERT(c->writes_pending == 0 && c->w == NULL && c->w_bytes == 0);
    struct api_http_server *s = c->srv;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->n_conns--;
    api_http_parse_close(&c->parse);
    hd_tls_free(c->tls);
    hd_free(c->peer);
    hd_free(c->leftover);
    hd_free(c);
    api_http__server_maybe_finish(s);
}

static void api_http__on_handle_close(uv_handle_t *h)
{
    struct api_http_conn *c = h->data;
    HD_ASSERT(c->handles_open > 0);
    c->handles_open--;
    /* CLOSED is delivered here, from the loop, so that it never runs inside
     * a call the caller made, and after every write callback. */
    if (h == (uv_handle_t *)&c->tcp && c->user_owned && c->stream_cb != NULL) {
        api_http_stream_cb cb = c->stream_cb;
        c->stream_cb = NULL;
        c->in_event = true;
        cb(c, API_HTTP_STREAM_CLOSED, c->stream_arg);
        c->in_event = false;
    }
    api_http__conn_maybe_free(c);
}

/* The abrupt end: both handles are closed, pending writes are cancelled. */
static void api_http__conn_close(struct api_http_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->state = CONN_CLOSING;
    c->reading = false;
    c->timer_role = TIMER_NONE;
    hd_free(c->leftover);
    c->leftover = NULL;
    c->leftover_len = 0;
    if (c->counted) {
        c->counted = false;
        c->srv->n_counted--;
    }
    uv_close((uv_handle_t *)&c->timer, api_http__on_handle_close);
    if (c->w != NULL) {
        /* The writer may be in a writev on the socket: it is closed once
         * the writer lets go (api_http__on_writer_released). */
        uv_read_stop((uv_stream_t *)&c->tcp);
        http_writer_release(c->w, true);
        return;
    }
    uv_close((uv_handle_t *)&c->tcp, api_http__on_handle_close);
}

static void api_http__start_reading(struct api_http_conn *c)
{
    if (c->reading || c->closing) {
        return;
    }
    int rv = uv_read_start((uv_stream_t *)&c->tcp, api_http__on_alloc, api_http__on_read);
    if (rv != 0) {
        api_http__conn_close(c);
        return;
    }
    c->reading = true;
}

static void api_http__stop_reading(struct api_http_conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ------------------------------------------------------------------ */
/* Timers                                                              */
/* ------------------------------------------------------------------ */

static void api_http__timer_stop(struct api_http_conn *c)
{
    if (!c->closing) {
        uv_timer_stop(&c->timer);
    }
    c->timer_role = TIMER_NONE;
}

static void api_http__send_error_and_finish(struct api_http_conn *c, int status, const char *code,
                                  const char *message, const char *extra_headers);

static void api_http__on_read_timeout(uv_timer_t *t)
{
    struct api_http_conn *c = t->data;
    HD_ASSERT(c->state == CONN_READING);
    if (c->timer_role == TIMER_REQUEST) {
        HD_LOG_DEBUG("http: request timeout");
        api_http__send_error_and_finish(c, 408, "request_timeout", "request not received in time",
                                        NULL);
    } else {
        api_http__conn_close(c);
    }
}

static void api_http__timer_start(struct api_http_conn *c, enum conn_timer role, uint64_t ms,
                        uv_timer_cb cb)
{
    if (c->closing) {
        return;
    }
    c->timer_role = role;
    uv_timer_start(&c->timer, cb, ms, 0);
}

static void api_http__arm_read_timer(struct api_http_conn *c)
{
    if (api_http_parse_started(&c->parse)) {
        if (c->timer_role != TIMER_REQUEST) {
            api_http__timer_start(c, TIMER_REQUEST, c->srv->limits.request_timeout_ms,
                                  api_http__on_read_timeout);
        }
    } else if (c->timer_role != TIMER_IDLE) {
        api_http__timer_start(c, TIMER_IDLE, c->srv->limits.idle_timeout_ms,
                              api_http__on_read_timeout);
    }
}

/* Bytes of the conn's output that reached the socket, on the loop's path
 * and the writer's. */
static uint64_t api_http__bytes_written(struct api_http_conn *c)
{
    return c->bytes_submitted - uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) +
           c->w_submitted - c->w_bytes;
}

static bool api_http__output_queued(const struct api_http_conn *c)
{
    return c->writes_pending > 0 || c->w_bytes > 0;
}

/* Output that does not move for idle_timeout_ms means a client that does
 * not read; without this check it would hold the conn forever. */
static void api_http__on_stall_check(uv_timer_t *t)
{
    struct api_http_conn *c = t->data;
    uint64_t written = api_http__bytes_written(c);
    if (api_http__output_queued(c) && written == c->stall_mark) {
        HD_LOG_DEBUG("http: client stopped reading, closing");
        api_http__conn_close(c);
        return;
    }
    c->stall_mark = written;
    api_http__timer_start(c, TIMER_STALL, c->srv->limits.idle_timeout_ms, api_http__on_stall_check);
}

static void api_http__arm_stall_timer(struct api_http_conn *c)
{
    if (!api_http__output_queued(c) || c->timer_role == TIMER_STALL) {
        return;
    }
    c->stall_mark = api_http__bytes_written(c);
    api_http__timer_start(c, TIMER_STALL, c->srv->limits.idle_timeout_ms, api_http__on_stall_check);
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

static void api_http__response_done(struct api_http_conn *c);
static void api_http__maybe_drained(struct api_http_conn *c);

static void api_http__on_write(uv_write_t *req, int status)
{
    struct api_http__write *w = (struct api_http__write *)req;
    struct api_http_conn *c = w->conn;
    HD_ASSERT(c->writes_pending > 0);
    c->writes_pending--;
    c->bytes_queued -= w->len;
    hd_free(w);
    if (c->closing) {
        return; /* cancelled by uv_close: api_http__on_handle_close cleans up */
    }
    if (status < 0) {
        api_http__conn_close(c);
        return;
    }
    api_http__maybe_drained(c);
}

/* Output finished (a uv_write or a writer job): once nothing is queued,
 * a response is done and a stream hears DRAINED. */
static void api_http__maybe_drained(struct api_http_conn *c)
{
    if (api_http__output_queued(c)) {
        return;
    }
    if (c->state == CONN_WRITING) {
        api_http__response_done(c);
    } else if (c->state == CONN_STREAMING) {
        api_http__timer_stop(c);
        if (c->user_owned && c->stream_cb != NULL) {
            c->in_event = true;
            c->stream_cb(c, API_HTTP_STREAM_DRAINED, c->stream_arg);
            c->in_event = false;
            api_http__conn_maybe_free(c);
        }
    }
}

/* ---- Through the writer thread ---- */

static int api_http__writer_submit(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs,
                                   size_t total, api_http_release_cb release, void *arg)
{
    int rv = http_writer_submit(c->w, bufs, n_bufs, total, release, arg);
    if (rv == 0) {
        c->w_bytes += total;
        c->w_submitted += total;
    }
    return rv;
}

/* Bytes of the server's own (heads, copies of api_http_stream_write) on a
 * connection the writer owns: copied into one buffer, freed when written. */
static int api_http__writer_copy(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs,
                                 size_t total)
{
    char *copy = hd_malloc(total);
    if (copy == NULL) {
        return HD_ENOMEM;
    }
    size_t off = 0;
    for (unsigned i = 0; i < n_bufs; i++) {
        memcpy(copy + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    HD_ASSERT(total <= UINT_MAX);
    uv_buf_t b = uv_buf_init(copy, (unsigned)total);
    int rv = api_http__writer_submit(c, &b, 1, total, hd_free, copy);
    if (rv != 0) {
        hd_free(copy);
    }
    return rv;
}

static void api_http__on_writer_done(void *owner, size_t bytes, int status)
{
    struct api_http_conn *c = owner;
    HD_ASSERT(c->w_bytes >= bytes);
    c->w_bytes -= bytes;
    if (c->closing) {
        return;
    }
    if (status < 0) {
        api_http__conn_close(c); /* the client is gone */
        return;
    }
    api_http__maybe_drained(c);
}

static void api_http__conn_shutdown(struct api_http_conn *c);

static void api_http__on_writer_released(void *owner)
{
    struct api_http_conn *c = owner;
    c->w = NULL;
    if (c->closing) {
        uv_close((uv_handle_t *)&c->tcp, api_http__on_handle_close);
    } else if (c->w_finish) {
        api_http__conn_shutdown(c);
    }
}

/* Writes bufs to the socket in order. What the socket takes at once is
 * written straight from the caller's memory (no copy); only the rest is
 * copied, once, into a write request. Direct writes are tried only when
 * nothing is queued, so that bytes never overtake each other. A failure
 * may leave part of the data sent: the caller must then close the
 * connection. */
static int api_http__sock_write(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs)
{
    size_t total = 0;
    for (unsigned i = 0; i < n_bufs; i++) {
        total += bufs[i].len;
    }
    if (total == 0) {
        return 0;
    }
    if (c->w != NULL) {
        return api_http__writer_copy(c, bufs, n_bufs, total);
    }
    size_t done = 0;
    if (c->writes_pending == 0) {
        int rv = uv_try_write((uv_stream_t *)&c->tcp, bufs, n_bufs);
        if (rv < 0 && rv != UV_EAGAIN) {
            return api_http__from_uv(rv);
        }
        done = rv > 0 ? (size_t)rv : 0;
    }
    if (done == total) {
        return 0;
    }
    size_t rest = total - done;
    HD_ASSERT(rest <= UINT_MAX);
    struct api_http__write *w = hd_malloc(sizeof *w + rest);
    if (w == NULL) {
        return HD_ENOMEM;
    }
    size_t skip = done;
    size_t off = 0;
    for (unsigned i = 0; i < n_bufs; i++) {
        size_t len = bufs[i].len;
        size_t s = skip < len ? skip : len;
        skip -= s;
        memcpy(w->data + off, bufs[i].base + s, len - s);
        off += len - s;
    }
    w->conn = c;
    w->len = rest;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, api_http__on_write);
    if (rv != 0) {
        hd_free(w);
        return api_http__from_uv(rv);
    }
    c->writes_pending++;
    c->bytes_queued += rest;
    c->bytes_submitted += rest;
    return 0;
}

/* The TLS session's ciphertext, on its way to the socket. */
static int api_http__tls_out(void *arg, const void *data, size_t len)
{
    struct api_http_conn *c = arg;
    if (c->closing) {
        return HD_ESHUTDOWN;
    }
    HD_ASSERT(len <= UINT_MAX);
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    return api_http__sock_write(c, &b, 1);
}

/* libuv's buffers are struct iovec on Unix (uv_try_write passes them to
 * writev as they are); the TLS session takes them as such. */
_Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec) &&
                   offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base) &&
                   offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len),
               "uv_buf_t is not an iovec");

/* Writes the response's (or stream's) bytes: through the TLS session on a
 * TLS connection, straight to the socket otherwise. Same contract as
 * api_http__sock_write. */
static int api_http__conn_write(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs)
{
    if (c->tls == NULL) {
        return api_http__sock_write(c, bufs, n_bufs);
    }
    int rv = hd_tls_writev(c->tls, (const struct iovec *)(const void *)bufs, n_bufs);
    return rv == HD_ECORRUPT ? HD_ESHUTDOWN : rv;
}

static bool api_http__status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* Formats the status line and headers. with_length: a Content-Length
 * (responses); otherwise the stream form. Returns the length, or 0 if out
 * is too small. */
static size_t api_http__format_head(const struct api_http_conn *c, char *out, size_t out_len,
                                    int status, const char *content_type, const char *extra_headers,
                                    const char *hook_headers, bool with_length, size_t body_len)
{
    bool close = c->close_after || c->srv->closing || !with_length;
    struct hd_out o = hd_out_init(out, out_len);
    hd_out_str(&o, "HTTP/1.1 ");
    hd_out_u64(&o, (uint64_t)status);
    hd_out_str(&o, " ");
    hd_out_str(&o, api_http_status_text(status));
    hd_out_str(&o, "\r\n");
    if (content_type != NULL) {
        hd_out_str(&o, "Content-Type: ");
        hd_out_str(&o, content_type);
        hd_out_str(&o, "\r\n");
    }
    if (with_length && api_http__status_has_body(status)) {
        hd_out_str(&o, "Content-Length: ");
        hd_out_u64(&o, body_len);
        hd_out_str(&o, "\r\n");
    }
    hd_out_str(&o, close ? "Connection: close\r\n"
                   : c->http10 ? "Connection: keep-alive\r\n"
                               : "");
    if (extra_headers != NULL) {
        hd_out_str(&o, extra_headers);
    }
    hd_out_str(&o, hook_headers);
    hd_out_str(&o, "\r\n");
    return hd_out_fits(&o) ? o.len : 0;
}

static void api_http__check_header_text(const char *content_type, const char *extra_headers)
{
    /* Programmer errors: a CR/LF in a value would split the header. */
    HD_ASSERT(content_type == NULL || strpbrk(content_type, "\r\n") == NULL);
    if (extra_headers != NULL && extra_headers[0] != '\0') {
        size_t len = strlen(extra_headers);
        HD_ASSERT(len >= 2 && extra_headers[len - 2] == '\r' && extra_headers[len - 1] == '\n');
    }
}

/* The head hook's lines for the response to the request on c (into out,
 * NUL-terminated; empty without a hook). */
static void api_http__hook_headers(struct api_http_conn *c, int status, char *out, size_t out_len)
{
    out[0] = '\0';
    struct api_http_server *s = c->srv;
    if (s->head_hook == NULL) {
        return;
    }
    const struct api_http_request *req = api_http_parse_view(&c->parse);
    size_t n = s->head_hook(req, status, out, out_len - 1, s->head_hook_arg);
    HD_ASSERT(n < out_len);
    out[n] = '\0';
    api_http__check_header_text(NULL, out);
}

/* Writes head and body_send bytes of body. The head is built on the stack
 * unless the extra headers are long. */
static int api_http__send_head_and_body(struct api_http_conn *c, int status,
                                        const char *content_type, const char *extra_headers,
                                        bool with_length, const void *body, size_t body_len,
                                        size_t body_send)
{
    api_http__check_header_text(content_type, extra_headers);
    char hook[API_HTTP_HOOK_HEADERS_MAX + 1];
    api_http__hook_headers(c, status, hook, sizeof hook);
    size_t need = 160 + strlen(api_http_status_text(status)) +
                  (content_type != NULL ? strlen(content_type) : 0) +
                  (extra_headers != NULL ? strlen(extra_headers) : 0) + strlen(hook);
    char stack[API_HTTP__HEAD_STACK_BYTES];
    char *head = need <= sizeof stack ? stack : hd_malloc(need);
    if (head == NULL) {
        return HD_ENOMEM;
    }
    size_t head_len = api_http__format_head(c, head, need, status, content_type, extra_headers,
                                            hook, with_length, body_len);
    HD_ASSERT(head_len > 0);
    HD_ASSERT(body_send <= UINT_MAX);
    uv_buf_t bufs[2] = {
        uv_buf_init(head, (unsigned)head_len),
        uv_buf_init((char *)(uintptr_t)body, (unsigned)body_send),
    };
    int rv = api_http__conn_write(c, bufs, body_send > 0 ? 2 : 1);
    if (head != stack) {
        hd_free(head);
    }
    return rv;
}

/* {"error":{"code":"...","message":"..."}}, with both strings escaped.
 * Returns an hd_malloc'd string or NULL. */
static char *api_http__json_error_body(const char *code, const char *message, size_t *len)
{
    size_t cap = 40 + 6 * (strlen(code) + strlen(message));
    char *out = hd_malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    size_t w = 0;
    const char *parts[5] = {"{\"error\":{\"code\":\"", code, "\",\"message\":\"", message,
                            "\"}}"};
    for (int p = 0; p < 5; p++) {
        for (const char *s = parts[p]; *s != '\0'; s++) {
            unsigned char ch = (unsigned char)*s;
            if ((p == 1 || p == 3) && (ch == '"' || ch == '\\')) {
                out[w++] = '\\';
                out[w++] = (char)ch;
            } else if ((p == 1 || p == 3) && ch < 0x20) {
                w += (size_t)snprintf(out + w, cap - w, "\\u%04x", ch);
            } else {
                out[w++] = (char)ch;
            }
        }
    }
    out[w] = '\0';
    *len = w;
    return out;
}

/* Answers a protocol error or timeout ourselves, then closes. */
static void api_http__send_error_and_finish(struct api_http_conn *c, int status, const char *code,
                                  const char *message, const char *extra_headers)
{
    c->close_after = true;
    size_t len = 0;
    char *body = api_http__json_error_body(code, message, &len);
    if (body == NULL) {
        api_http__conn_close(c);
        return;
    }
    int rv = api_http__send_head_and_body(c, status, "application/json", extra_headers, true, body,
                                          len, len);
    hd_free(body);
    if (rv != 0) {
        api_http__conn_close(c);
        return;
    }
    api_http__conn_finish(c);
}

/* ------------------------------------------------------------------ */
/* Graceful close                                                      */
/* ------------------------------------------------------------------ */

static void api_http__on_linger_timeout(uv_timer_t *t)
{
    api_http__conn_close(t->data);
}

static void api_http__on_shutdown(uv_shutdown_t *req, int status)
{
    struct api_http_conn *c = req->data;
    if (c->closing) {
        return;
    }
    if (status < 0 || c->peer_eof) {
        api_http__conn_close(c);
        return;
    }
    c->shutdown_done = true;
    uint64_t ms = c->srv->limits.idle_timeout_ms;
    api_http__timer_start(c, TIMER_LINGER, ms < API_HTTP__LINGER_MS ? ms : API_HTTP__LINGER_MS,
                api_http__on_linger_timeout);
}

/* Flush, shut down the write side, drop input until the client's EOF. */
static void api_http__conn_finish(struct api_http_conn *c)
{
    if (c->closing || c->shutdown_started) {
        return;
    }
    c->state = CONN_CLOSING;
    c->shutdown_started = true;
    hd_free(c->leftover);
    c->leftover = NULL;
    c->leftover_len = 0;
    api_http__timer_stop(c);
    if (c->tls != NULL && hd_tls_close(c->tls) != 0) {
        api_http__conn_close(c);
        return;
    }
    if (c->w != NULL) {
        /* What the writer holds goes out first; then the shutdown. */
        c->w_finish = true;
        http_writer_release(c->w, false);
        api_http__arm_stall_timer(c);
        api_http__start_reading(c);
        return;
    }
    api_http__conn_shutdown(c);
}

static void api_http__conn_shutdown(struct api_http_conn *c)
{
    c->shutdown_req.data = c;
    int rv = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, api_http__on_shutdown);
    if (rv != 0) {
        api_http__conn_close(c);
        return;
    }
    api_http__arm_stall_timer(c);
    api_http__start_reading(c);
}

/* ------------------------------------------------------------------ */
/* Reading and api_http__dispatch                                                */
/* ------------------------------------------------------------------ */

static void api_http__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct api_http_conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, (unsigned)sizeof c->srv->read_buf);
}

static void api_http__dispatch(struct api_http_conn *c)
{
    const struct api_http_request *req = api_http_parse_request(&c->parse);
    HD_ASSERT(req != NULL);
    /* Reading stays on: stopping and starting it costs two epoll_ctl calls
     * per request. What arrives meanwhile is held (api_http__hold_input). */
    api_http__timer_stop(c);
    c->state = CONN_PENDING;
    c->user_owned = true;
    c->head_request = req->method == HTTP_HEAD;
    c->http10 = req->http_minor == 0;
    c->close_after = !req->keep_alive || c->srv->closing;
    c->srv->cb(c, req, c->srv->arg);
}

/* Keeps the bytes after a complete request for later. They are either
 * already in leftover (we are parsing it) or in the shared read buffer. */
static void api_http__keep_leftover(struct api_http_conn *c, const char *data, size_t len)
{
    if (c->feeding_leftover) {
        c->leftover_off = (size_t)(data - c->leftover);
        c->leftover_len = len;
        return;
    }
    HD_ASSERT(c->leftover == NULL);
    if (len == 0) {
        return;
    }
    c->leftover = hd_malloc(len);
    if (c->leftover == NULL) {
        c->close_after = true; /* the next requests are lost: end after this one */
        return;
    }
    memcpy(c->leftover, data, len);
    c->leftover_off = 0;
    c->leftover_len = len;
}

/* Input that arrives while a request is in the caller's hands (pipelined
 * requests, or a WebSocket's first frames) waits in leftover. Past
 * API_HTTP__HOLD_BYTES the socket is not read until the response is out:
 * that is the backpressure on a pipelining client. */
static void api_http__hold_input(struct api_http_conn *c, const char *data, size_t len)
{
    char *buf = hd_malloc(c->leftover_len + len);
    if (buf == NULL) {
        c->close_after = true; /* the next requests are lost: end after this one */
        api_http__stop_reading(c);
        return;
    }
    if (c->leftover_len > 0) {
        memcpy(buf, c->leftover + c->leftover_off, c->leftover_len);
    }
    memcpy(buf + c->leftover_len, data, len);
    hd_free(c->leftover);
    c->leftover = buf;
    c->leftover_off = 0;
    c->leftover_len += len;
    if (c->leftover_len > API_HTTP__HOLD_BYTES) {
        api_http__stop_reading(c);
    }
}

static const char api_http__continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void api_http__conn_feed(struct api_http_conn *c, const char *data, size_t len)
{
    while (c->state == CONN_READING && len > 0) {
        size_t used = 0;
        int rv = api_http_parse_feed(&c->parse, data, len, &used);
        data += used;
        len -= used;
        if (rv == API_HTTP_PARSE_REQUEST) {
            api_http__keep_leftover(c, data, len);
            api_http__dispatch(c);
            return;
        }
        if (rv < 0) {
            const struct api_http_error *e = api_http_parse_error(&c->parse);
            HD_LOG_DEBUG("http: %d %s", e->status, e->message);
            api_http__send_error_and_finish(c, e->status, e->code, e->message, NULL);
            return;
        }
        if (rv == API_HTTP_PARSE_CONTINUE) {
            uv_buf_t b = uv_buf_init((char *)(uintptr_t)api_http__continue,
                                     (unsigned)(sizeof api_http__continue - 1));
            if (api_http__conn_write(c, &b, 1) != 0) {
                api_http__conn_close(c);
                return;
            }
        }
        api_http__arm_read_timer(c);
    }
}

/* Hands input of an upgraded connection to its owner. in_event keeps the
 * conn alive if the owner ends it from inside the callback. */
static void api_http__deliver(struct api_http_conn *c, const char *data, size_t len)
{
    HD_ASSERT(c->upgraded && c->data_cb != NULL);
    c->in_event = true;
    c->data_cb(c, data, len, c->stream_arg);
    c->in_event = false;
    api_http__conn_maybe_free(c);
}

/* Plaintext from the client (decrypted on a TLS connection). */
static void api_http__on_input(struct api_http_conn *c, const char *data, size_t len)
{
    if (c->refuse_full) {
        return; /* answered 503 once the handshake is done */
    }
    if (c->state == CONN_READING) {
        api_http__conn_feed(c, data, len);
    } else if (c->state == CONN_PENDING || c->state == CONN_WRITING) {
        api_http__hold_input(c, data, len);
    } else if (c->state == CONN_STREAMING && c->upgraded && c->user_owned) {
        api_http__deliver(c, data, len);
    }
    /* other streams and CLOSING drop input */
}

/* The client's EOF (or its TLS close_notify), or a read error. */
static void api_http__on_end(struct api_http_conn *c, ssize_t nread)
{
    if (nread == UV_EOF && (c->state == CONN_PENDING || c->state == CONN_WRITING)) {
        /* Half-close after a request: it is still answered, then closed. */
        c->peer_eof = true;
        c->close_after = true;
        api_http__stop_reading(c);
        return;
    }
    if (nread == UV_EOF && c->state == CONN_CLOSING && !c->shutdown_done) {
        /* Half-close: the response still goes out, then api_http__on_shutdown closes. */
        c->peer_eof = true;
        api_http__stop_reading(c);
        return;
    }
    /* EOF or error while reading a request, streaming or lingering. A
     * partial request cannot be completed, so there is no one to answer. */
    api_http__conn_close(c);
}

static int api_http__tls_in(void *arg, const void *data, size_t len)
{
    struct api_http_conn *c = arg;
    api_http__on_input(c, data, len);
    return c->closing ? HD_ESHUTDOWN : 0;
}

/* Ciphertext from the client: the session decrypts it into
 * api_http__on_input, all of it before this returns (as plaintext
 * connections parse a whole read), so that no decrypted byte waits inside
 * the session while the socket is not read. */
static void api_http__tls_input(struct api_http_conn *c, const char *data, size_t len)
{
    bool was_established = hd_tls_established(c->tls);
    int rv = hd_tls_feed(c->tls, data, len);
    if (c->closing) {
        return;
    }
    if (rv == HD_ESHUTDOWN) {
        api_http__on_end(c, UV_EOF);
        return;
    }
    if (rv != 0) {
        char peer[80];
        api_http_conn_peer(c, peer, sizeof peer);
        HD_LOG_WARN("https: %s from %s: %s; closing", was_established ? "TLS" : "TLS handshake",
                    peer, hd_tls_why(c->tls));
        if (c->state == CONN_READING) {
            api_http__conn_finish(c); /* the alert goes out first */
        } else {
            api_http__conn_close(c);
        }
        return;
    }
    if (c->refuse_full && hd_tls_established(c->tls) && c->state == CONN_READING) {
        c->refuse_full = false;
        api_http__send_error_and_finish(c, 503, "overloaded", "too many connections",
                                        "Retry-After: 1\r\n");
    }
}

/* The first bytes of a connection tell TLS (a handshake record, 0x16)
 * from plaintext. A plaintext request to the TLS port is answered with a
 * plaintext 400 that says so, as nginx does, so that a person with curl
 * sees why; a TLS handshake to the plaintext port is closed (a TLS client
 * could not read an HTTP answer). Returns true when the connection was
 * refused. */
static bool api_http__first_bytes(struct api_http_conn *c, const char *data, size_t len)
{
    bool handshake = len > 0 && (unsigned char)data[0] == 0x16;
    if (c->tls != NULL && !handshake) {
        char peer[80];
        api_http_conn_peer(c, peer, sizeof peer);
        HD_LOG_WARN("https: plaintext from %s on the TLS port; answered 400 and closing", peer);
        hd_tls_free(c->tls);
        c->tls = NULL;
        c->refuse_full = false;
        api_http__send_error_and_finish(c, 400, "tls_required",
                                        "this port speaks TLS: use https://", NULL);
        return true;
    }
    if (c->tls == NULL && c->srv->tls == NULL && handshake) {
        char peer[80];
        api_http_conn_peer(c, peer, sizeof peer);
        HD_LOG_WARN("http: a TLS handshake from %s on a plaintext port (start heraldd with "
                    "--tls-cert and --tls-key for https); closing",
                    peer);
        api_http__conn_close(c);
        return true;
    }
    return false;
}

static void api_http__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct api_http_conn *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        api_http__on_end(c, nread);
        return;
    }
    if (c->state == CONN_CLOSING) {
        return; /* lingering: input is dropped, TLS or not */
    }
    if (!c->first_read) {
        c->first_read = true;
        if (api_http__first_bytes(c, buf->base, (size_t)nread)) {
            return;
        }
    }
    if (c->tls != NULL) {
        api_http__tls_input(c, buf->base, (size_t)nread);
    } else {
        api_http__on_input(c, buf->base, (size_t)nread);
    }
}

/* After a response is fully written: next request or close. */
static void api_http__response_done(struct api_http_conn *c)
{
    HD_ASSERT(c->state == CONN_WRITING && c->writes_pending == 0);
    if (c->close_after || c->srv->closing) {
        api_http__conn_finish(c);
        return;
    }
    api_http_parse_next(&c->parse);
    c->state = CONN_READING;
    api_http__timer_stop(c);
    if (c->leftover_len > 0) {
        c->feeding_leftover = true;
        api_http__conn_feed(c, c->leftover + c->leftover_off, c->leftover_len);
        c->feeding_leftover = false;
    }
    if (c->closing) {
        return;
    }
    if (c->state == CONN_READING) {
        hd_free(c->leftover); /* all of it was parsed */
        c->leftover = NULL;
        c->leftover_len = 0;
        api_http__arm_read_timer(c);
        api_http__start_reading(c);
    }
}

static void api_http__on_deferred_done(uv_timer_t *t)
{
    struct api_http_conn *c = t->data;
    c->timer_role = TIMER_NONE;
    if (c->state == CONN_WRITING && c->writes_pending == 0) {
        api_http__response_done(c);
    }
}

/* ------------------------------------------------------------------ */
/* Accepting                                                           */
/* ------------------------------------------------------------------ */

static struct api_http_conn *api_http__conn_create(struct api_http_server *s)
{
    struct api_http_conn *c = hd_calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    api_http_parse_init(&c->parse, &s->limits);
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    return c;
}

static void api_http__on_connection(uv_stream_t *server, int status)
{
    struct api_http_server *s = server->data;
    if (status < 0) {
        HD_LOG_WARN("http: accept: %s", uv_strerror(status));
        return;
    }
    struct api_http_conn *c = api_http__conn_create(s);
    if (c == NULL) {
        /* The connection stays in the backlog; libuv retries later. */
        HD_LOG_ERROR("http: accept: out of memory");
        return;
    }
    int rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv != 0) {
        api_http__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->tls != NULL) {
        struct hd_tls_io io = {.out = api_http__tls_out, .in = api_http__tls_in, .arg = c};
        char peer[80];
        api_http_conn_peer(c, peer, sizeof peer);
        c->peer = hd_malloc(strlen(peer) + 1);
        if (c->peer != NULL) {
            memcpy(c->peer, peer, strlen(peer) + 1);
        }
        if (c->peer == NULL || hd_tls_server_new(&c->tls, s->tls, &io) != 0) {
            HD_LOG_ERROR("https: accept: out of memory");
            api_http__conn_close(c);
            return;
        }
    }
    if (s->n_counted >= s->limits.connections_max) {
        /* Accept and refuse rather than leave it in the backlog, so that
         * the client gets an answer it can retry on (over TLS, once the
         * handshake is done; the idle timeout bounds it). */
        if (c->tls == NULL) {
            api_http__send_error_and_finish(c, 503, "overloaded", "too many connections",
                                            "Retry-After: 1\r\n");
            return;
        }
        c->refuse_full = true;
        c->state = CONN_READING;
        api_http__arm_read_timer(c);
        api_http__start_reading(c);
        return;
    }
    c->counted = true;
    s->n_counted++;
    c->state = CONN_READING;
    api_http__arm_read_timer(c);
    api_http__start_reading(c);
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* Splits "host:port" or "[v6]:port". */
static int api_http__parse_listen_addr(const char *addr, struct sockaddr_storage *ss)
{
    char host[64];
    const char *port_str;
    size_t host_len;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':') {
            return HD_EINVAL;
        }
        host_len = (size_t)(end - addr - 1);
        memcpy(host, addr + 1, host_len < sizeof host ? host_len : 0);
        port_str = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL) {
            return HD_EINVAL;
        }
        host_len = (size_t)(colon - addr);
        memcpy(host, addr, host_len < sizeof host ? host_len : 0);
        port_str = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof host || port_str[0] == '\0' ||
        strspn(port_str, "0123456789") != strlen(port_str) || strlen(port_str) > 5) {
        return HD_EINVAL;
    }
    host[host_len] = '\0';
    long port = strtol(port_str, NULL, 10);
    if (port > 65535) {
        return HD_EINVAL;
    }
    memset(ss, 0, sizeof *ss);
    if (addr[0] == '[') {
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0 ? 0 : HD_EINVAL;
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0 ? 0 : HD_EINVAL;
}

/* Binds and listens with plain syscalls, so that the usual failures (bad
 * address, address in use) happen before any libuv handle exists and
 * init can fail without leaving work for the loop. */
static int api_http__open_listener(const struct sockaddr_storage *ss, int *fd_out, int *port_out,
                         char *errmsg, size_t errmsg_len, const char *addr)
{
    socklen_t ss_len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int rv = hd_from_errno(errno);
        snprintf(errmsg, errmsg_len, "listen %s: socket: %s", addr, strerror(errno));
        return rv;
    }
    int one = 1;
    const char *step = "setsockopt";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
        goto err_close;
    }
    step = "bind";
    if (bind(fd, (const struct sockaddr *)ss, ss_len) != 0) {
        goto err_close;
    }
    step = "listen";
    if (listen(fd, API_HTTP__BACKLOG) != 0) {
        goto err_close;
    }
    struct sockaddr_storage bound;
    socklen_t bound_len = sizeof bound;
    step = "getsockname";
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        goto err_close;
    }
    *port_out = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *fd_out = fd;
    return 0;

err_close: {
    int err = errno;
    snprintf(errmsg, errmsg_len, "listen %s: %s: %s", addr, step, strerror(err));
    close(fd);
    int rv = hd_from_errno(err);
    HD_ASSERT(rv != 0);
    return rv;
}
}

static void api_http__free_handle_owner(uv_handle_t *h)
{
    hd_free(h->data);
}

int api_http_server_init(struct api_http_server **out, uv_loop_t *loop, const char *listen_addr,
                         const struct api_http_limits *limits, api_http_request_cb cb, void *arg,
                         char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(out != NULL && loop != NULL && listen_addr != NULL && cb != NULL);
    struct sockaddr_storage ss;
    int rv = api_http__parse_listen_addr(listen_addr, &ss);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "listen %s: bad address (want host:port or [v6]:port)",
                 listen_addr);
        return rv;
    }
    int fd = -1;
    int port = 0;
    rv = api_http__open_listener(&ss, &fd, &port, errmsg, errmsg_len, listen_addr);
    if (rv != 0) {
        return rv;
    }
    struct api_http_server *s = hd_calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errmsg, errmsg_len, "listen %s: out of memory", listen_addr);
        rv = HD_ENOMEM;
        goto err_fd;
    }
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    s->port = port;
    api_http_limits_resolve(&s->limits, limits);
    rv = uv_tcp_init(loop, &s->tcp);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "listen %s: %s", listen_addr, uv_strerror(rv));
        rv = api_http__from_uv(rv);
        goto err_free;
    }
    s->tcp.data = s;
    int uv_rv = uv_tcp_open(&s->tcp, fd);
    if (uv_rv == 0) {
        uv_rv = uv_listen((uv_stream_t *)&s->tcp, API_HTTP__BACKLOG, api_http__on_connection);
    }
    if (uv_rv != 0) {
        /* Rare: the handle exists, so its memory goes back from the loop. */
        snprintf(errmsg, errmsg_len, "listen %s: %s", listen_addr, uv_strerror(uv_rv));
        uv_close((uv_handle_t *)&s->tcp, api_http__free_handle_owner);
        return api_http__from_uv(uv_rv);
    }
    /* libuv writes with write(2): a reset peer would raise SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    *out = s;
    return 0;

err_free:
    hd_free(s);
err_fd:
    close(fd);
    HD_ASSERT(rv != 0);
    return rv;
}

void api_http_server_set_head_hook(struct api_http_server *s, api_http_head_hook hook, void *arg)
{
    s->head_hook = hook;
    s->head_hook_arg = arg;
}

void api_http_server_set_tls(struct api_http_server *s, struct hd_tls_ctx *ctx)
{
    hd_tls_ctx_free(s->tls); /* open sessions hold their own reference */
    s->tls = ctx;
}

bool api_http_server_tls(const struct api_http_server *s)
{
    return s->tls != NULL;
}

int api_http_server_port(const struct api_http_server *s)
{
    return s->port;
}

size_t api_http_server_connections(const struct api_http_server *s)
{
    return s->n_conns;
}

static void api_http__on_listener_close(uv_handle_t *h)
{
    struct api_http_server *s = h->data;
    s->listener_closed = true;
    api_http__server_maybe_finish(s);
}

/* A graceful stop gives each connection this long to take what is queued
 * for it (an answer, the end of a stream) and then closes it: a client that
 * does not read must not hold a stopping node for the idle timeout. */
#define API_HTTP__CLOSE_GRACE_MS 5000u

static void api_http__on_grace(uv_timer_t *t)
{
    struct api_http_server *s = t->data;
    size_t n = 0;
    for (struct api_http_conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->closing) {
            api_http__conn_close(c);
            n++;
        }
    }
    if (n > 0) {
        HD_LOG_WARN("stopping: closed %zu connection(s) that had not taken what was queued "
                    "for them within %u ms", n, API_HTTP__CLOSE_GRACE_MS);
    }
}

void api_http_server_close(struct api_http_server *s, void (*cb)(void *arg), void *arg)
{
    HD_ASSERT(!s->closing);
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    uv_close((uv_handle_t *)&s->tcp, api_http__on_listener_close);
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s;
    s->grace_open = true;
    uv_timer_start(&s->grace, api_http__on_grace, API_HTTP__CLOSE_GRACE_MS, 0);
    /* api_http__conn_close never frees synchronously (handles close from the loop),
     * so walking the list while closing is safe. */
    for (struct api_http_conn *c = s->conns; c != NULL; c = c->next) {
        switch (c->state) {
        case CONN_READING:
        case CONN_STREAMING: /* CLOSED follows from api_http__on_handle_close */
            api_http__conn_close(c);
            break;
        case CONN_PENDING:
        case CONN_WRITING:
            c->close_after = true;
            break;
        case CONN_CLOSING:
            if (c->shutdown_done) {
                api_http__conn_close(c); /* no need to linger any longer */
            }
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* The response is queued: finish when its writes complete, or (if the
 * socket took it all at once) on the next loop turn, never from inside
 * api_http_respond(), which could recurse into the request callback. */
static void api_http__response_queued(struct api_http_conn *c)
{
    if (c->writes_pending == 0) {
        api_http__timer_start(c, TIMER_DEFER, 0, api_http__on_deferred_done);
    } else {
        api_http__arm_stall_timer(c);
    }
}

int api_http_respond(struct api_http_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len)
{
    HD_ASSERT(c != NULL && c->user_owned && !c->streaming);
    HD_ASSERT(c->state == CONN_PENDING || c->closing);
    HD_ASSERT(status >= 200 && status <= 999);
    HD_ASSERT(body != NULL || body_len == 0);
    c->user_owned = false;
    if (c->closing) {
        api_http__conn_maybe_free(c);
        return HD_ESHUTDOWN;
    }
    c->state = CONN_WRITING;
    if (c->srv->closing) {
        c->close_after = true;
    }
    size_t send = c->head_request || !api_http__status_has_body(status) ? 0 : body_len;
    int rv = api_http__send_head_and_body(c, status, content_type, extra_headers, true, body,
                                          body_len, send);
    if (rv != 0) {
        api_http__conn_close(c);
        return rv;
    }
    api_http__response_queued(c);
    return 0;
}

int api_http_respond_error(struct api_http_conn *c, int status, const char *code,
                           const char *message, const char *extra_headers)
{
    size_t len = 0;
    char *body = api_http__json_error_body(code, message, &len);
    if (body == NULL) {
        /* Still give the conn back, with an empty answer. */
        api_http_respond(c, status, NULL, extra_headers, NULL, 0);
        return HD_ENOMEM;
    }
    int rv = api_http_respond(c, status, "application/json", extra_headers, body, len);
    hd_free(body);
    return rv;
}

/* ------------------------------------------------------------------ */
/* Streaming                                                           */
/* ------------------------------------------------------------------ */

int api_http_stream_begin(struct api_http_conn *c, int status, const char *content_type,
                          const char *extra_headers, api_http_stream_cb on_event, void *arg)
{
    HD_ASSERT(c != NULL && c->user_owned && !c->streaming && on_event != NULL);
    HD_ASSERT(c->state == CONN_PENDING || c->closing);
    HD_ASSERT(status >= 200 && status <= 999);
    c->streaming = true;
    if (c->closing) {
        return HD_ESHUTDOWN;
    }
    c->state = CONN_STREAMING;
    c->close_after = true;
    hd_free(c->leftover); /* pipelined requests after a stream are dropped */
    c->leftover = NULL;
    c->leftover_len = 0;
    int rv =
        api_http__send_head_and_body(c, status, content_type, extra_headers, false, NULL, 0, 0);
    if (rv != 0) {
        api_http__conn_close(c);
        return rv;
    }
    c->stream_cb = on_event;
    c->stream_arg = arg;
    api_http__arm_stall_timer(c);
    /* Read (and drop input) to notice the client leaving. */
    api_http__start_reading(c);
    return 0;
}

int api_http_stream_write(struct api_http_conn *c, const void *data, size_t len)
{
    HD_ASSERT(c != NULL && c->user_owned && c->streaming);
    if (c->closing || c->state != CONN_STREAMING) {
        return HD_ESHUTDOWN;
    }
    HD_ASSERT(len <= UINT_MAX);
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
    int rv = api_http__conn_write(c, &b, 1);
    if (rv != 0) {
        api_http__conn_close(c);
        return rv == HD_ENOMEM ? rv : HD_ESHUTDOWN;
    }
    api_http__arm_stall_timer(c);
    return 0;
}

size_t api_http_stream_queued(const struct api_http_conn *c)
{
    return c->bytes_queued + c->w_bytes;
}

void api_http_stream_end(struct api_http_conn *c)
{
    HD_ASSERT(c != NULL && c->user_owned && c->streaming);
    c->user_owned = false;
    c->stream_cb = NULL;
    if (c->closing) {
        api_http__conn_maybe_free(c); /* waits for in_event / handles by itself */
        return;
    }
    api_http__conn_finish(c);
}

int api_http_stream_writev(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs)
{
    HD_ASSERT(c != NULL && c->user_owned && c->streaming);
    HD_ASSERT(bufs != NULL || n_bufs == 0);
    if (c->closing || c->state != CONN_STREAMING) {
        return HD_ESHUTDOWN;
    }
    int rv = api_http__conn_write(c, bufs, n_bufs);
    if (rv != 0) {
        api_http__conn_close(c);
        return rv == HD_ENOMEM ? rv : HD_ESHUTDOWN;
    }
    api_http__arm_stall_timer(c);
    return 0;
}

/* A connection goes to the writer once the loop has nothing of it
 * queued, so that bytes never overtake each other. */
static bool api_http__can_lend(const struct api_http_conn *c)
{
    return c->srv->writer != NULL && c->tls == NULL && c->writes_pending == 0 && !c->closing &&
           c->state == CONN_STREAMING;
}

bool api_http_stream_lends(const struct api_http_conn *c)
{
    return c->w != NULL || api_http__can_lend(c);
}

int api_http_stream_writev_lent(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs,
                                api_http_release_cb release, void *arg)
{
    HD_ASSERT(c != NULL && c->user_owned && c->streaming);
    if (c->closing || c->state != CONN_STREAMING) {
        release(arg);
        return HD_ESHUTDOWN;
    }
    int fd = -1;
    if (c->w == NULL && api_http__can_lend(c) && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        c->w = http_writer_attach(c->srv->writer, fd, c);
    }
    if (c->w == NULL) {
        int rv = api_http_stream_writev(c, bufs, n_bufs); /* writes or copies */
        release(arg);
        return rv;
    }
    size_t total = 0;
    for (unsigned i = 0; i < n_bufs; i++) {
        total += bufs[i].len;
    }
    int rv = total > 0 ? api_http__writer_submit(c, bufs, n_bufs, total, release, arg) : 0;
    if (rv != 0 || total == 0) {
        release(arg);
    }
    if (rv != 0) {
        api_http__conn_close(c);
        return rv;
    }
    api_http__arm_stall_timer(c);
    return 0;
}

int api_http_server_start_writer(struct api_http_server *s)
{
    HD_ASSERT(s->writer == NULL && s->n_conns == 0);
    static const struct http_writer_cbs cbs = {api_http__on_writer_done,
                                               api_http__on_writer_released};
    return http_writer_start(&s->writer, s->loop, &cbs);
}

/* ------------------------------------------------------------------ */
/* Upgrades                                                            */
/* ------------------------------------------------------------------ */

int api_http_upgrade(struct api_http_conn *c, const char *headers, api_http_data_cb on_data,
                     api_http_stream_cb on_event, void *arg)
{
    HD_ASSERT(c != NULL && c->user_owned && !c->streaming && on_data != NULL);
    HD_ASSERT(on_event != NULL && headers != NULL);
    HD_ASSERT(c->state == CONN_PENDING || c->closing);
    api_http__check_header_text(NULL, headers);
    c->streaming = true;
    c->upgraded = true;
    if (c->closing) {
        return HD_ESHUTDOWN;
    }
    c->state = CONN_STREAMING;
    c->close_after = true;
    /* The request's memory is no longer needed: an idle upgraded conn
     * should cost as little as possible. */
    api_http_parse_close(&c->parse);
    api_http_parse_init(&c->parse, &c->srv->limits);
    static const char status_line[] = "HTTP/1.1 101 Switching Protocols\r\n";
    uv_buf_t bufs[3] = {
        uv_buf_init((char *)(uintptr_t)status_line, (unsigned)(sizeof status_line - 1)),
        uv_buf_init((char *)(uintptr_t)headers, (unsigned)strlen(headers)),
        uv_buf_init((char *)(uintptr_t)"\r\n", 2),
    };
    int rv = api_http__conn_write(c, bufs, 3);
    if (rv != 0) {
        api_http__conn_close(c);
        return rv;
    }
    c->stream_cb = on_event;
    c->stream_arg = arg;
    c->data_cb = on_data;
    api_http__arm_stall_timer(c);
    /* Bytes the client sent right after its request are the new protocol's. */
    char *early = c->leftover;
    size_t early_off = c->leftover_off, early_len = c->leftover_len;
    c->leftover = NULL;
    c->leftover_len = 0;
    if (early != NULL && early_len > 0) {
        api_http__deliver(c, early + early_off, early_len);
    }
    hd_free(early);
    if (!c->read_paused) {
        api_http__start_reading(c);
    }
    return 0;
}

void api_http_read_pause(struct api_http_conn *c, bool paused)
{
    HD_ASSERT(c != NULL && c->upgraded);
    c->read_paused = paused;
    if (c->closing || c->state != CONN_STREAMING) {
        return;
    }
    if (paused) {
        api_http__stop_reading(c);
    } else {
        api_http__start_reading(c);
    }
}

void api_http_conn_peer(struct api_http_conn *c, char *out, size_t out_len)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char host[64] = "";
    snprintf(out, out_len, "%s", c->peer != NULL ? c->peer : "?");
    if (c->peer != NULL) {
        return;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) != 0) {
        return;
    }
    if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
        uv_ip4_name(in, host, sizeof host);
        snprintf(out, out_len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&sa;
        uv_ip6_name(in6, host, sizeof host);
        snprintf(out, out_len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    }
}
