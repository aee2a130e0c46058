/* SPDX-License-Identifier: Apache-2.0 */
#include "test_dirs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

void test_dir_make(char *buf, size_t cap, const char *name)
{
    int n = snprintf(buf, cap, "/tmp/herald-%s-XXXXXX", name);
    assert_true(n > 0 && (size_t)n < cap);
    assert_non_null(mkdtemp(buf));
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_dir_remove(const char *dir)
{
    /* Depth first, so a directory is empty when its turn comes; links
     * are removed, never followed. */
    assert_int_equal(nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}
