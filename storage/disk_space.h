/* SPDX-License-Identifier: Apache-2.0 */
/* The free-space reserve: watches the data directory's file system so that
 * writes are refused before the WAL or RocksDB would run out of space. */
#ifndef ST_DISK_SPACE_H
#define ST_DISK_SPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/*
 * A node keeps `reserve` bytes of its file system free. While the free
 * space (statvfs f_bavail, what an unprivileged writer may use) is below
 * the reserve, new appends are refused (HTTP 507 insufficient_storage);
 * Raft's own traffic still goes to the WAL, which writes mostly into
 * preallocated segments, so replication and elections keep working inside
 * the reserve. Reads, tails and subscriptions never look at it.
 *
 * The reading is refreshed by a timer (every `every_ms`) and, once the
 * last reading left less than twice the reserve free, on every call to
 * st_space_low: near the edge the answer is never older than the call.
 * Refusal ends by itself at the first reading at or above the reserve
 * (space freed by an operator, retention, or a bigger file system).
 *
 * The floor is half the reserve. A follower keeps taking replicated
 * entries inside the reserve, but not below the floor (st_space_floor):
 * there it stops storing what leaders send and falls behind, as if cut off,
 * rather than run the WAL out of space and stop (exit 4). It catches up by
 * itself once space returns.
 */

#define ST_SPACE_DEFAULT_RESERVE (256ull << 20) /* 256 MiB */
#define ST_SPACE_DEFAULT_EVERY_MS 1000u

struct st_space;

struct st_space_options {
    uv_loop_t *loop;      /* the timer runs here */
    const char *dir;      /* any path on the file system to watch */
    uint64_t reserve;     /* bytes to keep free; 0: never refuse */
    unsigned every_ms;    /* timer period; 0 = ST_SPACE_DEFAULT_EVERY_MS */
};

struct st_space_status {
    uint64_t reserve;      /* bytes kept free */
    uint64_t free_bytes;   /* at the last reading */
    uint64_t total_bytes;  /* size of the file system at the last reading */
    bool low;              /* free_bytes < reserve: writes are refused */
    bool below_floor;      /* free_bytes < reserve / 2: replication is refused too */
    uint64_t refused;      /* calls of st_space_low that answered true */
    uint64_t floor_refused; /* calls of st_space_floor that answered true */
    uint64_t readings;     /* statvfs calls */
    int error;             /* 0, or the HD_E* of the last failed statvfs */
};

/* Takes a first reading (so a node that starts on a full disk refuses at
 * once) and starts the timer. HD_E* with a message if dir cannot be read. */
int st_space_open(struct st_space **out, const struct st_space_options *opts,
                  char *errmsg, size_t errmsg_len);

/* Stops the timer; the memory is freed once libuv closed it. NULL is fine. */
void st_space_close(struct st_space *s);

/* True if writes must be refused now (counted in `refused`). */
bool st_space_low(struct st_space *s);

/* True if replicated writes must be refused now (below the floor; counted
 * in `floor_refused`). */
bool st_space_floor(struct st_space *s);

void st_space_status(const struct st_space *s, struct st_space_status *out);

/* Whether dir still takes a durable write: creates, writes, fdatasyncs and
 * removes a small file in it. 0, or the HD_E* of the call that failed. */
int st_space_probe(const char *dir);

#endif
