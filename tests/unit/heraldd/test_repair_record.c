/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of DATA/herald.repair (heraldd/repair_record.c) and the repair
 * marker DATA/REPAIR_NEEDED (common/hd_damage.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hd_damage.h"
#include "hd_error.h"
#include "repair_record.h"
#include "test_dirs.h"

static void test_record_roundtrip(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "repair");
    struct api_repair_record r = {.origin_id = 3, .node_id = 7, .repairs = 2, .pending_id = 9}, got;
    assert_int_equal(api_repair_record_load(dir, &got), HD_ENOTFOUND);
    assert_int_equal(api_repair_record_save(dir, &r), 0);
    assert_int_equal(api_repair_record_load(dir, &got), 0);
    assert_memory_equal(&got, &r, sizeof r);
    r.pending_id = 0; /* replaced, not appended */
    assert_int_equal(api_repair_record_save(dir, &r), 0);
    assert_int_equal(api_repair_record_load(dir, &got), 0);
    assert_int_equal(got.pending_id, 0);
    test_dir_remove(dir);
}

static void test_record_rejects_damage(void **state)
{
    (void)state;
    const char *good = "origin_id 1\nnode_id 4\nrepairs 1\npending_id 0\ncrc32c ";
    char text[256];
    struct api_repair_record r;
    /* Only the writer's own text passes: find it through a save. */
    char dir[64];
    test_dir_make(dir, sizeof dir, "repair");
    struct api_repair_record w = {1, 4, 1, 0};
    assert_int_equal(api_repair_record_save(dir, &w), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, API_REPAIR_RECORD_FILE);
    FILE *f = fopen(path, "r");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_int_equal(strncmp(text, good, strlen(good)), 0);
    assert_int_equal(api_repair_record_parse(text, n, &r), 0);
    assert_int_equal(r.node_id, 4);
    text[10] = '2'; /* origin_id 2: the checksum no longer matches */
    assert_int_equal(api_repair_record_parse(text, n, &r), HD_ECORRUPT);
    text[10] = '1';
    assert_int_equal(api_repair_record_parse(text, n - 1, &r), HD_ECORRUPT);
    assert_int_equal(api_repair_record_parse(text, 0, &r), HD_ECORRUPT);
    test_dir_remove(dir);
}

static void test_marker(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "repair");
    char reason[HD_DAMAGE_REASON_MAX];
    assert_false(hd_damage_marked(dir, reason, sizeof reason));
    assert_int_equal(hd_damage_mark("x"), HD_ENOTFOUND); /* not armed: nothing written */
    assert_false(hd_damage_marked(dir, reason, sizeof reason));
    hd_damage_arm(dir);
    assert_int_equal(hd_damage_mark("state (RocksDB) read: Corruption: x\nsecond line"), 0);
    assert_true(hd_damage_marked(dir, reason, sizeof reason));
    assert_string_equal(reason, "state (RocksDB) read: Corruption: x");
    assert_int_equal(hd_damage_clear(dir), 0);
    assert_false(hd_damage_marked(dir, reason, sizeof reason));
    assert_int_equal(hd_damage_clear(dir), 0); /* none: fine */
    test_dir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_record_rejects_damage),
        cmocka_unit_test(test_marker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
