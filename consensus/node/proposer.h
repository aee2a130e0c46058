/* SPDX-License-Identifier: Apache-2.0 */
/* Proposing (proposer.c): queued appends become one stamped Raft entry per shard and turn. */
#ifndef CONS_PROPOSER_H
#define CONS_PROPOSER_H

#include "shard.h"

#define CONS_BATCH_APPENDS_MAX 1024u          /* appends per entry */
#define CONS_BATCH_BYTES_MAX (4u << 20)       /* payload bytes per entry */
#define CONS_IN_FLIGHT_MAX 4u                 /* entries proposed per shard */

/* Queues an append on its shard, which this node must lead by the time it
 * is proposed (else HD_ENOTLEADER). 0: cb fires later; HD_EBUSY (queue
 * full) or HD_ESHUTDOWN: cb never fires. */
int cons__append_local(struct cons_node *n, struct cons_append_req *req, cons_append_cb cb);

/* Proposes what every changed shard has queued, up to CONS_IN_FLIGHT_MAX
 * entries per shard. Called once per loop turn, after the poll phase. */
void cons__flush(struct cons_node *n);

/* Answers every queued append of the shard with status (non-zero). */
void cons__shard_fail_queue(struct cons_shard *sh, int status);

#endif
