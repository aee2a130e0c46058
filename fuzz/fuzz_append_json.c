/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the hot append's in-place JSON reader (api/v1/append_json.c)
 * against jansson, the path it stands in for. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "append_json.h"
#include "hd_assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_string(json_t *v, const char *s, size_t len)
{
    return json_is_string(v) && json_string_length(v) == len &&
           memcmp(json_string_value(v), s, len) == 0;
}

/* Whatever the reader takes, jansson (with the flags of the slow path)
 * must read as an object with the same nonce and the same payload, text or
 * base64, and without the other payload member: both paths then append the
 * same thing. What it refuses goes to jansson, so refusing is always safe. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_append_input fast;
    if (!api_append_json_scan((const char *)data, size, &fast)) {
        return 0;
    }
    json_error_t err;
    json_t *obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                             &err);
    HD_ASSERT(json_is_object(obj));
    json_t *text = json_object_get(obj, "payload");
    json_t *b64 = json_object_get(obj, "payload_b64");
    HD_ASSERT(same_string(json_object_get(obj, "nonce"), fast.nonce, fast.nonce_len));
    HD_ASSERT(same_string(fast.b64 ? b64 : text, fast.payload, fast.payload_len));
    HD_ASSERT((fast.b64 ? text : b64) == NULL);
    json_decref(obj);
    return 0;
}
