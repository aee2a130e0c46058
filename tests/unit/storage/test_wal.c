/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the write-ahead log: roundtrip, ordering, group commit, recovery, release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_util.h"
#include "wal.h"
#include "wal_format.h"
#include "wal_internal.h"
#include "test_dirs.h"

#define SEG_SMALL (256u * 1024u) /* small segments, to exercise rollover */
#define MAX_LSN 4096             /* size of the expectation model */

/* ---------------------------------------------------------------- */
/* Fixture                                                          */
/* ---------------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    char dir[64];
    bool no_uring;
    struct st_wal *w;
    uint64_t seg_size;
    /* What the log should hold: length and content seed per LSN. */
    uint32_t exp_len[MAX_LSN];
    uint32_t exp_seed[MAX_LSN];
    /* Callback bookkeeping. */
    uint64_t fired;          /* callbacks so far */
    uint64_t last_fired_lsn; /* LSN of the latest callback */
    int bad_order;           /* callbacks out of LSN order */
    int in_append;           /* set while st_wal_append runs */
    int fired_in_append;     /* callbacks fired inside st_wal_append */
    uint32_t items;          /* st_wal_append.items of every record */
    /* Replay bookkeeping. */
    uint64_t replay_first;
    uint64_t replay_last;
    uint64_t replay_count;
    int replay_bad;
};

struct app {
    struct st_wal_append req;
    struct fx *fx;
    int status;
    int fired;
};

static uint8_t payload_byte(uint64_t lsn, uint32_t seed, size_t j)
{
    return (uint8_t)(seed * 131u + lsn * 31u + j * 7u + (j >> 9));
}

static int fx_setup(void **state)
{
    bool no_uring = *(bool *)*state;
    struct fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->no_uring = no_uring;
    fx->seg_size = SEG_SMALL;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    test_dir_make(fx->dir, sizeof fx->dir, "wal");
    *state = fx;
    return 0;
}

static void on_closed(void *arg) { *(int *)arg = 1; }

static void fx_close(struct fx *fx)
{
    if (fx->w == NULL) {
        return;
    }
    int closed = 0;
    st_wal_close(fx->w, on_closed, &closed);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    fx->w = NULL;
}

static int fx_teardown(void **state)
{
    struct fx *fx = *state;
    fx_close(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    test_dir_remove(fx->dir);
    free(fx);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Helpers                                                          */
/* ---------------------------------------------------------------- */

static int replay_check_cb(void *arg, uint64_t lsn, const void *data, size_t len)
{
    struct fx *fx = arg;
    const uint8_t *p = data;
    if (fx->replay_count == 0) {
        fx->replay_first = lsn;
    } else if (lsn != fx->replay_last + 1) {
        fx->replay_bad++;
    }
    fx->replay_last = lsn;
    fx->replay_count++;
    if (lsn >= MAX_LSN || len != fx->exp_len[lsn]) {
        print_message("replay: LSN %llu has %zu bytes, want %u\n",
                      (unsigned long long)lsn, len, lsn < MAX_LSN ? fx->exp_len[lsn] : 0);
        fx->replay_bad++;
        return 0;
    }
    for (size_t j = 0; j < len; j++) {
        if (p[j] != payload_byte(lsn, fx->exp_seed[lsn], j)) {
            fx->replay_bad++;
            break;
        }
    }
    return 0;
}

/* Opens and replays; returns replay's result, errmsg filled on failure. */
static int fx_open(struct fx *fx, char *errmsg, size_t errmsg_len)
{
    struct st_wal_options opts = {.loop = &fx->loop, .dir = fx->dir,
                                  .segment_size = fx->seg_size,
                                  .no_uring = fx->no_uring};
    assert_null(fx->w);
    assert_int_equal(st_wal_open(&fx->w, &opts, errmsg, errmsg_len), 0);
    fx->replay_first = fx->replay_last = fx->replay_count = 0;
    fx->replay_bad = 0;
    fx->fired = fx->last_fired_lsn = 0; /* callbacks restart with the WAL */
    fx->bad_order = 0;
    return st_wal_replay(fx->w, replay_check_cb, fx, errmsg, errmsg_len);
}

static void fx_open_ok(struct fx *fx)
{
    char errmsg[256] = "";
    int rv = fx_open(fx, errmsg, sizeof errmsg);
    if (rv != 0) {
        fail_msg("replay: %s (%s)", hd_strerror(rv), errmsg);
    }
    assert_int_equal(fx->replay_bad, 0);
}

static void append_cb(struct st_wal_append *req, int status)
{
    struct app *a = req->data;
    struct fx *fx = a->fx;
    if (fx->in_append) {
        fx->fired_in_append++;
    }
    if (fx->fired > 0 && req->lsn != fx->last_fired_lsn + 1) {
        fx->bad_order++;
    }
    fx->last_fired_lsn = req->lsn;
    fx->fired++;
    a->status = status;
    a->fired++;
}

/* Queues one record of `len` bytes (in two iovecs) with content `seed`. */
static int fx_append_cb(struct fx *fx, struct app *a, uint32_t len, uint32_t seed,
                        st_wal_append_cb cb)
{
    uint64_t lsn = st_wal_next_lsn(fx->w);
    assert_true(lsn < MAX_LSN);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    assert_non_null(buf);
    for (size_t j = 0; j < len; j++) {
        buf[j] = payload_byte(lsn, seed, j);
    }
    struct iovec iov[2] = {{buf, len / 3}, {buf + len / 3, len - len / 3}};
    memset(a, 0, sizeof *a);
    a->req.data = a;
    a->req.items = fx->items;
    a->fx = fx;
    a->status = 1;
    fx->in_append = 1;
    int rv = st_wal_append(fx->w, &a->req, iov, 2, cb);
    fx->in_append = 0;
    free(buf); /* the WAL copied it */
    if (rv == 0) {
        assert_true(a->req.lsn == lsn);
        fx->exp_len[lsn] = len;
        fx->exp_seed[lsn] = seed;
    }
    return rv;
}

static int fx_append(struct fx *fx, struct app *a, uint32_t len, uint32_t seed)
{
    return fx_append_cb(fx, a, len, seed, append_cb);
}

/* Appends n records at once, runs the loop, checks every callback. */
static void fx_append_batch(struct fx *fx, unsigned n, const uint32_t *lens, uint32_t seed)
{
    struct app *apps = calloc(n, sizeof *apps);
    assert_non_null(apps);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(fx_append(fx, &apps[i], lens[i], seed), 0);
    }
    assert_int_equal(fx->fired_in_append, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(apps[i].fired, 1);
        assert_int_equal(apps[i].status, 0);
    }
    assert_int_equal(fx->bad_order, 0);
    free(apps);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void seg_path(const struct fx *fx, uint64_t index, char *out, size_t n)
{
    snprintf(out, n, "%s/wal-%016llx.seg", fx->dir, (unsigned long long)index);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5A;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static uint64_t count_segments(const struct fx *fx)
{
    uint64_t n = 0;
    DIR *d = opendir(fx->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        n += l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0;
    }
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- */
/* Tests                                                            */
/* ---------------------------------------------------------------- */

/* An empty directory (even a missing one) is a new WAL starting at LSN 1. */
static void test_empty_dir_is_new_wal(void **state)
{
    struct fx *fx = *state;
    strcat(fx->dir, "/sub"); /* not there yet: st_wal_open creates it */
    fx_open_ok(fx);
    assert_int_equal(fx->replay_count, 0);
    assert_int_equal(st_wal_next_lsn(fx->w), 1);
    fx_close(fx);
    test_dir_remove(fx->dir);
    fx->dir[strlen(fx->dir) - 4] = '\0';
}

/* The mode asked for is the mode in use (io_uring unless blocked here). */
static void test_mode(void **state)
{
    struct fx *fx = *state;
    struct io_uring probe;
    bool have_uring = io_uring_queue_init(2, &probe, 0) == 0;
    if (have_uring) {
        io_uring_queue_exit(&probe);
    }
    fx_open_ok(fx);
    if (!fx->no_uring && !have_uring) {
        skip(); /* io_uring is blocked on this machine */
    }
    assert_true(st_wal_uses_uring(fx->w) == !fx->no_uring);
}

/* Many records of many sizes, across segments and across reopenings. */
static void test_roundtrip_rollover(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    static const uint32_t sizes[] = {0, 1, 31, 32, 200, 4063, 4064, 4096, 5000, 70000};
    uint32_t lens[200];
    for (unsigned wave = 0; wave < 6; wave++) {
        unsigned n = wave % 2 ? 200 : 37;
        for (unsigned i = 0; i < n; i++) {
            lens[i] = sizes[rng() % (sizeof sizes / sizeof sizes[0])];
        }
        if (wave == 3) {
            lens[5] = 300 * 1024; /* larger than a whole segment */
            lens[6] = 250 * 1024; /* does not fit what is left */
        }
        fx_append_batch(fx, n, lens, wave);
    }
    uint64_t last = st_wal_next_lsn(fx->w) - 1;
    struct st_wal_stats st;
    st_wal_stats(fx->w, &st);
    assert_true(st.appends == last);
    assert_true(st.segments > 3);
    assert_true(st.segments == count_segments(fx));
    fx_close(fx);
    fx_open_ok(fx);
    assert_true(fx->replay_count == last);
    assert_true(fx->replay_first == 1 && fx->replay_last == last);
    assert_true(st_wal_next_lsn(fx->w) == last + 1);
    /* Appending after a reopen continues the same log. */
    uint32_t more[3] = {10, 20000, 30};
    fx_append_batch(fx, 3, more, 99);
    fx_close(fx);
    fx_open_ok(fx);
    assert_true(fx->replay_count == last + 3);
}

static struct {
    struct app apps[50];
    unsigned next;
} chain;

static void chain_cb(struct st_wal_append *req, int status)
{
    struct app *a = req->data;
    append_cb(req, status);
    if (chain.next < 50) {
        struct app *n = &chain.apps[chain.next++];
        assert_int_equal(fx_append_cb(a->fx, n, 10 + chain.next, 2, chain_cb), 0);
    }
}

/* Callbacks fire in LSN order, from the loop, never inside the append;
 * appends made from a callback join the log in order. */
static void test_callbacks_ordered_and_async(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    struct app apps[100];
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(fx_append(fx, &apps[i], 100 + i, 1), 0);
        assert_int_equal(fx->fired, 0);
        assert_true(apps[i].req.lsn == i + 1);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->fired, 100);
    assert_int_equal(fx->bad_order, 0);
    for (unsigned i = 0; i < 100; i++) {
        assert_int_equal(apps[i].status, 0);
    }
    chain.next = 1;
    assert_int_equal(fx_append_cb(fx, &chain.apps[0], 10, 2, chain_cb), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->fired, 150);
    assert_int_equal(fx->bad_order, 0);
    assert_int_equal(fx->fired_in_append, 0);
    assert_true(chain.apps[49].req.lsn == 150 && chain.apps[49].status == 0);
    fx_close(fx);
    fx_open_ok(fx);
    assert_int_equal(fx->replay_count, 150);
}

/* Closing with appends queued writes them first, then calls back. */
static void test_close_drains_queue(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    struct app apps[20];
    for (unsigned i = 0; i < 20; i++) {
        assert_int_equal(fx_append(fx, &apps[i], 3000, 3), 0);
    }
    int closed = 0;
    st_wal_close(fx->w, on_closed, &closed);
    fx->w = NULL;
    assert_int_equal(fx->fired, 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(fx->fired, 20);
    for (unsigned i = 0; i < 20; i++) {
        assert_int_equal(apps[i].status, 0);
    }
    fx_open_ok(fx);
    assert_int_equal(fx->replay_count, 20);
}

/* Appends queued together are written by far fewer group commits. */
static void test_group_commit_batches(void **state)
{
    struct fx *fx = *state;
    fx->seg_size = 1024 * 1024;
    fx_open_ok(fx);
    uint32_t lens[256];
    for (unsigned i = 0; i < 256; i++) {
        lens[i] = 200;
    }
    fx->items = 3;
    fx_append_batch(fx, 256, lens, 4);
    struct st_wal_stats st;
    st_wal_stats(fx->w, &st);
    assert_int_equal(st.appends, 256);
    assert_true(st.syncs >= 1);
    assert_true(st.syncs <= 2); /* one, plus slack for scheduling */
    assert_true(st.bytes % 4096 == 0 && st.bytes >= 256 * (200 + 32));
    /* Every group commit is in both histograms, with every record's items. */
    assert_true(st.sync_us.count == st.syncs);
    assert_true(st.items_per_sync.count == st.syncs);
    assert_true(st.items_per_sync.sum == 256 * 3);
    assert_true(hd_histogram_cumulative(&st.items_per_sync, HD_HISTOGRAM_BOUNDS) == st.syncs);
}

/* Records over ST_WAL_RECORD_MAX are refused, and never called back. */
static void test_record_too_big(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    static uint8_t small[16];
    struct app a = {.fx = fx};
    a.req.data = &a;
    /* Never read: the size check comes first. */
    struct iovec iov[2] = {{small, ST_WAL_RECORD_MAX}, {small, 1}};
    assert_int_equal(st_wal_append(fx->w, &a.req, iov, 2, append_cb), HD_ETOOBIG);
    iov[0].iov_len = ST_WAL_RECORD_MAX + 1ull;
    assert_int_equal(st_wal_append(fx->w, &a.req, iov, 1, append_cb), HD_ETOOBIG);
    assert_int_equal(st_wal_next_lsn(fx->w), 1); /* no LSN was used */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(fx->fired, 0);
    iov[0].iov_len = sizeof small;
    assert_int_equal(st_wal_append(fx->w, &a.req, iov, 1, append_cb), 0);
    assert_true(a.req.lsn == 1);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(fx->fired, 1);
}

/* After a write error: that commit fails, queued ones get HD_EFAILED, and
 * so does every later append, until reopened. */
static void test_failed_state_is_sticky(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[5] = {10, 20, 30, 40, 50};
    fx_append_batch(fx, 5, lens, 5);
    struct app apps[10];
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(fx_append(fx, &apps[i], 100, 5), 0);
    }
    st__wal_fault_status = HD_EIO;
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(st__wal_fault_status, 0);
    assert_int_equal(apps[0].status, HD_EIO);
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(apps[i].fired, 1);
        assert_true(apps[i].status == HD_EIO || apps[i].status == HD_EFAILED);
    }
    assert_int_equal(fx->bad_order, 0);
    struct app late;
    assert_int_equal(fx_append(fx, &late, 10, 5), HD_EFAILED);
    fx_close(fx);
    /* The injected failure hit after the data landed, so replay finds
     * it; what matters is that the WAL reopens and continues cleanly. */
    fx_open_ok(fx);
    assert_true(fx->replay_count >= 5);
    uint64_t next = st_wal_next_lsn(fx->w);
    uint32_t more[2] = {7, 8};
    for (uint64_t l = fx->replay_count + 1; l < next; l++) {
        assert_true(fx->exp_len[l] == 100);
    }
    fx_append_batch(fx, 2, more, 6);
    assert_true(st_wal_next_lsn(fx->w) == next + 2);
}

/* Builds a WAL with batch A (20 records) then batch B (30 records), one
 * group commit each, in one segment; returns B's first offset and size. */
static void build_two_batches(struct fx *fx, size_t *b_start, size_t *b_size)
{
    uint32_t lens[30];
    size_t a_size = 0;
    fx_open_ok(fx);
    for (unsigned i = 0; i < 20; i++) {
        lens[i] = rng() % 3000;
        a_size += 32 + lens[i];
    }
    fx_append_batch(fx, 20, lens, 7);
    fx_close(fx);
    fx_open_ok(fx);
    *b_size = 0;
    for (unsigned i = 0; i < 30; i++) {
        lens[i] = rng() % 3000;
        *b_size += 32 + lens[i];
    }
    fx_append_batch(fx, 30, lens, 8);
    fx_close(fx);
    *b_start = 4096 + ((a_size + 4095) & ~(size_t)4095);
}

/* Checks the layout assumption of build_two_batches. */
static void check_batch_start(const uint8_t *img, size_t len, size_t off, uint64_t lsn)
{
    struct st__wal_seg_hdr hdr;
    assert_int_equal(st__wal_decode_seg_hdr(img, len, &hdr), 0);
    struct st__wal_rec rec;
    assert_true(st__wal_decode_record(img + off, len - off, hdr.salt, &rec) > 0);
    assert_true(rec.lsn == lsn);
    assert_true(rec.flags & ST_WAL_REC_BATCH_START);
}

/* Expected replay count after damage starting at `cut` in batch B. */
static uint64_t whole_before(const struct fx *fx, size_t b_start, size_t cut)
{
    uint64_t n = 20;
    size_t end = b_start;
    for (uint64_t lsn = 21; lsn <= 50; lsn++) {
        end += 32 + fx->exp_len[lsn];
        if (end > cut) {
            break;
        }
        n++;
    }
    return n;
}

/* A torn last write, cut at many random offsets two ways (zeros from there
 * on; one lost block there with the rest intact): replay yields exactly the
 * whole records before the damage, and appends after the cut replay
 * correctly on the next open. A file cut short there is not a torn write
 * (segments are preallocated before they hold a record): it is refused. */
static void test_torn_tail_random_cuts(void **state)
{
    struct fx *fx = *state;
    size_t b_start, b_size, img_len;
    build_two_batches(fx, &b_start, &b_size);
    char path[128];
    seg_path(fx, 1, path, sizeof path);
    uint8_t *img = read_file(path, &img_len);
    check_batch_start(img, img_len, b_start, 21);
    uint8_t *copy = malloc(img_len);
    assert_non_null(copy);
    uint32_t saved_len[51], saved_seed[51]; /* appends below overwrite the model */
    memcpy(saved_len, fx->exp_len, sizeof saved_len);
    memcpy(saved_seed, fx->exp_seed, sizeof saved_seed);
    for (unsigned k = 0; k < 48; k++) {
        memcpy(fx->exp_len, saved_len, sizeof saved_len);
        memcpy(fx->exp_seed, saved_seed, sizeof saved_seed);
        size_t cut = b_start + rng() % b_size;
        unsigned how = k % 3;
        memcpy(copy, img, img_len);
        size_t len = img_len;
        size_t damage = cut;
        if (how == 0) {
            len = cut;
        } else if (how == 1) {
            memset(copy + cut, 0, img_len - cut);
        } else {
            damage = cut & ~(size_t)4095;
            memset(copy + damage, 0, 4096);
        }
        write_file(path, copy, len);
        if (how == 0) {
            char errmsg[256];
            assert_int_equal(fx_open(fx, errmsg, sizeof errmsg), HD_ECORRUPT);
            assert_non_null(strstr(errmsg, "truncated"));
            fx_close(fx);
            test_dir_remove(fx->dir);
            assert_int_equal(mkdir(fx->dir, 0755), 0);
            continue;
        }
        uint64_t want = whole_before(fx, b_start, damage);
        fx_open_ok(fx);
        if (fx->replay_count != want) {
            fail_msg("cut %u at %zu (how %u): replayed %llu, want %llu", k, cut, how,
                     (unsigned long long)fx->replay_count, (unsigned long long)want);
        }
        assert_true(st_wal_next_lsn(fx->w) == want + 1);
        uint32_t lens[4] = {5, 4000, 0, 9000};
        fx_append_batch(fx, 4, lens, 100 + k);
        fx_close(fx);
        fx_open_ok(fx);
        assert_true(fx->replay_count == want + 4);
        fx_close(fx);
        test_dir_remove(fx->dir); /* start the next cut from the same image */
        assert_int_equal(mkdir(fx->dir, 0755), 0);
    }
    free(copy);
    free(img);
}

/* A torn cut inside a block, then enough appends to fill the segment: the
 * remnant left in the cut block must not make the full segment corrupt. */
static void test_remnant_then_rollover(void **state)
{
    struct fx *fx = *state;
    size_t b_start, b_size, img_len;
    build_two_batches(fx, &b_start, &b_size);
    char path[128];
    seg_path(fx, 1, path, sizeof path);
    uint8_t *img = read_file(path, &img_len);
    /* Garbage instead of the second half of B: a torn write of junk. */
    size_t cut = b_start + b_size / 2;
    for (size_t i = cut; i < b_start + b_size; i++) {
        img[i] = (uint8_t)(i * 13 + 1);
    }
    write_file(path, img, img_len);
    free(img);
    fx_open_ok(fx);
    uint64_t want = whole_before(fx, b_start, cut);
    assert_true(fx->replay_count == want);
    uint32_t lens[60];
    for (unsigned i = 0; i < 60; i++) {
        lens[i] = 5000;
    }
    fx_append_batch(fx, 60, lens, 9); /* more than the rest of the segment */
    struct st_wal_stats st;
    st_wal_stats(fx->w, &st);
    assert_true(st.segments >= 2);
    fx_close(fx);
    fx_open_ok(fx);
    assert_true(fx->replay_count == want + 60);
}

/* A cut inside a block right before the segment fills: the next record
 * goes to a new segment, and the remnant ends a segment that is no longer
 * the last. The next segment's first LSN proves nothing was lost. */
static void test_remnant_at_segment_end(void **state)
{
    struct fx *fx = *state;
    size_t b_start, b_size, img_len;
    build_two_batches(fx, &b_start, &b_size);
    char path[128];
    seg_path(fx, 1, path, sizeof path);
    uint8_t *img = read_file(path, &img_len);
    size_t cut = b_start + b_size / 3;
    memset(img + cut, 0xEE, b_start + b_size - cut);
    write_file(path, img, img_len);
    free(img);
    fx_open_ok(fx);
    uint64_t want = whole_before(fx, b_start, cut);
    assert_true(fx->replay_count == want);
    uint32_t big = 200 * 1024; /* more than what is left of segment 1 */
    fx_append_batch(fx, 1, &big, 17);
    seg_path(fx, 2, path, sizeof path);
    assert_true(file_exists(path));
    fx_close(fx);
    fx_open_ok(fx);
    assert_true(fx->replay_count == want + 1);
    /* Damage that does lose a record at the end of segment 1 is caught. */
    fx_close(fx);
    seg_path(fx, 1, path, sizeof path);
    img = read_file(path, &img_len);
    size_t last = b_start;
    for (uint64_t lsn = 21; lsn < want; lsn++) {
        last += 32 + fx->exp_len[lsn];
    }
    img[last + 33] ^= 0x10; /* inside record `want` */
    write_file(path, img, img_len);
    free(img);
    char errmsg[256] = "";
    assert_int_equal(fx_open(fx, errmsg, sizeof errmsg), HD_ECORRUPT);
    assert_non_null(strstr(errmsg, "wal-0000000000000002.seg"));
}

static int stop_at_3(void *arg, uint64_t lsn, const void *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
    return lsn == 3 ? 77 : 0;
}

/* A replay callback's non-zero answer stops replay and is returned. */
static void test_replay_callback_stops(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[5] = {1, 2, 3, 4, 5};
    fx_append_batch(fx, 5, lens, 18);
    fx_close(fx);
    struct st_wal_options opts = {.loop = &fx->loop, .dir = fx->dir,
                                  .segment_size = fx->seg_size,
                                  .no_uring = fx->no_uring};
    char errmsg[256];
    assert_int_equal(st_wal_open(&fx->w, &opts, errmsg, sizeof errmsg), 0);
    assert_int_equal(st_wal_replay(fx->w, stop_at_3, NULL, errmsg, sizeof errmsg), 77);
    struct app a;
    assert_int_equal(fx_append(fx, &a, 1, 1), HD_EFAILED);
}

/* A flipped byte in the last record drops that record only. */
static void test_flip_in_last_record(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[10] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 100};
    fx_append_batch(fx, 10, lens, 10);
    uint32_t one = 500;
    fx_append_batch(fx, 1, &one, 10);
    fx_close(fx);
    char path[128];
    seg_path(fx, 1, path, sizeof path);
    /* Record 11 opens the second group commit, at 4096 + 4096. */
    flip_byte(path, 8192 + 32 + 250);
    fx_open_ok(fx);
    assert_int_equal(fx->replay_count, 10);
    assert_int_equal(st_wal_next_lsn(fx->w), 11);
    fx_append_batch(fx, 1, &one, 11);
    fx_close(fx);
    fx_open_ok(fx);
    assert_int_equal(fx->replay_count, 11);
}

/* A flipped byte in a record that later group commits follow is corruption. */
static void test_flip_in_middle_record_is_corrupt(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[10] = {100, 100, 100, 100, 100, 100, 100, 100, 100, 100};
    fx_append_batch(fx, 10, lens, 12);
    fx_append_batch(fx, 10, lens, 13);
    fx_close(fx);
    char path[128];
    seg_path(fx, 1, path, sizeof path);
    flip_byte(path, 4096 + 4 * 132 + 40); /* inside record 5 */
    char errmsg[256] = "";
    assert_int_equal(fx_open(fx, errmsg, sizeof errmsg), HD_ECORRUPT);
    assert_non_null(strstr(errmsg, "wal-0000000000000001.seg"));
    assert_non_null(strstr(errmsg, "offset 4624")); /* record 5 starts there */
    assert_int_equal(fx->replay_count, 4);
    struct app a;
    assert_int_equal(fx_append(fx, &a, 1, 1), HD_EFAILED);
}

/* Damage in a segment that is not the last is corruption, wherever it is. */
static void test_damage_in_earlier_segment_is_corrupt(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[80];
    for (unsigned i = 0; i < 80; i++) {
        lens[i] = 10000;
    }
    fx_append_batch(fx, 80, lens, 14); /* about three segments */
    fx_close(fx);
    char path[128];
    seg_path(fx, 3, path, sizeof path);
    assert_true(file_exists(path));
    seg_path(fx, 1, path, sizeof path);
    size_t len;
    uint8_t *img = read_file(path, &len);
    /* Zero the last record of segment 1: no later group commit in that
     * segment, so only "not the last segment" can catch it. */
    struct st__wal_seg_hdr hdr;
    assert_int_equal(st__wal_decode_seg_hdr(img, len, &hdr), 0);
    size_t pos = 4096, last = 0;
    struct st__wal_rec rec;
    int n;
    while ((n = st__wal_decode_record(img + pos, len - pos, hdr.salt, &rec)) > 0) {
        last = pos;
        pos += (size_t)n;
    }
    assert_true(last > 4096);
    img[last + 40] ^= 1;
    write_file(path, img, len);
    free(img);
    char errmsg[256] = "";
    assert_int_equal(fx_open(fx, errmsg, sizeof errmsg), HD_ECORRUPT);
    assert_non_null(strstr(errmsg, "wal-0000000000000001.seg"));
    assert_non_null(strstr(errmsg, "offset"));
}

/* release_before deletes whole old segments, never the active one. */
static void test_release_before(void **state)
{
    struct fx *fx = *state;
    fx_open_ok(fx);
    uint32_t lens[120];
    for (unsigned i = 0; i < 120; i++) {
        lens[i] = 10000;
    }
    fx_append_batch(fx, 120, lens, 15); /* five segments or so */
    struct st_wal_stats st;
    st_wal_stats(fx->w, &st);
    assert_true(st.segments >= 4);
    char path[128];
    seg_path(fx, 3, path, sizeof path);
    size_t len;
    uint8_t *img = read_file(path, &len);
    struct st__wal_seg_hdr hdr;
    assert_int_equal(st__wal_decode_seg_hdr(img, len, &hdr), 0);
    free(img);
    assert_int_equal(st_wal_release_before(fx->w, hdr.first_lsn - 1), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    seg_path(fx, 1, path, sizeof path);
    assert_false(file_exists(path)); /* all of 1 is below */
    seg_path(fx, 2, path, sizeof path);
    assert_true(file_exists(path)); /* its last record is not */
    assert_int_equal(st_wal_release_before(fx->w, hdr.first_lsn), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(file_exists(path));
    seg_path(fx, 3, path, sizeof path);
    assert_true(file_exists(path));
    uint64_t before = st.segments;
    st_wal_stats(fx->w, &st);
    assert_true(st.segments == before - 2);
    assert_int_equal(st_wal_release_before(fx->w, UINT64_MAX), 0);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    st_wal_stats(fx->w, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(count_segments(fx), 1);
    uint64_t next = st_wal_next_lsn(fx->w);
    fx_close(fx);
    fx_open_ok(fx);
    assert_true(fx->replay_count > 0);
    assert_true(fx->replay_last == next - 1);
    fx_append_batch(fx, 3, lens, 16);
}

#define T(name) cmocka_unit_test_prestate_setup_teardown(name, fx_setup, fx_teardown, &MODE)

int main(void)
{
    static bool uring = false, fallback = true;
    int failed = 0;
    for (int m = 0; m < 2; m++) {
#define MODE (*(m == 0 ? &uring : &fallback))
        const struct CMUnitTest tests[] = {
            T(test_empty_dir_is_new_wal),
            T(test_mode),
            T(test_roundtrip_rollover),
            T(test_callbacks_ordered_and_async),
            T(test_close_drains_queue),
            T(test_group_commit_batches),
            T(test_record_too_big),
            T(test_failed_state_is_sticky),
            T(test_torn_tail_random_cuts),
            T(test_remnant_then_rollover),
            T(test_remnant_at_segment_end),
            T(test_replay_callback_stops),
            T(test_flip_in_last_record),
            T(test_flip_in_middle_record_is_corrupt),
            T(test_damage_in_earlier_segment_is_corrupt),
            T(test_release_before),
        };
#undef MODE
        failed += _cmocka_run_group_tests(m == 0 ? "wal_io_uring" : "wal_fallback", tests,
                                          sizeof tests / sizeof tests[0], NULL, NULL);
    }
    return failed;
}
