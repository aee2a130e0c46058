/* SPDX-License-Identifier: Apache-2.0 */
/* Catch-up (catchup.c): a follower behind the leader's compacted log copies the shard's state. */
#ifndef CONS_CATCHUP_H
#define CONS_CATCHUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cons_node;
struct cons_catchup;
struct cons_state_out;

/* The copies a node receives and sends. */
struct cons_catchups {
    struct cons_catchup *in;       /* copies this node receives */
    struct cons_state_out *out;    /* copies this node sends */
    unsigned out_n;
    uv_timer_t pump;               /* paces `out` by the peers' queues */
};

/* Initialises the pump timer and installs the raft_io store's catch-up
 * hook. Needs the peer transport. */
void cons__catchup_start(struct cons_node *n);

/* Handles a STATE_REQ (as leader: starts sending a copy) or a STATE_CHUNK
 * (as follower: writes it into the shard's state). */
struct cons_frame;
void cons__recv_state(struct cons_node *n, uint64_t from, uint16_t shard,
                      const struct cons_frame *f);

/* Fails the received copies that stalled (all of them if `all`); raft
 * retries their snapshots later. */
void cons__catchups_expire(struct cons_node *n, bool all);

/* At start: a copy cut short by a crash left a shard without state; drops
 * that state and the shard's log so the leader sends a snapshot again. */
int cons__catchup_recover(struct cons_node *n, char *errmsg, size_t errmsg_len);

/* Stops every copy, both ways (the pump timer stays open for the close). */
void cons__catchup_stop(struct cons_node *n);

#endif
