/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/subscribe: the WebSocket of subscriptions and appends (docs/subscribe.md). */
#include <string.h>

#include "api.h"
#include "cors.h"
#include "delivery_parse.h"
#include "fanout.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "log.h"
#include "ws.h"

/*
 * One session per WebSocket. Every frame it sends goes through its fan-out
 * connection's queue, messages and its own frames alike, so a channel's
 * "subscribed" comes before its messages and its "unsubscribed" after them.
 * Appends in flight keep the session's memory alive after the connection
 * ends (their answers then go nowhere); past ws_appends_max in flight the
 * session stops reading the socket until answers come back.
 */

struct api_wss {
    struct api_session sess;
    struct api_server *server;
    struct api_ws *ws;
    struct fan_conn *fc;
    size_t in_flight;          /* appends waiting for consensus */
    bool finished;             /* connection ended: only answers pending */
    bool read_paused;
    bool awaiting_token;       /* the first frame must be {"type":"auth"} */
    bool binary;               /* ?frames=binary: every frame sent is binary */
    unsigned auth_ticks;       /* keep-alive ticks spent waiting for it */
};

/* One append in flight: the session and the client's id. */
struct api_wss_append {
    struct api_wss *w;
    char id[API_WS_ID_MAX + 1];
    char channel[HD_CHANNEL_MAX];
    size_t channel_len;
};

/* ---- Sending and closing ------------------------------------------- */

/* Queues text as a frame of the connection's kind. */
static void api__wss_send_text(struct api_wss *w, const char *text, size_t text_len)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (!w->finished && api_ws_encode(text, text_len, w->binary, &frame, &len) == 0) {
        fan_conn_write(w->fc, frame, len);
    }
}

/* Queues obj (taking the reference) as a frame of the connection's kind. */
static void api__wss_send(struct api_wss *w, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text != NULL) {
        api__wss_send_text(w, text, strlen(text));
    }
    free(text);
}

static void api__wss_error(struct api_wss *w, const char *id, const char *channel,
                           size_t channel_len, const char *code, const char *message)
{
    json_t *e = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", message);
    if (e != NULL && id != NULL) json_object_set_new(e, "id", json_string(id));
    if (e != NULL && channel != NULL) {
        json_object_set_new(e, "channel", json_stringn(channel, channel_len));
    }
    w->server->metrics.ws_errors++;
    api__wss_send(w, e);
}

/* The connection is over: drop subscriptions; free once no append waits. */
static void api__wss_finish(struct api_wss *w)
{
    if (!w->finished) {
        w->finished = true;
        api_hub_remove(w->sess.hub, &w->sess);
        fan_conn_free(w->fc);
        w->fc = NULL;
        api_ws_free(w->ws);
        w->ws = NULL;
    }
    if (w->in_flight == 0) {
        hd_free(w);
    }
}

/* Says why, then closes with the RFC 6455 status. */
static void api__wss_close(struct api_wss *w, uint16_t status, const char *reason,
                           const char *message)
{
    if (w->finished) {
        return;
    }
    api__wss_send(w, json_pack("{s:s, s:s, s:s}", "type", "closing", "reason", reason,
                               "message", message));
    fan_conn_flush(w->fc);
    api_ws_close(w->ws, status, reason);
    api__wss_finish(w);
}

/* ---- Operations ---------------------------------------------------- */

/* A channel outside the token's scope gets an error frame for that
 * channel; the rest of the connection goes on. */
static bool api__wss_allowed(struct api_wss *w, const char *id, unsigned scope, const char *ch,
                             size_t len)
{
    if (api_auth_allows(w->server, &w->sess.who, scope, ch, len)) {
        return true;
    }
    api_auth_note_forbidden(w->server, api_ws_conn(w->ws), "WebSocket /v1/subscribe",
                            &w->sess.who, scope, ch, len);
    api__wss_error(w, id, ch, len, "forbidden",
                   scope == HD_SCOPE_APPEND ? "this token lacks the append scope for this channel"
                                            : "this token lacks the subscribe scope for this "
                                              "channel");
    return false;
}

/* Below a trim, or the channel deleted: said, never skipped; the client
 * subscribes again from first_seq - 1 (or 0 in the new epoch). */
static void api__wss_gone(struct api_wss *w, const char *ch, size_t len,
                          const struct log_channel_info *info)
{
    json_t *frame = json_pack("{s:s}", "type", "gone");
    json_t *body = api_gone_json(ch, len, info);
    if (frame != NULL && body != NULL && json_object_update(frame, body) != 0) {
        json_decref(frame);
        frame = NULL;
    }
    json_decref(body);
    api__wss_send(w, frame);
}

static void api__wss_subscribe_one(struct api_wss *w, const char *id, const char *ch,
                                   size_t len, json_t *v)
{
    uint64_t after = 0, head = 0;
    if (!hd_channel_valid(ch, len)) {
        api__wss_error(w, id, ch, len, "bad_channel",
                       "channel ids are 1-128 characters of [A-Za-z0-9._:-]");
        return;
    }
    if (!api__wss_allowed(w, id, HD_SCOPE_SUBSCRIBE, ch, len)) {
        return;
    }
    struct api_position pos;
    if (api_ws_position_decode(v, &pos) != 0 ||
        api_position_resolve(w->server, ch, len, &pos, &after) != 0) {
        api__wss_error(w, id, ch, len, "bad_position",
                       "a position is a seq, \"now\", {\"after_seq\":N} or {\"after_ts\":\"S.U\"}");
        return;
    }
    struct log_channel_info info;
    int rv = log_channel_info(w->server->log, ch, len, &info);
    if (rv == 0 && pos.has_epoch && pos.epoch > info.epoch) {
        /* Taken on a node that applied a delete this one has not yet. */
        api__wss_error(w, id, ch, len, "epoch_ahead",
                       "this node has not applied the channel's delete yet; subscribe again "
                       "shortly or on another node");
        return;
    }
    if (rv == 0 && ((pos.has_epoch && pos.epoch < info.epoch) || log_position_gone(&info, after))) {
        /* Deleted since the position was taken, or below a trim. */
        api__wss_gone(w, ch, len, &info);
        return;
    }
    if (rv == 0) {
        rv = fan_conn_subscribe(w->fc, ch, len, after, info.epoch, after, 0, &head);
    }
    if (rv == HD_EEXIST) {
        api__wss_error(w, id, ch, len, "already_subscribed", "already subscribed");
    } else if (rv == HD_ERANGE) {
        api__wss_error(w, id, ch, len, "too_many_channels",
                       "over the limit of subscriptions per connection or per node");
    } else if (rv != 0) {
        api__wss_error(w, id, ch, len, "overloaded", hd_strerror(rv));
    } else {
        api__wss_send(w, json_pack("{s:s, s:s%, s:I, s:I}", "type", "subscribed", "channel", ch,
                                   len, "head", (json_int_t)head, "epoch",
                                   (json_int_t)info.epoch));
    }
}

static void api__wss_subscribe(struct api_wss *w, const struct api_ws_op *op)
{
    const char *id = op->id;
    json_t *channels = op->channels;
    const char *key;
    size_t key_len;
    json_t *v;
    json_object_keylen_foreach(channels, key, key_len, v)
    {
        api__wss_subscribe_one(w, id, key, key_len, v);
    }
}

static void api__wss_unsubscribe(struct api_wss *w, const struct api_ws_op *op)
{
    const char *id = op->id;
    json_t *channels = op->channels;
    size_t i;
    json_t *v;
    json_array_foreach(channels, i, v)
    {
        const char *ch = json_string_value(v);
        size_t len = json_string_length(v);
        if (ch == NULL || !hd_channel_valid(ch, len)) {
            api__wss_error(w, id, NULL, 0, "bad_channel", "not a channel id");
        } else if (fan_conn_unsubscribe(w->fc, ch, len) != 0) {
            api__wss_error(w, id, ch, len, "not_subscribed", "not subscribed");
        } else {
            api__wss_send(w, json_pack("{s:s, s:s%}", "type", "unsubscribed", "channel", ch,
                                       len));
        }
    }
}

static void api__wss_append_done(void *arg, int rv, const struct log_result *r)
{
    struct api_wss_append *a = arg;
    struct api_wss *w = a->w;
    HD_ASSERT(w->in_flight > 0);
    w->in_flight--;
    if (!w->finished) {
        char ack[API_APPEND_ACK_MAX];
        size_t ack_len = rv == 0 ? api_append_json_ack(ack, a->id, strlen(a->id), a->channel,
                                                        a->channel_len, r->seq, r->ts,
                                                        r->duplicate)
                                 : 0;
        if (ack_len > 0) {
            api__wss_send_text(w, ack, ack_len);
        } else if (rv == 0) { /* an id that needs escaping */
            char ts[HD_TS_STR_MAX];
            hd_ts_format(r->ts, ts, sizeof ts);
            api__wss_send(w, json_pack("{s:s, s:s, s:s%, s:I, s:s, s:b}", "type", "ack", "id",
                                       a->id, "channel", a->channel, a->channel_len, "seq",
                                       (json_int_t)r->seq, "ts", ts, "duplicate", r->duplicate));
        } else {
            const char *message = NULL;
            const char *code = api_cons_error_code(rv, &message);
            api__wss_error(w, a->id, a->channel, a->channel_len, code, message);
        }
        if (w->read_paused && w->in_flight < w->server->config.ws_appends_max / 2) {
            w->read_paused = false;
            api_http_read_pause(api_ws_conn(w->ws), false);
        }
    }
    hd_free(a);
    if (w->finished && w->in_flight == 0) {
        hd_free(w);
    }
}

/* frame_len: the frame's bytes, what limit:bytes counts */
static void api__wss_append(struct api_wss *w, const struct api_ws_op *op, size_t frame_len)
{
    if (!api__wss_allowed(w, op->id, HD_SCOPE_APPEND, op->channel, op->channel_len)) {
        return;
    }
    uint64_t retry = 0;
    bool rate = api_limit_appends(w->server, &w->sess.who, 1, frame_len, &retry);
    if (!rate ||
        !api_limit_channel(w->server, &w->sess.who, op->channel, op->channel_len, &retry)) {
        json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s%, s:I}", "type", "error", "code",
                              "rate_limited", "message",
                              rate ? "this token is over its channels per second limit; "
                                     "nothing was written"
                                   : "this token is over its append rate limit; nothing "
                                     "was written",
                              "id", op->id, "channel", op->channel, op->channel_len,
                              "retry_after_s", (json_int_t)retry);
        w->server->metrics.ws_errors++;
        api__wss_send(w, e);
        return;
    }
    struct api_wss_append *a = hd_calloc(1, sizeof *a);
    if (a == NULL) {
        api__wss_error(w, op->id, op->channel, op->channel_len, "overloaded", "out of memory");
        return;
    }
    a->w = w;
    strcpy(a->id, op->id);
    memcpy(a->channel, op->channel, op->channel_len);
    a->channel_len = op->channel_len;
    struct api_input_error err;
    int rv = op->flat ? api_append_fields(w->server, op->channel, op->channel_len, &op->input,
                                          api__wss_append_done, a, &err)
                      : api_append_object(w->server, op->channel, op->channel_len, op->root,
                                          api__wss_append_done, a, &err);
    if (rv != 0) {
        api__wss_error(w, op->id, op->channel, op->channel_len, err.code, err.message);
        hd_free(a);
        return;
    }
    if (++w->in_flight >= w->server->config.ws_appends_max && !w->read_paused) {
        w->read_paused = true; /* backpressure: answers first */
        api_http_read_pause(api_ws_conn(w->ws), true);
    }
}

/* {"type":"auth","token"}: the token of a connection whose handshake had
 * none (browsers cannot set headers on a WebSocket, and a token in the URL
 * ends up in logs). It must be the first frame; later, or with auth off, it
 * is answered but changes nothing. */
static void api__wss_auth(struct api_wss *w, const struct api_ws_op *op)
{
    if (w->awaiting_token) {
        struct api_principal who;
        if (!api_auth_token(w->server, api_ws_conn(w->ws), "WebSocket /v1/subscribe",
                            op->token, op->token_len, &who)) {
            api__wss_close(w, 1008, "unauthenticated", "unknown token");
            return;
        }
        if (!api_limit_stream_open(w->server, &who)) {
            api__wss_close(w, 1008, "rate_limited", "this token is over its open streams");
            return;
        }
        w->sess.who = who; /* counted as open from here: api_hub_remove closes it */
        w->awaiting_token = false;
        w->sess.keepalive = NULL;
    } else if (w->server->auth != NULL) {
        api__wss_error(w, op->id, NULL, 0, "already_authenticated",
                       "this connection has its token (from the handshake or a first "
                       "auth frame)");
        return;
    }
    json_t *ok = json_pack("{s:s}", "type", "authenticated");
    if (ok != NULL && op->id != NULL) json_object_set_new(ok, "id", json_string(op->id));
    api__wss_send(w, ok);
}

/* A connection that had no token at the handshake and has not sent one:
 * closed at its second keep-alive tick, 15 to 30 s after it opened. */
static void api__wss_auth_deadline(struct api_session *sess)
{
    struct api_wss *w = (struct api_wss *)sess;
    if (w->awaiting_token && ++w->auth_ticks >= 2) {
        api__wss_close(w, 1008, "unauthenticated", "no auth frame in time");
    }
}

static void api__wss_on_text(struct api_ws *ws, const uint8_t *msg, size_t len, void *arg)
{
    (void)ws;
    struct api_wss *w = arg;
    struct api_ws_op op;
    struct api_ws_op_error err;
    w->server->metrics.ws_frames_in++;
    int rv = api_ws_op_decode(msg, len, &op, &err);
    if (rv == HD_ECORRUPT) {
        /* wslay checks UTF-8 before this (and closes 1007 itself); this is
         * the JSON parser's own check, kept in case the two ever differ. */
        api__wss_close(w, 1007, "invalid_utf8", "a text frame was not UTF-8");
    } else if (rv == HD_ENOMEM) {
        api__wss_error(w, NULL, NULL, 0, "overloaded", "out of memory");
    } else if (w->awaiting_token && (rv != 0 || op.type != API_WS_AUTH)) {
        api__wss_close(w, 1008, "unauthenticated",
                       "the first frame must be {\"type\":\"auth\",\"token\":...}");
    } else if (rv != 0) {
        api__wss_error(w, op.id, NULL, 0, err.code, err.message);
    } else if (op.type == API_WS_AUTH) {
        api__wss_auth(w, &op);
    } else if (op.type == API_WS_SUBSCRIBE) {
        api__wss_subscribe(w, &op);
    } else if (op.type == API_WS_UNSUBSCRIBE) {
        api__wss_unsubscribe(w, &op);
    } else if (op.type == API_WS_APPEND) {
        api__wss_append(w, &op, len);
    } else {
        json_t *pong = json_pack("{s:s}", "type", "pong");
        if (pong != NULL && op.id != NULL) json_object_set_new(pong, "id", json_string(op.id));
        api__wss_send(w, pong);
    }
    api_ws_op_free(&op);
}

/* ---- Events -------------------------------------------------------- */

static void api__wss_on_event(struct api_ws *ws, int event, void *arg)
{
    (void)ws;
    struct api_wss *w = arg;
    if (event == API_WS_CLOSED) {
        api__wss_finish(w);
    } else if (!w->finished) {
        fan_conn_drained(w->fc);
    }
}

static void api__wss_on_flush(struct api_ws *ws, void *arg)
{
    (void)ws;
    struct api_wss *w = arg;
    if (!w->finished) {
        fan_conn_flush(w->fc);
    }
}

static void api__wss_overflow(struct fan_conn *fc, void *arg)
{
    (void)fc;
    struct api_wss *w = arg;
    HD_LOG_INFO("subscribe: client too slow, closing");
    w->server->metrics.ws_closed_slow++;
    api__wss_close(w, 1008, "slow_consumer", "the connection fell too far behind; resume");
}

static void api__wss_catchup_error(struct fan_conn *fc, int rv, void *arg)
{
    (void)fc;
    api__wss_close(arg, 1011, "internal", hd_strerror(rv));
}

/* A subscription ended under a trim or delete: the connection goes on. */
static int api__wss_sub_gone(struct fan_conn *fc, const char *ch, size_t len, void *arg)
{
    (void)fc;
    struct api_wss *w = arg;
    struct log_channel_info info;
    int rv = log_channel_info(w->server->log, ch, len, &info);
    if (rv != 0) {
        return rv; /* state could not be read: the connection ends (1011) */
    }
    api__wss_gone(w, ch, len, &info);
    return 0;
}

static void api__wss_shutdown(struct api_session *sess)
{
    api__wss_close((struct api_wss *)sess, 1001, "shutting_down", "the node is shutting down");
}

/* The token was removed: a closing frame says so, then the connection ends. */
static void api__wss_revoke(struct api_session *sess)
{
    HD_LOG_INFO("WebSocket of token '%s' closed: the token was removed", sess->who.name);
    api__wss_close((struct api_wss *)sess, 1008, "token_revoked",
                   "the token of this connection was removed");
}

/* ?frames=text (the default) or binary: the same JSON, in binary frames,
 * which a client's WebSocket library does not check for UTF-8 as it must a
 * text frame's (wslay's check was 40% of libherald's CPU per message;
 * docs/subscribe.md). HD_EINVAL for any other value. */
static int api__wss_frames(const struct api_http_request *req, bool *binary)
{
    char v[8];
    int rv = api_http_query_param(req, "frames", v, sizeof v);
    *binary = rv == 0 && strcmp(v, "binary") == 0;
    if (rv == HD_ENOTFOUND || (rv == 0 && (*binary || strcmp(v, "text") == 0))) {
        return 0;
    }
    return HD_EINVAL;
}

void api_subscribe(struct api_server *s, struct api_http_conn *c,
                   const struct api_http_request *req, const struct api_principal *who)
{
    static const struct api_ws_callbacks cbs = {api__wss_on_text, api__wss_on_event,
                                                api__wss_on_flush};
    static const struct fan_conn_ops text_ops = {FAN_ENC_WS, false, api__wss_overflow,
                                                 api__wss_catchup_error, api__wss_sub_gone};
    static const struct fan_conn_ops binary_ops = {FAN_ENC_WS_BINARY, false,
                                                   api__wss_overflow, api__wss_catchup_error,
                                                   api__wss_sub_gone};
    /* Browsers open WebSockets cross-origin without a preflight: the
     * origin rule is enforced here. Without --cors-origins every origin
     * is accepted, as before the flag existed. */
    if (s->cors != NULL && api_cors_check(s->cors, req) == API_CORS_REFUSED) {
        api_respond_error(s, c, 403, "origin_not_allowed",
                          "this origin may not use the API (heraldd --cors-origins)");
        return;
    }
    bool binary;
    if (api__wss_frames(req, &binary) != 0) {
        api_respond_error(s, c, 400, "bad_query", "frames must be text or binary");
        return;
    }
    /* Without a token yet, the stream counts against its token's limit
     * once the auth frame names it (api__wss_auth). */
    static const struct api_principal nobody = {{0}};
    const struct api_principal *counted = who != NULL ? who : &nobody;
    if (!api_limit_stream_open(s, counted)) {
        api_limit_respond(s, c, 1, "open streams");
        return;
    }
    struct api_wss *w = s->hub != NULL ? hd_calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        api_limit_stream_closed(s, counted);
        api_respond_error(s, c, 503, "unavailable", "cannot open a subscription now");
        return;
    }
    w->server = s;
    w->binary = binary;
    w->fc = fan_conn_new(api_hub_fan(s->hub), c, binary ? &binary_ops : &text_ops, w);
    if (w->fc == NULL) {
        api_limit_stream_closed(s, counted);
        hd_free(w);
        api_respond_error(s, c, 503, "unavailable", "cannot open a subscription now");
        return;
    }
    w->sess.shutdown = api__wss_shutdown;
    w->sess.revoke = api__wss_revoke;
    w->sess.who = *counted;
    if (who == NULL) {
        w->awaiting_token = true;
        w->sess.keepalive = api__wss_auth_deadline;
    }
    api_hub_add(s->hub, &w->sess); /* before: early frames may arrive inside accept */
    s->metrics.requests++;
    int rv = api_ws_accept(c, req, s->config.ws_message_bytes_max, &cbs, w, &w->ws);
    if (rv != 0) {
        s->metrics.responses_by_class[4]++;
        api_hub_remove(s->hub, &w->sess);
        fan_conn_free(w->fc);
        hd_free(w);
        return;
    }
    s->metrics.responses_by_class[1]++;
    s->metrics.ws_opened++;
}
