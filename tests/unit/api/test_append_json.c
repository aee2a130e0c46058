/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the hot append's JSON (api/v1/append_json.c) against jansson:
 * what the scan takes, jansson reads alike; the answer is jansson's bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "append_json.h"
#include "hd_ts.h"

/* jansson's reading of the body, as api/v1/append.c reads it: true when it
 * is an object with a string nonce and exactly one string payload. */
static bool jansson_reads(const char *body, size_t len, struct api_append_input *out)
{
    json_error_t jerr;
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return false;
    }
    json_t *nonce = json_object_get(obj, "nonce");
    json_t *payload = json_object_get(obj, "payload");
    json_t *b64 = json_object_get(obj, "payload_b64");
    json_t *p = payload != NULL ? payload : b64;
    bool ok = json_is_string(nonce) && (payload == NULL) != (b64 == NULL) && json_is_string(p);
    if (ok) {
        /* Copies: the tree is freed here. The tests compare contents. */
        static char nonce_copy[512], payload_copy[4096];
        memcpy(nonce_copy, json_string_value(nonce), json_string_length(nonce));
        memcpy(payload_copy, json_string_value(p), json_string_length(p));
        *out = (struct api_append_input){nonce_copy, json_string_length(nonce), payload_copy,
                                        json_string_length(p), b64 != NULL};
    }
    json_decref(obj);
    return ok;
}

/* Whenever the scan takes a body, jansson takes it with the same members. */
static void check_agrees(const char *body, bool scan_expected)
{
    size_t len = strlen(body);
    struct api_append_input fast, slow;
    bool scanned = api_append_json_scan(body, len, &fast);
    if (scanned != scan_expected) {
        fail_msg("scan %s %s", scanned ? "took" : "refused", body);
    }
    if (!scanned) {
        return;
    }
    assert_true(jansson_reads(body, len, &slow));
    assert_int_equal(fast.nonce_len, slow.nonce_len);
    assert_memory_equal(fast.nonce, slow.nonce, fast.nonce_len);
    assert_int_equal(fast.payload_len, slow.payload_len);
    if (fast.payload_len > 0) {
        assert_memory_equal(fast.payload, slow.payload, fast.payload_len);
    }
    assert_int_equal(fast.b64, slow.b64);
}

static void test_hot_shapes(void **state)
{
    (void)state;
    check_agrees("{\"nonce\":\"abc-1-2\",\"payload\":\"hello world\"}", true);
    check_agrees("{\"payload\":\"x\",\"nonce\":\"n\"}", true);
    check_agrees(" \r\n\t{ \"nonce\" : \"n\" , \"payload_b64\" : \"aGVsbG8=\" } \n", true);
    check_agrees("{\"nonce\":\"n\",\"payload\":\"\"}", true);
    check_agrees("{\"nonce\":\"n\",\"payload\":\"p\",\"other\":\"x\"}", true);
    check_agrees("{\"nonce\":\"\",\"payload\":\"p\"}", true); /* pending_new refuses it */
}

/* Bodies jansson refuses or reads differently are left to it. */
static void test_refused_shapes(void **state)
{
    (void)state;
    const char *bodies[] = {
        "",
        "{}",
        "[]",
        "{\"nonce\":\"n\"}",
        "{\"payload\":\"p\"}",
        "{\"nonce\":\"n\",\"payload\":\"p\",\"payload_b64\":\"cA==\"}",
        "{\"nonce\":\"n\",\"payload\":\"p\",}",
        "{\"nonce\":\"n\",\"payload\":\"p\"} x",
        "{\"nonce\":\"n\",\"payload\":\"p\"}{}",
        "{\"nonce\":\"n\",\"payload\":\"p\"",
        "{\"nonce\":\"n\",\"payload\":\"p",
        "{\"nonce\":\"n\" \"payload\":\"p\"}",
        "{\"nonce\":\"n\",\"payload\":\"a\\\"b\"}",
        "{\"nonce\":\"n\",\"payload\":\"a\\u0000b\"}",
        "{\"nonce\":\"n\",\"payload\":\"caf\xc3\xa9\"}",
        "{\"nonce\":\"n\",\"payload\":\"\xff\"}",
        "{\"nonce\":\"n\",\"payload\":\"tab\there\"}",
        "{\"nonce\":\"n\",\"payload\":1}",
        "{\"nonce\":1,\"payload\":\"p\"}",
        "{\"nonce\":\"n\",\"payload\":\"p\",\"x\":null}",
        "{\"nonce\":\"n\",\"payload\":\"p\",\"x\":{\"a\":\"b\"}}",
        "{\"nonce\":\"n\",\"nonce\":\"m\",\"payload\":\"p\"}",
        "{\"nonce\":\"n\",\"payload\":\"p\",\"x\":\"1\",\"x\":\"2\"}",
        "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\",\"f\":\"6\",\"g\":\"7\",\"nonce\":\"n\","
        "\"payload\":\"p\"}",
        "{\"n\\u006fnce\":\"n\",\"payload\":\"p\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        check_agrees(bodies[i], false);
    }
}

/* A body is scanned within its length: bytes past it are not read. */
static void test_length_bounds(void **state)
{
    (void)state;
    const char *body = "{\"nonce\":\"n\",\"payload\":\"p\"}GARBAGE";
    struct api_append_input fast;
    assert_true(api_append_json_scan(body, strlen(body) - 7, &fast));
    assert_false(api_append_json_scan(body, strlen(body) - 8, &fast));
    for (size_t len = 0; len < strlen(body) - 7; len++) {
        assert_false(api_append_json_scan(body, len, &fast));
    }
}

/* Random bodies over a small alphabet of JSON's punctuation: the scan never
 * takes one jansson would not read the same way. */
static void test_random_bodies(void **state)
{
    (void)state;
    static const char alphabet[] = "{}\":, \\nonce payload_b64xu0\t";
    srand(2026);
    char body[64];
    for (int round = 0; round < 200000; round++) {
        size_t len = (size_t)(rand() % 48);
        for (size_t i = 0; i < len; i++) {
            body[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        }
        body[len] = '\0';
        struct api_append_input fast, slow;
        if (api_append_json_scan(body, len, &fast)) {
            assert_true(jansson_reads(body, len, &slow));
            assert_int_equal(fast.nonce_len, slow.nonce_len);
            assert_int_equal(fast.payload_len, slow.payload_len);
        }
    }
    /* Mutations of a real body reach deeper than random text does. */
    const char *base = "{\"nonce\":\"n-1\",\"payload\":\"ab\",\"payload_b64\":\"x\"}";
    size_t base_len = strlen(base);
    for (int round = 0; round < 200000; round++) {
        memcpy(body, base, base_len + 1);
        for (int k = rand() % 4; k >= 0; k--) {
            body[rand() % (int)base_len] = alphabet[rand() % (int)(sizeof alphabet - 1)];
        }
        struct api_append_input fast, slow;
        if (api_append_json_scan(body, base_len, &fast)) {
            assert_true(jansson_reads(body, base_len, &slow));
            assert_int_equal(fast.nonce_len, slow.nonce_len);
            assert_memory_equal(fast.nonce, slow.nonce, fast.nonce_len);
            assert_int_equal(fast.payload_len, slow.payload_len);
            assert_int_equal(fast.b64, slow.b64);
        }
    }
}

/* The answer is byte for byte what jansson printed before. */
static void check_answer(const char *channel, uint64_t seq, uint64_t ts, bool duplicate)
{
    char ts_text[HD_TS_STR_MAX];
    hd_ts_format(ts, ts_text, sizeof ts_text);
    json_t *o = json_pack("{s:s%, s:I, s:s, s:b}", "channel", channel, strlen(channel), "seq",
                          (json_int_t)seq, "ts", ts_text, "duplicate", duplicate);
    char *want = json_dumps(o, JSON_COMPACT);
    char got[API_APPEND_ANSWER_MAX];
    size_t len = api_append_json_answer(got, channel, strlen(channel), seq, ts, duplicate);
    assert_int_equal(len, strlen(want));
    assert_string_equal(got, want);
    free(want);
    json_decref(o);
}

static void test_answer_matches_jansson(void **state)
{
    (void)state;
    check_answer("orders", 1, 1732234567000123ull, false);
    check_answer("a", 42, 0, true);
    check_answer("x.y:z-_9", 9223372036854775807ull, 18446744073709551615ull, false);
    char longest[HD_TS_STR_MAX + 129];
    memset(longest, 'c', 128);
    longest[128] = '\0';
    check_answer(longest, 9223372036854775807ull, 18446744073709551615ull, true);
}

/* The WebSocket ack is byte for byte what jansson printed before. */
static void check_ack(const char *id, const char *channel, uint64_t seq, uint64_t ts,
                      bool duplicate)
{
    char ts_text[HD_TS_STR_MAX];
    hd_ts_format(ts, ts_text, sizeof ts_text);
    json_t *o = json_pack("{s:s, s:s, s:s%, s:I, s:s, s:b}", "type", "ack", "id", id, "channel",
                          channel, strlen(channel), "seq", (json_int_t)seq, "ts", ts_text,
                          "duplicate", duplicate);
    char *want = json_dumps(o, JSON_COMPACT);
    char got[API_APPEND_ACK_MAX];
    size_t len = api_append_json_ack(got, id, strlen(id), channel, strlen(channel), seq, ts,
                                     duplicate);
    assert_int_equal(len, strlen(want));
    assert_string_equal(got, want);
    free(want);
    json_decref(o);
}

static void test_ack_matches_jansson(void **state)
{
    (void)state;
    check_ack("a1", "room-1", 1, 1732234567000123ull, false);
    check_ack("x y/z~!#$%&'()*+,-.:;<=>?@[]^_`{|}", "a", 42, 0, true);
    char id[API_WS_ID_MAX + 2];
    memset(id, 'i', API_WS_ID_MAX);
    id[API_WS_ID_MAX] = '\0';
    char channel[129];
    memset(channel, 'c', 128);
    channel[128] = '\0';
    check_ack(id, channel, 9223372036854775807ull, 18446744073709551615ull, true);
}

/* Ids jansson would escape, or too long, are left to jansson: 0. */
static void test_ack_refuses(void **state)
{
    (void)state;
    char buf[API_APPEND_ACK_MAX];
    static const char *const ids[] = {"a\"b", "a\\b", "a\nb", "a\x7f", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        assert_int_equal(api_append_json_ack(buf, ids[i], strlen(ids[i]), "c", 1, 1, 1, false), 0);
    }
    char id[API_WS_ID_MAX + 2];
    memset(id, 'i', API_WS_ID_MAX + 1);
    id[API_WS_ID_MAX + 1] = '\0';
    assert_int_equal(api_append_json_ack(buf, id, strlen(id), "c", 1, 1, 1, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hot_shapes),
        cmocka_unit_test(test_refused_shapes),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_random_bodies),
        cmocka_unit_test(test_answer_matches_jansson),
        cmocka_unit_test(test_ack_matches_jansson),
        cmocka_unit_test(test_ack_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
