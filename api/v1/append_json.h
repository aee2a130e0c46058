/* SPDX-License-Identifier: Apache-2.0 */
/* The one hot request shape of POST /v1/channels/{channel}/messages, read
 * and answered without building a JSON tree. */
#ifndef API_APPEND_JSON_H
#define API_APPEND_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fields of one append, before validation; they point into the body
 * (or the header) they came from. Every path that reads an append
 * (api_append_json_scan, jansson, a raw body) fills one. */
struct api_append_input {
    const char *nonce;
    size_t nonce_len;
    const char *payload;     /* text, or base64 when b64 */
    size_t payload_len;
    bool b64;
};

/*
 * Reads a body of the common shape {"nonce":"...","payload":"..."} (or
 * "payload_b64"): an object whose every member is a plain string, one of
 * printable ASCII with no backslash, holding "nonce" and exactly one of
 * "payload" and "payload_b64". Returns false for anything else (escapes,
 * non-ASCII bytes, numbers, nesting, duplicate keys, a missing member, bad
 * syntax): the caller then parses the body with jansson, which gives every
 * answer, error or not, for those. What this accepts, jansson accepts with
 * the same members, so both paths append the same thing.
 */
bool api_append_json_scan(const char *body, size_t len, struct api_append_input *out);

struct hd_json_flat;

/* The append's fields of an object hd_json_flat_scan read, by the rule
 * above (every member a string, "nonce", exactly one payload member;
 * other members are ignored, as jansson's path ignores them). Shared by
 * HTTP bodies and WebSocket append frames. */
bool api_append_json_fields(const struct hd_json_flat *o, struct api_append_input *out);

/* The largest answer api_append_json_answer writes, with its NUL. */
#define API_APPEND_ANSWER_MAX 256

/*
 * Writes the answer to an append, byte for byte what json_dumps(JSON_COMPACT)
 * makes of {"channel","seq","ts","duplicate"}: channel must be valid
 * (hd_channel_valid: nothing in it needs escaping). buf holds
 * API_APPEND_ANSWER_MAX bytes. Returns the length, without the NUL.
 */
size_t api_append_json_answer(char *buf, const char *channel, size_t channel_len, uint64_t seq,
                              uint64_t ts_us, bool duplicate);

/* A WebSocket operation's id: 1-API_WS_ID_MAX bytes (docs/subscribe.md). */
#define API_WS_ID_MAX 128u

/* The largest ack api_append_json_ack writes, with its NUL. */
#define API_APPEND_ACK_MAX 512

/*
 * Writes a WebSocket append's ack frame, byte for byte what json_dumps
 * (JSON_COMPACT) makes of {"type":"ack","id","channel","seq","ts",
 * "duplicate"}, into buf of API_APPEND_ACK_MAX bytes. Returns its length,
 * or 0 when the id is longer than API_WS_ID_MAX or holds a byte
 * jansson would escape (the caller then builds the frame with jansson).
 */
size_t api_append_json_ack(char *buf, const char *id, size_t id_len, const char *channel,
                           size_t channel_len, uint64_t seq, uint64_t ts_us, bool duplicate);

#endif
