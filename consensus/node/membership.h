/* SPDX-License-Identifier: Apache-2.0 */
/* Membership (membership.c): adding and removing a node in every shard, one shard at a time. */
#ifndef CONS_MEMBERSHIP_H
#define CONS_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

struct cons_node;
struct cons_member_change;

/* Handles a MEMBER_REQ (as a shard's leader: makes the change) or a
 * MEMBER_RESP (as coordinator: moves on to the next shard). */
struct cons_frame;
void cons__recv_member(struct cons_node *n, uint64_t from, uint16_t shard,
                       const struct cons_frame *f);

/* Called by the node's ticker: retries, resends to a new leader, deadlines. */
void cons__member_tick(struct cons_node *n);

/* Ends the change this node coordinates, if any, with HD_ESHUTDOWN. */
void cons__member_stop(struct cons_node *n);

#endif
