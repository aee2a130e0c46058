/* SPDX-License-Identifier: Apache-2.0 */
/* Decoders of what delivery clients send: WebSocket operations, multi-channel
 * SSE lists and their Last-Event-IDs. Pure functions of the bytes (fuzzed). */
#ifndef API_V1_DELIVERY_PARSE_H
#define API_V1_DELIVERY_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "append_json.h"

/* Where a subscription starts. */
struct api_position {
    enum { API_POS_SEQ, API_POS_NOW, API_POS_TS } kind;
    uint64_t value;                /* the seq, or the ts in microseconds */
    bool has_epoch;                /* WebSocket: the epoch the position was taken in */
    uint64_t epoch;
};

/* ---- WebSocket operations (docs/subscribe.md) ---------------------- */

enum api_ws_op_type {
    API_WS_SUBSCRIBE,
    API_WS_UNSUBSCRIBE,
    API_WS_APPEND,
    API_WS_PING,
    API_WS_AUTH
};

struct api_ws_op {
    enum api_ws_op_type type;
    json_t *root;                  /* owned: the whole frame; NULL for a flat append */
    const char *id;                /* NULL if absent; borrowed from root, or id_buf */
    json_t *channels;              /* subscribe: object; unsubscribe: array (borrowed) */
    const char *channel;           /* append: a valid channel id (borrowed) */
    size_t channel_len;
    const char *token;             /* auth: 1-API_WS_TOKEN_MAX bytes (borrowed) */
    size_t token_len;
    /* An append frame of the plain shape (api_append_json_fields: every
     * member a plain string) is read in place, without a JSON tree: then
     * flat is set, root is NULL, channel and input point into the frame. */
    bool flat;
    struct api_append_input input; /* flat appends: nonce and payload */
    char id_buf[API_WS_ID_MAX + 1]; /* flat appends: the id, NUL-terminated */
};

#define API_WS_TOKEN_MAX 512u

/* What is wrong with a frame, for the error frame (static strings). */
struct api_ws_op_error {
    const char *code;
    const char *message;
};

/* Decodes one text message. 0: *op is filled (free it with
 * api_ws_op_free). HD_EINVAL: an error frame is due, *err says which (id
 * set if the frame had a string id; borrowed from op->root, which is kept
 * until api_ws_op_free so the caller can echo it). HD_ECORRUPT: the bytes
 * are not UTF-8 (close 1007). HD_ENOMEM. */
int api_ws_op_decode(const uint8_t *msg, size_t len, struct api_ws_op *op,
                     struct api_ws_op_error *err);
void api_ws_op_free(struct api_ws_op *op);

/* A subscribe position: N, "now", {"after_seq":N} or {"after_ts":"S.U"}.
 * HD_EINVAL for anything else. */
int api_ws_position_decode(const json_t *v, struct api_position *pos);

/* ---- Multi-channel SSE -------------------------------------------- */

struct api_tail_item {
    const char *channel;           /* into the list text */
    size_t len;
    struct api_position pos;       /* without a position: now */
};

/* Splits "ch:pos,ch:pos" (commas or newlines) into at most max items
 * (hd_malloc'd array in *out, *n items). Positions: N, now, ts=S.U. A
 * channel id may hold ':' itself: the position follows the last one.
 * HD_EINVAL with *bad set (a static sentence); HD_ERANGE over max. */
int api_tail_list_decode(const char *text, size_t len, size_t max, struct api_tail_item **out,
                         size_t *n, const char **bad);

/* A position of an SSE id (fan_sse_position): "SEQ" (epoch 0) or
 * "SEQ@EPOCH". HD_EINVAL otherwise. */
int api_sse_position_decode(const char *text, size_t len, uint64_t *seq, uint64_t *epoch);

/* Last-Event-ID of a multi-channel stream, "index:position,...":
 * seqs[index], epochs[index] and given[index] = true for each (index < n).
 * HD_EINVAL otherwise. */
int api_tail_resume_decode(const char *text, size_t len, size_t n, uint64_t *seqs,
                           uint64_t *epochs,
                           bool *given);

#endif
