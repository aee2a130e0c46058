/* SPDX-License-Identifier: Apache-2.0 */
/* A leader tells its followers of a new commit index at once (commit_notice.h). */
#include "commit_notice.h"

#include "node_internal.h"
#include "raft_io.h"
#include "shard.h"

void cons__commit_moved(struct cons_shard *sh)
{
    /* A one-node cluster has nobody to tell. */
    if (sh->node->transport != NULL && raft_state(&sh->raft) == RAFT_LEADER) {
        sh->commit_unsent = true;
        sh->node->commits_unsent = true;
    }
}

void cons__commit_carried(struct cons_shard *sh) { sh->commit_unsent = false; }

void cons__commit_stored(struct cons_shard *sh, uint64_t from, uint64_t last_index)
{
    struct cons_commit_heard *slot = &sh->heard[0];
    for (unsigned i = 0; i < CONS_COMMIT_HEARD_MAX; i++) {
        if (sh->heard[i].id == from) {
            slot = &sh->heard[i];
            break;
        }
        if (sh->heard[i].id == 0 || sh->heard[i].index < slot->index) {
            slot = &sh->heard[i]; /* a free slot, else the least recent index */
        }
    }
    bool stored_more = slot->id != from || last_index > slot->index;
    *slot = (struct cons_commit_heard){from, last_index};
    /* Heartbeats' answers repeat the index: only a follower that stored
     * more, all of it committed already, has a commit to hear of. */
    if (stored_more && last_index <= sh->raft.commit_index) {
        cons__commit_moved(sh);
    }
}

static void cons__commit_notify(uv_timer_t *t)
{
    struct cons_node *n = t->data;
    n->commits_unsent = false;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct cons_shard *sh = &n->shards[i];
        if (!sh->commit_unsent) {
            continue;
        }
        sh->commit_unsent = false;
        if (!sh->started || sh->closed || raft_state(&sh->raft) != RAFT_LEADER) {
            continue;
        }
        raft_set_heartbeat_timeout(&sh->raft, 0);
        cons_store_tick_now(n->store, sh->id);
        raft_set_heartbeat_timeout(&sh->raft, CONS_HEARTBEAT_MS);
        n->stats.commit_notices++;
    }
}

void cons__commit_notices(struct cons_node *n)
{
    if (n->commits_unsent && !n->stopping && !uv_is_active((uv_handle_t *)&n->commit_timer)) {
        n->commit_timer.data = n;
        uv_timer_start(&n->commit_timer, cons__commit_notify, CONS_COMMIT_NOTICE_MS, 0);
    }
}
