/* SPDX-License-Identifier: Apache-2.0 */
/* RocksDB wrapper: one keyspace, write batches without RocksDB's WAL, iterators. */
#ifndef ST_ROCKS_H
#define ST_ROCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_exit.h"

/*
 * herald keeps all applied state in one RocksDB column family, with a
 * one-byte prefix per kind of key (log/keys.h says which). One column family
 * rather than several is deliberate: RocksDB's WAL is off (the Raft WAL is
 * the durability), and without a WAL only flushes are durable; a memtable of
 * one column family is flushed whole, so every write batch survives a crash
 * entirely or not at all. Several column families would need atomic_flush
 * plus a multi-family manual flush for no gain.
 *
 * Durability rules:
 *   1. st_rocks_write() is not durable; it is visible to readers at once.
 *   2. st_rocks_flush() makes every earlier write durable.
 *   3. Any write error puts the wrapper in a sticky failed state
 *      (HD_EFAILED) until it is closed and reopened.
 *   4. So does a failed flush, or a background error, for flushes: a
 *      flush is never tried again (see st_rocks_flush).
 */

/* The exit status of a node that found its state corrupt while running
 * (see st__err in rocks.cc): it stops at once, as a crash would. */
#define ST_EXIT_CORRUPT HD_EXIT_CORRUPT

struct st_rocks;
struct st_batch;
struct st_iter;

/* Decides during compaction whether a key/value may be dropped. */
typedef bool (*st_rocks_filter_fn)(void *arg, const void *key, size_t key_len,
                                   const void *value, size_t value_len);

/* The length of the prefix of key that prefix filters index (the caller's
 * key layout decides), 0 if the key has none. Keys with one prefix must be
 * contiguous, the prefix of a prefix must be itself, and prefixes must
 * sort as their keys do (RocksDB's rules for a prefix extractor). */
typedef size_t (*st_rocks_prefix_fn)(const void *key, size_t key_len);

struct st_rocks_options {
    const char *dir;               /* created if missing */
    size_t block_cache_bytes;      /* 0 = 64 MiB */
    size_t write_buffer_bytes;     /* memtable size; 0 = 64 MiB */
    st_rocks_filter_fn filter;     /* optional compaction filter */
    void *filter_arg;
    /* Optional: memtables and table files then keep bloom filters of key
     * prefixes too, which st_iter_open_last consults. prefix_name names the
     * layout: files written under another name are searched in full. */
    st_rocks_prefix_fn prefix;
    const char *prefix_name;
    /* Optional: keys that go in near the last key put with the same hint
     * prefix (a counter or a clock after a fixed part). The memtable then
     * keeps each hint prefix's last insert position and starts the next
     * insert's search there (RocksDB's insert hints); none of the prefix
     * rules above apply. Every DeleteRange must begin at a key without a
     * hint (0): RocksDB before 9.2 gives range deletions the hints of
     * point keys, which breaks its memtable (st_rocks_write checks). */
    st_rocks_prefix_fn insert_hint;
};

/* Opens the state at opts->dir, creating it if missing. HD_ECORRUPT when
 * RocksDB reports its files damaged (a table the MANIFEST names cut short
 * or failing its checksum), else HD_EIO, with the reason in errmsg. */
int st_rocks_open(struct st_rocks **out, const struct st_rocks_options *opts,
                  char *errmsg, size_t errmsg_len);
void st_rocks_close(struct st_rocks *r);

/* Reads one key into a caller buffer; HD_ENOTFOUND if absent, HD_ETOOBIG if
 * the value is larger than cap (*value_len then holds its size and buf its
 * first cap bytes). */
int st_rocks_get_into(struct st_rocks *r, const void *key, size_t key_len,
                      void *buf, size_t cap, size_t *value_len);
/* False only if the key is certainly absent, answered from memtables,
 * bloom filters and cached blocks without reading the disk; true may be
 * wrong (a filter's false positive, a block not cached). For the lookups
 * that mostly miss and would otherwise open an iterator. */
bool st_rocks_may_exist(struct st_rocks *r, const void *key, size_t key_len);

/* Write batches. A batch does not answer reads: callers that need to see
 * their own pending writes keep track of them (log/apply.c does). */
int st_batch_init(struct st_batch **out);
void st_batch_close(struct st_batch *b);
void st_batch_clear(struct st_batch *b);
void st_batch_put(struct st_batch *b, const void *key, size_t key_len,
                  const void *value, size_t value_len);
void st_batch_delete(struct st_batch *b, const void *key, size_t key_len);
/* Deletes every key in [lower, upper). */
void st_batch_delete_range(struct st_batch *b, const void *lower, size_t lower_len,
                           const void *upper, size_t upper_len);

/* Applies the batch atomically, RocksDB WAL off (see rule 1). */
int st_rocks_write(struct st_rocks *r, struct st_batch *b);

/* Flushes memtables and waits (rule 2). Safe from any thread. */
int st_rocks_flush(struct st_rocks *r);

/* A checkpoint of the database in dir (which must not exist; its parent
 * must): memtables are flushed first, then every table file is hard-linked
 * (copied across file systems), so dir is a consistent, openable copy of
 * everything written so far, taken while writes go on. Blocks; safe from
 * any thread. */
int st_rocks_checkpoint(struct st_rocks *r, const char *dir);

/* Test hook, the I/O analogue of the allocation hook: st_rocks_write and
 * st_rocks_flush ask it first ("write" or "flush"); a non-zero answer is an
 * errno the call fails with, as RocksDB reports it ("IO error: ..."),
 * without reaching RocksDB. NULL (the default) injects nothing. */
extern int (*st__rocks_io_hook)(const char *call);
/* Compacts [lower, upper) now (blocks): files holding only range-deleted
 * keys are dropped, so deleted data leaves the disk at once. */
void st_rocks_compact_range(struct st_rocks *r, const void *lower, size_t lower_len,
                            const void *upper, size_t upper_len);
/* The same on the state's compaction thread (started on first use): the
 * caller goes on at once, ranges are compacted in the order given, and
 * st_rocks_close waits for those queued. Compacting a channel's range took
 * 0.3-0.9 s with appends going on, a stall of every append when it ran on
 * the loop thread. */
void st_rocks_compact_range_later(struct st_rocks *r, const void *lower, size_t lower_len,
                                  const void *upper, size_t upper_len);

/* A consistent read view: iterators opened at it see the database as it
 * was when it was taken. Released with st_rocks_view_release. */
struct st_view;
int st_rocks_view_acquire(struct st_rocks *r, struct st_view **out);
void st_rocks_view_release(struct st_rocks *r, struct st_view *v);

/* Iterates keys in [lower, upper), at view v (NULL: the latest state). */
int st_iter_open(struct st_iter **out, struct st_rocks *r, const void *lower,
                 size_t lower_len, const void *upper, size_t upper_len);
int st_iter_open_at(struct st_iter **out, struct st_rocks *r, struct st_view *v,
                    const void *lower, size_t lower_len, const void *upper,
                    size_t upper_len);
/* The same over the latest state, positioned at the last key in the range
 * instead of the first: one backward seek, where opening and then moving
 * to the end would seek twice (the lookup of a channel's head, per append
 * to a channel the head cache does not hold). With a prefix function, lower
 * and upper must have one prefix, and the seek skips every memtable and
 * file whose prefix filter does not have it (a channel never written). */
int st_iter_open_last(struct st_iter **out, struct st_rocks *r, const void *lower,
                      size_t lower_len, const void *upper, size_t upper_len);
/* Moves to the first key at or after key (within the bounds). */
void st_iter_seek(struct st_iter *it, const void *key, size_t len);
bool st_iter_valid(const struct st_iter *it);
void st_iter_next(struct st_iter *it);
const void *st_iter_key(const struct st_iter *it, size_t *len);
const void *st_iter_value(const struct st_iter *it, size_t *len);
/* HD_EIO if the iteration stopped on an error rather than the end. */
int st_iter_status(const struct st_iter *it);
void st_iter_close(struct st_iter *it);

#endif
