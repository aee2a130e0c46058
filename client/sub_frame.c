/* SPDX-License-Identifier: Apache-2.0 */
/* The JSON text frames of /v1/subscribe (docs/subscribe.md): decoding what
 * the server sends, encoding appends. Server bytes are never trusted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_base64.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_json_flat.h"
#include "sub_internal.h"

static int bad(char *why, size_t why_size, const char *type, const char *text)
{
    snprintf(why, why_size, "%s frame: %s", type, text);
    return HD_ECORRUPT;
}

/* A string member, or NULL when absent or not a string. */
static const char *get_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool get_u64(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* channel: required and a valid channel id. */
static bool get_channel(json_t *obj, struct herald__frame *f)
{
    json_t *v = json_object_get(obj, "channel");
    if (!json_is_string(v) || !hd_channel_valid(json_string_value(v), json_string_length(v))) {
        return false;
    }
    f->channel = json_string_value(v);
    return true;
}

static const struct {
    const char *name;
    enum herald__frame_type type;
} frame_types[] = {
    {"message", HERALD__F_MESSAGE}, {"subscribed", HERALD__F_SUBSCRIBED},
    {"unsubscribed", HERALD__F_UNSUBSCRIBED}, {"ack", HERALD__F_ACK},
    {"error", HERALD__F_ERROR}, {"pong", HERALD__F_PONG}, {"closing", HERALD__F_CLOSING},
    {"gone", HERALD__F_GONE},
};

static int decode_message(struct herald__frame *f, struct herald__buf *scratch, char *why,
                          size_t why_size)
{
    int rv = herald__message_from_json(f->root, scratch, &f->msg, why, why_size);
    if (rv != 0) return rv;
    if (!get_channel(f->root, f)) return bad(why, why_size, "message", "bad channel");
    f->msg.channel = f->channel;
    return 0;
}

static int decode_ack(struct herald__frame *f, char *why, size_t why_size)
{
    json_t *ts = json_object_get(f->root, "ts");
    json_t *dup = json_object_get(f->root, "duplicate");
    f->id = get_str(f->root, "id");
    if (f->id == NULL) return bad(why, why_size, "ack", "no id");
    if (!get_channel(f->root, f)) return bad(why, why_size, "ack", "bad channel");
    if (!get_u64(f->root, "seq", &f->seq) || f->seq == 0) {
        return bad(why, why_size, "ack", "seq missing or not a positive integer");
    }
    if (!json_is_string(ts) ||
        herald_ts_parse(json_string_value(ts), json_string_length(ts), &f->ts_us) != 0) {
        return bad(why, why_size, "ack", "ts missing or not \"SECONDS.MICROS\"");
    }
    if (!json_is_boolean(dup)) return bad(why, why_size, "ack", "duplicate not a boolean");
    f->duplicate = json_is_true(dup);
    return 0;
}

/* Fields by type, after "type" chose it. */
static int decode_fields(struct herald__frame *f, struct herald__buf *scratch, char *why,
                         size_t why_size)
{
    json_t *o = f->root;
    switch (f->type) {
    case HERALD__F_MESSAGE: return decode_message(f, scratch, why, why_size);
    case HERALD__F_ACK: return decode_ack(f, why, why_size);
    case HERALD__F_SUBSCRIBED:
        if (!get_channel(o, f)) return bad(why, why_size, "subscribed", "bad channel");
        if (!get_u64(o, "head", &f->seq)) return bad(why, why_size, "subscribed", "bad head");
        f->has_epoch = json_object_get(o, "epoch") != NULL;
        if (f->has_epoch && !get_u64(o, "epoch", &f->epoch)) {
            return bad(why, why_size, "subscribed", "bad epoch");
        }
        return 0;
    case HERALD__F_UNSUBSCRIBED:
        if (!get_channel(o, f)) return bad(why, why_size, "unsubscribed", "bad channel");
        return 0;
    case HERALD__F_ERROR:
        f->code = get_str(o, "code");
        if (f->code == NULL) return bad(why, why_size, "error", "no code");
        f->message = get_str(o, "message");
        f->id = get_str(o, "id");
        /* An error about a bad channel names what the client sent, which
         * may not be a valid channel id: keep it as a plain string. */
        f->channel = get_str(o, "channel");
        return 0;
    case HERALD__F_PONG:
        f->id = get_str(o, "id");
        return 0;
    case HERALD__F_CLOSING:
        f->code = get_str(o, "reason");
        if (f->code == NULL) return bad(why, why_size, "closing", "no reason");
        f->message = get_str(o, "message");
        return 0;
    case HERALD__F_GONE:
        if (!get_channel(o, f)) return bad(why, why_size, "gone", "bad channel");
        if (!get_u64(o, "first_seq", &f->seq) || !get_u64(o, "epoch", &f->epoch)) {
            return bad(why, why_size, "gone", "first_seq or epoch missing");
        }
        return 0;
    case HERALD__F_UNKNOWN: return 0;
    }
    return 0;
}

bool herald__frame_scan_message(const char *text, size_t len, struct herald__buf *scratch,
                                struct herald__frame *f)
{
    struct hd_json_flat o;
    if (!hd_json_flat_scan(text, len, &o)) return false;
    const struct hd_json_flat_member *type = hd_json_flat_str(&o, "type");
    const struct hd_json_flat_member *ch = hd_json_flat_str(&o, "channel");
    const struct hd_json_flat_member *seq = hd_json_flat_get(&o, "seq");
    const struct hd_json_flat_member *ts = hd_json_flat_str(&o, "ts");
    const struct hd_json_flat_member *nonce = hd_json_flat_str(&o, "nonce");
    const struct hd_json_flat_member *payload = hd_json_flat_str(&o, "payload");
    const struct hd_json_flat_member *b64 = payload == NULL ? hd_json_flat_str(&o, "payload_b64") : NULL;
    uint64_t ts_us = 0;
    if (type == NULL || type->str_len != 7 || memcmp(type->str, "message", 7) != 0 ||
        ch == NULL || !hd_channel_valid(ch->str, ch->str_len) || seq == NULL ||
        seq->str != NULL || seq->num == 0 || ts == NULL ||
        herald_ts_parse(ts->str, ts->str_len, &ts_us) != 0 || (payload == NULL && b64 == NULL)) {
        return false;
    }
    /* The strings are handed out NUL-terminated: a copy of the text whose
     * closing quotes become NULs, then any decoded payload_b64. */
    size_t b64_max = b64 != NULL ? hd_base64_decoded_max(b64->str_len) : 0;
    herald__buf_reset(scratch);
    if (herald__buf_reserve(scratch, len + 1 + b64_max) != 0) return false;
    char *copy = scratch->data;
    memcpy(copy, text, len);
    copy[len] = '\0';
    scratch->len = len + 1;
#define HERALD__IN_COPY(member) (copy + ((member)->str - text))
    HERALD__IN_COPY(ch)[ch->str_len] = '\0';
    f->type = HERALD__F_MESSAGE;
    f->channel = HERALD__IN_COPY(ch);
    f->msg.channel = f->channel;
    f->msg.seq = seq->num;
    f->msg.ts_us = ts_us;
    f->msg.nonce = "";
    if (nonce != NULL) {
        HERALD__IN_COPY(nonce)[nonce->str_len] = '\0';
        f->msg.nonce = HERALD__IN_COPY(nonce);
    }
    if (payload != NULL) {
        HERALD__IN_COPY(payload)[payload->str_len] = '\0';
        f->msg.payload = (const uint8_t *)HERALD__IN_COPY(payload);
        f->msg.payload_len = payload->str_len;
        return true;
    }
#undef HERALD__IN_COPY
    uint8_t *out = (uint8_t *)scratch->data + scratch->len;
    size_t out_len = 0;
    if (hd_base64_decode(b64->str, b64->str_len, out, &out_len)) {
        return false; /* jansson's path reports it */
    }
    out[out_len] = '\0';
    scratch->len += out_len + 1;
    f->msg.payload = out;
    f->msg.payload_len = out_len;
    f->msg.payload_binary = true;
    return true;
}

int herald__frame_decode(const char *text, size_t len, struct herald__buf *scratch,
                         struct herald__frame *f, char *why, size_t why_size)
{
    memset(f, 0, sizeof *f);
    if (herald__frame_scan_message(text, len, scratch, f)) {
        return 0;
    }
    memset(f, 0, sizeof *f);
    json_error_t jerr;
    /* Duplicate keys would let two readers of one frame disagree. */
    f->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (f->root == NULL) {
        snprintf(why, why_size, "frame is not JSON: %s", jerr.text);
        return HD_ECORRUPT;
    }
    if (!json_is_object(f->root)) {
        snprintf(why, why_size, "frame is not a JSON object");
        return HD_ECORRUPT;
    }
    const char *type = get_str(f->root, "type");
    if (type == NULL) {
        snprintf(why, why_size, "frame has no \"type\"");
        return HD_ECORRUPT;
    }
    for (size_t i = 0; i < sizeof frame_types / sizeof frame_types[0]; i++) {
        if (strcmp(type, frame_types[i].name) == 0) f->type = frame_types[i].type;
    }
    return decode_fields(f, scratch, why, why_size);
}

void herald__frame_free(struct herald__frame *f)
{
    json_decref(f->root);
    f->root = NULL;
}

int herald__frame_error_rv(const char *code)
{
    static const struct {
        const char *code;
        int rv;
    } map[] = {
        {"outcome_unknown", HD_EUNKNOWN}, {"unavailable", HD_EUNAVAIL},
        {"overloaded", HD_EUNAVAIL},      {"shutting_down", HD_EUNAVAIL},
        {"payload_too_large", HD_ETOOBIG}, {"already_subscribed", HD_EEXIST},
        {"not_subscribed", HD_ENOTFOUND}, {"too_many_channels", HD_ERANGE},
        {"epoch_ahead", HD_EUNAVAIL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(code, map[i].code) == 0) return map[i].rv;
    }
    return HD_EINVAL; /* bad_frame, bad_channel, bad_nonce, ...: our request was refused */
}

static bool utf8_valid(const void *p, size_t len)
{
    json_t *s = json_stringn(p, len); /* jansson refuses invalid UTF-8 */
    json_decref(s);
    return s != NULL;
}

int herald__frame_append(struct herald__buf *out, const char *id, const char *channel,
                         const char *nonce, const void *payload, size_t len)
{
    size_t id_len = strlen(id);
    if (id_len == 0 || id_len > 128 || !hd_nonce_valid(nonce, strlen(nonce))) return HD_EINVAL;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "append", "id", id, "channel",
                          channel, "nonce", nonce);
    if (o == NULL) return HD_EINVAL; /* id not UTF-8 */
    int rv = 0;
    if (utf8_valid(payload, len)) {
        rv = json_object_set_new(o, "payload", json_stringn(payload, len));
    } else {
        struct herald__buf b64 = {0};
        rv = herald__buf_append_base64(&b64, payload, len);
        if (rv == 0) {
            rv = json_object_set_new(o, "payload_b64", json_stringn(b64.data, b64.len));
        }
        herald__buf_free(&b64);
    }
    char *text = rv == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) return HD_ENOMEM;
    rv = herald__buf_append(out, text, strlen(text));
    free(text);
    return rv;
}
