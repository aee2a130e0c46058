/* SPDX-License-Identifier: Apache-2.0 */
/* A unit test's child process: the same program run again in a mode of
 * its own, for what must happen in another process (a limit on writes, a
 * deliberate abort). */
#ifndef TEST_CHILD_H
#define TEST_CHILD_H

#include <stddef.h>

/* Runs this program again as "MODE DIR" (its main must dispatch such a
 * run), with the child's stderr read back through a pipe into log: its
 * first cap - 1 bytes and a NUL, the rest read and dropped. Returns the
 * child's wait status; fails the test if it cannot run it. A new program,
 * not only a fork: RocksDB's thread pools, once started in this process,
 * would not exist in a forked child. */
int test_child_run(const char *mode, const char *dir, char *log, size_t cap);

#endif
