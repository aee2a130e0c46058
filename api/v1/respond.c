/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the API: JSON answers, error mapping, the message JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

static void api__count(struct api_server *s, int status)
{
    s->metrics.requests++;
    s->metrics.responses_by_class[(status / 100) % 6]++;
}

int api_respond_json(struct api_server *s, struct api_http_conn *c, int status,
                     json_t *body, const char *extra_headers)
{
    HD_ASSERT(body != NULL);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        return api_respond_error(s, c, 500, "internal", "out of memory");
    }
    api__count(s, status);
    size_t len = strlen(text);
    int rv = api_http_respond(c, status, "application/json", extra_headers, text, len);
    free(text);
    return rv;
}

int api_respond_json_text(struct api_server *s, struct api_http_conn *c, int status,
                          const char *text, size_t len)
{
    api__count(s, status);
    return api_http_respond(c, status, "application/json", NULL, text, len);
}

int api_respond_empty(struct api_server *s, struct api_http_conn *c, int status,
                      const char *extra_headers)
{
    api__count(s, status);
    return api_http_respond(c, status, NULL, extra_headers, NULL, 0);
}

int api_respond_error(struct api_server *s, struct api_http_conn *c, int status,
                      const char *code, const char *message)
{
    api__count(s, status);
    /* 507: space returns when someone frees it, so not within a second. */
    const char *extra = status == 503   ? "Retry-After: 1\r\n"
                        : status == 507 ? "Retry-After: 5\r\n"
                                        : NULL;
    return api_http_respond_error(c, status, code, message, extra);
}

const char *api_cons_error_code(int rv, const char **message)
{
    switch (rv) {
        case HD_EUNKNOWN:
            *message = "the append may or may not have been written; retry with the same nonce";
            return "outcome_unknown";
        case HD_ENOTLEADER:
        case HD_EUNAVAIL:
            *message = "no leader for this channel's shard; nothing was written";
            return "unavailable";
        case HD_EBUSY:
            *message = "too many appends waiting; nothing was written";
            return "overloaded";
        case HD_ESHUTDOWN:
            *message = "the node is shutting down; nothing was written";
            return "shutting_down";
        case HD_ENOSPC:
            *message = "free disk space is below the node's reserve; nothing was written";
            return "insufficient_storage";
        default:
            *message = hd_strerror(rv);
            return "internal";
    }
}

int api_cons_error_status(int rv)
{
    const char *message = NULL;
    if (rv == HD_ENOSPC) {
        return 507;
    }
    return strcmp(api_cons_error_code(rv, &message), "internal") == 0 ? 500 : 503;
}

int api_respond_cons_error(struct api_server *s, struct api_http_conn *c, int rv)
{
    const char *message = NULL;
    const char *code = api_cons_error_code(rv, &message);
    int status = api_cons_error_status(rv);
    if (rv == HD_EUNKNOWN) {
        s->metrics.appends_unknown++;
    }
    if (status == 500) {
        HD_LOG_ERROR("request failed: %s", hd_strerror(rv));
    }
    return api_respond_error(s, c, status, code, message);
}

json_t *api_message_json(const char *channel, size_t channel_len, uint64_t seq,
                         uint64_t ts, const char *nonce, size_t nonce_len,
                         const uint8_t *payload, size_t payload_len)
{
    char ts_text[HD_TS_STR_MAX];
    hd_ts_format(ts, ts_text, sizeof ts_text);
    json_t *m = json_object();
    json_object_set_new(m, "channel", json_stringn(channel, channel_len));
    json_object_set_new(m, "seq", json_integer((json_int_t)seq));
    json_object_set_new(m, "ts", json_string(ts_text));
    json_object_set_new(m, "nonce", json_stringn(nonce, nonce_len));
    /* Text payloads read back as text; other bytes as base64. */
    json_t *text = json_stringn((const char *)payload, payload_len);
    if (text != NULL) {
        json_object_set_new(m, "payload", text);
        return m;
    }
    size_t out_len = hd_base64_encoded_len(payload_len);
    char *b64 = hd_malloc(out_len + 1);
    if (b64 == NULL) {
        json_decref(m);
        return NULL;
    }
    hd_base64_encode(payload, payload_len, b64);
    json_object_set_new(m, "payload_b64", json_stringn(b64, out_len));
    hd_free(b64);
    return m;
}
