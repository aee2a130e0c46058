/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the strict base64 codec: RFC 4648 vectors, bad input refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_base64.h"
#include "hd_error.h"

static void test_base64_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                        "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t len = strlen(plain[i]);
        char enc[16];
        assert_int_equal(hd_base64_encoded_len(len), strlen(coded[i]));
        assert_int_equal(hd_base64_encode((const uint8_t *)plain[i], len, enc), strlen(coded[i]));
        assert_memory_equal(enc, coded[i], strlen(coded[i]));
        uint8_t out[16];
        size_t n;
        assert_true(hd_base64_decoded_max(strlen(coded[i])) >= len);
        assert_int_equal(hd_base64_decode(coded[i], strlen(coded[i]), out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, plain[i], n);
    }
}

static void test_base64_all_bytes(void **state)
{
    (void)state;
    uint8_t in[256], out[256];
    for (int i = 0; i < 256; i++) in[i] = (uint8_t)i;
    char enc[344];
    for (size_t len = 0; len <= sizeof in; len += 37) {
        size_t m = hd_base64_encode(in, len, enc);
        assert_int_equal(m, hd_base64_encoded_len(len));
        size_t n = 0;
        assert_int_equal(hd_base64_decode(enc, m, out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
    }
    /* '+' and '/' are the standard alphabet's 62 and 63 (not URL-safe). */
    static const uint8_t hi[] = {0xfb, 0xff};
    assert_int_equal(hd_base64_encode(hi, 2, enc), 4);
    assert_memory_equal(enc, "+/8=", 4);
}

static void test_base64_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zm9", "Zm=v", "Z===", "Zm9v!A==", "Zg==Zg==", "====", "Zg=", "Zg", "Zm9v\n",
        "Zm9 v", "Zm9v Zm9v", "Zm9-", "Zm9_", "=Zm9", "AB=C", "A=B="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[16];
        size_t n = 42;
        if (hd_base64_decode(bad[i], strlen(bad[i]), out, &n) != HD_EINVAL) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(n, 42);
    }
    /* A NUL is a bad character, not the end. */
    uint8_t nul_out[8];
    size_t nul_n = 42;
    assert_int_equal(hd_base64_decode("Zg=\0", 4, nul_out, &nul_n), HD_EINVAL);
    assert_int_equal(hd_base64_decode("Zm\0v", 4, nul_out, &nul_n), HD_EINVAL);
    assert_int_equal(nul_n, 42);
    /* Non-zero pad bits are accepted (RFC 4648 3.5 allows either). */
    uint8_t out[4];
    size_t n = 0;
    assert_int_equal(hd_base64_decode("Zh==", 4, out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'f');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_all_bytes),
        cmocka_unit_test(test_base64_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
