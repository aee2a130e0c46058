/* SPDX-License-Identifier: Apache-2.0 */
/* Opening a state for a storage test: the open must succeed, and its error
 * message is printed if it does not. Include after cmocka.h. */
#ifndef TEST_ROCKS_OPEN_H
#define TEST_ROCKS_OPEN_H

#include <stdio.h>

#include "rocks.h"

static inline struct st_rocks *test_rocks_open(const struct st_rocks_options *o)
{
    char err[256];
    struct st_rocks *r = NULL;
    int rv = st_rocks_open(&r, o, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "%s\n", err);
    }
    assert_int_equal(rv, 0);
    return r;
}

#endif
