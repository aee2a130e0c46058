/* SPDX-License-Identifier: Apache-2.0 */
/* A shard (shard.c): one raft group, its FSM over log/, its append queue. */
#ifndef CONS_SHARD_H
#define CONS_SHARD_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_settle.h"
#include "node.h"

struct cons_node;

/* One proposed entry and the appends it answers (proposer.c). */
struct cons_batch {
    struct raft_apply apply;       /* raft's request */
    struct cons_shard *shard;
    uint64_t proposal;             /* the entry's proposal id */
    struct cons_append_req *reqs;  /* in entry order */
    uint32_t count;
    size_t size;                   /* bytes of its entry */
    bool applied;                  /* results are filled */
    struct cons_batch *next;       /* in-flight FIFO */
    struct log_result results[];   /* count of them */
};

/* The last index a follower said it stored (commit_notice.c). */
#define CONS_COMMIT_HEARD_MAX 8u
struct cons_commit_heard {
    uint64_t id;    /* 0: free */
    uint64_t index;
};

struct cons_shard {
    struct cons_node *node;
    unsigned id;
    struct raft raft;
    struct raft_fsm fsm;
    bool started;
    bool closed;
    /* Appends waiting to be proposed (FIFO). */
    struct cons_append_req *queue_head;
    struct cons_append_req *queue_tail;
    size_t queued;
    bool dirty;                    /* queue changed since the last flush */
    /* Entries proposed and not yet answered (FIFO, in proposal order). */
    struct cons_batch *flight_head;
    struct cons_batch *flight_tail;
    unsigned in_flight;
    struct raft_barrier compact;   /* a barrier that forces a snapshot */
    struct raft_barrier *gap;      /* barriers filling a lost log tail */
    size_t gap_left;               /* of them not yet applied */
    bool compacting;               /* compact is in flight */
    /* Raft log bytes held in memory (the entries of raft's log are this
     * node's buffers): applied since the last snapshot, and kept after it. */
    uint64_t log_bytes_since;      /* of entries applied since the snapshot */
    uint64_t log_entries_since;
    uint64_t log_bytes_trailing;   /* estimate: the entries kept after it */
    bool log_over;                 /* the threshold is lowered to snapshot now */
    bool invited;                  /* lowered too: to share another's flush (shard.c) */
    uint64_t flush_ticket;         /* of the flush its pending snapshot waits for */
    bool commit_unsent;            /* leader: commit moved, followers not told (commit_notice.h) */
    struct cons_commit_heard heard[CONS_COMMIT_HEARD_MAX]; /* followers' last stored index */
    struct cons_config_settle settle; /* leader: its configuration settled (config_settle.h) */
    /* Scratch results for entries this node did not propose. */
    struct log_result *scratch;
    size_t scratch_cap;
};

/* Initialises the shard's raft over its raft_io and starts it; with
 * `bootstrap`, first writes the initial configuration (the node's members).
 * A shard whose log lost its tail (entries below the applied index are
 * gone) is filled with barriers before it serves. 0 or HD_E* with errmsg. */
int cons__shard_start(struct cons_shard *sh, bool bootstrap, char *errmsg,
                      size_t errmsg_len);

/* Raft's timeouts of every shard. */
#define CONS_ELECTION_MS 1000u
#define CONS_HEARTBEAT_MS 100u

/* The least share of the Raft log memory a shard gets, whatever
 * log_memory_max / n_shards comes to. */
#define CONS_LOG_SHARE_MIN (1u << 20)

/* The snapshot threshold the shard should have now: 1 while it is over its
 * share of log memory, compacting, or invited to snapshot with another
 * shard, else the configured one. */
unsigned cons__shard_threshold(const struct cons_shard *sh);

/* Closes the shard's raft; cb fires once raft is closed. */
void cons__shard_close(struct cons_shard *sh, void (*cb)(struct raft *r));

#endif
