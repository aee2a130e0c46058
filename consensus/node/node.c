/* SPDX-License-Identifier: Apache-2.0 */
/* Starting and stopping a node's consensus; status of its shards. */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "catchup.h"
#include "command.h"
#include "command_propose.h"
#include "dispatch.h"
#include "forward.h"
#include "disk_space.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "leaders.h"
#include "member_watch.h"
#include "commit_notice.h"
#include "membership.h"
#include "repair.h"
#include "node_internal.h"
#include "proposer.h"
#include "raft_io.h"
#include "read_barrier.h"
#include "shard.h"
#include "transport.h"
#include "wal.h"

static void cons__flusher(uv_check_t *h)
{
    struct cons_node *n = h->data;
    cons__read_waits_check(n);
    cons__flush(n);
    cons__commit_notices(n); /* after the proposals, which carry commits */
}

#define CONS_WAL_SEGMENTS_KEPT 4u   /* beyond this, quiet shards are snapshotted */

static void cons__compact_done(struct raft_barrier *req, int status)
{
    struct cons_shard *sh = req->data;
    (void)status;
    HD_ASSERT(req == &sh->compact && sh->compacting);
    sh->compacting = false;
    if (!sh->closed) {
        raft_set_snapshot_threshold(&sh->raft, cons__shard_threshold(sh));
    }
}

/* Makes a shard this node leads snapshot now: a barrier entry is applied,
 * and raft snapshots after it with the threshold at 1. */
static void cons__snapshot_now(struct cons_shard *sh, const char *why)
{
    if (sh->compacting || raft_state(&sh->raft) != RAFT_LEADER) {
        return;
    }
    raft_set_snapshot_threshold(&sh->raft, 1);
    sh->compact.data = sh;
    if (raft_barrier(&sh->raft, &sh->compact, cons__compact_done) == 0) {
        sh->compacting = true;
        HD_LOG_DEBUG("shard %u %s: snapshotting it", sh->id, why);
    } else {
        raft_set_snapshot_threshold(&sh->raft, cons__shard_threshold(sh));
    }
}

/* Raft snapshots a shard only after applying `threshold` entries; a shard
 * that is quiet would keep its old entries, and the WAL segments holding
 * them, for ever. And a shard that passed its share of log memory while
 * its last snapshot was still being written snapshots only at its next
 * apply, which a quiet shard never gets. Both are snapshotted now. */
static void cons__compact(struct cons_node *n)
{
    if (n->stopping) {
        return;
    }
    int shard = cons_store_pinning_shard(n->store, CONS_WAL_SEGMENTS_KEPT);
    if (shard >= 0) {
        HD_ASSERT((unsigned)shard < n->opts.n_shards);
        cons__snapshot_now(&n->shards[shard], "pins the oldest WAL segment");
    }
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        if (n->shards[i].log_over) {
            cons__snapshot_now(&n->shards[i], "is past its share of Raft log memory");
        }
    }
}

/* Housekeeping every compact_every_ms: answer forwards past their deadline,
 * follow membership in the transport, settle configurations, spread
 * leaders, compact the WAL. */
static void cons__tick(uv_timer_t *t)
{
    struct cons_node *n = t->data;
    HD_ASSERT(!n->stopping); /* the ticker is stopped first */
    cons__forwards_expire(n, false, HD_EUNKNOWN);
    cons__read_waits_expire(n, false);
    if (n->transport != NULL) {
        cons__catchups_expire(n, false);
    }
    cons__sync_peers(n);
    cons__member_watch(n);
    cons__member_tick(n);
    cons__config_settle(n);
    cons__repair_tick(n);
    cons__spread_leaders(n);
    cons__compact(n);
}

static void cons__set_defaults(struct cons_node_options *o)
{
    if (o->snapshot_threshold == 0) o->snapshot_threshold = 4096;
    if (o->snapshot_trailing == 0) o->snapshot_trailing = 1024;
    if (o->log_memory_max == 0) o->log_memory_max = 64u << 20;
    if (o->queue_max == 0) o->queue_max = 16384;
    if (o->compact_every_ms == 0) o->compact_every_ms = 250;
}

static int cons__start_shards(struct cons_node *n, bool bootstrap, char *errmsg,
                              size_t errmsg_len)
{
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct cons_shard *sh = &n->shards[i];
        HD_ASSERT(!sh->started && sh->node == NULL);
        sh->node = n;
        sh->id = i;
        int rv = cons__shard_start(sh, bootstrap, errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int cons_node_start(struct cons_node **out, const struct cons_node_options *o,
                    char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(o->node_id > 0 && o->log != NULL && o->n_shards > 0);
    struct cons_node *n = hd_calloc(1, sizeof *n);
    if (n == NULL) {
        return HD_ENOMEM;
    }
    if (cons_snapshot_flush_init(&n->snapshot_flush) != 0) {
        hd_free(n);
        return HD_ENOMEM;
    }
    n->opts = *o;
    cons__set_defaults(&n->opts);
    char wal_dir[PATH_MAX], snap_dir[PATH_MAX];
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", o->data_dir);
    snprintf(snap_dir, sizeof snap_dir, "%s/snapshots", o->data_dir);
    struct cons_store_options so = {.loop = o->loop, .wal_dir = wal_dir, .snap_dir = snap_dir,
                                    .n_shards = o->n_shards, .no_uring = o->wal_no_uring,
                                    .segment_size = o->wal_segment_size};
    int rv = cons_store_open(&n->store, &so, errmsg, errmsg_len);
    if (rv != 0) {
        cons_snapshot_flush_destroy(&n->snapshot_flush);
        hd_free(n);
        return rv;
    }
    n->stats.wal_uses_uring = cons_store_uses_uring(n->store);
    n->shards = hd_calloc(o->n_shards, sizeof *n->shards);
    if (n->shards == NULL) {
        cons_store_close(n->store, NULL, NULL);
        cons_snapshot_flush_destroy(&n->snapshot_flush);
        hd_free(n);
        return HD_ENOMEM;
    }
    bool bootstrap = !cons_store_has_state(n->store) && !o->join;
    if (!cons_store_has_state(n->store) && o->join) {
        HD_LOG_INFO("no Raft state in %s: waiting to be added to the cluster", o->data_dir);
    }
    if (bootstrap) {
        HD_LOG_INFO("no Raft state in %s: bootstrapping a %u-node cluster of %u shards%s",
                    o->data_dir, o->members != NULL ? o->n_members : 1, o->n_shards,
                    o->restore ? ", each from a snapshot of the restored state" : "");
    }
    rv = cons__catchup_recover(n, errmsg, errmsg_len);
    if (rv == 0) {
        rv = cons__peers_start(n, errmsg, errmsg_len);
    }
    if (rv != 0) {
        return rv;
    }
    /* The Raft start of every shard replays its entries: a failure here
     * leaves the node unusable, and the process exits with the message. */
    rv = cons__start_shards(n, bootstrap, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    uv_check_init(o->loop, &n->flusher);
    uv_idle_init(o->loop, &n->kick);
    uv_timer_init(o->loop, &n->commit_timer);
    uv_timer_init(o->loop, &n->ticker);
    n->ticker.data = n;
    uv_timer_start(&n->ticker, cons__tick, n->opts.compact_every_ms, n->opts.compact_every_ms);
    cons__sync_peers(n);
    cons__member_watch(n);
    n->flusher.data = n;
    uv_check_start(&n->flusher, cons__flusher);
    cons__retention_start(n);
    *out = n;
    return 0;
}

static void cons__store_closed(void *arg)
{
    struct cons_node *n = arg;
    void (*cb)(void *) = n->stop_cb;
    void *cb_arg = n->stop_arg;
    /* Everything was answered on the way down. */
    HD_ASSERT(n->stopping && n->closing == 0);
    HD_ASSERT(n->forwards == NULL && n->read_waits == NULL && n->change == NULL &&
              n->catchups.in == NULL && n->catchups.out == NULL);
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        const struct cons_shard *sh = &n->shards[i];
        HD_ASSERT(sh->closed && sh->queue_head == NULL && sh->queued == 0);
        HD_ASSERT(sh->flight_head == NULL && sh->in_flight == 0 && !sh->compacting);
        hd_free(n->shards[i].scratch);
    }
    hd_free(n->shards);
    cons_snapshot_flush_destroy(&n->snapshot_flush);
    hd_free(n);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

static void cons__transport_closed(void *arg)
{
    struct cons_node *n = arg;
    HD_ASSERT(n->stopping && n->closing == 0);
    cons_store_close(n->store, cons__store_closed, n);
}

static void cons__state_timer_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    cons_transport_close(n->transport, cons__transport_closed, n);
}

static void cons__ticker_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    if (n->transport != NULL) {
        uv_close((uv_handle_t *)&n->catchups.pump, cons__state_timer_closed);
    } else {
        cons__transport_closed(n);
    }
}

static void cons__retention_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    uv_close((uv_handle_t *)&n->ticker, cons__ticker_closed);
}

static void cons__kick_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    cons__retention_stop(n, cons__retention_closed);
}

static void cons__commit_timer_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    n->kick.data = n;
    uv_close((uv_handle_t *)&n->kick, cons__kick_closed);
}

static void cons__flusher_closed(uv_handle_t *h)
{
    struct cons_node *n = h->data;
    n->commit_timer.data = n;
    uv_close((uv_handle_t *)&n->commit_timer, cons__commit_timer_closed);
}

static void cons__raft_closed(struct raft *r)
{
    struct cons_shard *sh = r->data;
    struct cons_node *n = sh->node;
    HD_ASSERT(r == &sh->raft && sh->started && !sh->closed);
    sh->closed = true;
    HD_ASSERT(n->closing > 0);
    if (--n->closing == 0) {
        uv_close((uv_handle_t *)&n->flusher, cons__flusher_closed);
    }
}

void cons_node_stop(struct cons_node *n, void (*cb)(void *arg), void *arg)
{
    HD_ASSERT(!n->stopping);
    n->stopping = true;
    n->stop_cb = cb;
    n->stop_arg = arg;
    uv_check_stop(&n->flusher);
    uv_timer_stop(&n->ticker);
    uv_timer_stop(&n->commit_timer);
    uv_timer_stop(&n->retention.timer);
    cons__forwards_expire(n, true, HD_EUNKNOWN);
    cons__read_waits_expire(n, true);
    cons__member_stop(n);
    cons__repair_stop(n);
    if (n->transport != NULL) {
        cons__catchup_stop(n);
    }
    HD_ASSERT(n->forwards == NULL && n->change == NULL && n->repair == NULL && n->closing == 0);
    n->closing = n->opts.n_shards;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        cons__shard_fail_queue(&n->shards[i], HD_ESHUTDOWN);
        cons__shard_close(&n->shards[i], cons__raft_closed);
    }
}

unsigned cons_node_n_shards(const struct cons_node *n) { return n->opts.n_shards; }

static const char *cons__state_name(int state)
{
    switch (state) {
        case RAFT_LEADER:
            return "leader";
        case RAFT_FOLLOWER:
            return "follower";
        case RAFT_CANDIDATE:
            return "candidate";
        default:
            return "unavailable";
    }
}

void cons_node_shard_status(struct cons_node *n, unsigned shard, struct cons_shard_status *out)
{
    HD_ASSERT(shard < n->opts.n_shards);
    struct cons_shard *sh = &n->shards[shard];
    HD_ASSERT(sh->in_flight <= CONS_IN_FLIGHT_MAX && sh->queued <= n->opts.queue_max);
    raft_id leader_id = 0;
    const char *leader_address = NULL;
    raft_leader(&sh->raft, &leader_id, &leader_address);
    *out = (struct cons_shard_status){
        .state = cons__state_name(raft_state(&sh->raft)),
        .leader_id = leader_id,
        .term = sh->raft.current_term,
        .commit_index = sh->raft.commit_index,
        .applied_index = raft_last_applied(&sh->raft),
        .last_index = raft_last_index(&sh->raft),
        .queued = sh->queued,
        .in_flight = sh->in_flight,
        .n_members = sh->raft.configuration.n,
    };
    for (unsigned k = 0; k < sh->raft.configuration.n && k < CONS_SHARD_MEMBERS_MAX; k++) {
        const struct raft_server *srv = &sh->raft.configuration.servers[k];
        out->members[k].id = srv->id;
        out->members[k].role = srv->role == RAFT_VOTER     ? "voter"
                               : srv->role == RAFT_STANDBY ? "standby"
                                                           : "spare";
    }
}

void cons_node_stats(const struct cons_node *n, struct cons_node_stats *out)
{
    *out = n->stats;
    struct st_wal_stats ws;
    cons_store_wal_stats(n->store, &ws);
    out->wal_sync_us = ws.sync_us;
    out->wal_entries_per_sync = ws.items_per_sync;
    out->snapshot_flushes = atomic_load(&n->snapshot_flush.flushes);
    out->peer_tls_refused = n->transport != NULL ? cons_transport_tls_refused(n->transport) : 0;
    out->raft_log_bytes = 0;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        out->raft_log_bytes += n->shards[i].log_bytes_since + n->shards[i].log_bytes_trailing;
    }
}

/* How far a peer is behind, over the shards this node leads. */
static uint64_t cons__peer_lag(struct cons_node *n, uint64_t id)
{
    uint64_t lag = 0;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct raft *r = &n->shards[i].raft;
        if (raft_state(r) != RAFT_LEADER) continue;
        for (unsigned k = 0; k < r->configuration.n; k++) {
            if (r->configuration.servers[k].id == id) {
                raft_index match = r->leader_state.progress[k].match_index;
                raft_index last = raft_last_index(r);
                lag += last > match ? last - match : 0;
            }
        }
    }
    return lag;
}

unsigned cons_node_peers(struct cons_node *n, struct cons_peer_status *out, unsigned max)
{
    const struct raft_configuration *c = &n->shards[0].raft.configuration;
    unsigned count = 0;
    for (unsigned k = 0; k < c->n && count < max; k++) {
        if (c->servers[k].id == n->opts.node_id) continue;
        struct cons_peer_status *p = &out[count++];
        *p = (struct cons_peer_status){.id = c->servers[k].id,
                                       .address = c->servers[k].address};
        struct cons_peer_stats ps;
        if (n->transport != NULL &&
            cons_transport_peer_stats(n->transport, p->id, &ps) == 0) {
            p->connected = ps.connected;
            p->frames_sent = ps.frames_sent;
            p->frames_received = ps.frames_received;
            p->frames_dropped = ps.frames_dropped;
        }
        p->match_index_lag = cons__peer_lag(n, p->id);
    }
    HD_ASSERT(count <= max);
    return count;
}

/* ------------------------------------------------------------ appends --- */

struct st_space *cons_node_space(const struct cons_node *n)
{
    return n->opts.space;
}

int cons_node_append(struct cons_node *n, struct cons_append_req *req, cons_append_cb cb)
{
    HD_ASSERT(req != NULL && cb != NULL);
    HD_ASSERT(hd_channel_valid(req->a.channel, req->a.channel_len));
    if (n->stopping) {
        return HD_ESHUTDOWN;
    }
    /* A node short of space takes no appends, even ones it would forward:
     * it could not store them when they replicate back to it. */
    if (n->opts.space != NULL && st_space_low(n->opts.space)) {
        return HD_ENOSPC;
    }
    struct cons_shard *sh =
        &n->shards[cons_shard_of(n->opts.n_shards, req->a.channel, req->a.channel_len)];
    if (n->transport != NULL && raft_state(&sh->raft) != RAFT_LEADER) {
        raft_id leader = 0;
        const char *address = NULL;
        raft_leader(&sh->raft, &leader, &address);
        if (leader == 0 || leader == n->opts.node_id) {
            return HD_ENOTLEADER; /* an election is under way */
        }
        req->cb = cb;
        return cons__forward(n, sh, leader, req);
    }
    return cons__append_local(n, req, cb);
}

int cons_node_command(struct cons_node *n, const struct log_command *c, cons_command_cb cb,
                      void *arg)
{
    HD_ASSERT(cb != NULL && log_command_valid(c));
    HD_ASSERT(c->flags == 0 || c->kind == LOG_ENTRY_KIND_POLICY);
    if (n->stopping) {
        return HD_ESHUTDOWN;
    }
    struct cons_shard *sh = &n->shards[cons__command_shard(n, c)];
    /* Like an append: a follower forwards it to the shard's leader. */
    if (n->transport != NULL && raft_state(&sh->raft) != RAFT_LEADER) {
        raft_id leader = 0;
        const char *address = NULL;
        raft_leader(&sh->raft, &leader, &address);
        if (leader == 0 || leader == n->opts.node_id) {
            return HD_ENOTLEADER; /* an election is under way */
        }
        return cons__forward_command(n, sh, leader, c, cb, arg);
    }
    return cons__command_propose(n, c, 0, 0, cb, arg);
}
