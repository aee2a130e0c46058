/* SPDX-License-Identifier: Apache-2.0 */
/* The damaged node's side of a repair: asking the members to retire its id. */
#ifndef CONS_REPAIR_REQUEST_H
#define CONS_REPAIR_REQUEST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "node.h"

/*
 * Runs the peer transport under the damaged node's old id, at its peer
 * address, and nothing else: no shard, no Raft (frames from the members'
 * Raft groups are dropped, so the old id never votes or acknowledges
 * again). It sends REPAIR_REQ to one member at a time (consensus/node/
 * repair.c answers) and waits: a member that does not connect within
 * CONS_REPAIR_CONNECT_MS, or does not answer within CONS_REPAIR_ANSWER_MS,
 * or answers an error (no quorum, busy) is left for the next one, after a
 * backoff of 1 s doubling to 30 s; a request still queued for a member
 * left is dropped, so that only one member ever coordinates (two would
 * grant two ids). When a member answers with a new id,
 * done(arg, new_id) is called once; the old id is then removed from every
 * shard. The caller closes the request afterwards.
 */

#define CONS_REPAIR_CONNECT_MS 5000u
#define CONS_REPAIR_ANSWER_MS 150000u

struct cons_repair_request;

struct hd_tls_ctx;

struct cons_repair_request_options {
    uv_loop_t *loop;
    uint64_t old_id;              /* the id the damaged data belonged to */
    const char *cluster_id;
    const char *address;          /* this node's peer address: listened on */
    const struct cons_member *peers; /* the other members known, their ids and addresses */
    unsigned n_peers;             /* >= 1 */
    struct hd_tls_ctx *tls;       /* mutual TLS to the peers, as the node's own links; NULL: off */
};

/* What /v1/status shows while repairing. */
struct cons_repair_request_status {
    uint64_t asking;              /* the member asked now, 0 between attempts */
    unsigned attempts;            /* requests sent */
    char last_error[128];         /* why the last attempt failed, "" if none yet */
};

typedef void (*cons_repair_request_cb)(void *arg, uint64_t new_id);

int cons_repair_request_start(struct cons_repair_request **out,
                              const struct cons_repair_request_options *o,
                              cons_repair_request_cb done, void *arg, char *errmsg,
                              size_t errmsg_len);

void cons_repair_request_status(const struct cons_repair_request *r,
                                struct cons_repair_request_status *out);

/* Stops asking, closes the transport, frees r, then calls cb(arg) from the loop. */
void cons_repair_request_close(struct cons_repair_request *r, void (*cb)(void *arg), void *arg);

#endif
