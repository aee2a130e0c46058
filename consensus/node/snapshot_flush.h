/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshots share state flushes (snapshot_flush.c).
 *
 * A shard's snapshot lets raft drop the log before it, so the state it
 * names must be durable first: RocksDB's WAL is off, and only a flush
 * makes the memtable durable. But the memtable is the node's, not the
 * shard's: one flush makes every shard's applied state durable. One
 * shard's snapshot invites the others that have a fair share of log to
 * snapshot at their next apply (shard.c); the flush waits for them, up to
 * CONS_SNAPSHOT_FLUSH_GATHER_MS, and all of them take it, where each used
 * to flush on its own. A flush per shard snapshot made tiny L0 files, and
 * compaction rewrote the whole of L1 every four of them: at 10 000
 * appends/s compaction took 34.5 us of CPU per append over two minutes,
 * and more the longer it ran.
 */
#ifndef CONS_SNAPSHOT_FLUSH_H
#define CONS_SNAPSHOT_FLUSH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct log_store;

struct cons_snapshot_flush {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t begun;           /* under mu: flushes begun; each one's ticket is the count then */
    uint64_t done;            /* under mu: ticket of the newest flush that succeeded */
    bool flushing;            /* under mu: a flush is running */
    unsigned invited;         /* under mu: shards invited that did not snapshot yet */
    _Atomic uint64_t flushes; /* flushes done for snapshots (for /metrics) */
};

int cons_snapshot_flush_init(struct cons_snapshot_flush *f);
void cons_snapshot_flush_destroy(struct cons_snapshot_flush *f);

/* How long a flush waits for invited shards to snapshot. Under load every
 * shard applies an entry every few milliseconds. */
#define CONS_SNAPSHOT_FLUSH_GATHER_MS 50

/* On the loop thread: `count` more shards were invited to snapshot. */
void cons_snapshot_flush_invite(struct cons_snapshot_flush *f, unsigned count);

/* On the loop thread, once the state a snapshot names is written (and
 * `invited`: the shard was invited): the ticket of the first flush that
 * will make it durable. */
uint64_t cons_snapshot_flush_ticket(struct cons_snapshot_flush *f, bool invited);

/* On a worker thread: returns 0 once a flush with a ticket of at least
 * `ticket` succeeded, running one if none is running (after the invited
 * shards snapshotted, or the gather time passed), or the error of the
 * flush it ran. */
int cons_snapshot_flush_wait(struct cons_snapshot_flush *f, uint64_t ticket,
                             struct log_store *log);

#endif
