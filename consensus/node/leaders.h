/* SPDX-License-Identifier: Apache-2.0 */
/* Peers and leaders (leaders.c): who the transport connects to, and spreading leadership. */
#ifndef CONS_LEADERS_H
#define CONS_LEADERS_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "shard.h"

/* At most one leadership hand-over in flight per node. */
struct cons_leaders {
    struct raft_transfer transfer;
    bool transferring;
};

/* Makes the transport's peers the union of every shard's configuration. */
void cons__sync_peers(struct cons_node *n);

/* Hands one shard to the member leading the fewest when this node leads
 * more than its share (one transfer at a time). Called from the ticker. */
void cons__spread_leaders(struct cons_node *n);

/* Hands the shard's leadership to another voter than `except`, unless a
 * transfer is in flight. True if one was started. */
bool cons__hand_over(struct cons_node *n, struct cons_shard *sh, uint64_t except);

#endif
