/* SPDX-License-Identifier: Apache-2.0 */
/* Peers and leaders: the transport's peer list, and leadership spread over the members. */
#include "leaders.h"

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"
#include "transport.h"


/* Keeps the transport's peers equal to the voters and standbys of every
 * shard's configuration (every shard has the same members in steady state;
 * during a membership change the union is what must stay reachable). */
void cons__sync_peers(struct cons_node *n)
{
    if (n->transport == NULL) {
        return;
    }
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        const struct raft_configuration *c = &n->shards[i].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id != n->opts.node_id) {
                (void)cons_transport_set_peer(n->transport, c->servers[k].id,
                                              c->servers[k].address);
            }
        }
    }
}

static void cons__transfer_done(struct raft_transfer *req)
{
    struct cons_node *n = req->data;
    HD_ASSERT(req == &n->leaders.transfer && n->leaders.transferring);
    n->leaders.transferring = false;
}

/* Leadership spread: a node that leads more than its share of shards hands
 * one to the member leading the fewest, one transfer at a time. */
void cons__spread_leaders(struct cons_node *n)
{
    if (n->transport == NULL || n->leaders.transferring || n->stopping) {
        return;
    }
    const struct raft_configuration *c = &n->shards[0].raft.configuration;
    unsigned voters = 0;
    uint64_t ids[64];
    unsigned leads[64] = {0};
    for (unsigned k = 0; k < c->n && voters < 64; k++) {
        if (c->servers[k].role == RAFT_VOTER) ids[voters++] = c->servers[k].id;
    }
    if (voters < 2) {
        return;
    }
    int mine = -1;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        raft_id leader = 0;
        const char *addr = NULL;
        raft_leader(&n->shards[i].raft, &leader, &addr);
        for (unsigned k = 0; k < voters; k++) {
            if (ids[k] == leader) leads[k]++;
            if (ids[k] == leader && leader == n->opts.node_id) mine = (int)i;
        }
    }
    unsigned share = (n->opts.n_shards + voters - 1) / voters, self = 0, least = 0;
    for (unsigned k = 0; k < voters; k++) {
        if (ids[k] == n->opts.node_id) self = k;
        if (leads[k] < leads[least]) least = k;
    }
    if (mine < 0 || leads[self] <= share || leads[least] + 1 >= leads[self]) {
        return;
    }
    /* This node leads shard `mine`, so it is a voter, and the least loaded
     * member leads fewer than it: someone else. */
    HD_ASSERT(ids[self] == n->opts.node_id && (unsigned)mine < n->opts.n_shards);
    HD_ASSERT(least != self && ids[least] != n->opts.node_id);
    struct cons_peer_stats ps;
    if (cons_transport_peer_stats(n->transport, ids[least], &ps) != 0 || !ps.connected) {
        return;
    }
    n->leaders.transfer.data = n;
    if (raft_transfer(&n->shards[mine].raft, &n->leaders.transfer, ids[least], cons__transfer_done) == 0) {
        n->leaders.transferring = true;
        HD_LOG_INFO("shard %d: handing leadership to node %llu (it leads %u, this node %u)",
                    mine, (unsigned long long)ids[least], leads[least], leads[self]);
    }
}

bool cons__hand_over(struct cons_node *n, struct cons_shard *sh, uint64_t except)
{
    HD_ASSERT(sh >= n->shards && sh < n->shards + n->opts.n_shards);
    HD_ASSERT(raft_state(&sh->raft) == RAFT_LEADER); /* only a leader hands over */
    const struct raft_configuration *c = &sh->raft.configuration;
    for (unsigned k = 0; k < c->n && !n->leaders.transferring; k++) {
        const struct raft_server *o = &c->servers[k];
        if (o->id != except && o->role == RAFT_VOTER) {
            n->leaders.transfer.data = n;
            n->leaders.transferring =
                raft_transfer(&sh->raft, &n->leaders.transfer, o->id, cons__transfer_done) == 0;
            return n->leaders.transferring;
        }
    }
    return false;
}
