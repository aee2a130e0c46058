/* SPDX-License-Identifier: Apache-2.0 */
/* Temporary directories for unit tests: made fresh, removed whole. */
#ifndef TEST_DIRS_H
#define TEST_DIRS_H

#include <stddef.h>

/* Makes a new directory /tmp/herald-NAME-XXXXXX (mkdtemp) into buf;
 * fails the test if it cannot. */
void test_dir_make(char *buf, size_t cap, const char *name);

/* Removes dir and everything below it; fails the test if it cannot. */
void test_dir_remove(const char *dir);

#endif
