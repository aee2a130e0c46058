/* SPDX-License-Identifier: Apache-2.0 */
/* The channel state machine: applies committed entries, serves reads. */
#ifndef LOG_LOG_H
#define LOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"

/*
 * Apply is deterministic: given the same committed entries in the same order,
 * every replica computes the same seq, ts and dedup answers, because they
 * depend only on the entry bytes (its stamp) and on state built from earlier
 * entries, never on the local clock.
 *
 * For each append of an entry at raft index I of shard S:
 *   - if (channel, nonce) is in the dedup index and entry.stamp - stored.stamp
 *     < window, the answer is the stored (seq, ts) with duplicate = true;
 *   - else seq = head.seq + 1, ts = max(entry.stamp, head.ts + 1), and the
 *     message and the dedup key are written (the head is the last message: keys.h).
 * Everything of one entry, plus applied[S] = I, is one RocksDB write batch.
 * An entry with I <= applied[S] was applied before a restart and is skipped
 * (RocksDB's WAL is off: after a crash, state is as of the last flush, and
 * Raft re-applies every entry after its snapshot).
 */

struct st_rocks;
struct log_store;
struct hd_retention;

struct log_options {
    const char *dir;             /* RocksDB directory */
    unsigned n_shards;           /* fixed when the cluster is created */
    uint64_t dedup_window_us;    /* 0 = 24 h */
    size_t cache_bytes;          /* 0 = default */
    /* The node's own retention policy (--retention), owned by the caller
     * and outliving the store; NULL: none. The cluster's, once one is set
     * through Raft, takes its place (log_retention_effective). */
    const struct hd_retention *retention;
};

struct log_result {
    uint64_t seq;
    uint64_t ts;       /* microseconds since the epoch */
    bool duplicate;
};

struct log_message {
    uint64_t seq;
    uint64_t ts;
    const char *nonce;
    size_t nonce_len;
    const uint8_t *payload;
    size_t payload_len;
};

int log_store_open(struct log_store **out, const struct log_options *opts,
                   char *errmsg, size_t errmsg_len);
void log_store_close(struct log_store *ls);

/* Applies the entry at raft index `index` of `shard`: an append batch
 * (entry.h) or a command (command.h: trim, delete, or on shard 0 the
 * cluster's retention policy; a command fills no result;
 * results may then be NULL). For a batch, on success fills
 * results[0..count) (count from the entry header; results_cap must be at
 * least that, LOG_ENTRY_APPENDS_MAX always is). Returns HD_EEXIST, changing nothing, if the index was
 * applied already; HD_ECORRUPT if the entry does not decode; HD_EFAILED
 * after a state write error. */
int log_apply(struct log_store *ls, uint16_t shard, uint64_t index,
              const uint8_t *entry, size_t len, struct log_result *results,
              size_t results_cap);

/* The highest raft index of the shard applied to state (0 if none). */
int log_applied_index(struct log_store *ls, uint16_t shard, uint64_t *index);

/* The last seq and ts of a channel; both 0 for a channel never written. */
int log_head(struct log_store *ls, const char *ch, size_t len,
             uint64_t *last_seq, uint64_t *last_ts);

/* Calls cb for messages with seq > after_seq, in order, at most `limit`.
 * HD_EGONE, delivering nothing, if a trim removed seq after_seq + 1
 * (log_position_gone; log_channel_info gives the first seq left).
 * cb returning non-zero stops the read. Message memory is valid only
 * during cb. *next_seq is set to the seq after the last one delivered. */
typedef int (*log_read_cb)(void *arg, const struct log_message *m);
int log_read(struct log_store *ls, const char *ch, size_t len,
             uint64_t after_seq, size_t limit, log_read_cb cb, void *arg,
             uint64_t *next_seq);

/* The largest seq whose ts <= ts_us (0 if none), for after_ts reads. On a
 * trimmed channel the search covers the seqs left: first_seq - 1 if none of
 * them is that old, so the read starts at the oldest message left. */
int log_seq_at_ts(struct log_store *ls, const char *ch, size_t len,
                  uint64_t ts_us, uint64_t *seq);

/* ---- Trim and delete (command.h, command_apply.c) */

/* What readers see of a channel's retention. epoch counts the deletes of the
 * channel: after one, seqs begin at 1 again and the epoch tells the new
 * channel from the old. Messages first_seq..last_seq are present (none if
 * last_seq < first_seq, i.e. a channel never written since its delete). */
struct log_channel_info {
    uint64_t first_seq;   /* 1 unless a trim removed older messages */
    uint64_t last_seq;
    uint64_t last_ts;
    uint64_t epoch;
};

int log_channel_info(struct log_store *ls, const char *ch, size_t len,
                     struct log_channel_info *info);

/* True if a read after `after_seq` asks for messages a trim removed: the
 * answer is 410 Gone with info->first_seq, never a silent skip. */
bool log_position_gone(const struct log_channel_info *info, uint64_t after_seq);

/* ---- The cluster's retention policy (command.h kind 4, policy.c) */

/* The policy this node's retention sweep and answers use: the cluster's,
 * set through Raft on shard LOG_POLICY_SHARD, if one is set (*from_cluster
 * true), else log_options.retention (may be NULL: none). Cheap: the
 * cluster's text is parsed once when it changes. The pointer is valid
 * until the next entry of shard 0 applies or its state is replaced. */
const struct hd_retention *log_retention_effective(struct log_store *ls, bool *from_cluster);

/* The shard of a channel: xxh3 of the id modulo the shard count. Part of
 * the data format: it must never change for an existing cluster. */
unsigned log_shard_of(unsigned n_shards, const char *channel, size_t len);

/* ---- Moving one shard's state to a replica that fell behind (transfer.c) */

#define LOG_STATE_CHUNK_BYTES (1u << 20)

struct log_state_reader;

/* Opens a consistent view of the shard's state, to be read in chunks. */
int log_state_reader_open(struct log_store *ls, uint16_t shard,
                          struct log_state_reader **out);
/* The next chunk (hd_malloc'ed, opaque bytes for log_state_replace_chunk);
 * *last is set with the final one (which may be empty). */
int log_state_reader_next(struct log_state_reader *r, uint8_t **chunk, size_t *len,
                          bool *last);
void log_state_reader_close(struct log_state_reader *r);

/* Replaces the shard's state: begin (deletes it, marks it incomplete), any
 * number of chunks in order, end (clears the mark). The caller flushes
 * (log_flush) before relying on it. A chunk that does not decode, or holds a
 * key of another shard, is HD_ECORRUPT and writes nothing. */
int log_state_replace_begin(struct log_store *ls, uint16_t shard);
int log_state_replace_chunk(struct log_store *ls, uint16_t shard, const uint8_t *chunk,
                            size_t len);
int log_state_replace_end(struct log_store *ls, uint16_t shard);
/* True if a replace of the shard began and did not end (a crash). */
bool log_state_incomplete(struct log_store *ls, uint16_t shard);
/* Deletes the shard's state entirely (and the mark), durably. */
int log_state_discard(struct log_store *ls, uint16_t shard);

/* Makes all applied state durable (blocks; thread-safe). */
int log_flush(struct log_store *ls);

/* ---- Backup and restore (backup.c) */

/* A consistent copy of the whole state in dir (st_rocks_checkpoint: hard
 * links, taken while applies go on). Blocks; thread-safe. HD_EEXIST if dir
 * exists. */
int log_checkpoint(struct log_store *ls, const char *dir);

/* Sets the shard's applied index: a restored state starts a new Raft log,
 * whose first index (its snapshot's) the state then claims to hold. */
int log_state_rebase(struct log_store *ls, uint16_t shard, uint64_t applied);


#endif
