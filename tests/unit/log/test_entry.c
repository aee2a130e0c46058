/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the entry codec: roundtrip, and rejection of every kind of damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "entry.h"
#include "hd_error.h"

static struct log_append sample[3] = {
    {"general", 7, "n-1", 3, (const uint8_t *)"hello", 5},
    {"random.chat:42", 14, "n-2", 3, (const uint8_t *)"", 0},
    {"general", 7, "n-3", 3, (const uint8_t *)"\x00\xff\x01", 3},
};

static uint8_t *encode_sample(size_t *len)
{
    struct log_entry_header h = {.stamp_us = 1732234567000123ull, .proposer = 1,
                                 .proposal = 77, .count = 3};
    *len = log_entry_size(sample, 3);
    uint8_t *buf = malloc(*len);
    log_entry_encode(buf, &h, sample, 3);
    return buf;
}

static void test_roundtrip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encode_sample(&len);
    struct log_entry_header h;
    assert_int_equal(log_entry_decode(buf, len, &h), 0);
    assert_int_equal(h.count, 3);
    assert_true(h.stamp_us == 1732234567000123ull);
    assert_true(h.proposal == 77);
    struct log_entry_iter it;
    log_entry_iter_init(&it, buf, len);
    struct log_append a;
    for (int i = 0; i < 3; i++) {
        assert_true(log_entry_iter_next(&it, &a));
        assert_memory_equal(a.channel, sample[i].channel, sample[i].channel_len);
        assert_int_equal(a.nonce_len, sample[i].nonce_len);
        assert_int_equal(a.payload_len, sample[i].payload_len);
        if (a.payload_len) assert_memory_equal(a.payload, sample[i].payload, a.payload_len);
    }
    assert_false(log_entry_iter_next(&it, &a));
    free(buf);
}

static void test_every_flipped_bit_is_rejected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encode_sample(&len);
    struct log_entry_header h;
    for (size_t i = 0; i < len * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_equal(log_entry_decode(buf, len, &h), HD_ECORRUPT);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    assert_int_equal(log_entry_decode(buf, len, &h), 0);
    free(buf);
}

static void test_every_truncation_is_rejected(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = encode_sample(&len);
    struct log_entry_header h;
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(log_entry_decode(buf, cut, &h), HD_ECORRUPT);
    }
    free(buf);
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(hd_channel_valid("a", 1));
    assert_true(hd_channel_valid("A-z_0.9:x", 9));
    assert_false(hd_channel_valid("", 0));
    assert_false(hd_channel_valid("a/b", 3));
    assert_false(hd_channel_valid("a b", 3));
    char long_id[130];
    memset(long_id, 'x', sizeof long_id);
    assert_true(hd_channel_valid(long_id, 128));
    assert_false(hd_channel_valid(long_id, 129));
    assert_true(hd_nonce_valid("abc-123", 7));
    assert_false(hd_nonce_valid("", 0));
    assert_false(hd_nonce_valid("a b", 3));
    assert_false(hd_nonce_valid(long_id, 129));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_every_flipped_bit_is_rejected),
        cmocka_unit_test(test_every_truncation_is_rejected),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
