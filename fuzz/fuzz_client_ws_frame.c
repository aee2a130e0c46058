/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: libherald's decoding of /v1/subscribe server frames
 * (client/sub_frame.c), then what a subscription does with them
 * (client/sub_recv.c): bookkeeping that must never crash or lose track. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "sub_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_message(void *arg, const struct herald_message *m)
{
    HD_ASSERT(m->channel != NULL && m->seq > 0);
    (*(int *)arg)++;
    return 0;
}

/* Whatever the in-place reader takes, jansson's path (which the decoder
 * falls back to for everything else) must decode to the same message. */
static void check_scan_against_jansson(const uint8_t *data, size_t size)
{
    struct herald__buf scratch = {0}, scratch2 = {0};
    struct herald__frame f;
    memset(&f, 0, sizeof f);
    if (herald__frame_scan_message((const char *)data, size, &scratch, &f)) {
        json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        HD_ASSERT(json_is_object(root));
        json_t *type = json_object_get(root, "type");
        HD_ASSERT(json_is_string(type) && strcmp(json_string_value(type), "message") == 0);
        struct herald_message m;
        char why[128];
        HD_ASSERT(herald__message_from_json(root, &scratch2, &m, why, sizeof why) == 0);
        HD_ASSERT(m.channel != NULL && strcmp(m.channel, f.msg.channel) == 0);
        HD_ASSERT(strcmp(m.nonce, f.msg.nonce) == 0);
        HD_ASSERT(m.seq == f.msg.seq && m.ts_us == f.msg.ts_us);
        HD_ASSERT(m.payload_binary == f.msg.payload_binary);
        HD_ASSERT(m.payload_len == f.msg.payload_len);
        HD_ASSERT(memcmp(m.payload, f.msg.payload, m.payload_len) == 0);
        HD_ASSERT(f.msg.payload[f.msg.payload_len] == 0);
        json_decref(root);
    }
    herald__buf_free(&scratch);
    herald__buf_free(&scratch2);
}

/* The input is a decoder test of the whole bytes, then newline-separated
 * frames fed to a subscription holding channels "a" (from 0), "b" (from
 * "now") and one append in flight with id "x". */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_scan_against_jansson(data, size);
    struct herald__buf scratch = {0};
    struct herald__frame f;
    char why[256];
    int rv = herald__frame_decode((const char *)data, size, &scratch, &f, why, sizeof why);
    HD_ASSERT(rv == 0 || rv == HD_ECORRUPT || rv == HD_ENOMEM);
    if (rv == 0 && f.type == HERALD__F_MESSAGE) {
        HD_ASSERT(f.msg.seq > 0 && f.msg.channel != NULL);
        HD_ASSERT(f.msg.payload != NULL || f.msg.payload_len == 0);
    }
    herald__frame_free(&f);
    herald__buf_free(&scratch);

    struct herald_client c;
    struct herald_sub *s;
    int messages = 0;
    HD_ASSERT(herald_client_init(&c, "http://127.0.0.1:1") == 0);
    HD_ASSERT(herald_sub_open(&s, &c, count_message, NULL, &messages) == 0);
    herald_sub_add(s, "a", 0);
    herald_sub_add(s, "b", HERALD_SUB_NOW);
    herald_sub_append(s, "x", "a", "p", 1, "n");
    /* Not connected: frames are handled as if they had arrived. */
    s->state = HERALD__S_OPEN;
    for (size_t i = 0; i < size;) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (data + i)) : size - i;
        if (herald__sub_on_text(s, (const char *)data + i, len) != 0) break;
        i += len + 1;
    }
    s->state = HERALD__S_IDLE;
    uint64_t pos;
    if (herald_sub_position(s, "a", &pos) == 0) HD_ASSERT(pos != HERALD_SUB_NOW);
    herald_sub_close(s);
    return 0;
}
