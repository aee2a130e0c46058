/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of the raft_io implementation, shared by raft_io*.c. */
#ifndef CONS_RAFT_IO_INTERNAL_H
#define CONS_RAFT_IO_INTERNAL_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "meta_file.h"

struct st_wal;
struct cons_close;

/* Entries [first, last] of a shard were written in the WAL record `lsn`. */
struct cons_span {
    uint64_t first;
    uint64_t last;
    uint64_t lsn;
};

struct cons_shard_log {
    struct cons_store *store;
    uint16_t shard;
    struct raft_io io;
    raft_id id;
    uint64_t rng;                 /* for io->random */
    uint64_t term;                /* durable current term */
    uint64_t voted_for;           /* durable vote in term */
    struct st_meta_file snap;     /* the shard's last snapshot */
    /* The log as replayed, handed to raft by load (then emptied). */
    struct raft_entry *entries;
    size_t n_entries;
    size_t cap_entries;
    uint64_t start_index;         /* index of entries[0] */
    uint64_t next_index;          /* index the next appended entry gets */
    /* WAL records still holding entries not compacted away (a FIFO). */
    struct cons_span *spans;
    size_t span_head;
    size_t span_n;
    size_t span_cap;
    /* Raft's callbacks and timer. */
    uv_timer_t tick_timer;
    raft_io_tick_cb tick;
    raft_io_recv_cb recv;
    raft_io_close_cb close_cb;
    bool started;
    bool closing;                 /* io->close called, waiting for pending */
    unsigned pending;             /* async requests whose callback is due */
};

/* A send whose callback is due on the next turn (raft wants it async). */
struct cons_send_done {
    struct raft_io_send *req;
    struct cons_shard_log *sl;
    int status;
    struct cons_send_done *next;
};

struct cons_store {
    uv_loop_t *loop;
    /* The network, plugged in by the node (NULL: single node, no peers). */
    int (*send)(void *arg, unsigned shard, raft_id to, const struct raft_message *m);
    void *send_arg;
    /* Fetches a shard's state before a leader's snapshot is installed. */
    int (*catch_up)(void *arg, unsigned shard, const struct raft_snapshot *snap,
                    void (*done)(void *ctx, int status), void *ctx);
    void *catch_up_arg;
    struct cons_send_done *sends_head;  /* callbacks due, in send order */
    struct cons_send_done *sends_tail;
    uv_idle_t sends_idle;               /* runs them */
    struct st_wal *wal;
    struct st_meta_file votes;    /* term and vote of every shard */
    unsigned n_shards;
    struct cons_shard_log *shards;
    struct cons_close *closing;
};

void cons__io_setup(struct cons_shard_log *sl);
int cons__store_votes(struct cons_store *s);
/* Every async request that will call back into raft holds one pending count;
 * io->close completes only once none is left, so raft never gets a callback
 * after its close callback. */
void cons__pending_done(struct cons_shard_log *sl);
int cons__span_push(struct cons_shard_log *sl, uint64_t first, uint64_t last,
                    uint64_t lsn);
int cons__replay(struct cons_store *s, char *errmsg, size_t errmsg_len);
void cons__replay_free(struct cons_shard_log *sl);
int cons__load(struct raft_io *io, raft_term *term, raft_id *voted_for,
               struct raft_snapshot **snapshot, raft_index *start_index,
               struct raft_entry *entries[], size_t *n_entries);
int cons__bootstrap(struct raft_io *io, const struct raft_configuration *conf);
int cons__snapshot_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb);
int cons__snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb);
int cons__snapshot_store(struct cons_shard_log *sl, const struct raft_snapshot *snap);
int cons__snapshot_load(struct cons_shard_log *sl, struct raft_snapshot **out);

#endif
