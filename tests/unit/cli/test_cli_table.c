/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the CLI's tables (cli/table.c) and of `herald status` /
 * `herald cluster status` output built from /v1/status answers
 * (cli/status_format.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status_format.h"
#include "table.h"

/* Output captured in memory. */
struct capture {
    char *text;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c)
{
    memset(c, 0, sizeof *c);
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static const char *cap_text(struct capture *c)
{
    fclose(c->f);
    c->f = NULL;
    return c->text;
}

static void cap_free(struct capture *c)
{
    if (c->f != NULL) fclose(c->f);
    free(c->text);
}

static void test_columns_align(void **state)
{
    (void)state;
    static const char *const head[] = {"ID", "NAME", "COUNT"};
    struct cli_table t;
    cli_table_init(&t, 3, head);
    cli_table_row(&t, "%d\t%s\t%d", 7, "a", 12345);
    cli_table_row(&t, "%d\t%s\t%d", 1234, "longer name", 5);
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_table_print(&t, c.f), 0);
    /* Numbers right-aligned, text left-aligned, the last column unpadded. */
    assert_string_equal(cap_text(&c), "  ID  NAME         COUNT\n"
                                      "   7  a            12345\n"
                                      "1234  longer name      5\n");
    cap_free(&c);
    cli_table_free(&t);
}

static void test_text_column_left_and_no_trailing_blanks(void **state)
{
    (void)state;
    static const char *const head[] = {"NODE", "ANSWER", "UP"};
    struct cli_table t;
    cli_table_init(&t, 3, head);
    cli_table_row(&t, "%s\t%s\t%s", "1", "ok", "12s");
    cli_table_row(&t, "%s\t%s\t%s", "?", "no", "");
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_table_print(&t, c.f), 0);
    /* "?" makes NODE a text column; the short row ends at its last cell. */
    assert_string_equal(cap_text(&c), "NODE  ANSWER  UP\n"
                                      "1     ok      12s\n"
                                      "?     no\n");
    cap_free(&c);
    cli_table_free(&t);
}

static void test_empty_table_prints_header(void **state)
{
    (void)state;
    static const char *const head[] = {"A", "B"};
    struct cli_table t;
    cli_table_init(&t, 2, head);
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_table_print(&t, c.f), 0);
    assert_string_equal(cap_text(&c), "A  B\n");
    cap_free(&c);
    cli_table_free(&t);
}

static void test_bytes(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(cli_bytes(0, b, sizeof b), "0 B");
    assert_string_equal(cli_bytes(1023, b, sizeof b), "1023 B");
    assert_string_equal(cli_bytes(1536, b, sizeof b), "1.5 KiB");
    assert_string_equal(cli_bytes(134217728, b, sizeof b), "128.0 MiB");
}

static json_t *status(long long node, long long committed, long long now_ms)
{
    json_t *st = json_loads(
        "{\"node_id\":1,\"cluster_id\":\"c0ffee\",\"version\":\"0.1.0\",\"uptime_s\":3723,"
        "\"shards\":[{\"shard\":0,\"state\":\"leader\",\"leader\":1,\"term\":3,"
        "\"commit_index\":10,\"applied_index\":8,\"last_index\":11,\"queued\":0,"
        "\"members\":[{\"id\":1,\"role\":\"voter\"},{\"id\":2,\"role\":\"voter\"}]},"
        "{\"shard\":1,\"state\":\"candidate\",\"leader\":0,\"term\":4,\"commit_index\":5,"
        "\"applied_index\":5,\"last_index\":5,\"queued\":2,"
        "\"members\":[{\"id\":1,\"role\":\"voter\"},{\"id\":2,\"role\":\"spare\"}]}],"
        "\"peers\":[{\"id\":2,\"address\":\"127.0.0.1:7401\",\"connected\":true,"
        "\"lag_entries\":1,\"frames_sent\":9,\"frames_received\":8,\"frames_dropped\":0}],"
        "\"appends\":{\"committed\":0,\"duplicate\":1,\"forwarded\":2,\"tails\":4},"
        "\"deliveries\":{\"live\":100,\"catchup\":0,\"subscriptions\":1},\"http_requests\":50,"
        "\"disk\":{\"data_dir\":\"/d\",\"wal_bytes\":2048,\"snapshot_bytes\":0,"
        "\"state_bytes\":1048576,\"fs_free_bytes\":1073741824,\"fs_total_bytes\":2147483648}}",
        0, NULL);
    assert_non_null(st);
    json_object_set_new(st, "node_id", json_integer(node));
    json_object_set_new(json_object_get(st, "appends"), "committed", json_integer(committed));
    json_object_set_new(st, "now_ms", json_integer(now_ms));
    return st;
}

static void test_status_tables(void **state)
{
    (void)state;
    json_t *st = status(1, 30, 2000);
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_status_print(c.f, st, NULL), 0);
    const char *out = cap_text(&c);
    assert_non_null(strstr(out, "node 1  cluster c0ffee  version 0.1.0  up 0d 01:02:03\n"));
    assert_non_null(strstr(out, "appends: 30 committed, 1 duplicate, 2 forwarded; delivery "
                                "sessions: 4\n"));
    assert_non_null(strstr(out, "disk: /d: WAL 2.0 KiB, snapshots 0 B, state 1.0 MiB; "
                                "1.0 GiB free of 2.0 GiB\n"));
    /* Lag is commit - applied; a shard without a leader shows "-"; a
     * member that is not a voter is starred. */
    assert_non_null(strstr(out, "SHARD  STATE      LEADER  TERM  COMMIT  APPLIED  LAG  LAST  "
                                "QUEUED  MEMBERS\n"
                                "    0  leader          1     3      10        8    2    11  "
                                "     0  1,2\n"
                                "    1  candidate       -     4       5        5    0     5  "
                                "     2  1,2*\n"
                                "(* a member that is not a voter)\n"));
    assert_non_null(strstr(out, "PEER  ADDRESS         CONNECTED  LAG  SENT  RECEIVED  DROPPED\n"
                                "   2  127.0.0.1:7401  yes          1     9         8        0\n"));
    assert_null(strstr(out, "rates"));
    cap_free(&c);
    json_decref(st);
}

static void test_rates(void **state)
{
    (void)state;
    json_t *before = status(1, 30, 2000), *after = status(1, 80, 4000);
    assert_true(cli_rate(after, before, "appends", "committed") == 25.0);
    assert_true(cli_rate(after, before, NULL, "http_requests") == 0.0);
    /* No time passed, a counter that went back (restart), a missing field. */
    assert_true(cli_rate(after, after, "appends", "committed") < 0);
    assert_true(cli_rate(before, after, "appends", "committed") < 0);
    assert_true(cli_rate(after, before, "appends", "nope") < 0);
    assert_true(cli_rate(after, NULL, "appends", "committed") < 0);
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_status_print(c.f, after, before), 0);
    assert_non_null(strstr(cap_text(&c), "rates: 25.0 appends/s, 0.0 deliveries/s, 0.0 HTTP "
                                         "requests/s (over 2.0 s)\n"));
    cap_free(&c);
    cap_open(&c);
    assert_int_equal(cli_status_print(c.f, before, after), 0);
    assert_non_null(strstr(cap_text(&c), "rates: not available"));
    cap_free(&c);
    json_decref(before);
    json_decref(after);
}

static void test_not_a_status(void **state)
{
    (void)state;
    json_t *bad = json_loads("{\"error\":{\"code\":\"x\"}}", 0, NULL);
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_status_print(c.f, bad, NULL), -1);
    assert_string_equal(cap_text(&c), "");
    cap_free(&c);
    json_decref(bad);
}

static void test_cluster_view(void **state)
{
    (void)state;
    json_t *a = status(1, 0, 1), *b = status(2, 0, 1);
    /* Node 2 sees another leader for shard 0: named below the table. */
    json_t *sh0 = json_array_get(json_object_get(b, "shards"), 0);
    json_object_set_new(sh0, "leader", json_integer(2));
    json_object_set_new(sh0, "term", json_integer(4));
    struct cli_node_view v[3] = {{"http://a", a}, {"http://b", b}, {"http://c", NULL}};
    struct capture c;
    cap_open(&c);
    assert_int_equal(cli_cluster_print(c.f, v, 3), 1);
    assert_string_equal(cap_text(&c),
                        "NODE  URL       ANSWER  LEADS  LEADER PER SHARD  PEERS UP  UP\n"
                        "1     http://a  ok      1/2    0:1 1:-           1/1       3723s\n"
                        "2     http://b  ok      1/2    0:2 1:-           1/1       3723s\n"
                        "?     http://c  no\n"
                        "shard 0: nodes see different leaders or terms (an election in "
                        "progress, or a node cut off)\n");
    cap_free(&c);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_align),
        cmocka_unit_test(test_text_column_left_and_no_trailing_blanks),
        cmocka_unit_test(test_empty_table_prints_header),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_status_tables),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_not_a_status),
        cmocka_unit_test(test_cluster_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
