/* SPDX-License-Identifier: Apache-2.0 */
/* The node's write-ahead log: durable, ordered, checksummed records on io_uring. */
#ifndef ST_WAL_H
#define ST_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

#include "hd_histogram.h"

/*
 * One WAL per node, shared by every shard. It stores opaque records; it knows
 * nothing of Raft or channels (consensus/raft_io.c gives records a meaning).
 *
 * Every record gets an LSN: 1, 2, 3, ... with no gaps, in append order.
 * A record is durable when its append callback fires with status 0.
 * Append callbacks fire in submission order, always asynchronously (never
 * from inside st_wal_append), on the loop thread.
 *
 * Suffix truncation is logical: the caller writes a record that says what to
 * discard, which keeps it ordered with appends already in flight. Physical
 * space is reclaimed by st_wal_release_before(), whole segments at a time.
 *
 * After a write or fsync error the WAL enters a sticky failed state: every
 * later append fails with HD_EFAILED until the WAL is closed and reopened.
 */

struct st_wal;

#define ST_WAL_RECORD_MAX (64u * 1024u * 1024u) /* largest record payload */

struct st_wal_options {
    uv_loop_t *loop;          /* loop on which callbacks run */
    const char *dir;          /* directory of segment files, created if missing */
    uint64_t segment_size;    /* bytes per preallocated segment; 0 = 64 MiB */
    bool no_uring;            /* force the pwrite + fdatasync fallback */
};

struct st_wal_append;
typedef void (*st_wal_append_cb)(struct st_wal_append *req, int status);

/* Caller-allocated; must stay valid until the callback fires. */
struct st_wal_append {
    void *data;               /* caller's */
    uint32_t items;           /* caller's count of what the record holds (raft_io:
                                 entries), summed per group commit for
                                 st_wal_stats' items_per_sync; 0 for none */
    uint64_t lsn;             /* set by st_wal_append: the record's LSN */
    /* private */
    st_wal_append_cb cb;          /* called once durable (or failed) */
    struct st_wal_append *next;   /* queue link */
    uint64_t end_offset;          /* end of the encoded record in the queue buffer */
};

/* Opens (creating if needed) the WAL in opts->dir. Does not replay: call
 * st_wal_replay next. On failure writes a message to errmsg. */
int st_wal_open(struct st_wal **out, const struct st_wal_options *opts,
                char *errmsg, size_t errmsg_len);

/* Calls cb for every durable record in LSN order; cb returning non-zero stops
 * the replay and is returned. A torn or corrupt tail (a bad record followed
 * by nothing valid, in the last segment written) is cut at the last whole
 * record and logged; corruption anywhere else returns HD_ECORRUPT with a
 * message naming the segment and offset. Must be called exactly once, before
 * the first append. `data` points into WAL memory valid only during cb.
 * Blocks the calling (loop) thread on reads, and on zeroing a torn tail.
 * After a non-zero return the WAL is in the failed state: close it. */
typedef int (*st_wal_replay_cb)(void *arg, uint64_t lsn, const void *data,
                                size_t len);
int st_wal_replay(struct st_wal *w, st_wal_replay_cb cb, void *arg,
                  char *errmsg, size_t errmsg_len);

/* Queues one record made of the n buffers (copied before returning) and
 * sets req->lsn. The callback fires once the record, and every record queued
 * before it, is on disk (fdatasync or O_DIRECT+RWF_DSYNC). Records queued
 * while a write is in flight, or during the same loop turn, are written
 * together by the next one (group commit). Returns HD_ETOOBIG if the record
 * exceeds ST_WAL_RECORD_MAX, HD_EFAILED in the failed state, HD_ENOMEM. On
 * non-zero return the callback never fires and no LSN is used. If a write
 * fails, its records' callbacks get its error (e.g. HD_EIO) and those of
 * records queued behind it get HD_EFAILED. Loop thread only. */
int st_wal_append(struct st_wal *w, struct st_wal_append *req,
                  const struct iovec *iov, unsigned n, st_wal_append_cb cb);

/* The LSN the next append will get. */
uint64_t st_wal_next_lsn(const struct st_wal *w);

/* Allows deletion of every segment whose records all have LSN < lsn; never
 * the segment being written. The files are deleted on the thread pool,
 * oldest first; a crash may leave some of them, which replay then reads. */
int st_wal_release_before(struct st_wal *w, uint64_t lsn);

/* True if io_uring is in use, false on the pwrite fallback. */
bool st_wal_uses_uring(const struct st_wal *w);

struct st_wal_stats {
    uint64_t appends;         /* records appended since open */
    uint64_t syncs;           /* group commits written */
    uint64_t bytes;           /* bytes written including padding */
    uint64_t segments;        /* live segment files */
    /* Per group commit written: microseconds from submitting the write
     * (RWF_DSYNC on io_uring, or pwrite + fdatasync) to its completion, and
     * the items (st_wal_append.items) its records held. */
    struct hd_histogram sync_us;
    struct hd_histogram items_per_sync;
};
void st_wal_stats(const struct st_wal *w, struct st_wal_stats *out);

/* Waits for in-flight writes and for appends queued before the call (their
 * callbacks fire, with status 0 if they reached disk), then frees everything
 * and calls cb (may be NULL) on the loop. Appends after close are a
 * programmer error. */
void st_wal_close(struct st_wal *w, void (*cb)(void *arg), void *arg);

#endif
