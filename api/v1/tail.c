/* SPDX-License-Identifier: Apache-2.0 */
/* SSE tails: one channel (/v1/channels/{ch}/tail) or many (/v1/tail), resumable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "delivery_parse.h"
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

/* The token was removed: the stream ends (what is queued is sent first). */
static void api__tail_revoke(struct api_session *sess)
{
    HD_LOG_INFO("tail of token '%s' ended: the token was removed", sess->who.name);
    api__tail_shutdown(sess);
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
    if (rv == HD_EGONE) {
        HD_LOG_INFO("tail: its channel was trimmed past its position or deleted; ending it");
    } else {
        HD_LOG_WARN("tail: %s; closing it", hd_strerror(rv));
    }
    api__tail_end(arg);
}

/* "event: gone" with the channel's first seq and epoch: a trim removed
 * what was to come next, or the channel was deleted. Never a silent skip. */
static int api__tail_gone_event(struct api_tail *t, const char *ch, size_t len)
{
    struct log_channel_info info;
    int rv = log_channel_info(t->server->log, ch, len, &info);
    json_t *o = rv == 0 ? api_gone_json(ch, len, &info) : NULL;
    char *data = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t data_len = data != NULL ? strlen(data) : 0;
    uint8_t *ev = data != NULL ? hd_malloc(data_len + 32) : NULL;
    if (ev != NULL) {
        int n = snprintf((char *)ev, data_len + 32, "event: gone\ndata: %s\n\n", data);
        rv = fan_conn_write(t->fc, ev, (size_t)n);
    } else if (rv == 0) {
        rv = HD_ENOMEM;
    }
    free(data);
    return rv;
}

/* A one-channel tail ends with its channel, after the event. */
static int api__tail_one_gone(struct fan_conn *fc, const char *ch, size_t len, void *arg)
{
    (void)fc;
    int rv = api__tail_gone_event(arg, ch, len);
    return rv != 0 ? rv : HD_EGONE;
}

/* A multi-channel stream goes on with its other channels. */
static int api__tail_many_gone(struct fan_conn *fc, const char *ch, size_t len, void *arg)
{
    (void)fc;
    return api__tail_gone_event(arg, ch, len);
}

/* Starts the stream; NULL (answered) on failure. */
static struct api_tail *api__tail_open(struct api_server *s, struct api_http_conn *c,
                                       bool multi, const struct api_principal *who)
{
    if (!api_limit_stream_open(s, who)) {
        api_limit_respond(s, c, 1, "open streams");
        return NULL;
    }
    struct api_tail *t = s->hub != NULL ? hd_calloc(1, sizeof *t) : NULL;
    static const struct fan_conn_ops one = {FAN_ENC_SSE_EVENT, false, api__tail_overflow,
                                            api__tail_error, api__tail_one_gone};
    static const struct fan_conn_ops many = {FAN_ENC_SSE_DATA, true, api__tail_overflow,
                                             api__tail_error, api__tail_many_gone};
    if (t != NULL) {
        t->fc = fan_conn_new(api_hub_fan(s->hub), c, multi ? &many : &one, t);
    }
    if (t == NULL || t->fc == NULL) {
        api_limit_stream_closed(s, who);
        hd_free(t);
        api_respond_error(s, c, 503, "unavailable", "cannot start a tail now");
        return NULL;
    }
    t->server = s;
    t->conn = c;
    t->sess.shutdown = api__tail_shutdown;
    t->sess.keepalive = api__tail_keepalive;
    t->sess.who = *who;
    t->sess.revoke = api__tail_revoke;
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

/* Where the tail starts: Last-Event-ID (a reconnect: its seq and epoch)
 * wins over the query (the channel's epoch now, *epoch FAN_NOW). */
static int api__tail_start(struct api_server *s, const struct api_http_request *req,
                           const char *channel, size_t len, uint64_t *after, uint64_t *epoch,
                           const char **bad)
{
    size_t id_len = 0;
    const char *id = api_http_header(req, "Last-Event-ID", &id_len);
    if (id != NULL) {
        *bad = "Last-Event-ID must be the id of the last event received";
        return api_sse_position_decode(id, id_len, after, epoch);
    }
    *epoch = FAN_NOW;
    return api__read_position(s, req, channel, len, after, bad);
}

/* A resume of an epoch this node has not reached (another node applied a
 * delete this one has not yet) is refused before the stream starts: taken
 * from the epoch this node has, it would be answered gone from an older
 * epoch, or read at that seq of the older one. */
static void api__tail_respond_epoch_ahead(struct api_server *s, struct api_http_conn *c)
{
    api_respond_error(s, c, 503, "epoch_ahead",
                      "this node has not applied the channel's delete yet");
}

void api_tail(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len,
              const struct api_principal *who)
{
    uint64_t after = 0, epoch = 0, head = 0;
    const char *bad = NULL;
    int rv = api__tail_start(s, req, channel, len, &after, &epoch, &bad);
    if (rv != 0) {
        api_respond_error(s, c, 400, "bad_query", bad != NULL ? bad : "bad position");
        return;
    }
    struct log_channel_info info;
    rv = log_channel_info(s->log, channel, len, &info);
    if (rv != 0) {
        api_respond_cons_error(s, c, rv);
        return;
    }
    epoch = epoch == FAN_NOW ? info.epoch : epoch;
    if (epoch > info.epoch) {
        api__tail_respond_epoch_ahead(s, c);
        return;
    }
    if (epoch < info.epoch || log_position_gone(&info, after)) {
        api_respond_gone(s, c, channel, len); /* before the stream starts */
        return;
    }
    struct api_tail *t = api__tail_open(s, c, false, who);
    if (t != NULL && fan_conn_subscribe(t->fc, channel, len, after, epoch, after, 0, &head) != 0) {
        HD_LOG_WARN("tail of %.*s: cannot subscribe; closing it", (int)len, channel);
        api__tail_end(t);
    }
}

/* ---- Many channels ------------------------------------------------- */

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

/* Subscribes every channel of the list; false (ended) on failure. */
static bool api__tail_subscribe_all(struct api_server *s, struct api_tail *t,
                                    const struct api_tail_item *items, size_t n,
                                    const uint64_t *resumed, const uint64_t *epochs,
                                    const bool *given)
{
    for (size_t i = 0; i < n; i++) {
        const struct api_tail_item *it = &items[i];
        uint64_t after = 0, head = 0;
        uint64_t listed = it->pos.kind == API_POS_SEQ ? it->pos.value : FAN_NOW;
        int rv = given[i] ? (after = resumed[i], 0)
                          : api_position_resolve(s, it->channel, it->len, &it->pos, &after);
        if (rv == 0) {
            /* A resumed position of another epoch ends with an event: gone. */
            rv = fan_conn_subscribe(t->fc, it->channel, it->len, after,
                                    given[i] ? epochs[i] : FAN_NOW, listed, (uint32_t)i, &head);
        }
        if (rv != 0 && rv != HD_EEXIST) {
            HD_LOG_WARN("multi-channel tail: cannot subscribe: %s; closing it",
                        hd_strerror(rv));
            api__tail_end(t);
            return false;
        }
    }
    /* "now" and ts= positions are resolved: say where they are before any
     * message, so that a reconnect right away loses nothing. */
    if (fan_conn_write_ids(t->fc) != 0) {
        api__tail_end(t);
        return false;
    }
    return true;
}

/* 1 if a resumed position of items is of an epoch this node has not
 * reached, 0 if none is, or the error of reading a channel's info. */
static int api__tail_any_ahead(struct api_server *s, const struct api_tail_item *items,
                               size_t n, const uint64_t *epochs, const bool *given)
{
    for (size_t i = 0; i < n; i++) {
        if (!given[i] || epochs[i] == 0) {
            continue;
        }
        struct log_channel_info info;
        int rv = log_channel_info(s->log, items[i].channel, items[i].len, &info);
        if (rv != 0) {
            return rv;
        }
        if (epochs[i] > info.epoch) {
            return 1;
        }
    }
    return 0;
}

void api_tail_multi(struct api_server *s, struct api_http_conn *c,
                    const struct api_http_request *req, const struct api_principal *who)
{
    size_t text_len = 0, n = 0, leid_len = 0;
    char *text = api__tail_list_text(req, &text_len);
    struct api_tail_item *items = NULL;
    const char *bad = "channels=ch:pos,... is required";
    int rv = text == NULL ? HD_EINVAL
                          : api_tail_list_decode(text, text_len, s->config.tail_channels_max,
                                                 &items, &n, &bad);
    uint64_t *resumed = rv == 0 ? hd_calloc(n, sizeof *resumed) : NULL;
    uint64_t *epochs = rv == 0 ? hd_calloc(n, sizeof *epochs) : NULL;
    bool *given = rv == 0 ? hd_calloc(n, sizeof *given) : NULL;
    if (rv == 0 && (resumed == NULL || epochs == NULL || given == NULL)) {
        rv = HD_ENOMEM;
        bad = "out of memory";
    }
    const char *leid = api_http_header(req, "Last-Event-ID", &leid_len);
    if (rv == 0 && leid != NULL &&
        api_tail_resume_decode(leid, leid_len, n, resumed, epochs, given) != 0) {
        rv = HD_EINVAL;
        bad = "Last-Event-ID must be the id of the last event received";
    }
    size_t refused = n;
    for (size_t i = 0; rv == 0 && i < n && refused == n; i++) {
        if (!api_auth_allows(s, who, HD_SCOPE_SUBSCRIBE, items[i].channel, items[i].len)) {
            refused = i;
        }
    }
    if (rv != 0) {
        api_respond_error(s, c, rv == HD_ENOMEM ? 503 : 400, "bad_query", bad);
    } else if (refused < n) {
        /* one channel outside the token's scope refuses the whole stream */
        api_auth_note_forbidden(s, c, "/v1/tail", who, HD_SCOPE_SUBSCRIBE,
                                items[refused].channel, items[refused].len);
        api_auth_respond_forbidden(s, c, HD_SCOPE_SUBSCRIBE);
    } else if ((rv = api__tail_any_ahead(s, items, n, epochs, given)) != 0) {
        if (rv > 0) {
            api__tail_respond_epoch_ahead(s, c);
        } else {
            api_respond_cons_error(s, c, rv);
        }
    } else {
        struct api_tail *t = api__tail_open(s, c, true, who);
        if (t != NULL) {
            api__tail_subscribe_all(s, t, items, n, resumed, epochs, given);
        }
    }
    hd_free(text);
    hd_free(items);
    hd_free(resumed);
    hd_free(epochs);
    hd_free(given);
}
