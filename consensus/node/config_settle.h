/* SPDX-License-Identifier: Apache-2.0 */
/* A shard leader settles its configuration: commits a pending one, promotes a spare left behind (config_settle.c). */
#ifndef CONS_CONFIG_SETTLE_H
#define CONS_CONFIG_SETTLE_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

struct cons_node;
struct cons_shard;

/* A spare is promoted once the shard has held one, with nothing pending,
 * this long; each failed promotion doubles the wait, up to the maximum. */
#define CONS_SETTLE_SPARE_MS 10000u
#define CONS_SETTLE_SPARE_MAX_MS 160000u
/* A configuration still uncommitted after this long gets a barrier. */
#define CONS_SETTLE_COMMIT_MS 1000u

/* Per shard, embedded in struct cons_shard. */
struct cons_config_settle {
    uint64_t uncommitted_since_ms; /* 0: committed, or not leader */
    bool committing;               /* barrier in flight */
    struct raft_barrier barrier;
    uint64_t spare_since_ms;       /* 0: no spare waiting */
    uint64_t spare_wait_ms;        /* 0: CONS_SETTLE_SPARE_MS */
    bool promoting;                /* change in flight */
    struct raft_change change;
};

/* Whether the shard's configuration is committed: none pending, and the
 * latest one applied (after a restart raft takes the last configuration in
 * its log as current before it knows that it committed). */
bool cons__config_committed(struct raft *r);

/* Called by the node's ticker, for every shard this node leads. */
void cons__config_settle(struct cons_node *n);

#endif
