/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the in-place reader of flat JSON objects: what it takes, with
 * which values, and every form it leaves to jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hd_json_flat.h"

static bool scan(const char *text, struct hd_json_flat *o)
{
    return hd_json_flat_scan(text, strlen(text), o);
}

static void test_flat_reads_strings_and_integers(void **state)
{
    (void)state;
    struct hd_json_flat o;
    assert_true(scan(" {\"type\" : \"message\",\n\"seq\":120, \"n\":0,\"e\":\"\"}\r\n", &o));
    assert_int_equal(o.n, 4);
    const struct hd_json_flat_member *m = hd_json_flat_str(&o, "type");
    assert_non_null(m);
    assert_int_equal(m->str_len, 7);
    assert_memory_equal(m->str, "message", 7);
    m = hd_json_flat_get(&o, "seq");
    assert_non_null(m);
    assert_null(m->str);
    assert_int_equal(m->num, 120);
    assert_null(hd_json_flat_str(&o, "seq")); /* not a string */
    assert_int_equal(hd_json_flat_get(&o, "n")->num, 0);
    assert_int_equal(hd_json_flat_str(&o, "e")->str_len, 0);
    assert_null(hd_json_flat_get(&o, "absent"));
    assert_true(scan("{\"big\":999999999999999999}", &o)); /* 18 digits */
    assert_int_equal(o.m[0].num, 999999999999999999ull);
}

static void test_flat_leaves_the_rest_to_jansson(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "{}",                                   /* no member */
        "[]", "\"s\"", "12", "",                /* not an object */
        "{\"a\":\"b\"",                         /* unterminated */
        "{\"a\":\"b\"} x",                      /* trailing bytes */
        "{\"a\":\"b\",}",                       /* trailing comma */
        "{\"a\":\"b\",\"a\":\"c\"}",            /* duplicate key */
        "{\"a\":\"say \\\"hi\\\"\"}",           /* an escape */
        "{\"a\":\"caf\xc3\xa9\"}",              /* non-ASCII */
        "{\"a\":\"tab\there\"}",                /* a control byte */
        "{\"a\":-1}", "{\"a\":01}", "{\"a\":1.5}", "{\"a\":1e3}",
        "{\"a\":1000000000000000000}",          /* 19 digits */
        "{\"a\":true}", "{\"a\":null}", "{\"a\":{}}", "{\"a\":[1]}",
        "{\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8,\"9\":9}", /* > MAX */
    };
    struct hd_json_flat o;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (scan(refused[i], &o)) fail_msg("took %s", refused[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_reads_strings_and_integers),
        cmocka_unit_test(test_flat_leaves_the_rest_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
