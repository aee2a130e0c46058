/* SPDX-License-Identifier: Apache-2.0 */
/* The log_store struct, shared by the files of log/. */
#ifndef LOG_INTERNAL_H
#define LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_rocks;
struct st_batch;
struct hd_retention;
struct log_command;

/*
 * The cache of channel heads (last seq and ts), which every append reads
 * (head_cache.c). Sets of LOG_HEAD_CACHE_WAYS slots chosen by hash; a new
 * channel goes first in its set and the set's oldest leaves, so a set
 * keeps its last four channels, where one slot per hash lost a channel to
 * any later one that collided (a third of the heads at a million channels).
 * It is changed only after the write batch that moved the heads succeeded,
 * so it never runs ahead of state. A miss on a channel that holds messages
 * costs a backward seek through the memtables and table files
 * (log__head_stored), so the cache has room for twice the channels it is
 * sized for: two million 64-byte slots, with channel ids of up to
 * LOG_HEAD_CACHE_ID_MAX bytes inline (longer ones are read from state each
 * time), 128 MiB taken page by page as channels are written. A million
 * channels written at random would miss it about 4% of the time, by a
 * Poisson estimate of the channels per set (19% with one million slots,
 * which over 90 s cost 1.13x the CPU per append; README: Many channels).
 */
#define LOG_HEAD_CACHE_SLOTS (1u << 21)
#define LOG_HEAD_CACHE_WAYS 4u
#define LOG_HEAD_CACHE_ID_MAX 39

struct log_head_slot {
    uint64_t hash;              /* of the channel id, | 1; 0 = empty slot */
    uint64_t seq;
    uint64_t ts;
    uint8_t len;
    char channel[LOG_HEAD_CACHE_ID_MAX];
};

/* A head moved by the entry being applied (any channel id length). */
struct log_head {
    uint64_t hash;              /* of the channel id; 0 = empty slot */
    uint8_t len;
    char channel[128];
    uint64_t seq;
    uint64_t ts;
};

/* Heads moved by the entry being applied, before its batch is written. */
struct log_overlay {
    struct log_head *slots;     /* open addressing, cap a power of two */
    size_t cap;
    size_t n;
};

/* An append of the entry being applied, found by (channel, nonce). */
struct log_seen {
    uint64_t hash;              /* of channel and nonce; 0 = empty slot */
    uint32_t index;             /* of the append in the entry */
};

struct log_store {
    struct st_rocks *rocks;     /* all channel state */
    struct st_batch *batch;     /* reused by every apply (loop thread only) */
    uint64_t dedup_window_us;   /* retries within this answer the original */
    unsigned n_shards;          /* channels map to shards by log_shard_of */
    uint16_t shard;             /* of the entry being applied */
    struct log_head_slot *heads; /* LOG_HEAD_CACHE_SLOTS, loop thread only */
    void *heads_mem;            /* the allocation heads is aligned within */
    struct log_overlay overlay; /* reused by every apply */
    struct log_seen *seen;      /* (channel, nonce) of this entry, 2x count */
    struct log_append *appends; /* this entry's appends, count */
    size_t seen_cap;
    uint64_t *applied_known;    /* n_shards; state_write.c (0: read state) */
    const struct hd_retention *config_policy; /* log_options.retention */
    struct hd_retention *cluster_policy;      /* parsed 'p' key; NULL: none set */
};

/* Writes ls->batch to state. Every write of state in log/ goes through one
 * of these two (state_write.c): log__write for any batch, which may move
 * any shard's applied index; log__write_applied for an apply's batch, which
 * sets shard's applied index to index and nothing else's. */
int log__write(struct log_store *ls);
int log__write_applied(struct log_store *ls, uint16_t shard, uint64_t index);
/* The shard's applied index as last written, if this store knows it. */
bool log__applied_known(const struct log_store *ls, uint16_t shard, uint64_t *index);

/* The head cache (head_cache.c). hash is hd_hash64 of the id | 1. */
int log__head_cache_init(struct log_store *ls);
void log__head_cache_free(struct log_store *ls);
bool log__head_cache_get(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t *seq, uint64_t *ts);
void log__head_cache_put(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t seq, uint64_t ts);
void log__head_cache_drop(struct log_store *ls, uint64_t hash);
/* Forgets every head: a shard's state is being replaced. */
void log__head_cache_clear(struct log_store *ls);

/* The head of a channel through the cache (loop thread only). */
int log__head(struct log_store *ls, uint16_t shard, const char *ch, size_t len,
              uint64_t hash, uint64_t *seq, uint64_t *ts);

/* The channel's first seq left by trims (1 if none) from its 'f' key; if a
 * trim removed every message, *emptied and the head's ts (the head's seq is
 * first - 1). HD_ECORRUPT on a value of another size. */
int log__get_first(struct log_store *ls, uint16_t shard, const char *ch, size_t len,
                   uint64_t *first, bool *emptied, uint64_t *head_ts);

/* Applies a trim or delete entry (command_apply.c) at raft index `index`;
 * the caller checked the index was not applied yet. */
int log__apply_command(struct log_store *ls, uint16_t shard, uint64_t index,
                       const uint8_t *entry, size_t len);

/* Applies a cluster retention policy command (policy.c), decoded by the
 * caller, at raft index `index` of shard (which must be LOG_POLICY_SHARD). */
int log__apply_policy(struct log_store *ls, uint16_t shard, uint64_t index,
                      const struct log_command *c);

/* Reads the cluster policy from state into the cache (at open, and after
 * shard LOG_POLICY_SHARD's state was replaced); logs a change of the
 * effective policy if `announce` (the daemon logs its start itself). */
int log__policy_load(struct log_store *ls, bool announce);

/* Frees the cache (log_store_close). */
void log__policy_free(struct log_store *ls);

#endif
