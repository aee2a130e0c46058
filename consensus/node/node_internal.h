/* SPDX-License-Identifier: Apache-2.0 */
/* The node's private state: its shards and the state of each concept. */
#ifndef CONS_NODE_INTERNAL_H
#define CONS_NODE_INTERNAL_H

#include <raft.h>

#include "catchup.h"
#include "forward.h"
#include "leaders.h"
#include "member_watch.h"
#include "node.h"
#include "retention_sweep.h"
#include "shard.h"
#include "snapshot_flush.h"

/*
 * The files of consensus/node/ and who calls whom (no circles):
 *
 *   node.c          lifecycle, the ticker, the public API; calls all below
 *   dispatch.c      peer frames in and raft messages out -> forward, catchup,
 *                   membership, read_barrier, command, commit_notice
 *   forward.c       forwarding, both sides                -> proposer, read_barrier
 *   command.c       trims, deletes and the retention policy on the leader
 *   retention_sweep.c  the leader's retention trims     -> command
 *   membership.c    add/remove, shard by shard            -> leaders, config_settle
 *   config_settle.c a leader commits a pending configuration, promotes a spare
 *   repair.c        replacing a damaged member under a new id -> membership (node.h API)
 *   catchup.c       copying a shard's state
 *   read_barrier.c  leader reads
 *   leaders.c       the transport's peers, leadership spread
 *   member_watch.c  the members of the configurations, reported on a change
 *   proposer.c      queue -> entries -> raft_apply        -> shard.h types, commit_notice
 *   shard.c         one raft group and its FSM over log/  -> commit_notice
 *   commit_notice.c a leader's commits sent to followers at once
 */

struct cons_store;
struct cons_transport;

struct cons_node {
    struct cons_node_options opts;
    struct cons_store *store;      /* raft_io/: the WAL, terms, snapshots */
    struct cons_shard *shards;     /* opts.n_shards of them */
    uv_check_t flusher;            /* proposes queued appends each iteration */
    uv_idle_t kick;                /* active while appends wait: poll won't block */
    uv_timer_t ticker;             /* housekeeping: compaction, peers, deadlines */
    uv_timer_t commit_timer;       /* commit_notice.c: commits told to followers */
    bool commits_unsent;           /* a shard's commit_unsent is set */
    struct cons_transport *transport; /* NULL for a one-node cluster */
    struct cons_forward *forwards;    /* forward.h: appends sent to a leader */
    struct cons_catchups catchups;    /* catchup.h */
    struct cons_member_change *change; /* membership.h: the change coordinated here */
    struct cons_repair *repair;       /* repair.h: a damaged member being replaced */
    struct cons_read_wait *read_waits; /* read_barrier.h: leader reads waiting */
    struct cons_leaders leaders;      /* leaders.h */
    struct cons_retention retention;  /* retention_sweep.h */
    struct cons_member_watch members_seen; /* member_watch.h */
    struct cons_snapshot_flush snapshot_flush; /* snapshot_flush.h: shared by the shards */
    /* Ids of requests sent to peers (forwards, state copies, membership,
     * reads): one counter, so that no answer can match another request. */
    uint64_t next_request;
    uint64_t next_proposal;        /* proposal id of the last entry proposed */
    struct cons_node_stats stats;
    bool stopping;
    unsigned closing;              /* shards still closing */
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

#endif
