/* SPDX-License-Identifier: Apache-2.0 */
/* --repair auto: a node that finds its own data damaged rejoins under a new id. */
#ifndef API_REPAIR_H
#define API_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data_dir.h"
#include "members.h"

struct hd_tls_ctx;

/* What the repair needs from the command line. */
struct api_repair_ctx {
    const char *data_dir;
    const char *listen;           /* HTTP: status while repairing */
    const char *peer_listen;      /* this node's peer address */
    const struct api_members *members; /* who to ask, in order (repair_peers.h):
                                          --bootstrap's list, then DATA/herald.members' */
    const struct api_identity *want;   /* the command line's node id and cluster id */
    uint64_t repairs;             /* repairs so far (the record's) */
    uint64_t disk_reserve;        /* --disk-reserve */
    struct hd_tls_ctx **tls;      /* --tls-cert's context, taken if repairing */
    struct hd_tls_ctx *peer_tls;  /* --peer-tls-*: the peers are asked over it; NULL: off */
    char **argv;                  /* to start again with */
};

/* Whether damage found now may be repaired: the cluster is known (a
 * --bootstrap list or --join id), and another member than this node is
 * known to repair from (in --bootstrap's list or DATA/herald.members). If
 * not, why into errmsg. */
bool api_repair_possible(const struct api_repair_ctx *c, char *errmsg, size_t errmsg_len);

/* The data directory holds a node that repairs made (DATA/herald.repair)
 * and the command line names it by its first id: *node_id becomes the id
 * it runs under now, *repaired true (it starts as a joined member, never
 * bootstraps), *repairs the count. Nothing else changes. */
int api_repair_adopt(const char *data_dir, uint64_t *node_id, bool *repaired,
                     uint64_t *repairs, char *errmsg, size_t errmsg_len);

/* Damage found at start (reason): writes DATA/REPAIR_NEEDED and starts the
 * program again, which then repairs. Returns only on failure (logged). */
void api_repair_mark_and_restart(const struct api_repair_ctx *c, const char *reason);

/* DATA/REPAIR_NEEDED is there (reason): retires the old id through a peer
 * (serving only status meanwhile, retrying until a quorum answers), moves
 * the damaged data aside, writes the new identity and starts the program
 * again under it. Returns only when it cannot repair: the exit status. */
int api_repair_run(const struct api_repair_ctx *c, const char *reason);

#endif
