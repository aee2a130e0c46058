/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of retention policies (common/hd_retention.c): the parser, its errors, first match, the canonical text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_error.h"
#include "hd_retention.h"

static struct hd_retention *parse_ok(const char *text)
{
    struct hd_retention *set = calloc(1, sizeof *set);
    char err[512] = "";
    int rv = hd_retention_parse(set, text, strlen(text), err, sizeof err);
    if (rv != 0) {
        fail_msg("'%s' refused: %s", text, err);
    }
    return set;
}

/* The error of text, which must be refused, leaving the set unchanged. */
static void refused(const char *text, const char *want)
{
    struct hd_retention *set = parse_ok("keep=none");
    char err[512] = "";
    assert_int_equal(hd_retention_parse(set, text, strlen(text), err, sizeof err), HD_EINVAL);
    if (strstr(err, want) == NULL) {
        fail_msg("'%s': error '%s' lacks '%s'", text, err, want);
    }
    assert_int_equal(set->n, 1);
    free(set);
}

static void canonical(const char *text, const char *want)
{
    struct hd_retention *set = parse_ok(text);
    char out[HD_RETENTION_TEXT_MAX];
    hd_retention_format(set, out, sizeof out);
    assert_string_equal(out, want);
    /* The canonical text parses back to itself. */
    struct hd_retention *again = parse_ok(out);
    char out2[HD_RETENTION_TEXT_MAX];
    hd_retention_format(again, out2, sizeof out2);
    assert_string_equal(out2, want);
    free(set);
    free(again);
}

static void test_limits_and_units(void **state)
{
    (void)state;
    struct hd_retention *set =
        parse_ok(" chat:* = age:7d , messages:100000,bytes:1GiB ; *=age:30d");
    assert_int_equal(set->n, 2);
    const struct hd_retention_rule *r = &set->rules[0];
    assert_true(r->pattern.prefix);
    assert_string_equal(r->pattern.pattern, "chat:");
    assert_int_equal(r->max_age_us, 7ull * 86400 * 1000000);
    assert_true(r->has_messages);
    assert_int_equal(r->max_messages, 100000);
    assert_true(r->has_bytes);
    assert_int_equal(r->max_bytes, 1ull << 30);
    assert_int_equal(set->rules[1].max_age_us, 30ull * 86400 * 1000000);
    assert_false(set->rules[1].has_messages);
    free(set);
    canonical("a=age:2s", "a=age:2s");
    canonical("a=age:120s", "a=age:2m");
    canonical("a=age:1w", "a=age:1w");
    canonical("a=age:36h", "a=age:36h");
    canonical("a=bytes:1024", "a=bytes:1KiB");
    canonical("a=bytes:1000", "a=bytes:1kB");
    canonical("a=bytes:1500B", "a=bytes:1500");
    canonical("a=bytes:0,messages:0", "a=messages:0,bytes:0");
    canonical("x-*=none;*=messages:5", "x-*=none;*=messages:5");
}

static void test_first_match_wins(void **state)
{
    (void)state;
    struct hd_retention *set = parse_ok("audit:*=none;chat:vip=messages:10;chat:*=age:1h;*=age:30d");
    const struct hd_retention_rule *r = hd_retention_match(set, "audit:1", 7);
    assert_non_null(r);
    assert_false(hd_retention_rule_limits(r));
    r = hd_retention_match(set, "chat:vip", 8);
    assert_true(r->has_messages && r->max_messages == 10);
    r = hd_retention_match(set, "chat:vip2", 9);
    assert_int_equal(r->max_age_us, 3600ull * 1000000);
    r = hd_retention_match(set, "other", 5);
    assert_int_equal(r->max_age_us, 30ull * 86400 * 1000000);
    free(set);
    set = parse_ok("chat:*=messages:1");
    assert_null(hd_retention_match(set, "chat", 4));
    assert_null(hd_retention_match(NULL, "chat", 4));
    /* Repeated flags append in order. */
    char err[256];
    assert_int_equal(hd_retention_parse(set, "*=age:1d", 8, err, sizeof err), 0);
    assert_int_equal(set->n, 2);
    assert_int_equal(hd_retention_match(set, "x", 1)->max_age_us, 86400ull * 1000000);
    free(set);
}

static void test_errors(void **state)
{
    (void)state;
    refused("", "empty rule");
    refused("a=none;", "empty rule");
    refused("a=none;;b=none", "empty rule");
    refused("chat:*", "PATTERN=LIMIT");
    refused("chat:*=", "no limit");
    refused("bad id=messages:1", "bad pattern");
    refused("*x=messages:1", "bad pattern");
    refused("=messages:1", "bad pattern");
    refused("a=age:7", "age must be");
    refused("a=age:0s", "age must be");
    refused("a=age:7y", "age must be");
    refused("a=age:-1d", "age must be");
    refused("a=age:99999999999999999999w", "age must be");
    refused("a=messages:many", "messages must be");
    refused("a=messages:-1", "messages must be");
    refused("a=bytes:1GB2", "bytes must be");
    refused("a=bytes:20000000TiB", "bytes must be");
    refused("a=size:1", "unknown limit");
    refused("a=age:1d,age:2d", "age is given twice");
    refused("a=messages:1,messages:2", "messages is given twice");
    refused("a=bytes:1,bytes:2", "bytes is given twice");
    refused("a=messages:1,", "empty limit");
    refused("a=messages:1,,age:1s", "empty limit");
    refused("a=none,messages:1", "unknown limit");
    /* Shadowed rules could never apply. */
    refused("*=age:1d;chat:*=messages:1", "never applies");
    refused("chat:*=age:1d;chat:room=messages:1", "never applies");
    refused("chat:*=age:1d;chat:r*=messages:1", "never applies");
    refused("x=age:1d;x=messages:1", "never applies");
    refused("keep=messages:1", "never applies"); /* the set holds keep=none */
    /* Not shadowed: a narrower rule first, or a longer exact name. */
    struct hd_retention *set = parse_ok("chat:room=messages:1;chat:*=age:1d;chat=age:2d");
    assert_int_equal(set->n, 3);
    free(set);
}

static void test_too_many_rules(void **state)
{
    (void)state;
    struct hd_retention *set = calloc(1, sizeof *set);
    char text[8192] = "", err[256];
    size_t n = 0;
    for (unsigned i = 0; i <= HD_RETENTION_RULES_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "%sc%u=messages:%u", i ? ";" : "", i, i);
    }
    assert_int_equal(hd_retention_parse(set, text, n, err, sizeof err), HD_EINVAL);
    assert_non_null(strstr(err, "more than"));
    assert_int_equal(set->n, 0);
    free(set);
}

static void test_hash_follows_the_policy(void **state)
{
    (void)state;
    struct hd_retention *a = parse_ok("chat:*=age:7d;*=age:30d");
    struct hd_retention *b = parse_ok(" chat:* = age:168h ; * = age:720h ");
    struct hd_retention *c = parse_ok("chat:*=age:6d;*=age:30d");
    char ha[9], hb[9], hc[9], hn[9];
    hd_retention_hash(a, ha);
    hd_retention_hash(b, hb);
    hd_retention_hash(c, hc);
    hd_retention_hash(NULL, hn);
    assert_int_equal(strlen(ha), 8);
    assert_string_equal(ha, hb); /* the same rules, written otherwise */
    assert_string_not_equal(ha, hc);
    assert_string_not_equal(ha, hn);
    free(a);
    free(b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits_and_units),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_too_many_rules),
        cmocka_unit_test(test_hash_follows_the_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
