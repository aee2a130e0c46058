/* SPDX-License-Identifier: Apache-2.0 */
/* Conversion between the wire JSON of a message and struct herald_message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_base64.h"
#include "hd_error.h"

static int bad(char *why, size_t why_size, const char *text)
{
    snprintf(why, why_size, "%s", text);
    return HD_ECORRUPT;
}

/* seq values are positive 64-bit integers; jansson keeps them exact. */
static int get_seq(json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return HD_ECORRUPT;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_payload(json_t *obj, struct herald__buf *scratch, struct herald_message *msg,
                       char *why, size_t why_size)
{
    json_t *text = json_object_get(obj, "payload");
    if (json_is_string(text)) {
        msg->payload = (const uint8_t *)json_string_value(text);
        msg->payload_len = json_string_length(text);
        msg->payload_binary = false;
        return 0;
    }
    json_t *b64 = json_object_get(obj, "payload_b64");
    if (!json_is_string(b64)) return bad(why, why_size, "message has no payload");
    size_t len = json_string_length(b64);
    herald__buf_reset(scratch);
    int rv = herald__buf_reserve(scratch, hd_base64_decoded_max(len));
    if (rv != 0) return rv;
    size_t out_len = 0;
    if (hd_base64_decode(json_string_value(b64), len, (uint8_t *)scratch->data, &out_len)) {
        return bad(why, why_size, "payload_b64 is not base64");
    }
    scratch->len = out_len;
    scratch->data[out_len] = '\0';
    msg->payload = (const uint8_t *)scratch->data;
    msg->payload_len = out_len;
    msg->payload_binary = true;
    return 0;
}

int herald__message_from_json(json_t *obj, struct herald__buf *scratch,
                              struct herald_message *msg, char *why, size_t why_size)
{
    memset(msg, 0, sizeof *msg);
    if (!json_is_object(obj)) return bad(why, why_size, "message is not an object");
    if (get_seq(obj, "seq", &msg->seq) != 0 || msg->seq == 0) {
        return bad(why, why_size, "message seq missing or not a positive integer");
    }
    json_t *ts = json_object_get(obj, "ts");
    if (!json_is_string(ts) ||
        herald_ts_parse(json_string_value(ts), json_string_length(ts), &msg->ts_us) != 0) {
        return bad(why, why_size, "message ts missing or not \"SECONDS.MICROS\"");
    }
    json_t *nonce = json_object_get(obj, "nonce");
    msg->nonce = json_is_string(nonce) ? json_string_value(nonce) : "";
    json_t *channel = json_object_get(obj, "channel");
    msg->channel = json_is_string(channel) ? json_string_value(channel) : NULL;
    return get_payload(obj, scratch, msg, why, why_size);
}

int herald_message_to_json(const struct herald_message *msg, char **json_text)
{
    *json_text = NULL;
    char ts[HERALD_TS_STR_MAX];
    herald_ts_format(msg->ts_us, ts, sizeof ts);
    json_t *o = json_object();
    if (o == NULL) return HD_ENOMEM;
    int rv = 0;
    if (msg->channel != NULL) rv |= json_object_set_new(o, "channel", json_string(msg->channel));
    rv |= json_object_set_new(o, "seq", json_integer((json_int_t)msg->seq));
    rv |= json_object_set_new(o, "ts", json_string(ts));
    rv |= json_object_set_new(o, "nonce", json_string(msg->nonce ? msg->nonce : ""));
    if (msg->payload_binary) {
        struct herald__buf b64 = {0};
        rv |= herald__buf_append_base64(&b64, msg->payload, msg->payload_len);
        rv |= json_object_set_new(o, "payload_b64",
                                  json_stringn(b64.data ? b64.data : "", b64.len));
        herald__buf_free(&b64);
    } else {
        rv |= json_object_set_new(o, "payload",
                                  json_stringn((const char *)msg->payload, msg->payload_len));
    }
    char *text = rv == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) return HD_ENOMEM;
    /* Copied, as herald_status() does, so that herald_free() (the hd_alloc
     * hook) frees what it is given whatever allocator jansson uses. */
    *json_text = hd_strndup(text, strlen(text));
    free(text);
    return *json_text != NULL ? 0 : HD_ENOMEM;
}
