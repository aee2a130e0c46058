/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of the raft_io implementation, shared by raft_io*.c and snapshot_meta.c. */
#ifndef CONS_RAFT_IO_INTERNAL_H
#define CONS_RAFT_IO_INTERNAL_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "meta_file.h"
#include "wal.h"

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
    uint64_t replay_floor;        /* replay keeps no entry below it (the snapshot's index) */
    /* Indexes of the last two configuration entries load handed raft (0: none). */
    uint64_t loaded_conf_last;
    uint64_t loaded_conf_prev;
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
    /* While an AppendEntries is delivered: the last index it covers
     * (prev_log_index + entries), which bounds what an answer sent during
     * the delivery may claim (raft_io_send.c). */
    bool answering;
    uint64_t answering_reach;
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

static inline struct cons_shard_log *cons__sl(struct raft_io *io)
{
    return io->impl;
}

/* One record written to the WAL for raft: entries, a truncation or a reset. */
struct cons_append {
    struct st_wal_append wal;
    struct cons_shard_log *sl;
    struct raft_io_append *req;  /* NULL for truncations and resets */
    void (*done)(struct cons_append *a, int status); /* for resets */
    void *done_arg;
};

/* ---- raft_io.c: the vtable and its lifecycle */

/* Fills the shard's struct raft_io with this backend's functions. */
void cons__io_setup(struct cons_shard_log *sl);

/* ---- raft_io_requests.c: what every asynchronous request shares */

/* Maps an HD_E* code to the RAFT_* code raft expects. */
int cons__raft_err(int rv);
/* Runs fn(arg) on the next loop turn (raft wants some callbacks async). */
int cons__defer(struct cons_store *s, void (*fn)(void *), void *arg);
/* Every async request that will call back into raft holds one pending count;
 * io->close completes only once none is left, so raft never gets a callback
 * after its close callback. */
void cons__pending_done(struct cons_shard_log *sl);
/* raft's io->close: stops the ticks; completes once nothing is pending. */
void cons__close(struct raft_io *io, raft_io_close_cb cb);

/* ---- raft_io_votes.c: terms and votes, durable when the call returns */

int cons__set_term(struct raft_io *io, raft_term term);
int cons__set_vote(struct raft_io *io, raft_id server_id);
/* Writes every shard's term and vote to DATA/snapshots/vote.{1,2}. */
int cons__store_votes(struct cons_store *s);
/* Reads them back at open. */
int cons__load_votes(struct cons_store *s, char *errmsg, size_t errmsg_len);

/* ---- raft_io_append.c: entries in the WAL */

int cons__append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
                 unsigned n, raft_io_append_cb cb);
int cons__truncate(struct raft_io *io, raft_index index);
/* Queues a small record (truncate, reset) on the WAL; done may be NULL. */
int cons__append_small(struct cons_shard_log *sl, const uint8_t *rec, size_t len,
                       void (*done)(struct cons_append *, int), void *arg);
/* Remembers that WAL record lsn holds the shard's entries [first, last]. */
int cons__span_push(struct cons_shard_log *sl, uint64_t first, uint64_t last,
                    uint64_t lsn);
/* Forgets the spans of entries at or below index (compacted by a snapshot). */
void cons__span_compact(struct cons_shard_log *sl, uint64_t index);
/* Releases the WAL segments no shard needs any more (durability rule 4). */
void cons__release(struct cons_store *s);

/* ---- raft_io_send.c */

int cons__send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
               raft_io_send_cb cb);

/* ---- raft_io_load.c: replaying the WAL, raft's load and bootstrap */

int cons__replay(struct cons_store *s, char *errmsg, size_t errmsg_len);
void cons__replay_free(struct cons_shard_log *sl);
int cons__load(struct raft_io *io, raft_term *term, raft_id *voted_for,
               struct raft_snapshot **snapshot, raft_index *start_index,
               struct raft_entry *entries[], size_t *n_entries);
int cons__bootstrap(struct raft_io *io, const struct raft_configuration *conf);

/* ---- raft_io_snapshot.c and snapshot_meta.c */

int cons__snapshot_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb);
int cons__snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb);
/* The shard's last snapshot (index, term, configuration, FSM manifest) in
 * DATA/snapshots/shard-N.{1,2}. */
int cons__snapshot_store(struct cons_shard_log *sl, const struct raft_snapshot *snap);
int cons__snapshot_load(struct cons_shard_log *sl, struct raft_snapshot **out);
/* Decodes a snapshot blob into *snap (its configuration and one raft_malloc'ed
 * data buffer). HD_ECORRUPT unless the bytes are exactly one valid blob. */
int cons__snapshot_decode(const uint8_t *blob, size_t len, struct raft_snapshot *snap);
/* The index of the shard's last snapshot; 0 if it has none. */
int cons__snapshot_index(struct cons_shard_log *sl, uint64_t *index);

#endif
