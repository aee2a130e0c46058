/* SPDX-License-Identifier: Apache-2.0 */
/* EIO and ENOSPC at the state's write call sites (a batch write, a flush),
 * through the RocksDB wrapper's I/O hook: apply fails without a crash and
 * without changing what reads see (seq, head, applied index); the failure
 * is sticky (the node stops, exit 5, rather than apply past a hole); the
 * flushed state survives a reopen and the entry applies again there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "entry.h"
#include "hd_error.h"
#include "log.h"
#include "rocks.h"
#include "test_dirs.h"

#define HOUR_US (3600ull * 1000000ull)

static int fail_errno;
static const char *fail_call;

static int hook(const char *call)
{
    return fail_call != NULL && strcmp(call, fail_call) == 0 ? fail_errno : 0;
}

static struct log_store *open_store(const char *dir)
{
    char err[256];
    struct log_options o = {.dir = dir, .n_shards = 1, .dedup_window_us = HOUR_US};
    struct log_store *ls = NULL;
    assert_int_equal(log_store_open(&ls, &o, err, sizeof err), 0);
    return ls;
}

static int apply_one(struct log_store *ls, uint64_t index, const char *nonce)
{
    struct log_append a = {"ch", 2, nonce, strlen(nonce), (const uint8_t *)nonce,
                           strlen(nonce)};
    struct log_entry_header h = {.stamp_us = 1000 + index, .proposer = 1, .proposal = index,
                                 .count = 1};
    size_t len = log_entry_size(&a, 1);
    uint8_t *buf = malloc(len);
    log_entry_encode(buf, &h, &a, 1);
    struct log_result r[1];
    int rv = log_apply(ls, 0, index, buf, len, r, 1);
    free(buf);
    return rv;
}

static void check_state(struct log_store *ls, uint64_t applied, uint64_t seq)
{
    uint64_t idx = 99, last = 99, ts = 0;
    assert_int_equal(log_applied_index(ls, 0, &idx), 0);
    assert_int_equal(idx, applied);
    assert_int_equal(log_head(ls, "ch", 2, &last, &ts), 0);
    assert_int_equal(last, seq);
}

static void one_case(int err)
{
    char dir[64];
    test_dir_make(dir, sizeof dir, "state-io");
    struct log_store *ls = open_store(dir);
    assert_int_equal(apply_one(ls, 1, "n1"), 0);
    assert_int_equal(log_flush(ls), 0);
    check_state(ls, 1, 1);

    st__rocks_io_hook = hook;
    fail_errno = err;
    fail_call = "write";
    assert_int_not_equal(apply_one(ls, 2, "n2"), 0);
    check_state(ls, 1, 1); /* nothing of entry 2 is visible */
    fail_call = NULL;
    assert_int_equal(apply_one(ls, 2, "n2"), HD_EFAILED); /* sticky */
    check_state(ls, 1, 1);
    fail_call = "flush";
    assert_int_equal(log_flush(ls), HD_EIO);
    fail_call = NULL;
    assert_int_equal(log_flush(ls), HD_EFAILED); /* never tried again */
    st__rocks_io_hook = NULL;
    log_store_close(ls);

    ls = open_store(dir);
    check_state(ls, 1, 1);
    assert_int_equal(apply_one(ls, 2, "n2"), 0); /* applied again from the WAL */
    check_state(ls, 2, 2);
    log_store_close(ls);
    test_dir_remove(dir);
}

static void test_eio(void **state)
{
    (void)state;
    one_case(EIO);
}

static void test_enospc(void **state)
{
    (void)state;
    one_case(ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eio),
        cmocka_unit_test(test_enospc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
