/* SPDX-License-Identifier: Apache-2.0 */
/* SSE tails: one channel (/v1/channels/{ch}/tail) or many (/v1/tail), resumable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fanout.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "log.h"

/*
 * A tail is a delivery session of the fan-out engine (fanout.h), which
 * does the ordering, the switch from history to live, and the slow
 * consumers. A one-channel tail's events carry "id: SEQ", shared by every
 * tail of the channel. A multi-channel stream's events carry the position
 * of every channel that moved since the request's list, as "index:seq", so
 * that Last-Event-ID with the same request resumes every channel exactly.
 */

struct api_tail {
    struct api_session sess;
    struct api_server *server;
    struct api_http_conn *conn;
    struct fan_conn *fc;
};

static void api__tail_end(struct api_tail *t)
{
    api_hub_remove(t->sess.hub, &t->sess);
    fan_conn_free(t->fc);
    api_http_stream_end(t->conn);
    hd_free(t);
}

static void api__tail_shutdown(struct api_session *sess)
{
    struct api_tail *t = (struct api_tail *)sess;
    fan_conn_flush(t->fc);
    api__tail_end(t);
}

static void api__tail_keepalive(struct api_session *sess)
{
    /* A comment line: keeps proxies from timing the stream out and lets
     * us notice a vanished client. */
    struct api_tail *t = (struct api_tail *)sess;
    uint8_t *line = hd_malloc(14);
    if (line != NULL) {
        memcpy(line, ": keep-alive\n\n", 14);
        fan_conn_write(t->fc, line, 14);
    }
}

static void api__tail_stream_event(struct api_http_conn *c, int event, void *arg)
{
    (void)c;
    struct api_tail *t = arg;
    if (event == API_HTTP_STREAM_CLOSED) {
        api__tail_end(t);
    } else {
        fan_conn_drained(t->fc);
    }
}

static void api__tail_overflow(struct fan_conn *fc, void *arg)
{
    (void)fc;
    HD_LOG_INFO("tail: client too slow, closing");
    api__tail_end(arg);
}

static void api__tail_error(struct fan_conn *fc, int rv, void *arg)
{
    (void)fc;
    HD_LOG_WARN("tail: %s; closing it", hd_strerror(rv));
    api__tail_end(arg);
}

/* Starts the stream; NULL (answered) on failure. */
static struct api_tail *api__tail_open(struct api_server *s, struct api_http_conn *c,
                                       bool multi)
{
    struct api_tail *t = s->hub != NULL ? hd_calloc(1, sizeof *t) : NULL;
    static const struct fan_conn_ops one = {FAN_ENC_SSE_EVENT, false, api__tail_overflow,
                                            api__tail_error};
    static const struct fan_conn_ops many = {FAN_ENC_SSE_DATA, true, api__tail_overflow,
                                             api__tail_error};
    if (t != NULL) {
        t->fc = fan_conn_new(api_hub_fan(s->hub), c, multi ? &many : &one, t);
    }
    if (t == NULL || t->fc == NULL) {
        hd_free(t);
        api_respond_error(s, c, 503, "unavailable", "cannot start a tail now");
        return NULL;
    }
    t->server = s;
    t->conn = c;
    t->sess.shutdown = api__tail_shutdown;
    t->sess.keepalive = api__tail_keepalive;
    api_hub_add(s->hub, &t->sess);
    s->metrics.requests++;
    s->metrics.responses_by_class[2]++;
    int rv = api_http_stream_begin(c, 200, "text/event-stream",
                                   "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
                                   api__tail_stream_event, t);
    if (rv != 0) {
        api__tail_end(t); /* the client is gone: no CLOSED follows */
        return NULL;
    }
    return t;
}

/* ---- One channel --------------------------------------------------- */

/* Where the tail starts: Last-Event-ID (a reconnect) wins over the query. */
static int api__tail_start(struct api_server *s, const struct api_http_request *req,
                           const char *channel, size_t len, uint64_t *after, const char **bad)
{
    size_t id_len = 0;
    const char *id = api_http_header(req, "Last-Event-ID", &id_len);
    if (id != NULL) {
        *bad = "Last-Event-ID must be the seq of the last event received";
        return hd_u64_parse(id, id_len, after);
    }
    return api__read_position(s, req, channel, len, after, bad);
}

void api_tail(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len)
{
    uint64_t after = 0, head = 0;
    const char *bad = NULL;
    int rv = api__tail_start(s, req, channel, len, &after, &bad);
    if (rv != 0) {
        api_respond_error(s, c, 400, "bad_query", bad != NULL ? bad : "bad position");
        return;
    }
    struct api_tail *t = api__tail_open(s, c, false);
    if (t != NULL && fan_conn_subscribe(t->fc, channel, len, after, after, 0, &head) != 0) {
        HD_LOG_WARN("tail of %.*s: cannot subscribe; closing it", (int)len, channel);
        api__tail_end(t);
    }
}

/* ---- Many channels ------------------------------------------------- */

struct api_tail_pos {
    const char *channel;
    size_t len;
    uint64_t after;   /* where to start: the list's, or Last-Event-ID's */
    uint64_t listed;  /* the list's position; FAN_NOW unless a seq */
};

/* One "channel[:position]" item; position N, "now" or "ts=S.U". */
static const char *api__tail_item(struct api_server *s, char *item, size_t n,
                                  struct api_tail_pos *p)
{
    char *colon = memchr(item, ':', n);
    /* Channel ids may hold ':' themselves: the position is after the last. */
    for (char *c = colon; c != NULL; c = memchr(c + 1, ':', n - (size_t)(c + 1 - item))) {
        colon = c;
    }
    size_t clen = colon != NULL ? (size_t)(colon - item) : n;
    const char *pos = colon != NULL ? colon + 1 : "now";
    size_t plen = colon != NULL ? n - clen - 1 : 3;
    if (!hd_channel_valid(item, clen)) {
        return "channel ids are 1-128 characters of [A-Za-z0-9._:-]";
    }
    *p = (struct api_tail_pos){item, clen, 0, FAN_NOW};
    p->listed = FAN_NOW;
    if (plen == 3 && memcmp(pos, "now", 3) == 0) {
        p->after = FAN_NOW;
    } else if (plen > 3 && memcmp(pos, "ts=", 3) == 0) {
        uint64_t ts = 0;
        if (hd_ts_parse(pos + 3, plen - 3, &ts) != 0 ||
            log_seq_at_ts(s->log, item, clen, ts, &p->after) != 0) {
            return "a ts= position is seconds.microseconds, like ts=1732234567.000123";
        }
    } else if (hd_u64_parse(pos, plen, &p->after) != 0) {
        return "a position is a seq, now, or ts=seconds.microseconds";
    } else {
        p->listed = p->after;
    }
    return NULL;
}

/* Splits the list (commas or newlines) into positions. */
static const char *api__tail_list(struct api_server *s, char *list, size_t len,
                                  struct api_tail_pos **out, size_t *n_out)
{
    size_t max = s->config.tail_channels_max, n = 0;
    struct api_tail_pos *pos = hd_calloc(max, sizeof *pos);
    if (pos == NULL) {
        return "out of memory";
    }
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && list[end] != ',' && list[end] != '\n' && list[end] != '\r') end++;
        if (end > i) {
            const char *bad = n == max ? "too many channels for one stream (use the WebSocket)"
                                       : api__tail_item(s, list + i, end - i, &pos[n]);
            if (bad != NULL) {
                hd_free(pos);
                return bad;
            }
            n++;
        }
        i = end + 1;
    }
    if (n == 0) {
        hd_free(pos);
        return "channels lists at least one channel:position";
    }
    *out = pos;
    *n_out = n;
    return NULL;
}

/* Last-Event-ID "index:seq,...": those positions replace the list's. */
static const char *api__tail_resume(const struct api_http_request *req, struct api_tail_pos *pos,
                                    size_t n)
{
    size_t len = 0;
    const char *v = api_http_header(req, "Last-Event-ID", &len);
    for (size_t i = 0; v != NULL && i < len;) {
        size_t end = i;
        while (end < len && v[end] != ',') end++;
        const char *colon = memchr(v + i, ':', end - i);
        uint64_t index = 0, seq = 0;
        if (colon == NULL || hd_u64_parse(v + i, (size_t)(colon - v - i), &index) != 0 ||
            hd_u64_parse(colon + 1, (size_t)(v + end - colon - 1), &seq) != 0 || index >= n) {
            return "Last-Event-ID must be the id of the last event received";
        }
        pos[index].after = seq;
        i = end + 1;
    }
    return NULL;
}

/* The list from ?channels= or from a POST body, in a new buffer. */
static char *api__tail_list_text(const struct api_http_request *req, size_t *len)
{
    if (req->method == HTTP_POST) {
        char *text = hd_malloc(req->body_len + 1);
        if (text != NULL) {
            memcpy(text, req->body, req->body_len);
            *len = req->body_len;
        }
        return text;
    }
    char *text = hd_malloc(req->query_len + 1);
    if (text != NULL && api_http_query_param(req, "channels", text, req->query_len + 1) != 0) {
        hd_free(text);
        return NULL;
    }
    if (text != NULL) {
        *len = strlen(text);
    }
    return text;
}

void api_tail_multi(struct api_server *s, struct api_http_conn *c,
                    const struct api_http_request *req)
{
    size_t text_len = 0, n = 0;
    char *text = api__tail_list_text(req, &text_len);
    struct api_tail_pos *pos = NULL;
    const char *bad = text == NULL ? "channels=ch:pos,... is required"
                                   : api__tail_list(s, text, text_len, &pos, &n);
    if (bad == NULL) {
        bad = api__tail_resume(req, pos, n);
    }
    if (bad != NULL) {
        api_respond_error(s, c, 400, "bad_query", bad);
        hd_free(text);
        hd_free(pos);
        return;
    }
    struct api_tail *t = api__tail_open(s, c, true);
    for (size_t i = 0; t != NULL && i < n; i++) {
        uint64_t head = 0;
        int rv = fan_conn_subscribe(t->fc, pos[i].channel, pos[i].len, pos[i].after,
                                    pos[i].listed, (uint32_t)i, &head);
        if (rv != 0 && rv != HD_EEXIST) {
            HD_LOG_WARN("multi-channel tail: cannot subscribe: %s; closing it",
                        hd_strerror(rv));
            api__tail_end(t);
            t = NULL;
        }
    }
    /* "now" and ts= positions are resolved: say where they are before any
     * message, so that a reconnect right away loses nothing. */
    if (t != NULL && fan_conn_write_ids(t->fc) != 0) {
        api__tail_end(t);
    }
    hd_free(text);
    hd_free(pos);
}
