/* SPDX-License-Identifier: Apache-2.0 */
/* libherald internals shared between its files and its unit tests. */
#ifndef HERALD_CLIENT_INTERNAL_H
#define HERALD_CLIENT_INTERNAL_H

#include <http_parser.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "herald/herald.h"

/* ---------------------------------------------------------------- buffers */

/* A growable byte buffer, always NUL-terminated once non-empty. */
struct herald__buf {
    char *data; /* heap, or NULL */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
};

/* Makes room for extra more bytes (plus the NUL). */
int herald__buf_reserve(struct herald__buf *b, size_t extra);
int herald__buf_append(struct herald__buf *b, const void *p, size_t n);
int herald__buf_printf(struct herald__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void herald__buf_reset(struct herald__buf *b);
/* Appends "Authorization: Bearer TOKEN\r\n" (nothing for NULL). HD_EINVAL
 * for a token with bytes that are not printable ASCII (a header
 * injection). */
int herald__auth_header(struct herald__buf *b, const char *token);
void herald__buf_free(struct herald__buf *b);
/* Appends the base64 of len bytes (common/hd_base64.h), NUL-terminated. */
int herald__buf_append_base64(struct herald__buf *b, const uint8_t *in, size_t len);

/* ------------------------------------------------------------------ misc */

/* Fills out with len bytes from getrandom; 0 or an HD_E* code. */
int herald__random_bytes(uint8_t *out, size_t len);

/* Sets c->errmsg (printf-style) and returns rv, for `return herald__fail(...)`. */
int herald__fail(struct herald_client *c, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 0 if channel (NUL-terminated, may be NULL) is a channel id by
 * hd_channel_valid(); else HD_EINVAL with errmsg set. */
int herald__channel_check(struct herald_client *c, const char *channel);

/* Parses one message object of a read or tail answer into *msg; pointers
 * borrow from obj, except that a payload_b64 is decoded into *scratch.
 * HD_ECORRUPT with a reason in why[] when a field is missing or mistyped. */
int herald__message_from_json(json_t *obj, struct herald__buf *scratch,
                              struct herald_message *msg, char *why, size_t why_size);

/* -------------------------------------------------------- HTTP responses */

/* Streaming body sink; non-zero return aborts parsing with that code. */
typedef int (*herald__body_cb)(void *arg, const char *data, size_t len);

/* Incremental HTTP/1.1 response parser over http_parser. Collects the status,
 * a few headers and the body (or streams the body to body_cb). */
struct herald__resp {
    http_parser parser;          /* the http_parser state */
    int status;                  /* status code once headers are complete */
    bool headers_done;           /* headers complete */
    bool done;                   /* whole message parsed */
    bool keep_alive;             /* connection may be reused after this */
    bool in_field;               /* last header callback was a field name */
    int retry_after_s;           /* Retry-After seconds, -1 if absent */
    struct herald__buf field;    /* current header name */
    struct herald__buf value;    /* current header value */
    struct herald__buf content_type; /* Content-Type value */
    struct herald__buf ws_upgrade;   /* Upgrade value (WebSocket handshake) */
    struct herald__buf ws_connection; /* Connection value (idem) */
    struct herald__buf ws_accept;    /* Sec-WebSocket-Accept value (idem) */
    struct herald__buf body;     /* the body when body_cb is NULL */
    herald__body_cb body_cb;     /* streaming sink, or NULL */
    void *body_arg;              /* argument of body_cb */
    int cb_rv;                   /* first non-zero body_cb or internal error */
    size_t body_max;             /* cap on a collected body */
    int idle_timeout_ms;         /* > 0: the deadline moves on with each read */
};

void herald__resp_init(struct herald__resp *r, herald__body_cb body_cb, void *body_arg);
void herald__resp_close(struct herald__resp *r);
/* Feeds bytes; len == 0 signals EOF. Returns bytes consumed (< len only when
 * the message ended early) or a negative HD_E* code (HD_ECORRUPT for bad
 * HTTP, or the body_cb's code). */
long herald__resp_feed(struct herald__resp *r, const char *data, size_t len);

/* ------------------------------------------------------------------- SSE */

/* One dispatched server-sent event. */
struct herald__sse_event {
    const char *type;    /* "message" unless an event: field said otherwise */
    const char *data;    /* data lines joined with '\n', NUL-terminated */
    size_t data_len;     /* length of data */
    const char *id;      /* the last event ID seen so far (may be "") */
    bool id_set;         /* this event carried an id: field */
};

typedef int (*herald__sse_cb)(void *arg, const struct herald__sse_event *ev);

/* Incremental text/event-stream parser (WHATWG HTML "server-sent events"). */
struct herald__sse {
    struct herald__buf line;  /* current partial line */
    struct herald__buf data;  /* data buffer of the event being built */
    struct herald__buf type;  /* event type of the event being built */
    struct herald__buf last_id; /* last event ID buffer */
    bool id_set;              /* the event being built carried an id */
    bool have_data;           /* at least one data: line */
    bool skip_lf;             /* previous chunk ended in '\r' */
    size_t line_max;          /* cap on one line, bytes */
    herald__sse_cb cb;        /* called per dispatched event */
    void *arg;                /* argument of cb */
};

void herald__sse_init(struct herald__sse *s, herald__sse_cb cb, void *arg);
void herald__sse_close(struct herald__sse *s);
/* Feeds bytes. Returns 0, HD_ETOOBIG for an over-long line, HD_ENOMEM, or
 * the first non-zero value a callback returned. */
int herald__sse_feed(struct herald__sse *s, const char *data, size_t len);

/* ------------------------------------------------------------- transport */

/* Monotonic clock in milliseconds. */
int64_t herald__now_ms(void);

/* One request/response exchange on c's keep-alive connection (opening one if
 * needed, and retrying once on a fresh connection if a reused one turns out
 * to be stale). extra_headers is "Name: value\r\n"…, or NULL. deadline_ms is
 * an absolute herald__now_ms() time. *sent reports whether any request byte
 * may have reached the server. Returns 0 once a whole response is parsed
 * into r (any status), or HD_EIO / HD_EUNAVAIL / HD_EUNKNOWN (timeout). */
int herald__exchange(struct herald_client *c, const char *method, const char *target,
                     const char *extra_headers, const char *body, size_t body_len,
                     int64_t deadline_ms, struct herald__resp *r, bool *sent);

/* Drops c's connection. */
void herald__disconnect(struct herald_client *c);

/* ------------------------------------------------------------------ TLS */

struct hd_tls;
struct hd_tls_ctx;

/* An https:// connection: the socket and its TLS session (tls_conn.c). */
struct herald__tls {
    struct hd_tls *s;       /* the session (common/hd_tls.h) */
    int fd;                 /* the socket (not owned) */
    struct herald__buf out; /* ciphertext the socket has not taken yet */
    size_t out_off;         /* of out, sent */
    struct herald__buf in;  /* plaintext not handed out yet */
    size_t in_off;          /* of in, handed out */
    bool eof;               /* the server closed (close_notify or TCP) */
};

/* Makes *ctx (a client context trusting ca_file, or the system's store
 * for NULL) unless it exists. HD_EINVAL with errmsg. */
int herald__tls_ctx(struct hd_tls_ctx **ctx, const char *ca_file, char *errmsg, size_t len);
/* Starts TLS on the connected non-blocking socket fd, for a server named
 * host (its certificate must say so); the ClientHello waits in out. */
int herald__tls_open(struct herald__tls **out, struct hd_tls_ctx *ctx, const char *host, int fd,
                     char *errmsg, size_t errmsg_len);
void herald__tls_close(struct herald__tls *t);
bool herald__tls_established(const struct herald__tls *t);
/* Ciphertext waits for the socket: wait until it is writable, flush. */
bool herald__tls_want_write(const struct herald__tls *t);
/* Sends waiting ciphertext: 0 all sent, 1 the socket is full, -1 errno. */
int herald__tls_flush(struct herald__tls *t);
/* As send(2): encrypts all len bytes (returns len) and sends what the
 * socket takes; -1 with errno (EPROTO: the session failed). */
ssize_t herald__tls_send(struct herald__tls *t, const void *data, size_t len);
/* As recv(2) on a non-blocking socket: plaintext, 0 at the end, -1 with
 * errno EAGAIN (nothing yet; also while the handshake goes on) or EPROTO
 * (the session failed: herald__tls_why). */
ssize_t herald__tls_recv(struct herald__tls *t, void *buf, size_t len);
/* Why the session failed ("the server's certificate was refused: ..."). */
const char *herald__tls_why(const struct herald__tls *t);

/* backoff_initial_ms doubled `doublings` times, at most backoff_max_ms: the
 * delay before a retry, before any jitter. */
int64_t herald__backoff_delay(const struct herald_client *c, int doublings);

/* Sleep before retry number `attempt` (1-based): exponential backoff with
 * jitter, at least retry_after_s seconds when given, never past deadline_ms.
 * Returns false when the deadline leaves no room for another attempt. */
bool herald__backoff(struct herald_client *c, int attempt, int retry_after_s,
                     int64_t deadline_ms);

/* Maps a non-2xx response to an HD_E* code and sets errmsg from its JSON
 * error body. */
int herald__http_error(struct herald_client *c, const struct herald__resp *r,
                       const char *what);

/* One request, not retried, whose 200 body (a JSON document, NUL-ended)
 * is handed back in *json_text (free with herald_free); any other answer
 * is an error with errmsg set. body, if any, is sent as application/json. */
int herald__json_call(struct herald_client *c, const char *method, const char *target,
                      const char *body, int64_t deadline_ms, char **json_text);

/* True for statuses worth retrying (the outcome is unknown or transient). */
bool herald__status_retryable(int status);

/* Fills map from len bytes of a /v1/shards body (client/shards.c): 0, or
 * HD_ECORRUPT / HD_ENOMEM with c->errmsg set and map left empty. */
struct herald_shard_map;
int herald__shards_parse(struct herald_client *c, const char *body, size_t len,
                         struct herald_shard_map *map);

#endif
