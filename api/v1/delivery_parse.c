/* SPDX-License-Identifier: Apache-2.0 */
/* Decoders of what delivery clients send (WebSocket operations, SSE lists). */
#include "delivery_parse.h"

#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_json_flat.h"
#include "hd_ts.h"
#include "hd_util.h"

/* ---- WebSocket operations ------------------------------------------ */

static int api__ws_op_fail(struct api_ws_op_error *err, const char *code, const char *message)
{
    *err = (struct api_ws_op_error){code, message};
    return HD_EINVAL;
}

/* The fields each type needs, checked for shape (values are checked by
 * the operation: nonces and payloads by the append path). */
static int api__ws_op_fields(struct api_ws_op *op, struct api_ws_op_error *err)
{
    json_t *root = op->root;
    switch (op->type) {
        case API_WS_SUBSCRIBE:
            op->channels = json_object_get(root, "channels");
            if (!json_is_object(op->channels)) {
                return api__ws_op_fail(err, "bad_frame",
                                       "subscribe takes \"channels\": {\"channel\": position}");
            }
            return 0;
        case API_WS_UNSUBSCRIBE:
            op->channels = json_object_get(root, "channels");
            if (!json_is_array(op->channels)) {
                return api__ws_op_fail(err, "bad_frame",
                                       "unsubscribe takes \"channels\": [\"channel\", ...]");
            }
            return 0;
        case API_WS_APPEND: {
            if (op->id == NULL || op->id[0] == '\0' || strlen(op->id) > API_WS_ID_MAX) {
                return api__ws_op_fail(err, "bad_id", "append needs an \"id\" of 1-128 bytes");
            }
            json_t *ch = json_object_get(root, "channel");
            op->channel = json_string_value(ch);
            op->channel_len = json_string_length(ch);
            if (op->channel == NULL || !hd_channel_valid(op->channel, op->channel_len)) {
                return api__ws_op_fail(err, "bad_channel",
                                       "channel ids are 1-128 characters of [A-Za-z0-9._:-]");
            }
            return 0;
        }
        case API_WS_PING:
            return 0;
        case API_WS_AUTH: {
            json_t *tok = json_object_get(root, "token");
            op->token = json_string_value(tok);
            op->token_len = json_string_length(tok);
            if (op->token == NULL || op->token_len == 0 || op->token_len > API_WS_TOKEN_MAX) {
                return api__ws_op_fail(err, "bad_frame", "auth takes a \"token\" of 1-512 bytes");
            }
            return 0;
        }
    }
    HD_ASSERT(false);
    return HD_EINVAL;
}

/* An append frame of the plain shape, read in place: a producer's frames
 * are nearly all appends, and building a JSON tree for each was a fifth of
 * the node's CPU at 256 in flight. Anything else, including every frame
 * that is due an error, goes to jansson, which answers it as before. */
static bool api__ws_append_flat(const uint8_t *msg, size_t len, struct api_ws_op *op)
{
    struct hd_json_flat o;
    if (!hd_json_flat_scan((const char *)msg, len, &o) ||
        !api_append_json_fields(&o, &op->input)) {
        return false;
    }
    const struct hd_json_flat_member *type = hd_json_flat_get(&o, "type");
    const struct hd_json_flat_member *id = hd_json_flat_get(&o, "id");
    const struct hd_json_flat_member *ch = hd_json_flat_get(&o, "channel");
    if (type == NULL || type->str_len != 6 || memcmp(type->str, "append", 6) != 0 ||
        id == NULL || id->str_len == 0 || id->str_len > API_WS_ID_MAX || ch == NULL ||
        !hd_channel_valid(ch->str, ch->str_len)) {
        return false;
    }
    memcpy(op->id_buf, id->str, id->str_len);
    op->id_buf[id->str_len] = '\0';
    op->id = op->id_buf;
    op->channel = ch->str;
    op->channel_len = ch->str_len;
    op->type = API_WS_APPEND;
    op->flat = true;
    return true;
}

int api_ws_op_decode(const uint8_t *msg, size_t len, struct api_ws_op *op,
                     struct api_ws_op_error *err)
{
    static const struct { const char *name; enum api_ws_op_type type; } types[] = {
        {"subscribe", API_WS_SUBSCRIBE}, {"unsubscribe", API_WS_UNSUBSCRIBE},
        {"append", API_WS_APPEND}, {"ping", API_WS_PING}, {"auth", API_WS_AUTH}};
    *op = (struct api_ws_op){0};
    if (api__ws_append_flat(msg, len, op)) {
        return 0;
    }
    *op = (struct api_ws_op){0};
    json_error_t jerr;
    op->root = json_loadb((const char *)msg, len, JSON_REJECT_DUPLICATES, &jerr);
    if (op->root == NULL) {
        if (json_error_code(&jerr) == json_error_invalid_utf8) return HD_ECORRUPT;
        if (json_error_code(&jerr) == json_error_out_of_memory) return HD_ENOMEM;
        return api__ws_op_fail(err, "bad_frame", "a frame is one JSON object");
    }
    json_t *id = json_object_get(op->root, "id");
    op->id = json_string_value(id);
    if (!json_is_object(op->root) || (id != NULL && op->id == NULL)) {
        return api__ws_op_fail(err, "bad_frame",
                               "a frame is a JSON object with a \"type\" (and a string \"id\")");
    }
    const char *type = json_string_value(json_object_get(op->root, "type"));
    for (size_t i = 0; type != NULL && i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(type, types[i].name) == 0) {
            op->type = types[i].type;
            return api__ws_op_fields(op, err);
        }
    }
    return api__ws_op_fail(err, "bad_frame", type == NULL ? "a frame needs a \"type\""
                                                          : "unknown type");
}

void api_ws_op_free(struct api_ws_op *op)
{
    json_decref(op->root);
    op->root = NULL;
}

int api_ws_position_decode(const json_t *v, struct api_position *pos)
{
    if (json_is_string(v) && strcmp(json_string_value(v), "now") == 0) {
        *pos = (struct api_position){API_POS_NOW, 0, false, 0};
        return 0;
    }
    /* An object may say which epoch (deletes of the channel) its seq or
     * ts belongs to, so that a resume across a delete is not taken as a
     * position in the new epoch. */
    const json_t *epoch = json_is_object(v) ? json_object_get(v, "epoch") : NULL;
    if (epoch != NULL && (!json_is_integer(epoch) || json_integer_value(epoch) < 0)) {
        return HD_EINVAL;
    }
    bool has_epoch = epoch != NULL;
    uint64_t e = has_epoch ? (uint64_t)json_integer_value(epoch) : 0;
    const json_t *seq = json_is_object(v) ? json_object_get(v, "after_seq") : v;
    if (json_is_integer(seq) && json_integer_value(seq) >= 0) {
        *pos = (struct api_position){API_POS_SEQ, (uint64_t)json_integer_value(seq), has_epoch, e};
        return 0;
    }
    const json_t *ts = json_is_object(v) ? json_object_get(v, "after_ts") : NULL;
    uint64_t ts_us = 0;
    if (json_is_string(ts) &&
        hd_ts_parse(json_string_value(ts), json_string_length(ts), &ts_us) == 0) {
        *pos = (struct api_position){API_POS_TS, ts_us, has_epoch, e};
        return 0;
    }
    return HD_EINVAL;
}

/* ---- Multi-channel SSE --------------------------------------------- */

/* One "channel[:position]". */
static const char *api__tail_item(const char *item, size_t n, struct api_tail_item *out)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++) {
        if (item[i] == ':') colon = item + i;
    }
    size_t clen = colon != NULL ? (size_t)(colon - item) : n;
    const char *pos = colon != NULL ? colon + 1 : "now";
    size_t plen = colon != NULL ? n - clen - 1 : 3;
    if (!hd_channel_valid(item, clen)) {
        return "channel ids are 1-128 characters of [A-Za-z0-9._:-]";
    }
    *out = (struct api_tail_item){item, clen, {API_POS_NOW, 0, false, 0}};
    if (plen == 3 && memcmp(pos, "now", 3) == 0) {
        return NULL;
    }
    if (plen > 3 && memcmp(pos, "ts=", 3) == 0) {
        out->pos.kind = API_POS_TS;
        return hd_ts_parse(pos + 3, plen - 3, &out->pos.value) == 0
                   ? NULL
                   : "a ts= position is seconds.microseconds, like ts=1732234567.000123";
    }
    out->pos.kind = API_POS_SEQ;
    return hd_u64_parse(pos, plen, &out->pos.value) == 0
               ? NULL
               : "a position is a seq, now, or ts=seconds.microseconds";
}

int api_tail_list_decode(const char *text, size_t len, size_t max, struct api_tail_item **out,
                         size_t *n_out, const char **bad)
{
    HD_ASSERT(max > 0);
    struct api_tail_item *items = hd_calloc(max, sizeof *items);
    if (items == NULL) {
        *bad = "out of memory";
        return HD_ENOMEM;
    }
    size_t n = 0;
    int rv = 0;
    for (size_t i = 0; i < len && rv == 0;) {
        size_t end = i;
        while (end < len && text[end] != ',' && text[end] != '\n' && text[end] != '\r') end++;
        if (end > i && n == max) {
            *bad = "too many channels for one stream (use the WebSocket)";
            rv = HD_ERANGE;
        } else if (end > i && (*bad = api__tail_item(text + i, end - i, &items[n++])) != NULL) {
            rv = HD_EINVAL;
        }
        i = end + 1;
    }
    if (rv == 0 && n == 0) {
        *bad = "channels lists at least one channel:position";
        rv = HD_EINVAL;
    }
    if (rv != 0) {
        hd_free(items);
        return rv;
    }
    *out = items;
    *n_out = n;
    return 0;
}

int api_sse_position_decode(const char *text, size_t len, uint64_t *seq, uint64_t *epoch)
{
    const char *at = memchr(text, '@', len);
    *epoch = 0;
    if (at == NULL) {
        return hd_u64_parse(text, len, seq);
    }
    if (hd_u64_parse(text, (size_t)(at - text), seq) != 0 ||
        hd_u64_parse(at + 1, (size_t)(text + len - at - 1), epoch) != 0) {
        return HD_EINVAL;
    }
    return 0;
}

int api_tail_resume_decode(const char *text, size_t len, size_t n, uint64_t *seqs,
                           uint64_t *epochs, bool *given)
{
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && text[end] != ',') end++;
        const char *colon = memchr(text + i, ':', end - i);
        uint64_t index = 0, seq = 0, epoch = 0;
        if (colon == NULL || hd_u64_parse(text + i, (size_t)(colon - text - i), &index) != 0 ||
            api_sse_position_decode(colon + 1, (size_t)(text + end - colon - 1), &seq,
                                    &epoch) != 0 ||
            index >= n) {
            return HD_EINVAL;
        }
        seqs[index] = seq;
        epochs[index] = epoch;
        given[index] = true;
        i = end + 1;
    }
    return 0;
}
