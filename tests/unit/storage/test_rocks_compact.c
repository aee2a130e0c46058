/* SPDX-License-Identifier: Apache-2.0 */
/* st_rocks_compact_range_later: the caller goes on at once, and a range
 * queued before st_rocks_close is compacted before it returns, so range-
 * deleted data has left the disk when a node has stopped cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hd_error.h"
#include "rocks.h"
#include "rocks_open.h"
#include "test_dirs.h"

#define KEYS 400u
#define VALUE_BYTES 16384u

/* Bytes of the state's table files. */
static long long table_bytes(const char *dir)
{
    long long sum = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".sst") == 0) {
            char path[512];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            assert_int_equal(stat(path, &st), 0);
            sum += st.st_size;
        }
    }
    closedir(d);
    return sum;
}

static void test_queued_compaction_finishes_before_close(void **state)
{
    (void)state;
    char dir[64];
    test_dir_make(dir, sizeof dir, "rocks-compact");
    struct st_rocks_options o = {.dir = dir};
    struct st_rocks *r = test_rocks_open(&o);
    struct st_batch *b = NULL;
    assert_int_equal(st_batch_init(&b), 0);
    static uint8_t value[VALUE_BYTES];
    uint64_t x = 88172645463325252ull;
    for (unsigned i = 0; i < KEYS; i++) {
        for (size_t k = 0; k < sizeof value; k += 8) { /* incompressible */
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(value + k, &x, 8);
        }
        char key[16];
        int n = snprintf(key, sizeof key, "a/%05u", i);
        st_batch_put(b, key, (size_t)n, value, sizeof value);
        assert_int_equal(st_rocks_write(r, b), 0);
        st_batch_clear(b);
    }
    st_batch_put(b, "b/keep", 6, "kept", 4);
    assert_int_equal(st_rocks_write(r, b), 0);
    st_batch_clear(b);
    assert_int_equal(st_rocks_flush(r), 0);
    long long before = table_bytes(dir);
    assert_true(before > (long long)KEYS * VALUE_BYTES / 2);

    st_batch_delete_range(b, "a/", 2, "a0", 2); /* '0' follows '/' */
    assert_int_equal(st_rocks_write(r, b), 0);
    st_batch_close(b);
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_compact_range_later(r, "a/", 2, "a0", 2);
    st_rocks_compact_range_later(r, "a/", 2, "a0", 2); /* queued once, or run twice */
    st_rocks_close(r);
    long long after = table_bytes(dir);
    if (after >= before / 4) {
        fail_msg("table files: %lld bytes before, %lld after the compaction", before, after);
    }

    r = test_rocks_open(&o);
    char v[8];
    size_t vlen = 0;
    assert_int_equal(st_rocks_get_into(r, "a/00007", 7, v, sizeof v, &vlen), HD_ENOTFOUND);
    assert_int_equal(st_rocks_get_into(r, "b/keep", 6, v, sizeof v, &vlen), 0);
    assert_true(vlen == 4 && memcmp(v, "kept", 4) == 0);
    st_rocks_close(r);
    test_dir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_compaction_finishes_before_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
