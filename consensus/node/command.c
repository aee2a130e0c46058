/* SPDX-License-Identifier: Apache-2.0 */
/* Proposing a trim or delete (log/command.h) on the channel's shard leader. */
#include <string.h>

#include "command.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"

/*
 * A command is one Raft entry of its own, proposed straight away (it is rare:
 * an operator's call or the retention sweep, never worth batching). Every
 * replica applies it at the same index, so every replica's state drops the
 * same keys. Only the shard's leader proposes; a follower answers
 * HD_ENOTLEADER and the caller asks the leader (cons_node_shard_status).
 */

struct cons_command {
    struct raft_apply apply;
    struct cons_shard *shard;
    cons_command_cb cb;
    void *arg;
};

static void cons__command_cb(struct raft_apply *req, int status, void *result)
{
    struct cons_command *cmd = req->data;
    (void)result;
    HD_ASSERT(req == &cmd->apply);
    if (status != 0) {
        /* Appended but not confirmed: it may still commit. */
        HD_LOG_INFO("shard %u: command not confirmed: %s", cmd->shard->id,
                    raft_strerror(status));
    }
    cmd->cb(cmd->arg, status == 0 ? 0 : HD_EUNKNOWN);
    hd_free(cmd);
}

int cons_node_command(struct cons_node *n, const struct log_command *c, cons_command_cb cb,
                      void *arg)
{
    HD_ASSERT(cb != NULL);
    HD_ASSERT(hd_channel_valid(c->channel, c->channel_len));
    if (n->stopping) {
        return HD_ESHUTDOWN;
    }
    struct cons_shard *sh =
        &n->shards[cons_shard_of(n->opts.n_shards, c->channel, c->channel_len)];
    if (raft_state(&sh->raft) != RAFT_LEADER) {
        return HD_ENOTLEADER;
    }
    struct cons_command *cmd = hd_calloc(1, sizeof *cmd);
    struct raft_buffer buf = {raft_malloc(log_command_size(c->channel_len)), 0};
    if (cmd == NULL || buf.base == NULL) {
        hd_free(cmd);
        raft_free(buf.base);
        return HD_ENOMEM;
    }
    struct log_command stamped = *c;
    stamped.stamp_us = hd_now_us();
    stamped.proposer = n->opts.node_id;
    stamped.proposal = ++n->next_proposal;
    buf.len = log_command_encode(buf.base, &stamped);
    *cmd = (struct cons_command){.shard = sh, .cb = cb, .arg = arg};
    cmd->apply.data = cmd;
    int rv = raft_apply(&sh->raft, &cmd->apply, &buf, 1, cons__command_cb);
    if (rv != 0) {
        raft_free(buf.base);
        hd_free(cmd);
        HD_LOG_WARN("shard %u: propose command: %s", sh->id, raft_strerror(rv));
        return rv == RAFT_NOTLEADER ? HD_ENOTLEADER : HD_EUNAVAIL;
    }
    HD_LOG_INFO("shard %u: proposed %s of channel %.*s (before_seq %llu)", sh->id,
                c->kind == LOG_ENTRY_KIND_TRIM ? "trim" : "delete", (int)c->channel_len,
                c->channel, (unsigned long long)c->before_seq);
    return 0;
}
