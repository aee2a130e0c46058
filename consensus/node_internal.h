/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of a node and its shards, shared by node.c, shard.c, proposer.c. */
#ifndef CONS_NODE_INTERNAL_H
#define CONS_NODE_INTERNAL_H

#include <raft.h>

#include "node.h"

#define CONS_BATCH_APPENDS_MAX 1024u          /* appends per entry */
#define CONS_BATCH_BYTES_MAX (4u << 20)       /* payload bytes per entry */
#define CONS_IN_FLIGHT_MAX 4u                 /* entries proposed per shard */

struct cons_store;
struct cons_transport;
struct cons_forward;
struct cons_catchup;
struct cons_member_change;
struct cons_read_wait;
struct cons_state_out;

/* One proposed entry and the appends it answers. */
struct cons_batch {
    struct raft_apply apply;       /* raft's request */
    struct cons_shard *shard;
    uint64_t proposal;             /* the entry's proposal id */
    struct cons_append_req *reqs;  /* in entry order */
    uint32_t count;
    bool applied;                  /* results are filled */
    struct cons_batch *next;       /* in-flight FIFO */
    struct log_result results[];   /* count of them */
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
    /* Scratch results for entries this node did not propose. */
    struct log_result *scratch;
    size_t scratch_cap;
};

struct cons_node {
    struct cons_node_options opts;
    struct cons_store *store;
    struct cons_shard *shards;
    uv_check_t flusher;            /* proposes queued appends each iteration */
    uv_idle_t kick;                /* active while appends wait: poll won't block */
    uv_timer_t ticker;             /* housekeeping: compaction, peers, forwards */
    struct cons_transport *transport; /* NULL for a one-node cluster */
    struct cons_forward *forwards; /* appends waiting for another leader */
    uint64_t next_forward;
    struct cons_catchup *catchups; /* state copies this node receives */
    struct cons_state_out *state_out; /* state copies this node sends */
    unsigned state_out_n;
    uv_timer_t state_timer;        /* paces state_out */
    struct cons_member_change *change; /* membership change coordinated here */
    struct cons_read_wait *read_waits; /* leader reads waiting to be fresh */
    struct raft_transfer transfer; /* a leadership hand-over in flight */
    bool transferring;
    uint64_t next_proposal;
    struct cons_node_stats stats;
    bool stopping;
    unsigned closing;              /* shards still closing */
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

int cons__shard_start(struct cons_shard *sh, bool bootstrap, char *errmsg,
                      size_t errmsg_len);
void cons__shard_close(struct cons_shard *sh, void (*cb)(struct raft *r));
void cons__shard_fail_queue(struct cons_shard *sh, int status);
void cons__flush(struct cons_node *n);
void cons__kick_noop(uv_idle_t *h);
int cons__append_local(struct cons_node *n, struct cons_append_req *req, cons_append_cb cb);
int cons__forward(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                  struct cons_append_req *req);
void cons__forwards_expire(struct cons_node *n, bool all, int status);
void cons__sync_peers(struct cons_node *n);
void cons__spread_leaders(struct cons_node *n);
int cons__cluster_start(struct cons_node *n, char *errmsg, size_t errmsg_len);
void cons__recv_state(struct cons_node *n, uint64_t from, uint8_t kind, uint16_t shard,
                      const uint8_t *payload, size_t len);
void cons__catchups_expire(struct cons_node *n, bool all);
void cons__catchup_start(struct cons_node *n);
int cons__catchup_recover(struct cons_node *n, char *errmsg, size_t errmsg_len);
void cons__catchup_stop(struct cons_node *n);
void cons__recv_member(struct cons_node *n, uint64_t from, uint8_t kind, uint16_t shard,
                       const uint8_t *payload, size_t len);
void cons__member_tick(struct cons_node *n);
void cons__member_stop(struct cons_node *n);
void cons__transfer_done(struct raft_transfer *req);
void cons__recv_read(struct cons_node *n, uint64_t from, uint8_t kind, uint16_t shard,
                     const uint8_t *payload, size_t len);
void cons__read_waits_check(struct cons_node *n, unsigned shard);
void cons__read_waits_expire(struct cons_node *n, bool all);
void cons__batch_answer(struct cons_batch *b, int status);

#endif
