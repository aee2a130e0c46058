/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of DATA/herald.members (heraldd/known_members.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hd_error.h"
#include "known_members.h"
#include "test_dirs.h"

#define CLUSTER "0123456789abcdef0123456789ab0010"

static struct api_known_members three(void)
{
    struct api_known_members m = {.cluster_id = CLUSTER, .n = 3};
    m.list[0].id = 1;
    snprintf(m.list[0].address, sizeof m.list[0].address, "127.0.0.1:7401");
    m.list[1].id = 2;
    snprintf(m.list[1].address, sizeof m.list[1].address, "127.0.0.1:7411");
    m.list[2].id = 4;
    snprintf(m.list[2].address, sizeof m.list[2].address, "[::1]:7431");
    return m;
}

/* The file's bytes; their length. */
static size_t slurp(const char *dir, char *buf, size_t cap)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, API_KNOWN_MEMBERS_FILE);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void test_roundtrip_and_replace(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "members");
    struct api_known_members m = three(), got;
    assert_int_equal(api_known_members_load(dir, &got), HD_ENOTFOUND);
    assert_int_equal(api_known_members_save(dir, &m), 0);
    assert_int_equal(api_known_members_load(dir, &got), 0);
    assert_true(api_known_members_equal(&got, &m));
    assert_string_equal(got.list[2].address, "[::1]:7431");
    char text[512];
    size_t n = slurp(dir, text, sizeof text - 1);
    text[n] = '\0';
    assert_non_null(strstr(text, "cluster_id " CLUSTER "\nmember 1 127.0.0.1:7401\n"));
    /* A member removed: the file is replaced, not appended to. */
    m.list[1] = m.list[2];
    m.n = 2;
    assert_int_equal(api_known_members_save(dir, &m), 0);
    assert_int_equal(api_known_members_load(dir, &got), 0);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.list[1].id, 4);
    struct api_known_members other = three();
    assert_false(api_known_members_equal(&got, &other));
    other.cluster_id[0] = '1'; /* the same members of another cluster */
    struct api_known_members orig = three();
    assert_false(api_known_members_equal(&other, &orig));
    test_dir_remove(dir);
}

static void test_damage_refused(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "members");
    struct api_known_members m = three(), got;
    assert_int_equal(api_known_members_save(dir, &m), 0);
    char text[512], copy[512];
    size_t n = slurp(dir, text, sizeof text);
    assert_int_equal(api_known_members_parse(text, n, &got), 0);
    /* Every single-bit flip anywhere is caught (a digit, a name, the
     * checksum, a newline), and so is every cut and anything appended. */
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, text, n);
            copy[i] = (char)(copy[i] ^ (1 << bit));
            assert_int_equal(api_known_members_parse(copy, n, &got), HD_ECORRUPT);
        }
    }
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(api_known_members_parse(text, len, &got), HD_ECORRUPT);
    }
    memcpy(copy, text, n);
    copy[n] = '\n';
    assert_int_equal(api_known_members_parse(copy, n + 1, &got), HD_ECORRUPT);
    /* A refused parse leaves the output alone. */
    memset(&got, 0x5a, sizeof got);
    struct api_known_members before = got;
    assert_int_equal(api_known_members_parse(text, n - 1, &got), HD_ECORRUPT);
    assert_memory_equal(&got, &before, sizeof got);
    test_dir_remove(dir);
}

static void test_invalid_lists_not_written(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "members");
    struct api_known_members good = three(), got;
    assert_int_equal(api_known_members_save(dir, &good), 0);
    struct api_known_members bad[6];
    for (int i = 0; i < 6; i++) bad[i] = three();
    bad[0].n = 0;                                  /* nobody */
    bad[1].list[1].id = 1;                         /* an id twice */
    bad[2].list[0].id = 0;                         /* id 0 */
    bad[3].cluster_id[3] = 'X';                    /* not a cluster id */
    bad[4].list[2].address[0] = '\0';              /* no address */
    snprintf(bad[5].list[0].address, sizeof bad[5].list[0].address, "a b:1"); /* a space */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(api_known_members_valid(&bad[i]), HD_EINVAL);
        assert_int_equal(api_known_members_save(dir, &bad[i]), HD_EINVAL);
        assert_int_equal(api_known_members_load(dir, &got), 0); /* unchanged */
        assert_true(api_known_members_equal(&got, &good));
    }
    test_dir_remove(dir);
}

static void test_largest_list(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "members");
    static struct api_known_members m, got;
    m = (struct api_known_members){.cluster_id = CLUSTER, .n = API_KNOWN_MEMBERS_MAX};
    for (unsigned i = 0; i < m.n; i++) {
        m.list[i].id = UINT64_MAX - (API_KNOWN_MEMBERS_MAX - 1) + i;
        memset(m.list[i].address, 'a', API_KNOWN_ADDRESS_MAX);
        m.list[i].address[API_KNOWN_ADDRESS_MAX - 2] = ':';
    }
    assert_int_equal(api_known_members_save(dir, &m), 0);
    assert_int_equal(api_known_members_load(dir, &got), 0);
    assert_true(api_known_members_equal(&got, &m));
    test_dir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_replace),
        cmocka_unit_test(test_damage_refused),
        cmocka_unit_test(test_invalid_lists_not_written),
        cmocka_unit_test(test_largest_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
