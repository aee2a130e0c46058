/* SPDX-License-Identifier: Apache-2.0 */
/* A file write RocksDB cannot complete, for real: RLIMIT_FSIZE makes the
 * kernel refuse (EFBIG) every write past a size, in a child process that
 * owns the state. A failed write of the state's own files stops the child
 * with exit 5 and a log line naming the file, never RocksDB's SIGABRT
 * (storage/rocks_fs.h); what was flushed before opens intact afterwards,
 * and RocksDB keeps no LOG file beside the data. A failed write outside the
 * state directory (a checkpoint's copy) is only an error of that call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_exit.h"
#include "rocks.h"
#include "rocks_open.h"
#include "test_child.h"
#include "test_dirs.h"

#define KEYS 64u
#define VALUE 4096u /* KEYS x VALUE: a table far past the limit below */
#define LIMIT (16u * 1024u)
#define SMALL_LIMIT 64u /* less than the MANIFEST a checkpoint copies */

static struct st_rocks *open_at(const char *dir)
{
    struct st_rocks_options o = {.dir = dir};
    return test_rocks_open(&o);
}

/* KEYS keys "<prefix>NNN", each VALUE bytes that do not compress. */
static void put_keys(struct st_rocks *r, char prefix)
{
    struct st_batch *b = NULL;
    assert_int_equal(st_batch_init(&b), 0);
    static unsigned char value[VALUE];
    for (unsigned i = 0; i < KEYS; i++) {
        for (unsigned j = 0; j < VALUE; j++) {
            value[j] = (unsigned char)(rand() >> 7);
        }
        char key[8];
        int n = snprintf(key, sizeof key, "%c%03u", prefix, i);
        st_batch_put(b, key, (size_t)n, value, VALUE);
    }
    assert_int_equal(st_rocks_write(r, b), 0);
    st_batch_close(b);
}

static size_t count_keys(struct st_rocks *r, char prefix)
{
    char lower[1] = {prefix};
    char upper[1] = {(char)(prefix + 1)};
    struct st_iter *it = NULL;
    assert_int_equal(st_iter_open(&it, r, lower, 1, upper, 1), 0);
    size_t n = 0;
    for (; st_iter_valid(it); st_iter_next(it)) {
        n++;
    }
    assert_int_equal(st_iter_status(it), 0);
    st_iter_close(it);
    return n;
}

static char child_log[1 << 16]; /* the child's stderr, its first 64 KiB */

/* Runs this program again as "MODE DIR" (see main), whose writes are then
 * limited (limit_writes); its stderr comes back through a pipe into
 * child_log (a file would be limited too). Returns its wait status. */
static int in_limited_child(const char *mode, const char *dir)
{
    return test_child_run(mode, dir, child_log, sizeof child_log);
}

static void limit_writes(rlim_t bytes)
{
    signal(SIGXFSZ, SIG_IGN); /* the write answers EFBIG instead */
    struct rlimit lim = {.rlim_cur = bytes, .rlim_max = bytes};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        _exit(101);
    }
}

/* Flushes keys 'a', then fails the flush of keys 'b'. */
static void flush_past_the_limit(const char *dir)
{
    struct st_rocks *r = open_at(dir);
    put_keys(r, 'a');
    if (st_rocks_flush(r) != 0) {
        _exit(102);
    }
    limit_writes(LIMIT);
    put_keys(r, 'b');
    st_rocks_flush(r); /* the table's write fails: must not return */
    _exit(103);
}

static void test_failed_table_write_stops_with_5(void **state)
{
    (void)state;
    char root[64];
    test_dir_make(root, sizeof root, "rocks-werr");
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/state", root);

    int status = in_limited_child("flush", dir);
    assert_true(WIFEXITED(status)); /* not SIGABRT from RocksDB */
    assert_int_equal(WEXITSTATUS(status), HD_EXIT_APPLY_FAILED);
    assert_non_null(strstr(child_log, "failed: IO error"));
    assert_non_null(strstr(child_log, "stopping (exit 5)"));
    assert_non_null(strstr(child_log, ".sst")); /* names the file */
    assert_null(strstr(child_log, "Assertion"));

    snprintf(path, sizeof path, "%s/LOG", dir);
    assert_int_not_equal(access(path, F_OK), 0);

    struct st_rocks *r = open_at(dir);
    assert_int_equal(count_keys(r, 'a'), KEYS);
    assert_int_equal(count_keys(r, 'b'), 0); /* never flushed */
    put_keys(r, 'b');                       /* and writable again */
    assert_int_equal(st_rocks_flush(r), 0);
    st_rocks_close(r);

    test_dir_remove(root);
}

/* A checkpoint copies the MANIFEST (past SMALL_LIMIT; tables are linked) into a
 * directory of its own: the copy fails, the call says so, the state goes on. */
static void checkpoint_past_the_limit(const char *dir)
{
    struct st_rocks *r = open_at(dir);
    put_keys(r, 'a');
    if (st_rocks_flush(r) != 0) {
        _exit(102);
    }
    limit_writes(SMALL_LIMIT);
    char backup[320];
    snprintf(backup, sizeof backup, "%s.backup", dir);
    if (st_rocks_checkpoint(r, backup) != HD_EIO) {
        _exit(104);
    }
    if (count_keys(r, 'a') != KEYS) {
        _exit(105);
    }
    st_rocks_close(r);
    _exit(0);
}

static void test_failed_checkpoint_copy_is_only_an_error(void **state)
{
    (void)state;
    char root[64];
    test_dir_make(root, sizeof root, "rocks-werr");
    char dir[300];
    snprintf(dir, sizeof dir, "%s/state", root);

    int status = in_limited_child("checkpoint", dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_non_null(strstr(child_log, "state checkpoint into"));

    test_dir_remove(root);
}

int main(int argc, char **argv)
{
    if (argc == 3) { /* a child of in_limited_child */
        if (strcmp(argv[1], "flush") == 0) {
            flush_past_the_limit(argv[2]);
        } else if (strcmp(argv[1], "checkpoint") == 0) {
            checkpoint_past_the_limit(argv[2]);
        }
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_table_write_stops_with_5),
        cmocka_unit_test(test_failed_checkpoint_copy_is_only_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
