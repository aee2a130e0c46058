/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the channel id and nonce rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_ids.h"

static bool channel_ok(const char *s)
{
    return hd_channel_valid(s, strlen(s));
}

static void test_channel_valid(void **state)
{
    (void)state;
    char max[HD_CHANNEL_MAX + 2];
    memset(max, 'a', HD_CHANNEL_MAX);
    max[HD_CHANNEL_MAX] = '\0';
    assert_true(channel_ok("general"));
    assert_true(channel_ok("team-1.room:2_x"));
    assert_true(channel_ok("A-z_0.9:x"));
    assert_true(channel_ok("az.AZ_09:-"));
    assert_true(channel_ok(max));
    max[HD_CHANNEL_MAX] = 'a';
    max[HD_CHANNEL_MAX + 1] = '\0';
    assert_false(channel_ok(max));
    assert_false(channel_ok(""));
    assert_false(channel_ok("a/b"));
    assert_false(channel_ok("a b"));
    assert_false(channel_ok("a?x=1"));
    assert_false(channel_ok("a%20"));
    assert_false(channel_ok("caf\xc3\xa9"));
    assert_false(hd_channel_valid(NULL, 0));
    /* Length is the caller's: a NUL inside is a bad byte, not the end. */
    assert_false(hd_channel_valid("a\0b", 3));
    assert_true(hd_channel_valid("ab/", 2));
}

static void test_nonce_valid(void **state)
{
    (void)state;
    char max[HD_NONCE_MAX + 1];
    memset(max, '~', sizeof max);
    assert_true(hd_nonce_valid("abc-123", 7));
    assert_true(hd_nonce_valid("!", 1));
    assert_true(hd_nonce_valid("{\"q\":1}/?#%", 11));
    assert_true(hd_nonce_valid(max, HD_NONCE_MAX));
    assert_false(hd_nonce_valid(max, HD_NONCE_MAX + 1));
    assert_false(hd_nonce_valid("", 0));
    assert_false(hd_nonce_valid(NULL, 0));
    assert_false(hd_nonce_valid("a b", 3));
    assert_false(hd_nonce_valid("a\tb", 3));
    assert_false(hd_nonce_valid("a\x7f", 2));
    assert_false(hd_nonce_valid("caf\xc3\xa9", 5));
    assert_false(hd_nonce_valid("a\0b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_valid),
        cmocka_unit_test(test_nonce_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
