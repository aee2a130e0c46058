/* SPDX-License-Identifier: Apache-2.0 */
/* Generic HTTP/1.1 server on a libuv loop: connections, limits, timeouts, responses, streaming. */
#ifndef API_HTTP_SERVER_H
#define API_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http_parse.h"

/*
 * The server knows nothing about routes: it hands every complete request to
 * one callback and lets the caller answer it, now or later. One request per
 * connection is in the hands of the caller at a time; pipelined requests
 * wait (and the socket is not read) until the response has been written.
 *
 * Everything runs on the loop's thread (with a writer, the socket writes of
 * streams run on its own thread: http_writer.h); no function here is
 * thread-safe.
 *
 * Lifetimes. The server owns every struct api_http_conn. The request
 * callback lends the conn to the caller, who gives it back with exactly one
 * of api_http_respond() / api_http_respond_error() / api_http_stream_end().
 * Until then the conn pointer and the request (all its pointers) stay valid,
 * even if the client disconnects. After giving it back, the caller must
 * not touch either again.
 *
 * Timeouts. While a request is incomplete, request_timeout_ms counts from
 * its first byte (then 408 and close). Between requests, idle_timeout_ms
 * (then close). Nothing times out while the caller holds the conn, except
 * that queued output that makes no progress for idle_timeout_ms (a client
 * that does not read) closes the connection.
 *
 * The process ignores SIGPIPE once a server is initialized: libuv writes
 * with write(2), which raises it when the peer has reset the connection.
 */

struct api_http_server;
struct api_http_conn;

/* A complete request on c. req and c are lent until the response is given. */
typedef void (*api_http_request_cb)(struct api_http_conn *c, const struct api_http_request *req,
                                    void *arg);

/* Starts listening on listen_addr ("127.0.0.1:7400", "[::1]:7400"; port 0
 * picks a free port, see api_http_server_port()) with SO_REUSEADDR and a
 * backlog of 1024. limits may be NULL (defaults; 0 fields take defaults
 * too). cb is called with arg for every request. On success *out is the
 * server, to be closed with api_http_server_close(). On failure returns
 * HD_EINVAL (bad address), a bind/listen error mapped from errno (e.g.
 * HD_EBUSY for an address in use) or HD_ENOMEM, with a message in errmsg. */
int api_http_server_init(struct api_http_server **out, uv_loop_t *loop, const char *listen_addr,
                         const struct api_http_limits *limits, api_http_request_cb cb, void *arg,
                         char *errmsg, size_t errmsg_len);

/* Headers that depend on the request (e.g. CORS), for every response the
 * server writes: api_http_respond(), api_http_respond_error(),
 * api_http_stream_begin() and the errors the server answers by itself
 * (400, 408, 413, 417, 431, 503 for too many connections...). Not for the
 * 101 of api_http_upgrade(), whose caller writes every header.
 *
 * req is the request being answered; for an error answered by the server
 * it is what arrived (api_http_parse_view(): method, path, query and
 * headers, no body) or NULL when not even the header section did. The hook
 * writes complete header lines, each ending in "\r\n", into out (out_len
 * bytes, API_HTTP_HOOK_HEADERS_MAX) and returns how many bytes it wrote
 * (0 for none). It must not call into the server. */
typedef size_t (*api_http_head_hook)(const struct api_http_request *req, int status, char *out,
                                     size_t out_len, void *arg);

#define API_HTTP_HOOK_HEADERS_MAX 1024u

/* Installs hook (NULL: none, the default) with arg for every later
 * response. */
void api_http_server_set_head_hook(struct api_http_server *s, api_http_head_hook hook, void *arg);

struct hd_tls_ctx;

/* Makes the port speak TLS (common/hd_tls.h) with ctx, a server context,
 * for the connections accepted from now on; ctx NULL: plaintext. The
 * server takes ctx over and frees the one it replaces: connections
 * already open keep theirs until they close. On a TLS port a connection
 * whose first byte is not a handshake record gets a plaintext 400
 * (tls_required) and is closed; on a plaintext port, a connection that
 * starts with a TLS handshake is closed. Either is logged. The idle
 * timeout bounds a handshake that never finishes. */
void api_http_server_set_tls(struct api_http_server *s, struct hd_tls_ctx *ctx);

/* Starts a thread that writes streams and upgraded connections handed to
 * it by api_http_stream_writev_lent() (api/http/http_writer.h), so that
 * delivery and the loop use two cores. Call before any connection; it
 * stops with the server. 0, HD_ENOMEM or an error of the system. */
int api_http_server_start_writer(struct api_http_server *s);

/* True when new connections speak TLS. */
bool api_http_server_tls(const struct api_http_server *s);

/* The bound TCP port (useful after listening on port 0). */
int api_http_server_port(const struct api_http_server *s);

/* The client's address as "host:port" ("[v6]:port"), for logs; "?" if
 * unknown. */
void api_http_conn_peer(struct api_http_conn *c, char *out, size_t out_len);

/* Connections currently open or closing (rejected ones included). */
size_t api_http_server_connections(const struct api_http_server *s);

/* Stops accepting and closes connections that wait for or are reading a
 * request. Streams get API_HTTP_STREAM_CLOSED. Conns lent to the caller stay
 * until answered (their response then carries Connection: close). When the
 * last connection is gone the server is freed and cb(arg) runs, from the
 * loop (never from inside this call). cb may be NULL. */
void api_http_server_close(struct api_http_server *s, void (*cb)(void *arg), void *arg);

/* Answers the request lent with c, and gives c back (in every case, also
 * on error). Adds Content-Length (omitted for 1xx/204/304), Content-Type if
 * content_type is not NULL, and Connection: close when the connection ends
 * after this response. extra_headers is NULL or complete lines, each ending
 * in "\r\n". body is copied or written before the call returns, so it may
 * point into the request. For HEAD, the body is not sent. status >= 200.
 * Returns 0, or HD_ESHUTDOWN if the client is gone (nothing was sent),
 * or HD_ENOMEM. */
int api_http_respond(struct api_http_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len);

/* api_http_respond() with the JSON error body
 * {"error":{"code":"<code>","message":"<message>"}} (both escaped). */
int api_http_respond_error(struct api_http_conn *c, int status, const char *code,
                           const char *message, const char *extra_headers);

/* Stream events, delivered to the callback given to api_http_stream_begin(). */
enum {
    API_HTTP_STREAM_DRAINED = 1, /* api_http_stream_queued() fell to 0 */
    API_HTTP_STREAM_CLOSED = 2,  /* the connection is gone; writes now fail */
};

typedef void (*api_http_stream_cb)(struct api_http_conn *c, int event, void *arg);

/* Starts a streaming response (e.g. server-sent events) to the request lent
 * with c: the header has no Content-Length and says Connection: close; the
 * body is whatever api_http_stream_write() sends. Keeps c lent: whatever this
 * returns, the caller finishes with api_http_stream_end() exactly once.
 * on_event(c, event, arg) reports DRAINED and CLOSED (CLOSED at most once,
 * never from inside a call of this API, and never after stream_end).
 * Returns 0 or HD_ESHUTDOWN (client gone, no CLOSED event follows) /
 * HD_ENOMEM. */
int api_http_stream_begin(struct api_http_conn *c, int status, const char *content_type,
                          const char *extra_headers, api_http_stream_cb on_event, void *arg);

/* Sends data (copied, or written before the call returns). Returns 0, or
 * HD_ESHUTDOWN once the connection is gone or failing (a CLOSED event
 * follows if it was not delivered yet), or HD_ENOMEM. */
int api_http_stream_write(struct api_http_conn *c, const void *data, size_t len);

/* Bytes accepted by api_http_stream_write() and not yet written to the
 * socket. Producers pause above their own threshold and resume on DRAINED. */
size_t api_http_stream_queued(const struct api_http_conn *c);

/* api_http_stream_write() of several buffers at once, in order: what the
 * socket takes at once is written from the caller's memory without a copy,
 * the rest is copied. For streams and upgraded connections. */
int api_http_stream_writev(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs);

/* Called once, on the loop thread, when lent buffers are no longer used. */
typedef void (*api_http_release_cb)(void *arg);

/* api_http_stream_writev() of buffers lent rather than copied: they must
 * stay unchanged until release(arg), which runs exactly once, on the loop
 * thread, possibly from inside this call, whatever the result. On a server
 * with a writer (api_http_server_start_writer) a plaintext connection is
 * written by the writer thread from its first such call on (once nothing
 * of it is queued on the loop); otherwise this writes or copies at once. */
int api_http_stream_writev_lent(struct api_http_conn *c, const uv_buf_t *bufs, unsigned n_bufs,
                                api_http_release_cb release, void *arg);

/* True when api_http_stream_writev_lent() would hand c's buffers to the
 * writer thread now, rather than write or copy them at once: callers
 * that must build lendable buffers first need do so only then. */
bool api_http_stream_lends(const struct api_http_conn *c);

/* Input of an upgraded connection: len bytes, lent for the call. */
typedef void (*api_http_data_cb)(struct api_http_conn *c, const char *data, size_t len,
                                 void *arg);

/* Switches the connection lent with c (an Upgrade request) to another
 * protocol: sends "101 Switching Protocols" with `headers` (complete lines,
 * each ending in "\r\n"; Upgrade and Connection included), then hands every
 * byte read to on_data, starting with any bytes the client sent right after
 * its request (on_data may run before this returns). Writes, DRAINED,
 * CLOSED, api_http_stream_queued() and api_http_stream_end() work as for a
 * stream; c stays lent until api_http_stream_end(). Returns 0, or
 * HD_ESHUTDOWN (client gone) / HD_ENOMEM; either way the caller ends it
 * with api_http_stream_end(). */
int api_http_upgrade(struct api_http_conn *c, const char *headers, api_http_data_cb on_data,
                     api_http_stream_cb on_event, void *arg);

/* Stops (paused) or resumes reading an upgraded connection: the owner's
 * backpressure when it cannot take more input yet. */
void api_http_read_pause(struct api_http_conn *c, bool paused);

/* Ends the stream: queued data is flushed, then the connection closes. Gives
 * c back; call it exactly once per api_http_stream_begin(), also after
 * CLOSED (it may be called from inside the event callback). */
void api_http_stream_end(struct api_http_conn *c);

#endif
