/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding (forward.c): a follower's append goes to its shard's leader over the peer link. */
#ifndef CONS_FORWARD_H
#define CONS_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shard.h"

/* A follower's append waiting for its leader's answer (node->forwards). */
struct cons_forward;

/* Sends req to `leader`, the shard's leader; req->cb fires with its answer,
 * or HD_EUNKNOWN when none can come (timeout, new leader, link down).
 * 0, or HD_ENOMEM / HD_EUNAVAIL: nothing was sent and cb never fires. */
int cons__forward(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                  struct cons_append_req *req);

/* The same for a trim or delete (flags 0): cb(arg, 0) fires once the
 * leader applied it and this node applied it too; cb(arg, HD_E*) with the
 * leader's refusal (HD_ENOTLEADER: nothing was proposed) or HD_EUNKNOWN
 * when no answer can come. 0, or HD_ENOMEM / HD_EUNAVAIL: nothing was sent
 * and cb never fires. */
struct log_command;
int cons__forward_command(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                          const struct log_command *c, cons_command_cb cb, void *arg);

/* Answers (status) every forward whose deadline passed or whose answer can
 * no longer come; every forward if `all`. */
void cons__forwards_expire(struct cons_node *n, bool all, int status);

/* Handles a FORWARD_REQ (this node leads: append it, answer later) or a
 * FORWARD_RESP (answers a waiting forward). Malformed frames are dropped. */
struct cons_frame;
void cons__recv_forward(struct cons_node *n, uint64_t from, const struct cons_frame *f);

#endif
