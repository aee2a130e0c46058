/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the WebSocket operation decoder (api/v1/delivery_parse.c): an
 * append frame read in place (flat) carries exactly what jansson reads from
 * it, and every other frame takes jansson's path with its answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_parse.h"
#include "hd_error.h"

/* The append's fields as jansson reads the frame. */
struct slow_append {
    char id[256];
    char channel[256];
    char nonce[256];
    char payload[1024];
    size_t channel_len, nonce_len, payload_len;
    bool b64;
};

static bool slow_read(const char *frame, size_t len, struct slow_append *out)
{
    json_t *o = json_loadb(frame, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *nonce = json_object_get(o, "nonce");
    json_t *payload = json_object_get(o, "payload");
    json_t *b64 = json_object_get(o, "payload_b64");
    json_t *p = payload != NULL ? payload : b64;
    bool ok = json_is_object(o) && json_is_string(json_object_get(o, "id")) &&
              json_is_string(json_object_get(o, "channel")) && json_is_string(nonce) &&
              json_is_string(p) && (payload == NULL) != (b64 == NULL);
    if (ok) {
        strcpy(out->id, json_string_value(json_object_get(o, "id")));
        out->channel_len = json_string_length(json_object_get(o, "channel"));
        memcpy(out->channel, json_string_value(json_object_get(o, "channel")), out->channel_len);
        out->nonce_len = json_string_length(nonce);
        memcpy(out->nonce, json_string_value(nonce), out->nonce_len);
        out->payload_len = json_string_length(p);
        memcpy(out->payload, json_string_value(p), out->payload_len);
        out->b64 = b64 != NULL;
    }
    json_decref(o);
    return ok;
}

/* Decodes frame; when it was read flat, jansson must read the same. */
static bool decode_checked(const char *frame, size_t len, int *rv_out)
{
    struct api_ws_op op;
    struct api_ws_op_error err;
    int rv = api_ws_op_decode((const uint8_t *)frame, len, &op, &err);
    bool flat = rv == 0 && op.flat;
    if (flat) {
        struct slow_append slow;
        assert_null(op.root);
        assert_int_equal(op.type, API_WS_APPEND);
        assert_true(slow_read(frame, len, &slow));
        assert_string_equal(op.id, slow.id);
        assert_int_equal(op.channel_len, slow.channel_len);
        assert_memory_equal(op.channel, slow.channel, slow.channel_len);
        assert_int_equal(op.input.nonce_len, slow.nonce_len);
        assert_memory_equal(op.input.nonce, slow.nonce, slow.nonce_len);
        assert_int_equal(op.input.payload_len, slow.payload_len);
        assert_memory_equal(op.input.payload, slow.payload, slow.payload_len);
        assert_int_equal(op.input.b64, slow.b64);
    }
    api_ws_op_free(&op);
    if (rv_out != NULL) {
        *rv_out = rv;
    }
    return flat;
}

static void test_plain_appends_are_flat(void **state)
{
    (void)state;
    static const char *const frames[] = {
        "{\"type\":\"append\",\"id\":\"a1\",\"channel\":\"room-1\",\"nonce\":\"n-42\","
        "\"payload\":\"hello\"}",
        " { \"channel\" : \"x.y:z\" , \"payload_b64\":\"aGk=\", \"nonce\":\"n\", "
        "\"type\":\"append\", \"id\":\"/ ~\" } ",
        "{\"type\":\"append\",\"id\":\"i\",\"channel\":\"c\",\"nonce\":\"n\",\"payload\":\"\","
        "\"extra\":\"ignored\"}",
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        assert_true(decode_checked(frames[i], strlen(frames[i]), NULL));
    }
}

/* Frames jansson must see: escapes, numbers, errors, other types. The flat
 * path leaves every error to jansson, so its answers are unchanged. */
static void test_other_frames_take_jansson(void **state)
{
    (void)state;
    static const struct {
        const char *frame;
        int rv;
    } cases[] = {
        {"{\"type\":\"append\",\"id\":\"a\\\"b\",\"channel\":\"c\",\"nonce\":\"n\","
         "\"payload\":\"x\"}", 0},
        {"{\"type\":\"append\",\"id\":\"a\",\"channel\":\"c\",\"nonce\":\"n\","
         "\"payload\":\"caf\\u00e9\"}", 0},
        {"{\"type\":\"append\",\"id\":7,\"channel\":\"c\",\"nonce\":\"n\",\"payload\":\"x\"}",
         HD_EINVAL},
        {"{\"type\":\"append\",\"channel\":\"c\",\"nonce\":\"n\",\"payload\":\"x\"}", HD_EINVAL},
        {"{\"type\":\"append\",\"id\":\"\",\"channel\":\"c\",\"nonce\":\"n\",\"payload\":\"x\"}",
         HD_EINVAL},
        {"{\"type\":\"append\",\"id\":\"a\",\"channel\":\"bad/ch\",\"nonce\":\"n\","
         "\"payload\":\"x\"}", HD_EINVAL},
        /* nonce and payload errors are the append path's: decoded, not flat */
        {"{\"type\":\"append\",\"id\":\"a\",\"channel\":\"c\",\"payload\":\"x\"}", 0},
        {"{\"type\":\"append\",\"id\":\"a\",\"channel\":\"c\",\"nonce\":\"n\",\"payload\":\"x\","
         "\"payload_b64\":\"eA==\"}", 0},
        {"{\"type\":\"ping\",\"id\":\"p\"}", 0},
        {"{\"type\":\"appendix\",\"id\":\"a\",\"channel\":\"c\",\"nonce\":\"n\","
         "\"payload\":\"x\"}", HD_EINVAL},
        {"{\"type\":\"append\",\"id\":\"a\",\"id\":\"b\",\"channel\":\"c\",\"nonce\":\"n\","
         "\"payload\":\"x\"}", HD_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rv = -1;
        assert_false(decode_checked(cases[i].frame, strlen(cases[i].frame), &rv));
        if (rv != cases[i].rv) {
            fail_msg("%s: rv %d, expected %d", cases[i].frame, rv, cases[i].rv);
        }
    }
    char frame[512];
    char id[API_WS_ID_MAX + 2];
    memset(id, 'i', API_WS_ID_MAX + 1);
    id[API_WS_ID_MAX + 1] = '\0';
    int n = snprintf(frame, sizeof frame,
                     "{\"type\":\"append\",\"id\":\"%s\",\"channel\":\"c\",\"nonce\":\"n\","
                     "\"payload\":\"x\"}", id);
    int rv = 0;
    assert_false(decode_checked(frame, (size_t)n, &rv));
    assert_int_equal(rv, HD_EINVAL); /* bad_id, as before */
    id[API_WS_ID_MAX] = '\0';
    n = snprintf(frame, sizeof frame,
                 "{\"type\":\"append\",\"id\":\"%s\",\"channel\":\"c\",\"nonce\":\"n\","
                 "\"payload\":\"x\"}", id);
    assert_true(decode_checked(frame, (size_t)n, NULL));
}

/* Mutations of an append frame: whatever is read flat, jansson reads alike. */
static void test_mutations_agree(void **state)
{
    (void)state;
    static const char alphabet[] = "{}\":, \\idtypeappendchannelnoncepayload_b64xu0\t7";
    const char *base = "{\"type\":\"append\",\"id\":\"a1\",\"channel\":\"c-1\",\"nonce\":\"n\","
                       "\"payload\":\"ab\"}";
    size_t len = strlen(base);
    char frame[128];
    srand(2026);
    size_t flat = 0;
    for (int round = 0; round < 200000; round++) {
        memcpy(frame, base, len + 1);
        for (int k = rand() % 3; k >= 0; k--) {
            frame[rand() % (int)len] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        }
        flat += decode_checked(frame, len, NULL);
    }
    assert_true(flat > 1000); /* the mutations did reach the flat path */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_appends_are_flat),
        cmocka_unit_test(test_other_frames_take_jansson),
        cmocka_unit_test(test_mutations_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
