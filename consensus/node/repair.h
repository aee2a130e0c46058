/* SPDX-License-Identifier: Apache-2.0 */
/* Replacing a damaged member under a new id, on a healthy node (repair.c). */
#ifndef CONS_REPAIR_H
#define CONS_REPAIR_H

#include <stdint.h>

struct cons_node;
struct cons_frame;
struct cons_repair;

/* Handles a REPAIR_REQ from a damaged node (peer/frames.h). */
void cons__recv_repair(struct cons_node *n, uint64_t from, const struct cons_frame *f);

/* Called by the node's ticker: retries the addition of the new id. */
void cons__repair_tick(struct cons_node *n);

/* Forgets the repair coordinated here, if any (the node is stopping). */
void cons__repair_stop(struct cons_node *n);

#endif
