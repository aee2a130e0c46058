/* SPDX-License-Identifier: Apache-2.0 */
/* Rebuilding each shard's Raft log from the WAL at start, load and bootstrap. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "raft_io.h"
#include "raft_io_internal.h"
#include "wal.h"
#include "wal_record.h"

/* ------------------------------------------------------------- replay --- */

/* The replayed entries are one run ending just before next_index. */
static bool cons__log_contiguous(const struct cons_shard_log *sl)
{
    return sl->n_entries == 0 || sl->start_index + sl->n_entries == sl->next_index;
}

static void cons__drop_from(struct cons_shard_log *sl, uint64_t index)
{
    HD_ASSERT(!sl->started); /* only before raft has loaded the log */
    while (sl->n_entries > 0 && sl->start_index + sl->n_entries - 1 >= index) {
        sl->n_entries--;
        raft_free(sl->entries[sl->n_entries].buf.base);
    }
    if (sl->n_entries == 0) {
        sl->start_index = index;
    }
    sl->next_index = index;
    HD_ASSERT(cons__log_contiguous(sl));
}

static int cons__push_entry(struct cons_shard_log *sl, const struct raft_entry *e)
{
    int rv = hd_reserve((void **)&sl->entries, &sl->cap_entries, sl->n_entries + 1,
                        sizeof *sl->entries, 256);
    if (rv != 0) {
        return rv;
    }
    struct raft_entry copy = *e;
    copy.buf.base = raft_malloc(e->buf.len > 0 ? e->buf.len : 1);
    if (copy.buf.base == NULL) {
        return HD_ENOMEM;
    }
    memcpy(copy.buf.base, e->buf.base, e->buf.len);
    copy.batch = NULL;
    HD_ASSERT(sl->n_entries < sl->cap_entries);
    sl->entries[sl->n_entries++] = copy;
    return 0;
}

/*
 * Entries below the shard's snapshot are applied and compacted in raft's
 * eyes, but the WAL segments holding them stay until every shard is past
 * them: replayed whole, a restart held every entry of every kept segment
 * at once (hundreds of MiB with large messages) before load fitted the log
 * to the snapshot. They go as soon as they are read. The entry at the
 * snapshot's index itself stays: load checks its term against the
 * snapshot's (a log the snapshot replaced is dropped whole).
 */
static void cons__drop_below_floor(struct cons_shard_log *sl)
{
    if (sl->n_entries == 0 || sl->start_index >= sl->replay_floor) {
        return;
    }
    uint64_t below = sl->replay_floor - sl->start_index;
    size_t k = below < sl->n_entries ? (size_t)below : sl->n_entries;
    for (size_t i = 0; i < k; i++) {
        raft_free(sl->entries[i].buf.base);
    }
    memmove(sl->entries, sl->entries + k, (sl->n_entries - k) * sizeof *sl->entries);
    sl->n_entries -= k;
    sl->start_index += k;
    HD_ASSERT(cons__log_contiguous(sl));
}

static int cons__replay_entries(struct cons_shard_log *sl, const struct cons_rec *r,
                                uint64_t lsn)
{
    HD_ASSERT(r->kind == CONS_REC_ENTRIES && r->n > 0); /* checked by the decoder */
    if (sl->n_entries == 0 && sl->next_index <= 1) {
        sl->start_index = r->index; /* older segments were released */
        sl->next_index = r->index;
    }
    if (r->index > sl->next_index && r->index <= sl->replay_floor + 1) {
        /* The entries before it, up to the snapshot's index, are missing:
         * synced WAL data was lost (a damaged disk, a cut tail) after the
         * snapshot covered them, and the node wrote on after the snapshot.
         * The snapshot holds them; the log goes on from here. */
        cons__drop_from(sl, 0);
        sl->start_index = sl->next_index = r->index;
        sl->span_n = 0;
    }
    if (r->index > sl->next_index) {
        HD_LOG_ERROR("shard %u: WAL record %llu starts at index %llu, expected %llu",
                     sl->shard, (unsigned long long)lsn, (unsigned long long)r->index,
                     (unsigned long long)sl->next_index);
        return HD_ECORRUPT;
    }
    if (r->index < sl->next_index) {
        cons__drop_from(sl, r->index); /* overwritten without a TRUNCATE */
    }
    if (sl->n_entries == 0) {
        sl->start_index = r->index;
    }
    struct cons_rec_iter it;
    cons_rec_iter_init(&it, r);
    struct raft_entry e;
    while (cons_rec_iter_next(&it, &e)) {
        int rv = cons__push_entry(sl, &e);
        if (rv != 0) {
            return rv;
        }
    }
    sl->next_index = r->index + r->n;
    HD_ASSERT(cons__log_contiguous(sl) && sl->n_entries >= r->n);
    cons__drop_below_floor(sl);
    /* Spans of replayed records start the release bookkeeping. */
    while (sl->span_n > 0 && sl->spans[sl->span_n - 1].first >= r->index) {
        sl->span_n--;
    }
    return cons__span_push(sl, r->index, r->index + r->n - 1, lsn);
}

static int cons__replay_record(void *arg, uint64_t lsn, const void *data, size_t len)
{
    struct cons_store *s = arg;
    struct cons_rec r;
    int rv = cons_rec_decode(data, len, &r);
    if (rv != 0 || r.shard >= s->n_shards) {
        HD_LOG_ERROR("WAL record %llu: not a valid Raft record (shard %u of %u)",
                     (unsigned long long)lsn, r.shard, s->n_shards);
        return HD_ECORRUPT;
    }
    struct cons_shard_log *sl = &s->shards[r.shard];
    switch (r.kind) {
        case CONS_REC_ENTRIES:
            return cons__replay_entries(sl, &r, lsn);
        case CONS_REC_TRUNCATE:
            if (r.index < sl->next_index) {
                cons__drop_from(sl, r.index);
                while (sl->span_n > 0 && sl->spans[sl->span_n - 1].first >= r.index) {
                    sl->span_n--;
                }
            }
            return 0;
        case CONS_REC_RESET:
            cons__drop_from(sl, 0);
            sl->start_index = sl->next_index = r.index + 1;
            sl->span_n = 0;
            return 0;
        default:
            return HD_ECORRUPT;
    }
}

int cons__replay(struct cons_store *s, char *errmsg, size_t errmsg_len)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        HD_ASSERT(s->shards[i].n_entries == 0 && s->shards[i].span_n == 0);
        s->shards[i].start_index = 1;
        s->shards[i].next_index = 1;
        /* A snapshot that does not load keeps every entry: load reports it. */
        if (cons__snapshot_index(&s->shards[i], &s->shards[i].replay_floor) != 0) {
            s->shards[i].replay_floor = 0;
        }
    }
    int rv = st_wal_replay(s->wal, cons__replay_record, s, errmsg, errmsg_len);
    if (rv != 0 && errmsg[0] == '\0') {
        snprintf(errmsg, errmsg_len, "replay WAL: %s", hd_strerror(rv));
    }
    return rv;
}

void cons__replay_free(struct cons_shard_log *sl)
{
    for (size_t i = 0; i < sl->n_entries; i++) {
        raft_free(sl->entries[i].buf.base);
    }
    hd_free(sl->entries);
    sl->entries = NULL;
    sl->n_entries = sl->cap_entries = 0;
}

/* --------------------------------------------------------------- load --- */

/* Entries that end before the snapshot, or disagree with it, belong to a log
 * the snapshot replaced (a crash between installing a snapshot and writing
 * the RESET record): drop them. */
static void cons__fit_to_snapshot(struct cons_shard_log *sl, const struct raft_snapshot *snap)
{
    uint64_t last = sl->start_index + sl->n_entries - 1;
    bool behind = sl->n_entries == 0 || last < snap->index;
    bool disagree = false;
    if (!behind && snap->index >= sl->start_index) {
        disagree = sl->entries[snap->index - sl->start_index].term != snap->term;
    }
    if (behind || disagree || sl->start_index > snap->index + 1) {
        cons__drop_from(sl, 0);
        sl->start_index = sl->next_index = snap->index + 1;
        sl->span_n = sl->span_head = 0;
    }
    /* The log now starts at or before the snapshot's next entry and, if
     * not empty, reaches the snapshot. */
    HD_ASSERT(sl->start_index <= snap->index + 1 && cons__log_contiguous(sl));
    HD_ASSERT(sl->n_entries == 0 || sl->start_index + sl->n_entries - 1 >= snap->index);
}

int cons__load(struct raft_io *io, raft_term *term, raft_id *voted_for,
               struct raft_snapshot **snapshot, raft_index *start_index,
               struct raft_entry *entries[], size_t *n_entries)
{
    struct cons_shard_log *sl = io->impl;
    HD_ASSERT(!sl->started && sl->pending == 0); /* raft loads before it starts */
    *term = sl->term;
    *voted_for = sl->voted_for;
    *snapshot = NULL;
    int rv = cons__snapshot_load(sl, snapshot);
    if (rv != 0 && rv != HD_ENOTFOUND) {
        snprintf(io->errmsg, sizeof io->errmsg, "load snapshot of shard %u: %s",
                 sl->shard, hd_strerror(rv));
        return RAFT_CORRUPT;
    }
    if (*snapshot != NULL) {
        cons__fit_to_snapshot(sl, *snapshot);
    }
    *start_index = sl->start_index;
    *n_entries = sl->n_entries;
    *entries = NULL;
    sl->loaded_conf_last = sl->loaded_conf_prev = 0;
    for (size_t i = 0; i < sl->n_entries; i++) {
        if (sl->entries[i].type == RAFT_CHANGE) {
            sl->loaded_conf_prev = sl->loaded_conf_last;
            sl->loaded_conf_last = sl->start_index + i;
        }
    }
    if (sl->n_entries > 0) {
        /* raft frees the array with raft_free and each buf (batch NULL). */
        *entries = raft_malloc(sl->n_entries * sizeof **entries);
        if (*entries == NULL) {
            return RAFT_NOMEM;
        }
        memcpy(*entries, sl->entries, sl->n_entries * sizeof **entries);
    }
    HD_ASSERT(cons__log_contiguous(sl));
    hd_free(sl->entries);
    sl->entries = NULL;
    sl->n_entries = sl->cap_entries = 0;
    return 0;
}

/*
 * raft 0.15 takes the last configuration entry of the log it loads as
 * current and committed, which it may not be: if a new leader's log does
 * not hold it, raft truncates the entry but keeps its configuration, and
 * this node then counts quorums, and may lead, with members the shard
 * never had. The leader that appended it had the configuration before it
 * committed (one change at a time), so that one is the last committed: the
 * loaded one is marked pending over it, and a truncation of it rolls back
 * to it (raft's own rollback, which reads it from the log: so only when
 * that entry is in the loaded log too). The bootstrap entry is committed.
 */
void cons_store_mend_loaded_conf(const struct cons_store *s, unsigned shard, struct raft *r)
{
    HD_ASSERT(shard < s->n_shards);
    const struct cons_shard_log *sl = &s->shards[shard];
    if (sl->loaded_conf_prev != 0 && r->configuration_index == sl->loaded_conf_last &&
        sl->loaded_conf_last > r->commit_index) {
        r->configuration_uncommitted_index = sl->loaded_conf_last;
        r->configuration_index = sl->loaded_conf_prev;
    }
}

/* ---------------------------------------------------------- bootstrap --- */

static void cons__bootstrap_written(struct st_wal_append *w, int status)
{
    int *done = w->data;
    *done = status == 0 ? 1 : -1;
}

int cons__bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    struct cons_shard_log *sl = io->impl;
    if (sl->term != 0 || sl->n_entries > 0 || sl->next_index > 1) {
        return RAFT_CANTBOOTSTRAP;
    }
    HD_ASSERT(!sl->started && sl->span_n == 0);
    struct raft_buffer buf;
    int rv = raft_configuration_encode(conf, &buf);
    if (rv != 0) {
        return rv;
    }
    struct raft_entry e = {.term = 1, .type = RAFT_CHANGE, .buf = buf};
    uint8_t head[16 + CONS_REC_ENTRY_HEADER_SIZE];
    size_t head_len = cons_rec_encode_entries_head(head, sl->shard, 1, 1);
    cons_rec_encode_entry_head(head + head_len, &e);
    struct iovec iov[2] = {{head, head_len + CONS_REC_ENTRY_HEADER_SIZE},
                           {buf.base, buf.len}};
    int done = 0;
    struct st_wal_append req = {.data = &done};
    rv = st_wal_append(sl->store->wal, &req, iov, 2, cons__bootstrap_written);
    if (rv == 0) {
        /* Bootstrap runs once, before the node serves: waiting here on the
         * loop is how this call becomes synchronous, as raft requires. */
        while (done == 0) {
            uv_run(sl->store->loop, UV_RUN_ONCE);
        }
        rv = done == 1 ? 0 : HD_EIO;
    }
    if (rv == 0) {
        rv = cons__push_entry(sl, &e);
        sl->start_index = 1;
        sl->next_index = 2;
    }
    if (rv == 0) {
        rv = cons__span_push(sl, 1, 1, req.lsn);
    }
    raft_free(buf.base);
    if (rv == 0) {
        HD_ASSERT(sl->n_entries == 1 && sl->next_index == 2 && cons__log_contiguous(sl));
        sl->term = 1;
        sl->voted_for = 0;
        rv = cons__store_votes(sl->store);
    }
    return rv == 0 ? 0 : RAFT_IOERR;
}

/* --------------------------------------------------------------- seed --- */

int cons_store_seed_snapshot(struct cons_store *s, unsigned shard,
                             const struct raft_configuration *conf, const void *data,
                             size_t len)
{
    HD_ASSERT(shard < s->n_shards && conf != NULL && conf->n > 0);
    struct cons_shard_log *sl = &s->shards[shard];
    HD_ASSERT(!sl->started);
    if (sl->term != 0 || sl->n_entries > 0 || sl->next_index > 1 || sl->snap.generation != 0) {
        return HD_EEXIST;
    }
    struct raft_buffer buf = {(void *)(uintptr_t)data, len};
    struct raft_snapshot snap = {.index = 1, .term = 1, .configuration = *conf,
                                 .configuration_index = 1, .bufs = &buf, .n_bufs = 1};
    int rv = cons__snapshot_store(sl, &snap);
    if (rv != 0) {
        return rv;
    }
    sl->start_index = sl->next_index = 2;
    sl->term = 1;
    sl->voted_for = 0;
    return cons__store_votes(s);
}

/* ------------------------------------------------------------- forget --- */

int cons_store_forget_shard(struct cons_store *s, unsigned shard)
{
    HD_ASSERT(shard < s->n_shards);
    struct cons_shard_log *sl = &s->shards[shard];
    HD_ASSERT(!sl->started);
    uint8_t rec[32];
    size_t len = cons_rec_encode_reset(rec, sl->shard, 0, 0);
    struct iovec iov = {rec, len};
    int done = 0;
    struct st_wal_append req = {.data = &done};
    int rv = st_wal_append(s->wal, &req, &iov, 1, cons__bootstrap_written);
    while (rv == 0 && done == 0) {
        uv_run(s->loop, UV_RUN_ONCE); /* at start, before anything serves */
    }
    if (rv == 0 && done != 1) {
        rv = HD_EIO;
    }
    if (rv == 0) {
        rv = st_meta_file_remove(&sl->snap);
    }
    if (rv == 0) {
        cons__drop_from(sl, 0);
        sl->start_index = sl->next_index = 1;
        sl->span_head = sl->span_n = 0;
    }
    return rv;
}
