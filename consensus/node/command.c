/* SPDX-License-Identifier: Apache-2.0 */
/* Proposing a command (log/command.h: trim, delete, the retention policy) on its shard's leader. */
#include "command.h"

#include <stdio.h>
#include <string.h>

#include "command_propose.h"
#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"

/*
 * A command is one Raft entry of its own, proposed straight away (it is rare:
 * an operator's call or the retention sweep, never worth batching). Every
 * replica applies it at the same index, so every replica's state drops the
 * same keys. Only the shard's leader proposes: a follower forwards the
 * command to it (forward.c), and the leader answers the follower with the
 * command's Raft index once applied, so that the follower can answer its
 * client once it applied that index too.
 */

struct cons_command {
    struct raft_apply apply;
    struct cons_node *node;
    struct cons_shard *shard;
    cons_command_cb cb;            /* a local caller, or NULL: */
    void *arg;
    uint64_t from;                 /* the follower that forwarded it */
    uint64_t id;                   /* its request id */
};

static void cons__command_cb(struct raft_apply *req, int status, void *result)
{
    struct cons_command *cmd = req->data;
    (void)result;
    HD_ASSERT(req == &cmd->apply && (cmd->cb != NULL) == (cmd->from == 0));
    if (status != 0) {
        /* Appended but not confirmed: it may still commit. */
        HD_LOG_INFO("shard %u: command not confirmed: %s", cmd->shard->id,
                    raft_strerror(status));
    }
    int rv = status == 0 ? 0 : HD_EUNKNOWN;
    if (cmd->cb != NULL) {
        cmd->cb(cmd->arg, rv);
    } else if (HD_ALWAYS(cmd->node->transport != NULL)) { /* the request came over it */
        /* If this is lost, the follower answers "unknown" at its deadline. */
        struct cons_frame resp = {.kind = CONS_FRAME_FORWARD_RESP, .id = cmd->id,
                                  .u.forward_resp = {.status = rv,
                                                     .seq = rv == 0 ? req->index : 0}};
        (void)cons_frame_send(cmd->node->transport, cmd->from, (uint16_t)cmd->shard->id, &resp);
    }
    hd_free(cmd);
}

unsigned cons__command_shard(const struct cons_node *n, const struct log_command *c)
{
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        return LOG_POLICY_SHARD;
    }
    return cons_shard_of(n->opts.n_shards, c->channel, c->channel_len);
}

/* What the log line says the command was. */
static void cons__command_describe(const struct log_command *c, char *out, size_t len)
{
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        if ((c->flags & LOG_POLICY_CLEAR) != 0) {
            snprintf(out, len, "clear of the cluster's retention policy");
        } else {
            snprintf(out, len, "retention policy \"%.*s\"", (int)c->text_len, c->text);
        }
        return;
    }
    snprintf(out, len, "%s of channel %.*s (before_seq %llu%s)",
             c->kind == LOG_ENTRY_KIND_TRIM ? "trim" : "delete", (int)c->channel_len,
             c->channel, (unsigned long long)c->before_seq,
             (c->flags & LOG_COMMAND_MAY_EMPTY) != 0 ? ", may empty" : "");
}

int cons__command_propose(struct cons_node *n, const struct log_command *c, uint64_t from,
                          uint64_t id, cons_command_cb cb, void *arg)
{
    HD_ASSERT((cb != NULL) == (from == 0));
    HD_ASSERT(log_command_valid(c));
    if (n->stopping) {
        return HD_ESHUTDOWN;
    }
    struct cons_shard *sh = &n->shards[cons__command_shard(n, c)];
    if (raft_state(&sh->raft) != RAFT_LEADER) {
        return HD_ENOTLEADER; /* a forwarded command is never forwarded again */
    }
    struct cons_command *cmd = hd_calloc(1, sizeof *cmd);
    struct raft_buffer buf = {raft_malloc(log_command_size(c)), 0};
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
    *cmd = (struct cons_command){.node = n, .shard = sh, .cb = cb, .arg = arg, .from = from,
                                 .id = id};
    cmd->apply.data = cmd;
    int rv = raft_apply(&sh->raft, &cmd->apply, &buf, 1, cons__command_cb);
    if (rv != 0) {
        raft_free(buf.base);
        hd_free(cmd);
        HD_LOG_WARN("shard %u: propose command: %s", sh->id, raft_strerror(rv));
        return rv == RAFT_NOTLEADER ? HD_ENOTLEADER : HD_EUNAVAIL;
    }
    char what[LOG_POLICY_TEXT_MAX + 64];
    cons__command_describe(c, what, sizeof what);
    HD_LOG_INFO("shard %u: proposed %s%s", sh->id, what, from != 0 ? " for a follower" : "");
    return 0;
}

void cons__recv_command(struct cons_node *n, uint64_t from, const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_COMMAND_REQ && from != 0);
    struct log_command c = f->u.command_req; /* checked by the codec */
    if (c.kind != LOG_ENTRY_KIND_POLICY) {
        c.flags = 0; /* forwarded trims are an operator's: the last message stays */
    }
    int rv = cons__command_propose(n, &c, from, f->id, NULL, NULL);
    if (rv != 0 && n->transport != NULL) {
        struct cons_frame resp = {.kind = CONS_FRAME_FORWARD_RESP, .id = f->id,
                                  .u.forward_resp.status = rv};
        (void)cons_frame_send(n->transport, from, 0, &resp);
    }
}
