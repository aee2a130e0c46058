/* SPDX-License-Identifier: Apache-2.0 */
/* The write-ahead log: group commit on io_uring (or a pwrite fallback), segments, release. */
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fifo.h"
#include "hd_fault.h"
#include "hd_util.h"
#include "wal_internal.h"

/*
 * Design
 * ======
 *
 * Files. The WAL directory holds segments named wal-<index>.seg, where index
 * is a 16-digit hex number counting up from 1, and at most one
 * wal-<index>.prep: the next segment, preallocated and zero-filled ahead of
 * need on a thread-pool worker (so the loop never waits for 64 MiB of
 * zeros unless the log outruns the preparation). A segment is a 4 KiB
 * header block (magic, version, index, first LSN, size, salt, CRC32C) and
 * then group commits. A group commit is one write: records back to back,
 * starting at a 4 KiB-aligned offset and zero-padded to a 4 KiB boundary;
 * its first record carries the BATCH_START flag. A record is a 32-byte
 * header (magic, header CRC32C seeded with the segment's random salt, LSN,
 * payload length, payload CRC32C, flags) and the payload. Records never
 * span segments: a record that does not fit the rest of the active segment
 * goes to the next one, which is made larger than the configured size if
 * the record needs it. docs/disk-format.md has the byte layout.
 *
 * Durability rules.
 *  1. A record is acknowledged (its callback fires with 0) only after the
 *     write holding it completed with RWF_DSYNC (io_uring, O_DIRECT) or
 *     pwrite + fdatasync (fallback). One write is in flight at a time, so
 *     when a record is durable, every record before it is too.
 *  2. A new segment is zero-filled and fdatasynced as wal-N.prep; then its
 *     header is written and fdatasynced, it is renamed to wal-N.seg and the
 *     directory is fsynced, and only then is a record written to it. So
 *     every .seg file has a durable valid header, and the previous segment
 *     was complete before the next one existed.
 *  3. Never rewrite a block that holds acknowledged records. Every group
 *     commit starts at a fresh aligned offset past the previous one's
 *     padding. A torn rewrite of an old block could destroy records that
 *     were acknowledged; a torn fresh write can only lose the records it
 *     carried, which nobody was told are durable. Records handed out by
 *     replay count as acknowledged (Raft may report them to its leader).
 *  4. Recovery zeroes the blocks after a torn tail, and fdatasyncs, before
 *     the first append, so torn bytes can never be read back as records by
 *     a later recovery. The one block it must leave alone (rule 3) is
 *     covered by LSN continuity: see "remnant" below.
 *  5. Segments are deleted oldest first with a directory fsync after each,
 *     so whatever a crash keeps is a contiguous run of segments.
 *
 * States a crash can leave.
 *  - A .prep file, zero-filled or not, possibly with a header: it held no
 *    record (rule 2). Recovery deletes it.
 *  - A torn last group commit in the last segment: any subset of its
 *    sectors on disk, the rest zeros from preallocation (or, after an
 *    earlier cut, zeros from rule 4).
 *  - A recovery interrupted while zeroing: the same torn tail again.
 *  - An interrupted release: the oldest segments still present (rule 5).
 *
 * Recovery (st_wal_replay, wal_replay.c; the scanner is wal_format.c).
 * Segments are read in index order: indexes must be contiguous, headers
 * valid, and each segment's first LSN must continue the previous segment.
 * Within a segment the scan takes records while each decodes (magic, both
 * CRCs, length within the segment) and carries the next LSN; zeros up to a
 * block boundary are padding. At the first thing that is neither:
 *  - a valid group commit start at a later block means damage to data that
 *    was followed, hence acknowledged: HD_ECORRUPT naming file and offset;
 *  - only zeros after it: the clean end;
 *  - otherwise, in the last segment, a torn tail: cut there, WARN with the
 *    file, offset and bytes dropped, zero the dirty blocks (rule 4); in an
 *    earlier segment, HD_ECORRUPT, unless it is only a remnant.
 * A remnant: when recovery cuts inside a block, the rest of that block
 * keeps the torn bytes, and the next group commit starts at the next
 * boundary. A later scan skips bad bytes up to a block boundary when a
 * group commit with exactly the expected LSN starts there (or, at the end
 * of a segment, when the next segment starts with it). Skipping is safe
 * because damage to a real record loses that record's LSN, so whatever
 * follows cannot carry the expected one. The salt keeps payload bytes
 * that happen to look like records from ever decoding.
 */

int st__wal_fault_status = 0;

static void st__wal_pump(struct st_wal *w);
static void st__wal_start_release(struct st_wal *w);
static void st__wal_kick_cb(uv_prepare_t *kick);

/* ---------------------------------------------------------------- */
/* Small helpers                                                    */
/* ---------------------------------------------------------------- */

/* Grows an aligned buffer to hold `need` bytes, keeping its first `used`. */
static int st__wal_reserve(uint8_t **buf, size_t *cap, size_t used, size_t need)
{
    HD_ASSERT(used <= *cap);
    if (need <= *cap) {
        return 0;
    }
    size_t new_cap = *cap * 2 > ST__WAL_BUF_INIT ? *cap * 2 : ST__WAL_BUF_INIT;
    if (new_cap < need) {
        new_cap = (size_t)st__wal_align_up(need);
    }
    void *p = NULL;
    /* posix_memalign, not hd_malloc: O_DIRECT needs 4 KiB-aligned memory. */
    if (posix_memalign(&p, ST_WAL_BLOCK, new_cap) != 0) {
        return HD_ENOMEM;
    }
    if (used > 0) {
        memcpy(p, *buf, used);
    }
    free(*buf);
    *buf = p;
    *cap = new_cap;
    HD_ASSERT(*cap % ST_WAL_BLOCK == 0);
    return 0;
}

static void st__wal_kick(struct st_wal *w)
{
    HD_ASSERT(!w->torn_down);
    uv_prepare_start(&w->kick, st__wal_kick_cb); /* no-op if already active */
}

static void st__wal_fail(struct st_wal *w, int status, const char *what)
{
    HD_ASSERT(status < 0);
    if (!w->failed) {
        HD_LOG_ERROR("wal: %s failed: %s; the WAL is now in the failed state "
                     "until it is closed and reopened", what, hd_strerror(status));
    }
    w->failed = true;
}

/* Calls back every request of a detached list, oldest first. */
static void st__wal_fire(struct st_wal_append *list, int status)
{
    while (list != NULL) {
        struct st_wal_append *next = list->next;
        list->next = NULL;
        HD_ASSERT(list->cb != NULL);
        list->cb(list, status); /* may free list */
        list = next;
    }
}

int st__wal_push_seg(struct st_wal *w, uint64_t index, uint64_t first_lsn)
{
    HD_ASSERT(w->n_segs == 0 || w->segs[w->n_segs - 1].index + 1 == index);
    if (w->n_segs == w->cap_segs) {
        size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
        void *p = hd_realloc(w->segs, cap * sizeof *w->segs);
        if (p == NULL) {
            return HD_ENOMEM;
        }
        w->segs = p;
        w->cap_segs = cap;
    }
    w->segs[w->n_segs].index = index;
    w->segs[w->n_segs].first_lsn = first_lsn;
    w->n_segs++;
    HD_ASSERT(w->n_segs <= w->cap_segs);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Preparing the next segment                                       */
/* ---------------------------------------------------------------- */

/* Every job's work.data points back at the WAL; job fields are touched by
 * the worker only between uv_queue_work and the after-work callback. */
static void st__wal_prep_work(uv_work_t *work)
{
    struct st__wal_prep *p = &((struct st_wal *)work->data)->prep;
    HD_ASSERT(p->fd < 0);
    p->status = st__wal_prepare(p->dirfd, p->index, p->size, &p->fd);
    HD_ASSERT(p->status != 0 || p->fd >= 0);
}

static void st__wal_prep_done(uv_work_t *work, int status)
{
    struct st_wal *w = work->data;
    (void)status; /* never cancelled */
    HD_ASSERT(w->prep_busy);
    w->prep_busy = false;
    if (w->prep.status != 0) {
        /* Not sticky: the switch prepares the file itself and fails only
         * if that fails too. */
        HD_LOG_WARN("wal: preparing segment %llu failed; will retry when needed",
                    (unsigned long long)w->prep.index);
    } else if (w->closing || w->failed) {
        close(w->prep.fd); /* the .prep file is deleted at the next open */
        w->prep.fd = -1;
    } else {
        w->prep_ready = true;
    }
    st__wal_pump(w);
    if (w->closing) {
        st__wal_kick(w);
    }
}

void st__wal_start_prep(struct st_wal *w)
{
    HD_ASSERT(w->replayed);
    if (w->prep_busy || w->prep_ready || w->closing || w->failed) {
        return;
    }
    w->prep.work.data = w;
    w->prep.dirfd = w->dirfd;
    w->prep.index = w->next_index;
    w->prep.size = w->seg_size;
    w->prep.fd = -1;
    w->prep.status = 0;
    w->prep_busy = true;
    int rv = uv_queue_work(w->loop, &w->prep.work, st__wal_prep_work,
                           st__wal_prep_done);
    HD_ASSERT(rv == 0);
}

/* ---------------------------------------------------------------- */
/* Switching to the next segment                                    */
/* ---------------------------------------------------------------- */

static void st__wal_switch_work(uv_work_t *work)
{
    struct st__wal_switch *sw = &((struct st_wal *)work->data)->sw;
    int rv = 0;
    if (sw->fd < 0) {
        rv = st__wal_prepare(sw->dirfd, sw->hdr.index, sw->hdr.size, &sw->fd);
    } else if (sw->prep_size < sw->hdr.size) {
        /* A record larger than a standard segment: grow the file, with real
         * zeros again; activate's fdatasync makes them durable. */
        rv = st__wal_zero(sw->fd, sw->prep_size, sw->hdr.size);
    }
    if (rv == 0) {
        rv = st__wal_activate(sw->dirfd, sw->fd, &sw->hdr, sw->block);
    }
    if (rv != 0 && sw->fd >= 0) {
        close(sw->fd);
        sw->fd = -1;
    }
    sw->status = rv;
    HD_ASSERT(rv != 0 || sw->fd >= 0);
}

static void st__wal_switch_done(uv_work_t *work, int status)
{
    struct st_wal *w = work->data;
    struct st__wal_switch *sw = &w->sw;
    (void)status; /* never cancelled */
    HD_ASSERT(w->state == ST__WAL_SWITCHING);
    w->state = ST__WAL_IDLE;
    int rv = sw->status;
    if (rv == 0) {
        rv = st__wal_push_seg(w, sw->hdr.index, sw->hdr.first_lsn);
    }
    if (rv != 0) {
        if (sw->fd >= 0) {
            close(sw->fd);
        }
        st__wal_fail(w, rv, "activating the next segment");
    } else {
        if (w->fd >= 0) {
            close(w->fd);
        }
        w->fd = sw->fd;
        w->seg_index = sw->hdr.index;
        w->seg_bytes = sw->hdr.size;
        w->salt = sw->hdr.salt;
        w->write_off = ST_WAL_BLOCK;
        w->next_index = sw->hdr.index + 1;
        w->seg_files++;
        HD_LOG_DEBUG("wal: segment %llu active from LSN %llu",
                     (unsigned long long)sw->hdr.index,
                     (unsigned long long)sw->hdr.first_lsn);
        st__wal_start_prep(w);
    }
    sw->fd = -1;
    st__wal_pump(w);
    if (w->closing) {
        st__wal_kick(w);
    }
}

/* True if the oldest queued record does not fit the active segment. */
static bool st__wal_need_switch(const struct st_wal *w)
{
    HD_ASSERT(w->pend_head != NULL);
    HD_ASSERT(w->fd < 0 || w->write_off <= w->seg_bytes);
    return w->fd < 0 || w->pend_head->end_offset > w->seg_bytes - w->write_off;
}

static void st__wal_start_switch(struct st_wal *w)
{
    HD_ASSERT(w->state == ST__WAL_IDLE && !w->prep_busy);
    HD_ASSERT(!w->prep_ready || w->prep.index == w->next_index);
    struct st__wal_switch *sw = &w->sw;
    uint64_t need = ST_WAL_BLOCK + st__wal_align_up(w->pend_head->end_offset);
    sw->work.data = w;
    sw->dirfd = w->dirfd;
    sw->fd = w->prep_ready ? w->prep.fd : -1;
    sw->prep_size = w->prep_ready ? w->prep.size : 0;
    sw->hdr.index = w->next_index;
    sw->hdr.first_lsn = w->pend_head->lsn;
    sw->hdr.size = need > w->seg_size ? need : w->seg_size;
    sw->hdr.salt = st__wal_random_salt();
    sw->status = 0;
    w->prep_ready = false;
    w->prep.fd = -1;
    w->state = ST__WAL_SWITCHING;
    int rv = uv_queue_work(w->loop, &sw->work, st__wal_switch_work,
                           st__wal_switch_done);
    HD_ASSERT(rv == 0);
}

/* ---------------------------------------------------------------- */
/* Group commit                                                     */
/* ---------------------------------------------------------------- */

static void st__wal_write_done(struct st_wal *w, int status)
{
    HD_ASSERT(w->state == ST__WAL_WRITING);
    HD_ASSERT(w->flight_head != NULL);
    if (status == 0 && st__wal_fault_status != 0) {
        status = st__wal_fault_status;
        st__wal_fault_status = 0;
    }
    w->state = ST__WAL_IDLE;
    if (w->use_uring) {
        uv_unref((uv_handle_t *)&w->poll); /* nothing to wait for now */
    }
    struct st_wal_append *done = w->flight_head;
    w->flight_head = NULL;
    if (status == 0) {
        w->write_off += w->flight_len;
        w->stats.syncs++;
        w->stats.bytes += w->flight_len;
        hd_histogram_observe(&w->stats.sync_us, hd_mono_us() - w->flight_start_us);
        hd_histogram_observe(&w->stats.items_per_sync, w->flight_items);
    } else {
        st__wal_fail(w, status, "group commit write");
    }
    if (w->flight_cap > ST__WAL_BUF_KEEP) {
        free(w->flight); /* after a huge record; regrown on demand */
        w->flight = NULL;
        w->flight_cap = 0;
    }
    st__wal_fire(done, status);
    st__wal_pump(w);
    if (w->closing) {
        st__wal_kick(w);
    }
}

static void st__wal_submit_uring(struct st_wal *w)
{
    HD_ASSERT(w->state == ST__WAL_WRITING);
    HD_ASSERT(w->flight_done < w->flight_len);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    HD_ASSERT(sqe != NULL); /* one write at a time in a ring of several */
    io_uring_prep_write(sqe, w->fd, w->flight + w->flight_done,
                        (unsigned)(w->flight_len - w->flight_done),
                        w->flight_off + w->flight_done);
    sqe->rw_flags = HD_FAULT_ACK_BEFORE_FSYNC ? 0 : RWF_DSYNC;
    io_uring_sqe_set_data(sqe, w);
    int rv;
    do {
        rv = io_uring_submit(&w->ring);
    } while (rv == -EINTR);
    if (rv < 0) {
        HD_LOG_ERROR("wal: io_uring_submit: %s", strerror(-rv));
        st__wal_write_done(w, hd_from_errno(-rv));
        return;
    }
    uv_ref((uv_handle_t *)&w->poll); /* keep the loop alive until it lands */
}

static void st__wal_uring_result(struct st_wal *w, int res)
{
    HD_ASSERT(w->state == ST__WAL_WRITING);
    if (res >= 0 && st__wal_io_fails(ST__WAL_IO_URING_WRITE)) {
        res = -errno; /* as if the kernel had answered it */
    }
    if (res < 0) {
        HD_LOG_ERROR("wal: segment %llu write at %llu: %s",
                     (unsigned long long)w->seg_index,
                     (unsigned long long)w->flight_off, strerror(-res));
        st__wal_write_done(w, hd_from_errno(-res));
        return;
    }
    w->flight_done += (size_t)res;
    if (w->flight_done >= w->flight_len) {
        st__wal_write_done(w, 0);
    } else if (res == 0 || w->flight_done % ST_WAL_BLOCK != 0) {
        HD_LOG_ERROR("wal: segment %llu: short write of %d bytes",
                     (unsigned long long)w->seg_index, res);
        st__wal_write_done(w, HD_EIO);
    } else {
        st__wal_submit_uring(w); /* the rest; what landed is already synced */
    }
}

static void st__wal_poll_cb(uv_poll_t *poll, int status, int events)
{
    struct st_wal *w = poll->data;
    (void)events;
    if (status < 0) {
        HD_LOG_WARN("wal: eventfd poll: %s", uv_strerror(status));
    }
    uint64_t count;
    if (read(w->efd, &count, sizeof count) < 0 && errno != EAGAIN) {
        HD_LOG_WARN("wal: eventfd read: %s", strerror(errno));
    }
    struct io_uring_cqe *cqe;
    while (!w->torn_down && io_uring_peek_cqe(&w->ring, &cqe) == 0) {
        int res = cqe->res;
        HD_ASSERT(io_uring_cqe_get_data(cqe) == w);
        io_uring_cqe_seen(&w->ring, cqe);
        st__wal_uring_result(w, res);
    }
}

static void st__wal_write_work(uv_work_t *work)
{
    struct st__wal_write *wr = &((struct st_wal *)work->data)->wr;
    wr->status = st__wal_pwrite_sync(wr->fd, wr->buf, wr->len, wr->off);
}

static void st__wal_write_after(uv_work_t *work, int status)
{
    struct st_wal *w = work->data;
    (void)status; /* never cancelled */
    HD_ASSERT(w->wr.buf == w->flight);
    st__wal_write_done(w, w->wr.status);
}

/* Seals the first `len` bytes of w->pend (whole records) for the active
 * segment: salt-seeded header CRCs, BATCH_START on the first record. */
static void st__wal_seal(struct st_wal *w, size_t len)
{
    HD_ASSERT(len > 0 && len <= w->pend_len);
    size_t pos = 0;
    while (pos < len) {
        uint8_t *hdr = w->pend + pos;
        st__wal_rec_seal(hdr, w->salt, pos == 0 ? ST_WAL_REC_BATCH_START : 0);
        pos += (size_t)st__wal_rec_size(hd_get_u32(hdr + 16));
    }
    HD_ASSERT(pos == len);
#ifndef NDEBUG
    struct st__wal_rec rec; /* check the data before it goes out */
    HD_ASSERT(st__wal_decode_record(w->pend, len, w->salt, &rec) > 0);
    HD_ASSERT(rec.lsn == w->pend_head->lsn);
#endif
}

/* Moves the queued records that fit the active segment into the flight
 * buffer (swapping the two buffers) and writes them as one group commit. */
static void st__wal_start_write(struct st_wal *w)
{
    HD_ASSERT(w->state == ST__WAL_IDLE && w->flight_head == NULL);
    HD_ASSERT(!st__wal_need_switch(w));
    uint64_t room = w->seg_bytes - w->write_off;
    struct st_wal_append *last = w->pend_head;
    uint64_t items = last->items;
    while (last->next != NULL && last->next->end_offset <= room) {
        last = last->next;
        items += last->items;
    }
    size_t len = last->end_offset;
    size_t rest = w->pend_len - len;
    int rv = st__wal_reserve(&w->flight, &w->flight_cap, 0, rest);
    if (rv != 0) {
        st__wal_fail(w, rv, "allocating a write buffer");
        st__wal_pump(w); /* fails the queue, from the loop */
        return;
    }
    st__wal_seal(w, len);
    uint8_t *buf = w->pend;
    size_t cap = w->pend_cap;
    w->pend = w->flight;
    w->pend_cap = w->flight_cap;
    w->flight = buf;
    w->flight_cap = cap;
    if (rest > 0) {
        memcpy(w->pend, buf + len, rest);
    }
    w->pend_len = rest;
    w->flight_head = w->pend_head;
    w->pend_head = last->next;
    last->next = NULL;
    if (w->pend_head == NULL) {
        w->pend_tail = NULL;
    }
    for (struct st_wal_append *r = w->pend_head; r != NULL; r = r->next) {
        r->end_offset -= len;
    }
    w->flight_len = (size_t)st__wal_align_up(len);
    HD_ASSERT(w->flight_len <= w->flight_cap);
    memset(w->flight + len, 0, w->flight_len - len);
    w->flight_done = 0;
    w->flight_off = w->write_off;
    w->flight_items = items;
    w->flight_start_us = hd_mono_us();
    w->state = ST__WAL_WRITING;
    if (w->use_uring) {
        st__wal_submit_uring(w);
        return;
    }
    w->wr.work.data = w;
    w->wr.fd = w->fd;
    w->wr.buf = w->flight;
    w->wr.len = w->flight_len;
    w->wr.off = w->flight_off;
    rv = uv_queue_work(w->loop, &w->wr.work, st__wal_write_work, st__wal_write_after);
    HD_ASSERT(rv == 0);
}

/* Starts whatever the queue needs next, if the I/O slot is free. Never
 * called from st_wal_append, so callbacks it fires run from the loop. */
static void st__wal_pump(struct st_wal *w)
{
    if (w->state != ST__WAL_IDLE || w->torn_down) {
        return;
    }
    if (w->failed) {
        struct st_wal_append *list = w->pend_head;
        w->pend_head = NULL;
        w->pend_tail = NULL;
        w->pend_len = 0;
        st__wal_fire(list, HD_EFAILED);
        return;
    }
    if (w->pend_head == NULL) {
        return;
    }
    if (!st__wal_need_switch(w)) {
        st__wal_start_write(w);
    } else if (!w->prep_busy) {
        st__wal_start_switch(w);
    } /* else prep_done pumps again */
}

/* ---------------------------------------------------------------- */
/* Release                                                          */
/* ---------------------------------------------------------------- */

static void st__wal_release_work(uv_work_t *work)
{
    struct st__wal_release *rel = &((struct st_wal *)work->data)->rel;
    HD_ASSERT(rel->n > 0);
    rel->removed = 0;
    while (rel->removed < rel->n &&
           st__wal_remove(rel->dirfd, rel->indexes[rel->removed]) == 0) {
        rel->removed++;
    }
    HD_ASSERT(rel->removed <= rel->n);
}

static void st__wal_release_done(uv_work_t *work, int status)
{
    struct st_wal *w = work->data;
    (void)status; /* never cancelled */
    HD_ASSERT(w->rel_busy);
    HD_ASSERT(w->seg_files >= w->rel.removed);
    if (w->rel.removed < w->rel.n) {
        /* Not sticky: the files stay and replay reads them again; later
         * ones are not tried, which keeps the survivors contiguous. */
        HD_LOG_ERROR("wal: deleting released segment %llu failed; kept on disk",
                     (unsigned long long)w->rel.indexes[w->rel.removed]);
    }
    w->seg_files -= w->rel.removed;
    hd_free(w->rel.indexes);
    w->rel.indexes = NULL;
    w->rel_busy = false;
    if (w->closing) {
        st__wal_kick(w);
    } else {
        st__wal_start_release(w);
    }
}

/* Hands every segment wholly below release_lsn, except the active one, to
 * a worker that deletes them. One job at a time keeps deletions ordered. */
static void st__wal_start_release(struct st_wal *w)
{
    HD_ASSERT(!w->torn_down);
    size_t n = 0;
    while (n + 1 < w->n_segs && w->segs[n + 1].first_lsn <= w->release_lsn) {
        n++;
    }
    if (w->rel_busy || n == 0) {
        return;
    }
    uint64_t *indexes = hd_malloc(n * sizeof *indexes);
    if (indexes == NULL) {
        return; /* tried again at the next release */
    }
    for (size_t i = 0; i < n; i++) {
        indexes[i] = w->segs[i].index;
    }
    memmove(w->segs, w->segs + n, (w->n_segs - n) * sizeof *w->segs);
    w->n_segs -= n;
    w->rel.work.data = w;
    w->rel.dirfd = w->dirfd;
    w->rel.indexes = indexes;
    w->rel.n = n;
    w->rel_busy = true;
    int rv = uv_queue_work(w->loop, &w->rel.work, st__wal_release_work,
                           st__wal_release_done);
    HD_ASSERT(rv == 0 && w->n_segs >= 1);
}

int st_wal_release_before(struct st_wal *w, uint64_t lsn)
{
    HD_ASSERT(w != NULL && !w->closing);
    HD_ASSERT(w->replayed);
    if (lsn > w->release_lsn) {
        w->release_lsn = lsn;
    }
    st__wal_start_release(w);
    return 0;
}

/* ---------------------------------------------------------------- */
/* Appending                                                        */
/* ---------------------------------------------------------------- */

int st_wal_append(struct st_wal *w, struct st_wal_append *req,
                  const struct iovec *iov, unsigned n, st_wal_append_cb cb)
{
    HD_ASSERT(w != NULL && req != NULL && cb != NULL);
    HD_ASSERT(w->replayed && !w->closing);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        if (iov[i].iov_len > ST_WAL_RECORD_MAX - len) {
            return HD_ETOOBIG;
        }
        len += iov[i].iov_len;
    }
    if (w->failed) {
        return HD_EFAILED;
    }
    size_t size = (size_t)st__wal_rec_size(len);
    int rv = st__wal_reserve(&w->pend, &w->pend_cap, w->pend_len, w->pend_len + size);
    if (rv != 0) {
        return rv;
    }
    uint8_t *hdr = w->pend + w->pend_len;
    uint8_t *p = hdr + ST_WAL_REC_HDR_SIZE;
    uint32_t crc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (iov[i].iov_len > 0) {
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
            crc = hd_crc32c(crc, p, iov[i].iov_len); /* of the copy we write */
            p += iov[i].iov_len;
        }
    }
    st__wal_rec_begin(hdr, w->next_lsn, (uint32_t)len, crc);
    w->pend_len += size;
    req->lsn = w->next_lsn++;
    req->cb = cb;
    req->end_offset = w->pend_len;
    HD_FIFO_PUSH(w->pend_head, w->pend_tail, req);
    w->stats.appends++;
    if (w->state == ST__WAL_IDLE) {
        st__wal_kick(w); /* written when the loop turns: batches this turn */
    }
    return 0;
}

/* ---------------------------------------------------------------- */
/* Opening and closing                                              */
/* ---------------------------------------------------------------- */

static void st__wal_teardown(struct st_wal *w);

/* The prepare handle runs once per loop turn while started: it submits
 * what the turn queued (one group commit for all of it) and finishes a
 * close. Teardown happens only here, never inside a completion that is
 * still walking the ring. */
static void st__wal_kick_cb(uv_prepare_t *kick)
{
    struct st_wal *w = kick->data;
    HD_ASSERT(!w->torn_down);
    uv_prepare_stop(kick);
    st__wal_pump(w);
    if (w->closing && w->state == ST__WAL_IDLE && w->pend_head == NULL &&
        !w->prep_busy && !w->rel_busy) {
        st__wal_teardown(w);
    }
}

/* Sets up io_uring with an eventfd watched by the loop; 0 or HD_E*. */
static int st__wal_setup_uring(struct st_wal *w)
{
    HD_ASSERT(!w->use_uring && w->efd < 0);
    int rv = io_uring_queue_init(ST__WAL_RING_DEPTH, &w->ring, 0);
    if (rv < 0) {
        HD_LOG_INFO("wal: io_uring_queue_init: %s", strerror(-rv));
        return hd_from_errno(-rv);
    }
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        rv = hd_from_errno(errno);
        goto err_after_ring;
    }
    rv = io_uring_register_eventfd(&w->ring, w->efd);
    if (rv < 0) {
        HD_LOG_INFO("wal: io_uring_register_eventfd: %s", strerror(-rv));
        rv = hd_from_errno(-rv);
        goto err_after_efd;
    }
    rv = uv_poll_init(w->loop, &w->poll, w->efd);
    if (rv != 0) {
        rv = HD_EIO;
        goto err_after_efd;
    }
    w->poll.data = w;
    w->poll_open = true;
    w->handles_open++;
    uv_unref((uv_handle_t *)&w->poll); /* referenced only while a write flies */
    if (uv_poll_start(&w->poll, UV_READABLE, st__wal_poll_cb) != 0) {
        io_uring_queue_exit(&w->ring); /* efd and poll go at teardown */
        return HD_EIO;
    }
    w->use_uring = true;
    return 0;

err_after_efd:
    close(w->efd);
    w->efd = -1;
err_after_ring:
    io_uring_queue_exit(&w->ring);
    HD_ASSERT(rv != 0);
    return rv;
}

static void st__wal_free(struct st_wal *w)
{
    HD_ASSERT(w->handles_open == 0);
    HD_ASSERT(w->pend_head == NULL && w->flight_head == NULL);
    if (w->efd >= 0) {
        close(w->efd);
    }
    if (w->dirfd >= 0) {
        close(w->dirfd);
    }
    free(w->pend);
    free(w->flight);
    free(w->sw.block);
    hd_free(w->segs);
    hd_free(w);
}

/* Checks the options and fills in the parts of w that cannot fail late. */
static int st__wal_init(struct st_wal *w, const struct st_wal_options *opts,
                        char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(opts->loop != NULL && opts->dir != NULL);
    w->loop = opts->loop;
    w->dirfd = -1;
    w->efd = -1;
    w->fd = -1;
    w->prep.fd = -1;
    w->sw.fd = -1;
    w->next_lsn = 1;
    w->next_index = 1;
    w->seg_size = opts->segment_size != 0 ? opts->segment_size : 64u << 20;
    if (w->seg_size % ST_WAL_BLOCK != 0 || w->seg_size < 2 * ST_WAL_BLOCK) {
        snprintf(errmsg, errmsg_len, "wal: segment size %llu is not a multiple "
                 "of %u of at least two blocks",
                 (unsigned long long)w->seg_size, ST_WAL_BLOCK);
        return HD_EINVAL;
    }
    if (mkdir(opts->dir, 0755) != 0 && errno != EEXIST) {
        int err = errno;
        snprintf(errmsg, errmsg_len, "wal: mkdir %s: %s", opts->dir, strerror(err));
        return hd_from_errno(err);
    }
    w->dirfd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        int err = errno;
        snprintf(errmsg, errmsg_len, "wal: open %s: %s", opts->dir, strerror(err));
        return hd_from_errno(err);
    }
    void *block = NULL;
    if (posix_memalign(&block, ST_WAL_BLOCK, ST_WAL_BLOCK) != 0 ||
        st__wal_reserve(&w->pend, &w->pend_cap, 0, ST__WAL_BUF_INIT) != 0 ||
        st__wal_reserve(&w->flight, &w->flight_cap, 0, ST__WAL_BUF_INIT) != 0) {
        w->sw.block = block;
        snprintf(errmsg, errmsg_len, "wal: out of memory");
        return HD_ENOMEM;
    }
    w->sw.block = block;
    return 0;
}

int st_wal_open(struct st_wal **out, const struct st_wal_options *opts,
                char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(out != NULL && opts != NULL);
    HD_ASSERT(errmsg != NULL && errmsg_len > 0);
    struct st_wal *w = hd_calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(errmsg, errmsg_len, "wal: out of memory");
        return HD_ENOMEM;
    }
    int rv = st__wal_init(w, opts, errmsg, errmsg_len);
    if (rv != 0) {
        st__wal_free(w);
        return rv;
    }
    uv_prepare_init(w->loop, &w->kick); /* cannot fail */
    w->kick.data = w;
    w->handles_open++;
    if (opts->no_uring) {
        HD_LOG_INFO("wal: %s: io_uring disabled by option", opts->dir);
    } else if (st__wal_setup_uring(w) != 0) {
        HD_LOG_INFO("wal: %s: io_uring unavailable", opts->dir);
    }
    HD_LOG_INFO("wal: %s: writing with %s", opts->dir,
                w->use_uring ? "io_uring (O_DIRECT, RWF_DSYNC)"
                             : "pwrite + fdatasync on the thread pool");
    *out = w;
    return 0;
}

static void st__wal_handle_closed(uv_handle_t *h)
{
    struct st_wal *w = h->data;
    HD_ASSERT(w->handles_open > 0);
    if (--w->handles_open > 0) {
        return;
    }
    void (*cb)(void *) = w->close_cb;
    void *arg = w->close_arg;
    st__wal_free(w);
    if (cb != NULL) {
        cb(arg);
    }
}

static void st__wal_teardown(struct st_wal *w)
{
    HD_ASSERT(w->state == ST__WAL_IDLE && !w->prep_busy && !w->rel_busy);
    HD_ASSERT(!w->torn_down);
    w->torn_down = true;
    if (w->prep_ready) {
        close(w->prep.fd); /* the .prep file is deleted at the next open */
        w->prep_ready = false;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->use_uring) {
        io_uring_queue_exit(&w->ring);
    }
    if (w->poll_open) {
        uv_close((uv_handle_t *)&w->poll, st__wal_handle_closed);
    }
    uv_close((uv_handle_t *)&w->kick, st__wal_handle_closed);
}

void st_wal_close(struct st_wal *w, void (*cb)(void *arg), void *arg)
{
    HD_ASSERT(w != NULL);
    HD_ASSERT(!w->closing);
    w->closing = true;
    w->close_cb = cb;
    w->close_arg = arg;
    st__wal_kick(w); /* queued appends are still written first */
}

/* ---------------------------------------------------------------- */
/* Accessors                                                        */
/* ---------------------------------------------------------------- */

uint64_t st_wal_next_lsn(const struct st_wal *w)
{
    HD_ASSERT(w != NULL);
    return w->next_lsn;
}

bool st_wal_uses_uring(const struct st_wal *w)
{
    HD_ASSERT(w != NULL);
    return w->use_uring;
}

void st_wal_stats(const struct st_wal *w, struct st_wal_stats *out)
{
    HD_ASSERT(w != NULL && out != NULL);
    *out = w->stats;
    out->segments = w->seg_files;
}
