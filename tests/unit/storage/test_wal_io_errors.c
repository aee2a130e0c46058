/* SPDX-License-Identifier: Apache-2.0 */
/* EIO and ENOSPC at every file-system call the WAL makes, through the I/O
 * hook (storage/wal_internal.h): once, or from then on (a file system shut
 * down under a running node). Whatever fails, and on both write paths
 * (io_uring and pwrite + fdatasync): no crash (run under ASan), every
 * callback fires once, nothing is acknowledged after the first failure,
 * and after a reopen every acknowledged record replays with its bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_util.h"
#include "wal.h"
#include "wal_internal.h"
#include "test_dirs.h"

#define SEG (64u * 1024u) /* small segments: many switches, preps, renames */
#define RECORDS 400u

static atomic_int io_target;   /* the site to fail */
static atomic_int io_errno;    /* with this errno */
static atomic_int io_countdown; /* calls of the site to let through first */
static atomic_int io_forever;  /* keep failing every call once failed */
static atomic_int io_failing;  /* a failure was injected */
static atomic_int io_injected; /* how many */

static int io_hook(enum st__wal_io_site site)
{
    if (atomic_load(&io_failing) && atomic_load(&io_forever)) {
        atomic_fetch_add(&io_injected, 1);
        return atomic_load(&io_errno); /* every site, as a shut-down file system */
    }
    if ((int)site != atomic_load(&io_target) || atomic_load(&io_failing)) {
        return 0;
    }
    if (atomic_fetch_sub(&io_countdown, 1) > 0) {
        return 0;
    }
    atomic_store(&io_failing, 1);
    atomic_fetch_add(&io_injected, 1);
    return atomic_load(&io_errno);
}

struct rec {
    struct st_wal_append req;
    int status;
    int fired;
};

static struct rec recs[RECORDS + 1];  /* by LSN */
static uint8_t seen[RECORDS + 1];      /* replayed, with the right bytes */
static int replay_bad;

static size_t rec_len(uint64_t lsn)
{
    return 100 + (size_t)(lsn * 37u % 3000u);
}

static uint8_t rec_byte(uint64_t lsn, size_t j)
{
    return (uint8_t)(lsn * 31u + j * 7u);
}

static void on_done(struct st_wal_append *req, int status)
{
    struct rec *r = req->data;
    r->fired++;
    r->status = status;
}

static int on_replay(void *arg, uint64_t lsn, const void *data, size_t len)
{
    (void)arg;
    if (lsn > RECORDS || len != rec_len(lsn)) {
        replay_bad++;
        return 0;
    }
    const uint8_t *p = data;
    for (size_t j = 0; j < len; j++) {
        if (p[j] != rec_byte(lsn, j)) {
            replay_bad++;
            return 0;
        }
    }
    seen[lsn] = 1;
    return 0;
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

static struct st_wal *open_wal(uv_loop_t *loop, const char *dir, bool no_uring)
{
    struct st_wal_options o = {.loop = loop, .dir = dir, .segment_size = SEG,
                               .no_uring = no_uring};
    struct st_wal *w = NULL;
    char err[256];
    assert_int_equal(st_wal_open(&w, &o, err, sizeof err), 0);
    assert_int_equal(st_wal_replay(w, on_replay, NULL, err, sizeof err), 0);
    return w;
}

static void run_case(enum st__wal_io_site site, int err, int skip, bool forever,
                     bool no_uring)
{
    char dir[64];
    test_dir_make(dir, sizeof dir, "wal-io");
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(recs, 0, sizeof recs);
    memset(seen, 0, sizeof seen);
    replay_bad = 0;
    struct st_wal *w = open_wal(&loop, dir, no_uring);
    atomic_store(&io_target, (int)site);
    atomic_store(&io_errno, err);
    atomic_store(&io_countdown, skip);
    atomic_store(&io_forever, forever);
    atomic_store(&io_failing, 0);
    atomic_store(&io_injected, 0);
    st__wal_io_hook = io_hook;

    static uint8_t buf[4096];
    uint64_t appended = 0;
    bool refused = false;
    for (uint64_t lsn = 1; lsn <= RECORDS && !refused; lsn++) {
        size_t len = rec_len(lsn);
        for (size_t j = 0; j < len; j++) {
            buf[j] = rec_byte(lsn, j);
        }
        struct iovec iov = {buf, len};
        struct rec *r = &recs[lsn];
        r->req.data = r;
        int rv = st_wal_append(w, &r->req, &iov, 1, on_done);
        if (rv != 0) {
            assert_int_equal(rv, HD_EFAILED); /* only after a failure */
            assert_true(atomic_load(&io_failing));
            refused = true;
            break;
        }
        assert_int_equal(r->req.lsn, lsn);
        appended = lsn;
        if (lsn % 8 == 0) {
            uv_run(&loop, UV_RUN_DEFAULT); /* several group commits */
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int done = 0;
    st_wal_close(w, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(done);

    /* Every callback once; acknowledgements are a prefix. */
    bool failed = false;
    uint64_t acked = 0;
    for (uint64_t lsn = 1; lsn <= appended; lsn++) {
        assert_int_equal(recs[lsn].fired, 1);
        if (recs[lsn].status != 0) {
            failed = true;
            assert_true(recs[lsn].status == hd_from_errno(err) ||
                        recs[lsn].status == HD_EFAILED || recs[lsn].status == HD_EIO);
        } else {
            assert_false(failed); /* nothing acknowledged after a failure */
            acked = lsn;
        }
    }
    /* A failed group commit or segment switch fails its records; a failed
     * preparation ahead of need is retried by the switch and fails nothing. */
    if (failed) {
        assert_true(atomic_load(&io_injected) > 0);
    }

    /* Reopened on a healthy disk: every acknowledged record is there. */
    st__wal_io_hook = NULL;
    w = open_wal(&loop, dir, no_uring);
    assert_int_equal(replay_bad, 0);
    for (uint64_t lsn = 1; lsn <= acked; lsn++) {
        assert_true(seen[lsn]);
    }
    /* And it takes appends again. */
    struct rec extra = {0};
    extra.req.data = &extra;
    struct iovec iov = {buf, 10};
    assert_int_equal(st_wal_append(w, &extra.req, &iov, 1, on_done), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(extra.fired, 1);
    assert_int_equal(extra.status, 0);
    done = 0;
    st_wal_close(w, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(done);
    assert_int_equal(uv_loop_close(&loop), 0);
    test_dir_remove(dir);
}

static void every_site(bool forever, bool no_uring)
{
    static const int errs[] = {EIO, ENOSPC};
    for (int site = 0; site < ST__WAL_IO_SITES; site++) {
        for (unsigned e = 0; e < 2; e++) {
            for (int skip = 0; skip < 4; skip++) {
                run_case((enum st__wal_io_site)site, errs[e], skip * 3, forever, no_uring);
            }
        }
    }
}

static void test_once_uring(void **state)
{
    (void)state;
    every_site(false, false);
}

static void test_once_fallback(void **state)
{
    (void)state;
    every_site(false, true);
}

static void test_shut_down_fs_uring(void **state)
{
    (void)state;
    every_site(true, false);
}

static void test_shut_down_fs_fallback(void **state)
{
    (void)state;
    every_site(true, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_uring),
        cmocka_unit_test(test_once_fallback),
        cmocka_unit_test(test_shut_down_fs_uring),
        cmocka_unit_test(test_shut_down_fs_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
