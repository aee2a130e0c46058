/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of herald's raft_io on its own (a real WAL on disk, no raft): the
 * callbacks of asynchronous work, around a close; what a restart loads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "raft_io.h"
#include "test_dirs.h"

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct cons_store *store;
    struct raft_io *io;
    bool io_closed;
    bool store_closed;
};

/* One async work request whose work blocks until the test releases it, so
 * the test decides whether it ends before or after the close. */
struct blocked_work {
    struct raft_io_async_work req;
    uv_sem_t release;
    int returns;               /* what the work function answers */
    bool ran;
    bool called_back;
    int status;                /* what the callback was given */
};

static int blocked_work_run(struct raft_io_async_work *req)
{
    struct blocked_work *w = req->data;
    uv_sem_wait(&w->release);
    w->ran = true;
    return w->returns;
}

static void blocked_work_cb(struct raft_io_async_work *req, int status)
{
    struct blocked_work *w = req->data;
    assert_false(w->called_back);
    w->called_back = true;
    w->status = status;
}

static void on_tick(struct raft_io *io) { (void)io; }

static void on_recv(struct raft_io *io, struct raft_message *m)
{
    (void)io;
    (void)m;
}

static void io_closed(struct raft_io *io)
{
    struct fixture *f = io->data;
    f->io_closed = true;
}

static void store_closed(void *arg) { *(bool *)arg = true; }

/* Opens the store in f->dir and its shard 0's io (not started). */
static void open_store(struct fixture *f)
{
    char wal[128], snap[128], err[512] = "";
    snprintf(wal, sizeof wal, "%s/wal", f->dir);
    snprintf(snap, sizeof snap, "%s/snapshots", f->dir);
    struct cons_store_options o = {.loop = &f->loop, .wal_dir = wal, .snap_dir = snap,
                                   .n_shards = 1, .segment_size = 256 * 1024};
    int rv = cons_store_open(&f->store, &o, err, sizeof err);
    if (rv != 0) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rv, 0);
    f->io = cons_store_io(f->store, 0);
    f->io->data = f;
    assert_int_equal(f->io->init(f->io, 1, "127.0.0.1:1"), 0);
}

static void close_store(struct fixture *f)
{
    if (!f->io_closed) {
        f->io->close(f->io, io_closed);
        while (!f->io_closed) uv_run(&f->loop, UV_RUN_ONCE);
    }
    cons_store_close(f->store, store_closed, &f->store_closed);
    while (!f->store_closed) uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    test_dir_make(f->dir, sizeof f->dir, "raftio");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    open_store(f);
    assert_int_equal(f->io->start(f->io, 100, on_tick, on_recv), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_store(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_dir_remove(f->dir);
    free(f);
    return 0;
}

static void work_init(struct blocked_work *w, int returns)
{
    memset(w, 0, sizeof *w);
    w->req.data = w;
    w->req.work = blocked_work_run;
    w->returns = returns;
    assert_int_equal(uv_sem_init(&w->release, 0), 0);
}

/* Work that ends while the io runs reports what the work function said. */
static void test_work_reports_its_status(void **state)
{
    struct fixture *f = *state;
    struct blocked_work ok, failed;
    work_init(&ok, 0);
    work_init(&failed, RAFT_IOERR);
    assert_int_equal(f->io->async_work(f->io, &ok.req, blocked_work_cb), 0);
    assert_int_equal(f->io->async_work(f->io, &failed.req, blocked_work_cb), 0);
    uv_sem_post(&ok.release);
    uv_sem_post(&failed.release);
    while (!ok.called_back || !failed.called_back) uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(ok.status, 0);
    assert_int_equal(failed.status, RAFT_IOERR);
    uv_sem_destroy(&ok.release);
    uv_sem_destroy(&failed.release);
}

/* Work still running when raft closes the io (a snapshot's RocksDB flush at
 * SIGTERM) must come back cancelled, even though it succeeded: on success
 * raft goes on to the next request (its snapshot_put), which a closing io
 * takes no more of (it aborted the node on "sl->started && !sl->closing").
 * And the io's close completes only after that callback. */
static void test_work_ending_after_close_is_cancelled(void **state)
{
    struct fixture *f = *state;
    struct blocked_work w;
    work_init(&w, 0);
    assert_int_equal(f->io->async_work(f->io, &w.req, blocked_work_cb), 0);
    f->io->close(f->io, io_closed);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(f->io_closed); /* waits for the work */
    assert_false(w.called_back);
    uv_sem_post(&w.release);
    while (!f->io_closed) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(w.ran && w.called_back);
    assert_int_equal(w.status, RAFT_CANCELED);
    uv_sem_destroy(&w.release);
}

static void io_done(int *flag, int status)
{
    assert_int_equal(status, 0);
    *flag = 1;
}

static void appended(struct raft_io_append *req, int status) { io_done(req->data, status); }
static void snapshot_put(struct raft_io_snapshot_put *req, int status)
{
    io_done(req->data, status);
}

/* Our own snapshot at `index` (term 1, member 1, a 4-byte manifest),
 * keeping 2 entries behind it. */
static void put_snapshot(struct fixture *f, raft_index index)
{
    uint8_t manifest[4] = {1, 2, 3, 4};
    struct raft_buffer data = {manifest, sizeof manifest};
    struct raft_snapshot snap = {.index = index, .term = 1, .configuration_index = 1,
                                 .bufs = &data, .n_bufs = 1};
    raft_configuration_init(&snap.configuration);
    assert_int_equal(raft_configuration_add(&snap.configuration, 1, "127.0.0.1:1", RAFT_VOTER), 0);
    int done = 0;
    struct raft_io_snapshot_put put = {.data = &done};
    assert_int_equal(f->io->snapshot_put(f->io, 2, &put, &snap, snapshot_put), 0);
    while (!done) uv_run(&f->loop, UV_RUN_ONCE);
    raft_configuration_close(&snap.configuration);
}

/* Frees what io->load handed out: the snapshot and the entries. */
static void free_loaded(struct raft_snapshot *loaded, struct raft_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        raft_free(entries[i].buf.base);
    }
    raft_free(entries);
    raft_configuration_close(&loaded->configuration);
    raft_free(loaded->bufs[0].base);
    raft_free(loaded->bufs);
    raft_free(loaded);
}

/* After a restart the WAL still holds entries below the snapshot (its
 * segment is shared and not yet released), but load hands raft only the
 * entry at the snapshot's index and those after it: replay drops the rest
 * as it reads them, instead of holding every entry of every kept segment
 * (hundreds of MiB with large messages) until load. */
static void test_restart_loads_from_the_snapshot(void **state)
{
    struct fixture *f = *state;
    enum { N = 10, SNAP = 8, SIZE = 1024 };
    struct raft_entry e[N];
    for (unsigned i = 0; i < N; i++) {
        e[i] = (struct raft_entry){.term = 1, .type = RAFT_COMMAND};
        e[i].buf.len = SIZE;
        e[i].buf.base = malloc(SIZE);
        memset(e[i].buf.base, (int)i, SIZE);
    }
    int done = 0;
    struct raft_io_append app = {.data = &done};
    assert_int_equal(f->io->append(f->io, &app, e, N, appended), 0);
    while (!done) uv_run(&f->loop, UV_RUN_ONCE);

    put_snapshot(f, SNAP);
    for (unsigned i = 0; i < N; i++) {
        free(e[i].buf.base);
    }

    close_store(f);
    f->io_closed = f->store_closed = false;
    open_store(f);
    raft_term term;
    raft_id voted;
    struct raft_snapshot *loaded = NULL;
    raft_index start = 0;
    struct raft_entry *entries = NULL;
    size_t n = 0;
    assert_int_equal(f->io->load(f->io, &term, &voted, &loaded, &start, &entries, &n), 0);
    assert_non_null(loaded);
    assert_int_equal(loaded->index, SNAP);
    assert_int_equal(start, SNAP);
    assert_int_equal(n, N - SNAP + 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(entries[i].buf.len, SIZE);
        assert_int_equal(((uint8_t *)entries[i].buf.base)[0], SNAP - 1 + i);
    }
    free_loaded(loaded, entries, n);
    assert_int_equal(f->io->start(f->io, 100, on_tick, on_recv), 0);
}

/* Entries written in two appends, 1..7 and 8..9: the snapshot at 9
 * covers them all. */
static void append_and_snapshot(struct fixture *f)
{
    struct raft_entry e[7];
    for (unsigned i = 0; i < 7; i++) {
        e[i] = (struct raft_entry){.term = 1, .type = RAFT_COMMAND, .buf = {malloc(8), 8}};
        memset(e[i].buf.base, (int)i, 8);
    }
    int done = 0;
    struct raft_io_append app = {.data = &done};
    assert_int_equal(f->io->append(f->io, &app, e, 7, appended), 0);
    while (!done) uv_run(&f->loop, UV_RUN_ONCE);
    put_snapshot(f, 9);
    for (unsigned i = 0; i < 7; i++) {
        free(e[i].buf.base);
    }
}

/* Loads the shard (raft's load, without raft): the snapshot's index, and
 * the log's start and length. */
static void load(struct fixture *f, raft_index *snap_index, raft_index *start, size_t *n)
{
    raft_term term;
    raft_id voted;
    struct raft_snapshot *loaded = NULL;
    struct raft_entry *entries = NULL;
    assert_int_equal(f->io->load(f->io, &term, &voted, &loaded, start, &entries, n), 0);
    assert_non_null(loaded);
    *snap_index = loaded->index;
    free_loaded(loaded, entries, *n);
}

/* The WAL lost entries 8 and 9 (synced data, after the snapshot at 9 took
 * them): the log goes on after the snapshot, at 10. After the next
 * restart the WAL holds 1..7 and then 10: the snapshot covers the gap, and
 * the replay must take it, not refuse to start. */
static void test_replay_takes_a_gap_the_snapshot_covers(void **state)
{
    struct fixture *f = *state;
    append_and_snapshot(f); /* 8 and 9 never reach the WAL: as if lost */
    close_store(f);
    f->io_closed = f->store_closed = false;
    open_store(f);
    raft_index snap_index = 0, start = 0;
    size_t n = 0;
    load(f, &snap_index, &start, &n);
    assert_int_equal(snap_index, 9);
    assert_int_equal(start, 10);
    assert_int_equal(n, 0);
    assert_int_equal(f->io->start(f->io, 100, on_tick, on_recv), 0);

    struct raft_entry e = {.term = 2, .type = RAFT_COMMAND, .buf = {malloc(8), 8}};
    memset(e.buf.base, 10, 8);
    int done = 0;
    struct raft_io_append app = {.data = &done};
    assert_int_equal(f->io->append(f->io, &app, &e, 1, appended), 0);
    while (!done) uv_run(&f->loop, UV_RUN_ONCE);
    free(e.buf.base);

    close_store(f);
    f->io_closed = f->store_closed = false;
    open_store(f);
    load(f, &snap_index, &start, &n);
    assert_int_equal(snap_index, 9);
    assert_int_equal(start, 10);
    assert_int_equal(n, 1);
    assert_int_equal(f->io->start(f->io, 100, on_tick, on_recv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_work_reports_its_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_loads_from_the_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_takes_a_gap_the_snapshot_covers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_work_ending_after_close_is_cancelled, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
