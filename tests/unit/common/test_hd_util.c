/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the shared helpers: CRC32C vectors, byte order, error strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "hd_out.h"
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

/* Text pieces in order; numbers in decimal, padded to a width; what does
 * not fit is not written, and hd_out_fits says so. */
static void test_out_pieces_and_overflow(void **state)
{
    (void)state;
    char buf[64];
    struct hd_out o = hd_out_init(buf, sizeof buf);
    hd_out_str(&o, "seq ");
    hd_out_u64(&o, 0);
    hd_out_mem(&o, "|", 1);
    hd_out_u64(&o, UINT64_MAX);
    hd_out_mem(&o, "|", 1);
    hd_out_u64_width(&o, 42, 6);
    hd_out_mem(&o, "|", 1);
    hd_out_u64_width(&o, 1234567, 6);
    assert_true(hd_out_fits(&o));
    assert_string_equal(buf, "seq 0|18446744073709551615|000042|1234567");
    assert_int_equal(o.len, strlen(buf));

    char small[8];
    memset(small, 'x', sizeof small);
    o = hd_out_init(small, sizeof small);
    hd_out_str(&o, "1234567"); /* fits, with room for the NUL */
    assert_true(hd_out_fits(&o));
    assert_string_equal(small, "1234567");
    o = hd_out_init(small, sizeof small);
    hd_out_str(&o, "12345678"); /* no room for the NUL */
    assert_false(hd_out_fits(&o));
    o = hd_out_init(small, sizeof small);
    hd_out_str(&o, "1234");
    hd_out_u64(&o, 123456789); /* not written at all */
    hd_out_str(&o, "!");       /* nor anything after it; len counts all */
    assert_int_equal(o.len, 14);
    assert_false(hd_out_fits(&o));
    assert_memory_equal(small, "1234", 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vector),
        cmocka_unit_test(test_crc32c_chains),
        cmocka_unit_test(test_byte_order_roundtrip),
        cmocka_unit_test(test_errors_have_text),
        cmocka_unit_test(test_out_pieces_and_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
