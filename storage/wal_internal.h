/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of the write-ahead log, shared by wal.c, wal_file.c and wal_replay.c. */
#ifndef ST_WAL_INTERNAL_H
#define ST_WAL_INTERNAL_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "wal.h"
#include "wal_format.h"

#define ST__WAL_NAME_MAX 32            /* "wal-<16 hex>.prep" and a NUL */
#define ST__WAL_BUF_INIT (256u * 1024u) /* initial size of each write buffer */
#define ST__WAL_BUF_KEEP (8u * 1024u * 1024u) /* larger idle buffers are freed */
#define ST__WAL_RING_DEPTH 8u           /* one write is in flight at a time */

/* A live segment file, oldest first in st_wal.segs. */
struct st__wal_seg {
    uint64_t index;     /* file wal-<index>.seg */
    uint64_t first_lsn; /* from its header */
};

/* What the single I/O slot is doing; prep and release run beside it. */
enum st__wal_state {
    ST__WAL_IDLE,      /* nothing in flight */
    ST__WAL_WRITING,   /* a group commit write is in flight */
    ST__WAL_SWITCHING  /* the next segment is being activated */
};

/* Preparing (preallocating, zero-filling) the next segment on a worker. */
struct st__wal_prep {
    uv_work_t work;   /* libuv thread-pool request */
    int dirfd;        /* in: directory */
    uint64_t index;   /* in: segment number */
    uint64_t size;    /* in: bytes */
    int fd;           /* out: open file, or -1 */
    int status;       /* out: 0 or HD_E* */
};

/* Activating a prepared segment (header, rename, directory fsync). */
struct st__wal_switch {
    uv_work_t work;               /* libuv thread-pool request */
    int dirfd;                    /* in: directory */
    int fd;                       /* in: prepared file or -1; out: the segment */
    uint64_t prep_size;           /* in: bytes the prepared file has */
    struct st__wal_seg_hdr hdr;   /* in: header to write */
    uint8_t *block;               /* in: aligned ST_WAL_BLOCK scratch */
    int status;                   /* out: 0 or HD_E* */
};

/* A group commit written by pwrite + fdatasync (fallback mode). */
struct st__wal_write {
    uv_work_t work;     /* libuv thread-pool request */
    int fd;             /* in: segment */
    const uint8_t *buf; /* in: aligned data */
    size_t len;         /* in: bytes, a multiple of ST_WAL_BLOCK */
    uint64_t off;       /* in: file offset */
    int status;         /* out: 0 or HD_E* */
};

/* Deleting released segments, oldest first, on a worker. */
struct st__wal_release {
    uv_work_t work;     /* libuv thread-pool request */
    int dirfd;          /* in: directory */
    uint64_t *indexes;  /* in: segments to delete, oldest first (owned) */
    size_t n;           /* in: count */
    size_t removed;     /* out: how many were deleted before any error */
};

struct st_wal {
    uv_loop_t *loop;            /* callbacks run here */
    int dirfd;                  /* the WAL directory */
    uint64_t seg_size;          /* size of new segments */
    bool use_uring;             /* io_uring, or the pwrite fallback */
    struct io_uring ring;       /* valid if use_uring */
    int efd;                    /* eventfd signalled by the ring, or -1 */
    uv_poll_t poll;             /* watches efd */
    uv_prepare_t kick;          /* submits queued appends once per loop turn */
    bool poll_open;             /* poll was initialised (close it at teardown) */
    int handles_open;           /* handles still to close at teardown */

    enum st__wal_state state;   /* the I/O slot */
    bool replayed;              /* st_wal_replay succeeded */
    bool failed;                /* sticky failed state */
    bool closing;               /* st_wal_close called */
    bool torn_down;             /* teardown started */
    uint64_t next_lsn;          /* LSN of the next append */

    int fd;                     /* active segment, -1 if none yet */
    uint64_t seg_index;         /* its number (0 if none) */
    uint64_t seg_bytes;         /* its size */
    uint64_t write_off;         /* where its next group commit goes */
    uint32_t salt;              /* its record salt */
    uint64_t next_index;        /* number of the next segment to create */

    struct st__wal_seg *segs;   /* live segments, oldest first, active last */
    size_t n_segs;              /* entries used */
    size_t cap_segs;            /* entries allocated */
    uint64_t seg_files;         /* segment files on disk */

    uint8_t *pend;              /* encoded records queued for the next write */
    size_t pend_len;            /* bytes used */
    size_t pend_cap;            /* bytes allocated (multiple of ST_WAL_BLOCK) */
    struct st_wal_append *pend_head; /* their requests, oldest first */
    struct st_wal_append *pend_tail; /* last queued request */

    uint8_t *flight;            /* the write in flight */
    size_t flight_cap;          /* bytes allocated */
    size_t flight_len;          /* bytes to write (padded) */
    size_t flight_done;         /* bytes written so far (short writes) */
    uint64_t flight_off;        /* file offset of the write */
    struct st_wal_append *flight_head; /* its requests, oldest first */
    uint64_t flight_items;      /* their items, for the stats */
    uint64_t flight_start_us;   /* hd_mono_us() when it was submitted */

    struct st__wal_prep prep;   /* next segment being prepared */
    bool prep_busy;             /* prep is running on a worker */
    bool prep_ready;            /* prep.fd holds a prepared file */
    struct st__wal_switch sw;   /* segment activation */
    struct st__wal_write wr;    /* fallback write */
    struct st__wal_release rel; /* segment deletion */
    bool rel_busy;              /* rel is running on a worker */
    uint64_t release_lsn;       /* highest st_wal_release_before argument */

    struct st_wal_stats stats;  /* counters */
    void (*close_cb)(void *arg); /* st_wal_close's callback */
    void *close_arg;            /* and its argument */
};

/* wal_file.c: blocking file operations, run on workers (or at replay). */
void st__wal_name(char *buf, uint64_t index, bool prepared);
int st__wal_open_file(int dirfd, const char *name, int flags);
int st__wal_zero(int fd, uint64_t from, uint64_t to);
int st__wal_prepare(int dirfd, uint64_t index, uint64_t size, int *fd_out);
int st__wal_activate(int dirfd, int fd, const struct st__wal_seg_hdr *hdr,
                     uint8_t *block);
int st__wal_pwrite_sync(int fd, const uint8_t *buf, size_t len, uint64_t off);
int st__wal_remove(int dirfd, uint64_t index);
int st__wal_fsync_dir(int dirfd);
uint32_t st__wal_random_salt(void);

/* wal.c: segment list upkeep, also used by replay. */
int st__wal_push_seg(struct st_wal *w, uint64_t index, uint64_t first_lsn);
void st__wal_start_prep(struct st_wal *w);

/* Test hook: when non-zero, the next group commit completes with this
 * status (an HD_E* code) as if the disk had returned it. */
extern int st__wal_fault_status;

/* Test hook, the I/O analogue of the allocation hook: every call the WAL
 * makes to the file system asks it first (on whichever thread makes the
 * call). A non-zero answer is an errno (EIO, ENOSPC, ...) the call then
 * fails with, without being made. NULL (the default) injects nothing. */
enum st__wal_io_site {
    ST__WAL_IO_CREATE,     /* openat of a new segment */
    ST__WAL_IO_FALLOCATE,  /* preallocating it */
    ST__WAL_IO_PWRITE,     /* zeroing, headers, fallback group commits */
    ST__WAL_IO_FDATASYNC,  /* every data sync */
    ST__WAL_IO_RENAME,     /* .prep to .seg */
    ST__WAL_IO_FSYNC_DIR,  /* the directory */
    ST__WAL_IO_URING_WRITE, /* a group commit's io_uring write (its result) */
    ST__WAL_IO_SITES
};
extern int (*st__wal_io_hook)(enum st__wal_io_site site);
/* Asks the hook; on an injected error sets errno and returns true. */
bool st__wal_io_fails(enum st__wal_io_site site);

#endif
