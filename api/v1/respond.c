/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the API: JSON answers, error mapping, ts and base64 codecs. */
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

int api_respond_error(struct api_server *s, struct api_http_conn *c, int status,
                      const char *code, const char *message)
{
    api__count(s, status);
    const char *extra = status == 503 ? "Retry-After: 1\r\n" : NULL;
    return api_http_respond_error(c, status, code, message, extra);
}

int api_respond_cons_error(struct api_server *s, struct api_http_conn *c, int rv)
{
    switch (rv) {
        case HD_EUNKNOWN:
            s->metrics.appends_unknown++;
            return api_respond_error(s, c, 503, "outcome_unknown",
                                     "the append may or may not have been written; "
                                     "retry with the same nonce");
        case HD_ENOTLEADER:
        case HD_EUNAVAIL:
            return api_respond_error(s, c, 503, "unavailable",
                                     "no leader for this channel's shard; nothing was written");
        case HD_EBUSY:
            return api_respond_error(s, c, 503, "overloaded",
                                     "too many appends waiting; nothing was written");
        case HD_ESHUTDOWN:
            return api_respond_error(s, c, 503, "shutting_down",
                                     "the node is shutting down; nothing was written");
        default:
            HD_LOG_ERROR("request failed: %s", hd_strerror(rv));
            return api_respond_error(s, c, 500, "internal", hd_strerror(rv));
    }
}

void api_ts_format(uint64_t ts_us, char out[32])
{
    snprintf(out, 32, "%" PRIu64 ".%06" PRIu64, ts_us / 1000000u, ts_us % 1000000u);
}

int api_u64_parse(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20) {
        return HD_EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return HD_EINVAL;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return HD_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int api_ts_parse(const char *s, size_t len, uint64_t *ts_us)
{
    const char *dot = memchr(s, '.', len);
    uint64_t sec, frac = 0;
    size_t sec_len = dot != NULL ? (size_t)(dot - s) : len;
    if (api_u64_parse(s, sec_len, &sec) != 0 || sec > UINT64_MAX / 1000000u - 1) {
        return HD_EINVAL;
    }
    if (dot != NULL) {
        size_t frac_len = len - sec_len - 1;
        if (frac_len == 0 || frac_len > 6 || api_u64_parse(dot + 1, frac_len, &frac) != 0) {
            return HD_EINVAL;
        }
        for (size_t i = frac_len; i < 6; i++) {
            frac *= 10; /* ".5" is half a second */
        }
    }
    *ts_us = sec * 1000000u + frac;
    return 0;
}

static int api__b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Hand-written because the Debian candidates are lenient where the API must
 * not be: libb64 skips invalid characters silently, and OpenSSL's
 * EVP_DecodeBlock neither rejects bad padding nor reports the real length. */
int api_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 != 0) {
        return HD_EINVAL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char ch = in[i + (size_t)j];
            if (ch == '=' && last && j >= 2) {
                pad++;
                v[j] = 0;
                continue;
            }
            v[j] = api__b64_value(ch);
            if (v[j] < 0 || pad > 0) {
                return HD_EINVAL; /* bad character, or data after '=' */
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[n++] = (uint8_t)(w >> 16);
        if (pad < 2) out[n++] = (uint8_t)(w >> 8);
        if (pad < 1) out[n++] = (uint8_t)w;
    }
    *out_len = n;
    return 0;
}

json_t *api_message_json(const char *channel, size_t channel_len, uint64_t seq,
                         uint64_t ts, const char *nonce, size_t nonce_len,
                         const uint8_t *payload, size_t payload_len)
{
    char ts_text[32];
    api_ts_format(ts, ts_text);
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
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = (payload_len + 2) / 3 * 4;
    char *b64 = hd_malloc(out_len + 1);
    if (b64 == NULL) {
        json_decref(m);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < payload_len; i += 3) {
        uint32_t w = (uint32_t)payload[i] << 16;
        if (i + 1 < payload_len) w |= (uint32_t)payload[i + 1] << 8;
        if (i + 2 < payload_len) w |= payload[i + 2];
        b64[o++] = alphabet[(w >> 18) & 63];
        b64[o++] = alphabet[(w >> 12) & 63];
        b64[o++] = i + 1 < payload_len ? alphabet[(w >> 6) & 63] : '=';
        b64[o++] = i + 2 < payload_len ? alphabet[w & 63] : '=';
    }
    json_object_set_new(m, "payload_b64", json_stringn(b64, out_len));
    hd_free(b64);
    return m;
}
