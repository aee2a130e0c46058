/* SPDX-License-Identifier: Apache-2.0 */
/* Dispatch (dispatch.c): the peer transport's traffic to and from the node's concepts. */
#ifndef CONS_DISPATCH_H
#define CONS_DISPATCH_H

#include <stddef.h>

struct cons_node;

/* Starts the peer transport (when the node has --peer-listen) and plugs it
 * into the raft_io store's sends and the dispatcher of received frames.
 * 0 (also without peers) or HD_E* with errmsg. */
int cons__peers_start(struct cons_node *n, char *errmsg, size_t errmsg_len);

#endif
