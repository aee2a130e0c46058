/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: what delivery clients send (api/v1/delivery_parse.c): WebSocket
 * operations and their positions, multi-channel SSE lists, Last-Event-IDs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "delivery_parse.h"
#include "fanout.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz__same(const json_t *v, const char *s, size_t len)
{
    HD_ASSERT(json_is_string(v) && json_string_length(v) == len);
    HD_ASSERT(memcmp(json_string_value(v), s, len) == 0);
}

/* An append read in place carries exactly what jansson reads. */
static void fuzz__flat_agrees(const uint8_t *data, size_t size, const struct api_ws_op *op)
{
    HD_ASSERT(op->root == NULL && op->type == API_WS_APPEND);
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    HD_ASSERT(json_is_object(o));
    fuzz__same(json_object_get(o, "type"), "append", 6);
    fuzz__same(json_object_get(o, "id"), op->id, strlen(op->id));
    fuzz__same(json_object_get(o, "channel"), op->channel, op->channel_len);
    fuzz__same(json_object_get(o, "nonce"), op->input.nonce, op->input.nonce_len);
    json_t *payload = json_object_get(o, op->input.b64 ? "payload_b64" : "payload");
    fuzz__same(payload, op->input.payload, op->input.payload_len);
    HD_ASSERT(json_object_get(o, op->input.b64 ? "payload" : "payload_b64") == NULL);
    json_decref(o);
}

/* A decoded operation must have what its type promises. */
static void fuzz__ws_op(const uint8_t *data, size_t size)
{
    struct api_ws_op op;
    struct api_ws_op_error err;
    int rv = api_ws_op_decode(data, size, &op, &err);
    HD_ASSERT(rv == 0 || rv == HD_EINVAL || rv == HD_ECORRUPT || rv == HD_ENOMEM);
    if (rv == HD_EINVAL) {
        HD_ASSERT(err.code != NULL && err.message != NULL);
    }
    if (rv == 0 && op.type == API_WS_SUBSCRIBE) {
        const char *key;
        size_t key_len;
        json_t *v;
        json_object_keylen_foreach(op.channels, key, key_len, v)
        {
            struct api_position pos;
            HD_ASSERT(key != NULL && strlen(key) <= key_len);
            if (api_ws_position_decode(v, &pos) == 0) {
                HD_ASSERT(pos.kind == API_POS_SEQ || pos.kind == API_POS_NOW ||
                          pos.kind == API_POS_TS);
            }
        }
    }
    if (rv == 0 && op.type == API_WS_AUTH) {
        HD_ASSERT(op.token != NULL && op.token_len >= 1 && op.token_len <= API_WS_TOKEN_MAX);
    }
    if (rv == 0 && op.type == API_WS_APPEND) {
        HD_ASSERT(op.id != NULL && strlen(op.id) <= API_WS_ID_MAX);
        HD_ASSERT(hd_channel_valid(op.channel, op.channel_len));
    }
    if (rv == 0 && op.flat) {
        fuzz__flat_agrees(data, size, &op);
    }
    api_ws_op_free(&op);
}

/* Every item of a decoded list is a valid channel inside the text. */
static void fuzz__tail_list(const char *text, size_t size)
{
    struct api_tail_item *items = NULL;
    size_t n = 0;
    const char *bad = NULL;
    int rv = api_tail_list_decode(text, size, 16, &items, &n, &bad);
    if (rv != 0) {
        HD_ASSERT(bad != NULL && items == NULL);
        return;
    }
    HD_ASSERT(n >= 1 && n <= 16);
    uint64_t seqs[16] = {0}, epochs[16] = {0};
    bool given[16] = {false};
    for (size_t i = 0; i < n; i++) {
        HD_ASSERT(items[i].channel >= text && items[i].channel + items[i].len <= text + size);
        HD_ASSERT(hd_channel_valid(items[i].channel, items[i].len));
    }
    (void)api_tail_resume_decode(text, size, n, seqs, epochs, given);
    hd_free(items);
}

/* An SSE id position that decodes is written back the same way. */
static void fuzz__sse_position(const char *text, size_t size)
{
    uint64_t seq = 0, epoch = 0;
    if (api_sse_position_decode(text, size, &seq, &epoch) != 0) {
        return;
    }
    char again[FAN_SSE_POSITION_MAX];
    fan_sse_position(again, sizeof again, seq, epoch);
    uint64_t seq2 = 0, epoch2 = 0;
    HD_ASSERT(api_sse_position_decode(again, strlen(again), &seq2, &epoch2) == 0);
    HD_ASSERT(seq2 == seq && epoch2 == epoch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    /* The first byte picks the decoder; the rest is its input. */
    switch (data[0] % 3) {
        case 0:
            fuzz__ws_op(data + 1, size - 1);
            break;
        case 1:
            fuzz__tail_list((const char *)data + 1, size - 1);
            break;
        default:
            fuzz__sse_position((const char *)data + 1, size - 1);
            break;
    }
    return 0;
}
