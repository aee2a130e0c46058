/* SPDX-License-Identifier: Apache-2.0 */
/* Who a damaged node asks for its repair, and keeping the members it saw (repair_peers.c). */
#ifndef API_REPAIR_PEERS_H
#define API_REPAIR_PEERS_H

#include <stdbool.h>

#include "known_members.h"
#include "members.h"

/* What the node last kept in DATA/herald.members (the callback's state). */
struct api_member_keeper {
    const char *data_dir;
    const char *cluster_id;       /* this node's cluster, set before the node starts */
    struct api_known_members last; /* what the file holds, if have_last */
    bool have_last;
    bool failed;                  /* the last write failed (logged once) */
};

/*
 * The members a damaged node may ask, in order: --bootstrap's list (may be
 * empty), then those DATA/herald.members names that it does not (by id).
 * The file counts only if it is whole and of cluster_id (the cluster the
 * command line names): a damaged file, or one of another cluster, is
 * logged and left out. --join adds nothing: it names the cluster, not a
 * member's address. Also primes keeper with what the file holds, so that a
 * start with the same members does not write it again.
 */
void api_repair_peers(const char *data_dir, const char *cluster_id,
                      const struct api_members *bootstrap, struct api_members *out,
                      struct api_member_keeper *keeper);

/* cons_node_options.on_members (arg: struct api_member_keeper): replaces
 * DATA/herald.members with the members the shards' configurations name
 * now, logged. Non-zero if it could not (logged; the node calls again). */
int api_repair_peers_keep(void *arg, const struct cons_member *members, unsigned n);

#endif
