/* SPDX-License-Identifier: Apache-2.0 */
/* A shard leader settles its configuration: commits a pending one, promotes a spare left behind. */
#include "config_settle.h"

#include "hd_assert.h"
#include "hd_util.h"
#include "node_internal.h"

/*
 * Two states of a shard's configuration outlive the change that made them
 * unless its leader finishes them.
 *
 * A configuration that is not committed. Raft allows no change until it
 * commits, and a leader commits an entry of an earlier term only with one
 * of its own; raft 0.15 appends none when elected, and after a restart it
 * takes the last configuration in its log as current without knowing that
 * it committed. On an idle shard that lasts until the next append, so every
 * membership change there would be refused "busy" until its deadline. The
 * leader commits it with a barrier entry.
 *
 * A spare. herald's configurations hold one only for a moment: an add makes
 * the node a spare (raft_add) and, once that committed, asks raft to make it
 * a voter (raft_assign), which raft does when the node caught up. A change
 * that stopped in between (its coordinator died or gave up, leadership moved
 * and nobody asked again) leaves it a spare, and a spare gets no entries and
 * does not vote: a repaired node stays behind for good. A configuration can
 * also come to hold a spare that a lost configuration entry had promoted
 * (README, Known gaps). Every spare comes from an add (a remove takes a node
 * out whatever its role), so the leader finishes the add: once the shard has
 * held a spare for CONS_SETTLE_SPARE_MS with no change pending, it asks raft
 * to promote it. A spare that does not catch up (its node is down) makes
 * raft abort the promotion (max_catch_up_round_duration); each failure
 * doubles the wait, so a dead leftover costs one attempt every few minutes,
 * and a remove of it waits at most for one attempt to abort.
 */

bool cons__config_committed(struct raft *r)
{
    return r->configuration_uncommitted_index == 0 &&
           r->configuration_index <= raft_last_applied(r);
}

/* Raft would refuse a membership change now. */
static bool cons__change_pending(struct raft *r)
{
    return r->transfer != NULL || !cons__config_committed(r) ||
           r->leader_state.change != NULL || r->leader_state.promotee_id != 0;
}

static const struct raft_server *cons__spare(const struct raft *r)
{
    for (unsigned k = 0; k < r->configuration.n; k++) {
        if (r->configuration.servers[k].role == RAFT_SPARE) return &r->configuration.servers[k];
    }
    return NULL;
}

static void cons__settle_committed(struct raft_barrier *req, int status)
{
    struct cons_shard *sh = req->data;
    HD_ASSERT(sh->settle.committing);
    sh->settle.committing = false;
    if (status == 0 && !sh->node->stopping && cons__config_committed(&sh->raft)) {
        HD_LOG_INFO("membership: shard %u: pending configuration committed", sh->id);
    }
}

/* How long a spare waits before the next promotion: doubled by each failure. */
static uint64_t cons__spare_wait(const struct cons_config_settle *s)
{
    return s->spare_wait_ms != 0 ? s->spare_wait_ms : CONS_SETTLE_SPARE_MS;
}

static void cons__settle_promoted(struct raft_change *req, int status)
{
    struct cons_shard *sh = req->data;
    struct cons_config_settle *s = &sh->settle;
    /* Not asserted in flight: raft 0.15 keeps the request when it fails to
     * append the change, and may call back for it later. */
    s->promoting = false;
    s->spare_since_ms = 0;
    if (sh->node->stopping) {
        return;
    }
    if (status == 0) {
        s->spare_wait_ms = 0;
        HD_LOG_INFO("membership: shard %u: the spare left behind is a voter", sh->id);
        return;
    }
    uint64_t wait = cons__spare_wait(s);
    s->spare_wait_ms = wait * 2 < CONS_SETTLE_SPARE_MAX_MS ? wait * 2 : CONS_SETTLE_SPARE_MAX_MS;
    HD_LOG_INFO("membership: shard %u: promoting the spare failed: %s (next try in %llu s)",
                sh->id, raft_strerror(status), (unsigned long long)(s->spare_wait_ms / 1000));
}

static void cons__settle_commit(struct cons_shard *sh, uint64_t now)
{
    struct cons_config_settle *s = &sh->settle;
    if (cons__config_committed(&sh->raft)) {
        s->uncommitted_since_ms = 0;
        return;
    }
    if (s->uncommitted_since_ms == 0) {
        s->uncommitted_since_ms = now;
        return;
    }
    if (s->committing || now - s->uncommitted_since_ms < CONS_SETTLE_COMMIT_MS) {
        return;
    }
    s->barrier.data = sh;
    if (raft_barrier(&sh->raft, &s->barrier, cons__settle_committed) == 0) {
        s->committing = true;
        s->uncommitted_since_ms = now;
    }
}

static void cons__settle_spare(struct cons_shard *sh, uint64_t now)
{
    struct cons_config_settle *s = &sh->settle;
    const struct raft_server *spare = cons__spare(&sh->raft);
    if (spare == NULL) {
        s->spare_since_ms = 0;
        s->spare_wait_ms = 0;
        return;
    }
    if (s->promoting || cons__change_pending(&sh->raft)) {
        s->spare_since_ms = 0; /* a change under way may be the add itself */
        return;
    }
    if (s->spare_since_ms == 0) {
        s->spare_since_ms = now;
        return;
    }
    if (now - s->spare_since_ms < cons__spare_wait(s)) {
        return;
    }
    raft_id id = spare->id;
    HD_LOG_INFO("membership: shard %u: node %llu was left a spare by an unfinished add; "
                "promoting it to voter", sh->id, (unsigned long long)id);
    s->change.data = sh;
    int rv = raft_assign(&sh->raft, &s->change, id, RAFT_VOTER, cons__settle_promoted);
    if (rv == 0) {
        s->promoting = true;
    } else {
        s->spare_since_ms = now;
        HD_LOG_INFO("membership: shard %u: promoting node %llu not possible now: %s", sh->id,
                    (unsigned long long)id, raft_strerror(rv));
    }
}

void cons__config_settle(struct cons_node *n)
{
    uint64_t now = uv_now(n->opts.loop);
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct cons_shard *sh = &n->shards[i];
        if (!sh->started || sh->closed || raft_state(&sh->raft) != RAFT_LEADER) {
            sh->settle.uncommitted_since_ms = 0;
            sh->settle.spare_since_ms = 0;
            continue;
        }
        cons__settle_commit(sh, now);
        cons__settle_spare(sh, now);
    }
}
