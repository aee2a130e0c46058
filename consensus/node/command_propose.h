/* SPDX-License-Identifier: Apache-2.0 */
/* Commands (trim, delete, retention policy) on the shard leader (command.c), here or forwarded. */
#ifndef CONS_COMMAND_PROPOSE_H
#define CONS_COMMAND_PROPOSE_H

#include <stdint.h>

#include "node.h"

struct cons_frame;

/* The shard a command goes to: its channel's, or LOG_POLICY_SHARD for the
 * cluster's retention policy. */
unsigned cons__command_shard(const struct cons_node *n, const struct log_command *c);

/* Proposes c (kind, channel, before_seq, flags, or a policy's text; the
 * stamp and proposal fields are filled here) on its shard, which this node
 * must lead (else HD_ENOTLEADER, nothing proposed). For a local caller
 * (from == 0) cb(arg, 0) fires once it is applied here, or cb(arg, HD_EUNKNOWN) if leadership
 * was lost first (it may still apply). For a follower's COMMAND_REQ (from,
 * id; cb NULL) the answer is a FORWARD_RESP carrying the entry's Raft index.
 * Non-zero return: nothing was proposed and nothing fires. */
int cons__command_propose(struct cons_node *n, const struct log_command *c, uint64_t from,
                          uint64_t id, cons_command_cb cb, void *arg);

/* A follower's COMMAND_REQ: proposes it here or answers why not. */
void cons__recv_command(struct cons_node *n, uint64_t from, const struct cons_frame *f);

#endif
