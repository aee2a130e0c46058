/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of access tokens (common/hd_token.c): the auth-file parser, the scope rule, lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "hd_error.h"
#include "hd_token.h"

/* The auth-file line of token under name, as herald token create writes it. */
static void line_of(const char *name, const char *token, const char *scopes, char *out,
                    size_t out_len)
{
    uint8_t h[HD_TOKEN_HASH_BYTES];
    hd_token_hash(token, strlen(token), h);
    size_t at = (size_t)snprintf(out, out_len, "%s sha256:", name);
    for (size_t i = 0; i < sizeof h; i++) {
        at += (size_t)snprintf(out + at, out_len - at, "%02x", h[i]);
    }
    snprintf(out + at, out_len - at, " %s\n", scopes);
}

static struct hd_token_set *parse_ok(const char *text)
{
    struct hd_token_set *set = NULL;
    char err[700] = "";
    int rv = hd_token_set_parse(text, strlen(text), &set, err, sizeof err);
    if (rv != 0) {
        fail_msg("parse: %s", err);
    }
    return set;
}

static void expect_refused(const char *text, const char *want)
{
    struct hd_token_set *set = NULL;
    char err[700] = "";
    assert_int_equal(hd_token_set_parse(text, strlen(text), &set, err, sizeof err), HD_EINVAL);
    assert_null(set);
    if (strstr(err, want) == NULL) {
        fail_msg("error '%s' lacks '%s'", err, want);
    }
}

static void test_parse_and_find(void **state)
{
    (void)state;
    char a[300], b[300], text[800];
    line_of("web", "secret-a", "append:team-42:* read:team-42:*  subscribe:*", a, sizeof a);
    line_of("ops", "secret-b", "admin\tstatus", b, sizeof b);
    snprintf(text, sizeof text, "# the tokens\n\n%s   \n%s", a, b);
    struct hd_token_set *set = parse_ok(text);
    assert_int_equal(set->n, 2);
    const struct hd_token *web = hd_token_set_find(set, "secret-a", 8);
    assert_non_null(web);
    assert_string_equal(web->name, "web");
    assert_int_equal(web->n_grants, 3);
    const struct hd_token *ops = hd_token_set_find(set, "secret-b", 8);
    assert_non_null(ops);
    assert_string_equal(ops->name, "ops");
    assert_ptr_equal(hd_token_set_named(set, "ops"), ops);
    assert_null(hd_token_set_find(set, "secret-c", 8));
    assert_null(hd_token_set_find(set, "secret-", 7));
    assert_null(hd_token_set_find(NULL, "secret-a", 8));
    hd_token_set_free(set);
}

static void test_scope_rule(void **state)
{
    (void)state;
    char a[300];
    line_of("web", "t", "append:team-42:* read:exact subscribe:* status", a, sizeof a);
    struct hd_token_set *set = parse_ok(a);
    const struct hd_token *t = &set->tokens[0];
    assert_true(hd_token_allows(t, HD_SCOPE_APPEND, "team-42:x", 9));
    assert_true(hd_token_allows(t, HD_SCOPE_APPEND, "team-42:", 8));
    assert_false(hd_token_allows(t, HD_SCOPE_APPEND, "team-42", 7));
    assert_false(hd_token_allows(t, HD_SCOPE_APPEND, "team-43:x", 9));
    assert_true(hd_token_allows(t, HD_SCOPE_READ, "exact", 5));
    assert_false(hd_token_allows(t, HD_SCOPE_READ, "exactly", 7));
    assert_false(hd_token_allows(t, HD_SCOPE_READ, "exac", 4));
    assert_false(hd_token_allows(t, HD_SCOPE_READ, "team-42:x", 9)); /* append is not read */
    assert_true(hd_token_allows(t, HD_SCOPE_SUBSCRIBE, "anything", 8));
    assert_true(hd_token_allows(t, HD_SCOPE_STATUS, NULL, 0));
    assert_false(hd_token_allows(t, HD_SCOPE_ADMIN, NULL, 0));
    hd_token_set_free(set);
}

static void test_grant_parse(void **state)
{
    (void)state;
    struct hd_grant g;
    assert_int_equal(hd_grant_parse("admin", 5, &g), 0);
    assert_int_equal(g.scope, HD_SCOPE_ADMIN);
    assert_int_equal(hd_grant_parse("read:*", 6, &g), 0);
    assert_true(g.prefix);
    assert_int_equal(g.pattern_len, 0);
    assert_int_equal(hd_grant_parse("read:a:b", 8, &g), 0);
    assert_false(g.prefix);
    assert_string_equal(g.pattern, "a:b");
    const char *bad[] = {"", "adminx", "admin:x", "read", "read:", "read:a b", "read:a*b",
                         "read:**", "write:x", "Read:x", "subscribe:a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hd_grant_parse(bad[i], strlen(bad[i]), &g) == 0) {
            fail_msg("'%s' parsed as a scope", bad[i]);
        }
    }
}

static void test_refusals_name_the_line(void **state)
{
    (void)state;
    char good[300], text[900];
    line_of("web", "secret-a", "admin", good, sizeof good);
    snprintf(text, sizeof text, "# c\n%sweb2 sha256:abc admin\n", good);
    expect_refused(text, "line 3: token 'web2'");
    snprintf(text, sizeof text, "%s%s", good, good);
    expect_refused(text, "line 2: the name 'web' is used twice");
    expect_refused("bad/name sha256:00 admin\n", "line 1: the name");
    char nos[300];
    line_of("x", "s", "", nos, sizeof nos);
    expect_refused(nos, "line 1: token 'x' has no scope");
    char bads[300];
    line_of("x", "s", "admin writes:*", bads, sizeof bads);
    expect_refused(bads, "line 1: token 'x': 'writes:*' is not a scope");
    char upper[300];
    line_of("x", "s", "admin", upper, sizeof upper);
    upper[10] = 'A'; /* a hex digit in upper case */
    expect_refused(upper, "line 1: token 'x': the hash must be");
    char l1[300], l2[300];
    line_of("a", "same", "admin", l1, sizeof l1);
    line_of("b", "same", "admin", l2, sizeof l2);
    snprintf(text, sizeof text, "%s%s", l1, l2);
    expect_refused(text, "line 2: tokens 'a' and 'b' have the same hash");
}

static void test_limits(void **state)
{
    (void)state;
    char a[300];
    line_of("t", "s",
            "append:* limit:appends=100 limit:bytes=65536 limit:streams=3 limit:channels=7", a,
            sizeof a);
    struct hd_token_set *set = parse_ok(a);
    assert_int_equal(set->tokens[0].appends_per_s, 100);
    assert_int_equal(set->tokens[0].bytes_per_s, 65536);
    assert_int_equal(set->tokens[0].streams_max, 3);
    assert_int_equal(set->tokens[0].channels_per_s, 7);
    assert_int_equal(set->tokens[0].n_grants, 1);
    hd_token_set_free(set);
    line_of("t", "s", "status", a, sizeof a);
    set = parse_ok(a);
    assert_int_equal(set->tokens[0].appends_per_s, 0); /* no field: unlimited */
    hd_token_set_free(set);
    const struct {
        const char *scopes, *want;
    } bad[] = {
        {"admin limit:appends=0", "needs a number from 1"},
        {"admin limit:appends=x", "needs a number from 1"},
        {"admin limit:appends=1000000000001", "needs a number from 1"},
        {"admin limit:appends=1 limit:appends=2", "is given twice"},
        {"admin limit:channels=0", "needs a number from 1"},
        {"admin limit:channels=1 limit:channels=1", "is given twice"},
        {"admin limit:writes=1", "is not a limit"},
        {"limit:streams=1", "has no scope"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        line_of("t", "s", bad[i].scopes, a, sizeof a);
        expect_refused(a, bad[i].want);
    }
}

static void test_generate_and_line(void **state)
{
    (void)state;
    char t1[HD_TOKEN_TEXT_MAX], t2[HD_TOKEN_TEXT_MAX];
    assert_int_equal(hd_token_generate(t1, sizeof t1), 0);
    assert_int_equal(hd_token_generate(t2, sizeof t2), 0);
    assert_int_equal(strlen(t1), 67);
    assert_int_equal(strncmp(t1, "hd_", 3), 0);
    assert_string_not_equal(t1, t2);
    const char *scopes[] = {"read:team-1:*", "status"};
    char line[400], err[300] = "";
    assert_int_equal(hd_token_line("reader", t1, scopes, 2, line, sizeof line, err, sizeof err),
                     0);
    /* the line it prints is one the parser takes, and it finds the token */
    struct hd_token_set *set = parse_ok(line);
    const struct hd_token *t = hd_token_set_find(set, t1, strlen(t1));
    assert_non_null(t);
    assert_true(hd_token_allows(t, HD_SCOPE_READ, "team-1:a", 8));
    assert_null(hd_token_set_find(set, t2, strlen(t2)));
    hd_token_set_free(set);
    const char *lim[] = {"append:*", "limit:appends=5"};
    assert_int_equal(hd_token_line("l", t1, lim, 2, line, sizeof line, err, sizeof err), 0);
    set = parse_ok(line);
    assert_int_equal(set->tokens[0].appends_per_s, 5);
    hd_token_set_free(set);
    const char *badlim[] = {"append:*", "limit:appends=0"};
    assert_int_equal(hd_token_line("l", t1, badlim, 2, line, sizeof line, err, sizeof err),
                     HD_EINVAL);
    assert_int_equal(hd_token_line("l", t1, lim + 1, 1, line, sizeof line, err, sizeof err),
                     HD_EINVAL); /* limits alone: no scope */
    const char *bad[] = {"reed:x"};
    assert_int_equal(hd_token_line("r", t1, bad, 1, line, sizeof line, err, sizeof err),
                     HD_EINVAL);
    assert_int_equal(hd_token_line("a b", t1, scopes, 2, line, sizeof line, err, sizeof err),
                     HD_EINVAL);
    assert_int_equal(hd_token_line("r", t1, scopes, 0, line, sizeof line, err, sizeof err),
                     HD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_find),
        cmocka_unit_test(test_scope_rule),
        cmocka_unit_test(test_grant_parse),
        cmocka_unit_test(test_refusals_name_the_line),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_generate_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
