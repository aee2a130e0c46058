/* SPDX-License-Identifier: Apache-2.0 */
/* herald's struct raft_io: every shard's Raft log in the node's one WAL. */
#ifndef CONS_RAFT_IO_H
#define CONS_RAFT_IO_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct st_wal_stats;

/*
 * One cons_store per node owns the WAL and hands out one struct raft_io per
 * shard. Where things live:
 *   DATA/wal/                 entries, truncations, resets (wal_record.h)
 *   DATA/snapshots/vote.{1,2} term and vote of every shard (meta_file.h)
 *   DATA/snapshots/shard-N.{1,2}  the shard's last snapshot: index, term,
 *                             configuration and the FSM's small manifest
 *
 * Durability rules:
 *   1. set_term, set_vote and bootstrap are durable when they return.
 *   2. An append's callback fires once its entries are in the WAL on disk;
 *      callbacks fire in submission order across all shards (the WAL's
 *      order), which is what raft requires.
 *   3. truncate writes a TRUNCATE record through the same WAL queue, so it is
 *      ordered after every append submitted before it.
 *   4. A WAL segment is released only when, for every shard, its entries are
 *      at or below that shard's snapshot index minus trailing; the snapshot
 *      manifest is written only after the FSM flushed applied state (the FSM
 *      does that in snapshot_async), so released entries are never needed.
 */

struct cons_store;

struct cons_store_options {
    uv_loop_t *loop;
    const char *wal_dir;
    const char *snap_dir;
    unsigned n_shards;
    bool no_uring;           /* force the WAL's pwrite fallback */
    uint64_t segment_size;   /* 0 = WAL default */
};

/* Opens the WAL and replays it into per-shard memory for raft's load. */
int cons_store_open(struct cons_store **out, const struct cons_store_options *o,
                    char *errmsg, size_t errmsg_len);

/* The raft_io of a shard; valid until cons_store_close. */
struct raft_io *cons_store_io(struct cons_store *s, unsigned shard);

/* Runs the shard's raft tick now, as its timer would (a started shard's
 * only; consensus/node/commit_notice.h says why). */
void cons_store_tick_now(struct cons_store *s, unsigned shard);

/* True if any shard has a term, an entry or a snapshot (bootstrapped). */
bool cons_store_has_state(const struct cons_store *s);

/* Closes the WAL once every raft instance is closed; cb may be NULL. */
void cons_store_close(struct cons_store *s, void (*cb)(void *arg), void *arg);

/* When the WAL holds more than segments_max segments, the shard whose
 * oldest needed entry is the oldest in the WAL (so a snapshot of it frees
 * space); -1 otherwise. A quiet shard would otherwise pin old segments for
 * ever, as raft only snapshots after applying `threshold` entries. */
int cons_store_pinning_shard(const struct cons_store *s, unsigned segments_max);

/* Plugs in the network: raft's sends of every shard go to send(), which must
 * copy what it keeps (0, or an error that raft sees as a failed send). */
void cons_store_set_sender(struct cons_store *s,
                           int (*send)(void *arg, unsigned shard, raft_id to,
                                       const struct raft_message *m),
                           void *arg);

/* Before a snapshot from the leader replaces a shard's log, the node must
 * hold the applied state the snapshot's manifest names. catch_up gets it
 * (from the leader, out of band) and calls done(ctx, 0), or done(ctx, err)
 * to make raft retry later; it may call done before returning. Returning
 * non-zero fails the install at once. Without a hook the install proceeds. */
typedef int (*cons_catch_up_fn)(void *arg, unsigned shard, const struct raft_snapshot *snap,
                                void (*done)(void *ctx, int status), void *ctx);
void cons_store_set_catch_up(struct cons_store *s, cons_catch_up_fn fn, void *arg);

/* Drops a shard's log and snapshot durably (before its raft starts), so
 * that it starts empty and the leader sends it a snapshot. */
int cons_store_forget_shard(struct cons_store *s, unsigned shard);

/* Starts a shard that has nothing yet from a snapshot instead of a first
 * entry (a restored backup): term 1, the snapshot at index 1 holding conf
 * and data, the log empty after it. Every replica without that state then
 * has to be sent the snapshot. Before the shard's raft starts. */
/* Called right after raft_start(r) of the shard: marks the last
 * configuration entry raft loaded as pending, over the one before it
 * (raft_io_load.c says why). */
void cons_store_mend_loaded_conf(const struct cons_store *s, unsigned shard, struct raft *r);

int cons_store_seed_snapshot(struct cons_store *s, unsigned shard,
                             const struct raft_configuration *conf, const void *data,
                             size_t len);

/* Hands a received message to the shard's raft (which takes ownership of
 * its memory, as raft's recv callback does); a shard that is not running
 * drops it. Returns false if dropped: the caller then frees the message. */
bool cons_store_deliver(struct cons_store *s, unsigned shard, struct raft_message *m);

/* True if io_uring is in use by the WAL. */
bool cons_store_uses_uring(const struct cons_store *s);

/* The WAL's counters and histograms; its items are Raft entries. */
void cons_store_wal_stats(const struct cons_store *s, struct st_wal_stats *out);

#endif
