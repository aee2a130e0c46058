/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the shared helpers: CRC32C vectors, byte order, error strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "hd_util.h"

static void test_crc32c_known_vector(void **state)
{
    (void)state;
    /* The standard check value of CRC-32C (RFC 3720, B.4). */
    assert_int_equal(hd_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(hd_crc32c(0, zeros, sizeof zeros), 0x8A9136AAu);
}

static void test_crc32c_chains(void **state)
{
    (void)state;
    uint32_t part = hd_crc32c(0, "12345", 5);
    assert_int_equal(hd_crc32c(part, "6789", 4), 0xE3069283u);
}

static void test_byte_order_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[8];
    hd_put_u64(buf, 0x0102030405060708ull);
    assert_int_equal(buf[0], 0x08);
    assert_true(hd_get_u64(buf) == 0x0102030405060708ull);
    hd_put_be64(buf, 0x0102030405060708ull);
    assert_int_equal(buf[0], 0x01);
    assert_true(hd_get_be64(buf) == 0x0102030405060708ull);
    hd_put_u32(buf, 0xA1B2C3D4u);
    assert_int_equal(hd_get_u32(buf), 0xA1B2C3D4u);
    hd_put_u16(buf, 0xBEEF);
    assert_int_equal(hd_get_u16(buf), 0xBEEF);
}

static void test_errors_have_text(void **state)
{
    (void)state;
    assert_string_equal(hd_strerror(HD_ECORRUPT), "data is corrupt");
    assert_string_equal(hd_strerror(0), "ok");
    assert_true(HD_ENOMEM < 0);
    assert_int_equal(hd_from_errno(28 /* ENOSPC */), HD_ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vector),
        cmocka_unit_test(test_crc32c_chains),
        cmocka_unit_test(test_byte_order_roundtrip),
        cmocka_unit_test(test_errors_have_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
