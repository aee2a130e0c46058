/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshot put and get: installing a leader's snapshot, compacting after our own. */
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "raft_io.h"
#include "raft_io_internal.h"
#include "wal.h"
#include "wal_record.h"

/* --------------------------------------------------- snapshot put / get --- */

struct cons_snap_put {
    struct cons_shard_log *sl;
    struct raft_io_snapshot_put *req;
    int status;
    const struct raft_snapshot *snapshot; /* raft's, alive until req->cb */
    bool install;                         /* a leader's, replacing the log */
};

/* raft 0.15 restores an installed snapshot's configuration but keeps the
 * index of a configuration it had received, uncommitted, at or below the
 * snapshot. Nothing at or below the snapshot is applied again, so the
 * index would never clear, and raft would refuse every membership change
 * of the shard once this node leads it. An index at or below the applied
 * one is committed: the configuration is the snapshot's, committed. */
static void cons__mend_restored(struct raft *r)
{
    if (r->configuration_uncommitted_index != 0 &&
        r->configuration_uncommitted_index <= raft_last_applied(r)) {
        r->configuration_uncommitted_index = 0;
    }
}

static void cons__snapshot_put_done(void *arg)
{
    struct cons_snap_put *p = arg;
    struct cons_shard_log *sl = p->sl;
    HD_ASSERT(sl->pending > 0 && p->req->cb != NULL); /* the put holds one */
    HD_ASSERT(p->status >= 0); /* a RAFT_* code by now */
    p->req->cb(p->req, p->status);
    if (p->install && p->status == 0) {
        cons__mend_restored(sl->io.data); /* raft_init made io->data the raft */
    }
    hd_free(p);
    cons__pending_done(sl);
}

static void cons__reset_written(struct cons_append *a, int status)
{
    struct cons_snap_put *p = a->done_arg;
    HD_ASSERT(a->sl == p->sl && a->req == NULL); /* the RESET of this put */
    p->status = cons__raft_err(status);
    /* The RESET record's own pending count is dropped by cons__append_cb. */
    p->sl->pending++;
    cons__snapshot_put_done(p);
}

/* Installs a snapshot received from the leader: its manifest is written,
 * then a RESET record replaces the shard's log. Any failure is reported to
 * raft through the callback (it retries the snapshot later). */
static void cons__install_snapshot(struct cons_snap_put *p)
{
    struct cons_shard_log *sl = p->sl;
    const struct raft_snapshot *snapshot = p->snapshot;
    HD_ASSERT(p->status == 0 && p->req->cb != NULL); /* not answered yet */
    int rv = cons__snapshot_store(sl, snapshot);
    if (rv == 0) {
        uint8_t rec[32];
        size_t len = cons_rec_encode_reset(rec, sl->shard, snapshot->index, snapshot->term);
        rv = cons__append_small(sl, rec, len, cons__reset_written, p);
    }
    if (rv != 0) {
        p->status = cons__raft_err(rv);
        p->sl->pending++; /* dropped again by cons__snapshot_put_done */
        cons__snapshot_put_done(p);
        return;
    }
    sl->span_head = sl->span_n = 0;
    sl->next_index = snapshot->index + 1;
    cons__release(sl->store);
    HD_ASSERT(sl->pending > 0); /* the RESET record's, until it is written */
}

/* The state of the snapshot is here (or the copy failed). */
static void cons__caught_up(void *ctx, int status)
{
    struct cons_snap_put *p = ctx;
    HD_ASSERT(p->status == 0 && p->snapshot != NULL);
    cons__pending_done(p->sl); /* the catch-up's own count */
    if (status != 0) {
        HD_LOG_WARN("shard %u: state for snapshot %llu not received: %s; raft will retry",
                    p->sl->shard, (unsigned long long)p->snapshot->index, hd_strerror(status));
        p->status = RAFT_IOERR;
        p->sl->pending++;
        cons__snapshot_put_done(p);
        return;
    }
    cons__install_snapshot(p);
}

int cons__snapshot_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    struct cons_store *s = sl->store;
    HD_ASSERT(sl->started && !sl->closing);
    struct cons_snap_put *p = hd_calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    *p = (struct cons_snap_put){sl, req, 0, snapshot, trailing == 0};
    if (trailing == 0) {
        /* The whole log is replaced by a snapshot from the leader. Its
         * manifest names applied state this node may not have: the node
         * fetches that first (raft keeps `snapshot` alive until cb). */
        sl->pending++;
        if (s->catch_up != NULL) {
            int rv = s->catch_up(s->catch_up_arg, sl->shard, snapshot, cons__caught_up, p);
            if (rv != 0) {
                sl->pending--;
                hd_free(p);
                return cons__raft_err(rv);
            }
        } else {
            cons__caught_up(p, 0);
        }
        return 0;
    }
    int rv = cons__snapshot_store(sl, snapshot);
    if (rv != 0) {
        hd_free(p);
        return cons__raft_err(rv);
    }
    /* The WAL keeps nothing at or below the snapshot, trailing or not: raft
     * keeps the trailing entries in memory for followers, and after a
     * restart a follower that needs older ones is sent the snapshot. */
    cons__span_compact(sl, snapshot->index);
    cons__release(sl->store);
    rv = cons__defer(sl->store, cons__snapshot_put_done, p);
    if (rv != 0) {
        hd_free(p);
        return rv;
    }
    sl->pending++;
    return 0;
}

void cons_store_set_catch_up(struct cons_store *s, cons_catch_up_fn fn, void *arg)
{
    HD_ASSERT(s->catch_up == NULL && fn != NULL); /* plugged in once, at start */
    s->catch_up = fn;
    s->catch_up_arg = arg;
}

struct cons_snap_get {
    struct cons_shard_log *sl;
    struct raft_io_snapshot_get *req;
    struct raft_snapshot *snapshot;
    int status;
};

static void cons__snapshot_get_done(void *arg)
{
    struct cons_snap_get *g = arg;
    struct cons_shard_log *sl = g->sl;
    HD_ASSERT((g->status == 0) == (g->snapshot != NULL)); /* a snapshot, or why not */
    g->req->cb(g->req, g->snapshot, g->status);
    hd_free(g);
    cons__pending_done(sl);
}

int cons__snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(sl->started && !sl->closing);
    struct cons_snap_get *g = hd_calloc(1, sizeof *g);
    if (g == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    g->req = req;
    g->sl = sl;
    int rv = cons__snapshot_load(sl, &g->snapshot);
    g->status = rv == 0 ? 0 : cons__raft_err(rv);
    rv = cons__defer(sl->store, cons__snapshot_get_done, g);
    if (rv != 0) {
        hd_free(g);
        return rv;
    }
    sl->pending++;
    return 0;
}
