/* SPDX-License-Identifier: Apache-2.0 */
/* Leader reads (read_barrier.c): waiting until this node has applied what the leader had. */
#ifndef CONS_READ_BARRIER_H
#define CONS_READ_BARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node.h"

struct cons_node;
struct cons_read_wait;

/* Handles a READ_REQ (as leader: runs a barrier, answers its index) or a
 * READ_RESP (as follower: the index to wait for). */
struct cons_frame;
void cons__recv_read(struct cons_node *n, uint64_t from, uint16_t shard,
                     const struct cons_frame *f);

/* Answers the waits that this node's applied index now satisfies. Called
 * every turn while any wait is pending: barrier and configuration entries
 * advance the applied index without an FSM apply. */
void cons__read_waits_check(struct cons_node *n);

/* Calls cb(arg, 0) once this node applied the shard's entry `index` (at
 * once if it has), or cb(arg, HD_EUNKNOWN) if that takes longer than a read
 * barrier may. For a command forwarded to the leader and applied there.
 * 0, or HD_ENOMEM: cb never fires. */
int cons__read_wait_index(struct cons_node *n, unsigned shard, uint64_t index, cons_read_cb cb,
                          void *arg);

/* Answers HD_EUNAVAIL to remote waits past their deadline, or to all. */
void cons__read_waits_expire(struct cons_node *n, bool all);

#endif
