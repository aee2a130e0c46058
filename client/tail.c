/* SPDX-License-Identifier: Apache-2.0 */
/* libherald tail: follow a channel over SSE, resuming with Last-Event-ID. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "hd_error.h"

struct tail {
    struct herald_client *c;
    const char *channel;
    herald_message_cb cb;
    void *arg;
    uint64_t last_seq;        /* last seq delivered to cb (or the start point) */
    char last_id[64];         /* its event's id ("SEQ" or "SEQ@EPOCH"), "" if none */
    struct herald__resp *resp; /* response of the current connection */
    struct herald__sse sse;   /* event parser of the current connection */
    struct herald__buf scratch; /* decoded payload_b64 */
    bool stopped;             /* cb asked to stop */
    bool streaming;           /* this connection answered 200 event-stream */
    int err;                  /* a permanent error found while parsing */
    char why[256];            /* its explanation */
};

static int tail_fail(struct tail *t, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tail_fail(struct tail *t, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->why, sizeof t->why, fmt, ap);
    va_end(ap);
    t->err = rv;
    return rv;
}

/* One SSE event: a message, checked against the seq we expect next. */
static int tail_event_cb(void *arg, const struct herald__sse_event *ev)
{
    struct tail *t = arg;
    if (strcmp(ev->type, "message") != 0) return 0; /* other event types: not ours */
    json_error_t jerr;
    json_t *obj = json_loadb(ev->data, ev->data_len, 0, &jerr);
    if (obj == NULL) return tail_fail(t, HD_ECORRUPT, "event data is not JSON: %s", jerr.text);
    struct herald_message m;
    int rv = herald__message_from_json(obj, &t->scratch, &m, t->why, sizeof t->why);
    if (rv != 0) {
        t->err = rv;
    } else if (m.seq != t->last_seq + 1) {
        /* The contract promises every message once, in order; a gap or a
         * repeat means the server broke it, which the consumer must hear. */
        rv = tail_fail(t, HD_ECORRUPT, "server sent seq %" PRIu64 " after %" PRIu64 " (%s)",
                       m.seq, t->last_seq, m.seq > t->last_seq ? "gap" : "repeat");
    } else if (ev->id_set && strtoull(ev->id, NULL, 10) != m.seq) {
        rv = tail_fail(t, HD_ECORRUPT, "event id \"%.40s\" differs from seq %" PRIu64, ev->id,
                       m.seq);
    } else {
        if (m.channel == NULL) m.channel = t->channel;
        t->last_seq = m.seq;
        /* A resume sends the id back as it came: it names the epoch too,
         * so a delete since is answered gone, not read as a seq of the
         * new epoch. */
        size_t id_len = ev->id_set ? strlen(ev->id) : 0;
        bool plain = id_len > 0 && id_len < sizeof t->last_id &&
                     strspn(ev->id, "0123456789@") == id_len;
        snprintf(t->last_id, sizeof t->last_id, "%s", plain ? ev->id : "");
        if (t->cb(t->arg, &m) != 0) {
            t->stopped = true;
            rv = HD_ESHUTDOWN; /* unwinds the parsers; not an error */
        }
    }
    json_decref(obj);
    return rv;
}

/* Body bytes: fed to the SSE parser on a 200 event stream, kept otherwise
 * so that an error answer can be reported. */
static int tail_body_cb(void *arg, const char *data, size_t len)
{
    struct tail *t = arg;
    struct herald__resp *r = t->resp;
    if (r->status != 200) {
        if (r->body.len + len > 4096) return 0; /* enough to explain the error */
        return herald__buf_append(&r->body, data, len);
    }
    if (!t->streaming) {
        const char *ct = r->content_type.data ? r->content_type.data : "";
        if (strncmp(ct, "text/event-stream", 17) != 0) {
            return tail_fail(t, HD_ECORRUPT, "tail answered Content-Type \"%.60s\"", ct);
        }
        t->streaming = true;
    }
    return herald__sse_feed(&t->sse, data, len);
}

/* Opens one tail connection and follows it until it ends. Returns 0 when the
 * stream ended (or was stopped), else the exchange's error. */
static int tail_connect(struct tail *t, bool resume, struct herald__resp *r)
{
    struct herald_client *c = t->c;
    char target[HERALD_CHANNEL_MAX + 64];
    char headers[192];
    snprintf(target, sizeof target, "/v1/channels/%s/tail?after_seq=%" PRIu64, t->channel,
             t->last_seq);
    /* Last-Event-ID is the SSE way to resume (the last event's id, which
     * names its epoch); after_seq carries the same point for servers or
     * proxies that drop the header. */
    int n = snprintf(headers, sizeof headers, "Accept: text/event-stream\r\n"
                                              "Cache-Control: no-cache\r\n");
    /* Before any event the query alone says where to start, in the
     * channel's epoch now, as on the first connection. */
    if (resume && t->last_id[0] != '\0') {
        snprintf(headers + n, sizeof headers - (size_t)n, "Last-Event-ID: %s\r\n", t->last_id);
    }
    herald__resp_init(r, tail_body_cb, t);
    r->idle_timeout_ms = c->tail_idle_timeout_ms;
    herald__sse_init(&t->sse, tail_event_cb, t);
    t->resp = r;
    t->streaming = false;
    int wait_ms = c->request_timeout_ms > c->tail_idle_timeout_ms ? c->request_timeout_ms
                                                                  : c->tail_idle_timeout_ms;
    bool sent;
    int rv = herald__exchange(c, "GET", target, headers, NULL, 0, herald__now_ms() + wait_ms, r,
                              &sent);
    herald__sse_close(&t->sse);
    /* A stream never leaves the connection reusable in a known state. */
    herald__disconnect(c);
    return rv;
}

int herald_tail(struct herald_client *c, const char *channel, uint64_t after_seq,
                herald_message_cb cb, void *arg)
{
    if (herald__channel_check(c, channel) != 0) return HD_EINVAL;
    struct tail t = {.c = c, .channel = channel, .cb = cb, .arg = arg, .last_seq = after_seq};
    int64_t give_up = herald__now_ms() + c->retry_deadline_ms;
    int rv = 0;
    for (int attempt = 1, connections = 0;; connections++) {
        struct herald__resp r;
        rv = tail_connect(&t, connections > 0, &r);
        int status = rv == 0 || t.streaming ? r.status : 0;
        int retry_after = r.retry_after_s;
        if (t.stopped) {
            rv = 0;
        } else if (t.err != 0) {
            rv = herald__fail(c, t.err, "tail %s: %s", channel, t.why);
        } else if (rv == 0 && status != 200 && !herald__status_retryable(status)) {
            rv = herald__http_error(c, &r, "tail");
        } else if (rv == 0 || rv == HD_EIO || rv == HD_EUNAVAIL || rv == HD_EUNKNOWN) {
            rv = 1; /* the stream ended or failed: reconnect */
        }
        if (rv == 1 && herald__status_retryable(status)) herald__http_error(c, &r, "tail");
        herald__resp_close(&r);
        if (rv != 1) break;
        if (t.streaming) { /* a healthy connection restarts the patience */
            attempt = 1;
            give_up = herald__now_ms() + c->retry_deadline_ms;
        }
        if (!herald__backoff(c, attempt++, retry_after, give_up)) {
            char last[sizeof c->errmsg];
            snprintf(last, sizeof last, "%s", c->errmsg);
            rv = herald__fail(c, HD_EUNAVAIL, "tail %s: no connection for %d ms: %s", channel,
                              c->retry_deadline_ms, last);
            break;
        }
    }
    herald__buf_free(&t.scratch);
    return rv;
}
