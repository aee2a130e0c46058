/* SPDX-License-Identifier: Apache-2.0 */
/* Appending and truncating a shard's entries in the WAL, and releasing WAL segments. */
#include <string.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_exit.h"
#include "hd_util.h"
#include "raft_io_internal.h"
#include "wal.h"
#include "wal_record.h"

/* ------------------------------------------------------ appending, spans --- */

int cons__span_push(struct cons_shard_log *sl, uint64_t first, uint64_t last,
                    uint64_t lsn)
{
    HD_ASSERT(first > 0 && first <= last && sl->span_head <= sl->span_n);
    if (sl->span_head > 0 && sl->span_head * 2 >= sl->span_n) {
        memmove(sl->spans, sl->spans + sl->span_head,
                (sl->span_n - sl->span_head) * sizeof *sl->spans);
        sl->span_n -= sl->span_head;
        sl->span_head = 0;
    }
    int rv = hd_reserve((void **)&sl->spans, &sl->span_cap, sl->span_n + 1, sizeof *sl->spans, 64);
    if (rv != 0) {
        return rv;
    }
    sl->spans[sl->span_n++] = (struct cons_span){first, last, lsn};
    return 0;
}

/* Forgets spans at or after `index` (a truncation). */
static void cons__span_truncate(struct cons_shard_log *sl, uint64_t index)
{
    HD_ASSERT(index > 0 && sl->span_head <= sl->span_n);
    while (sl->span_n > sl->span_head && sl->spans[sl->span_n - 1].first >= index) {
        sl->span_n--;
    }
    if (sl->span_n > sl->span_head && sl->spans[sl->span_n - 1].last >= index) {
        sl->spans[sl->span_n - 1].last = index - 1;
    }
    HD_ASSERT(sl->span_n == sl->span_head || sl->spans[sl->span_n - 1].last < index);
}

/* Forgets spans whose entries are all <= index (compacted away). */
void cons__span_compact(struct cons_shard_log *sl, uint64_t index)
{
    while (sl->span_head < sl->span_n && sl->spans[sl->span_head].last <= index) {
        sl->span_head++;
    }
    HD_ASSERT(sl->span_head <= sl->span_n);
}

void cons__release(struct cons_store *s)
{
    uint64_t lsn = st_wal_next_lsn(s->wal), next = lsn;
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        if (sl->span_head < sl->span_n && sl->spans[sl->span_head].lsn < lsn) {
            lsn = sl->spans[sl->span_head].lsn;
        }
    }
    HD_ASSERT(lsn <= next); /* never past what was written */
    int rv = st_wal_release_before(s->wal, lsn);
    if (rv != 0) {
        HD_LOG_WARN("release WAL before lsn %llu: %s", (unsigned long long)lsn,
                    hd_strerror(rv));
    }
}

static void cons__append_cb(struct st_wal_append *w, int status)
{
    struct cons_append *a = w->data;
    /* Entries answer raft; small records may have a done; never both. */
    HD_ASSERT(&a->wal == w && (a->req == NULL || a->done == NULL));
    if (status != 0) {
        /* Stop, as a crash would. canonical/raft (0.15) cannot go on after a
         * failed append: a leader drops the entries from its memory while
         * followers may hold them, and may write other entries at the same
         * index in the same term; a follower keeps them in memory, never
         * writes them again, and so never acknowledges past them. A
         * restart rebuilds both from what is on disk; nothing the failed
         * write held was acknowledged. The reserve (storage/disk_space.h)
         * keeps ENOSPC from getting this far. */
        HD_LOG_ERROR("WAL write failed: %s; stopping the node (exit %d): nothing "
                     "it held was acknowledged, and a restart replays the WAL",
                     hd_strerror(status), HD_EXIT_WAL_FAILED);
        _exit(HD_EXIT_WAL_FAILED);
    }
    if (a->req != NULL) {
        a->req->cb(a->req, cons__raft_err(status));
    }
    if (a->done != NULL) {
        a->done(a, status);
    }
    struct cons_shard_log *sl = a->sl;
    hd_free(a);
    cons__pending_done(sl);
}

int cons__append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n,
                        raft_io_append_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(n > 0);
    HD_ASSERT(sl->next_index > 0 && !sl->closing);
    size_t iov_n = 1 + 2 * (size_t)n;
    size_t size = sizeof(struct cons_append) + iov_n * sizeof(struct iovec) +
                  16 + (size_t)n * CONS_REC_ENTRY_HEADER_SIZE;
    struct cons_append *a = hd_calloc(1, size);
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    struct iovec *iov = (struct iovec *)(a + 1);
    uint8_t *heads = (uint8_t *)(iov + iov_n);
    size_t head_len = cons_rec_encode_entries_head(heads, sl->shard, sl->next_index, n);
    iov[0] = (struct iovec){heads, head_len};
    uint8_t *eh = heads + 16;
    for (unsigned i = 0; i < n; i++, eh += CONS_REC_ENTRY_HEADER_SIZE) {
        cons_rec_encode_entry_head(eh, &entries[i]);
        iov[1 + 2 * i] = (struct iovec){eh, CONS_REC_ENTRY_HEADER_SIZE};
        iov[2 + 2 * i] = (struct iovec){entries[i].buf.base, entries[i].buf.len};
    }
    req->cb = cb;
    a->req = req;
    a->sl = sl;
    a->wal.data = a;
    a->wal.items = n; /* entries per group commit, for /metrics */
    int rv = st_wal_append(sl->store->wal, &a->wal, iov, (unsigned)iov_n, cons__append_cb);
    if (rv != 0) {
        hd_free(a);
        return cons__raft_err(rv);
    }
    sl->pending++;
    /* Spans are a FIFO in log and WAL order: this one after the last kept. */
    HD_ASSERT(sl->span_n == sl->span_head ||
              (sl->spans[sl->span_n - 1].last < sl->next_index &&
               sl->spans[sl->span_n - 1].lsn < a->wal.lsn));
    rv = cons__span_push(sl, sl->next_index, sl->next_index + n - 1, a->wal.lsn);
    HD_ASSERT(rv == 0 || rv == HD_ENOMEM); /* a lost span only delays release */
    sl->next_index += n;
    return 0;
}

/* Writes a small record (truncate or reset) through the WAL queue. */
int cons__append_small(struct cons_shard_log *sl, const uint8_t *rec, size_t len,
                       void (*done)(struct cons_append *, int), void *arg)
{
    HD_ASSERT(rec != NULL && len >= CONS_REC_HEADER_SIZE);
    HD_ASSERT(done != NULL || arg == NULL);
    struct cons_append *a = hd_calloc(1, sizeof *a);
    if (a == NULL) {
        return RAFT_NOMEM;
    }
    a->wal.data = a;
    a->sl = sl;
    a->done = done;
    a->done_arg = arg;
    struct iovec iov = {(void *)(uintptr_t)rec, len};
    int rv = st_wal_append(sl->store->wal, &a->wal, &iov, 1, cons__append_cb);
    if (rv != 0) {
        hd_free(a);
        return cons__raft_err(rv);
    }
    sl->pending++;
    return 0;
}

int cons__truncate(struct raft_io *io, raft_index index)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(index > 0);
    HD_ASSERT(index <= sl->next_index);
    uint8_t rec[32];
    size_t len = cons_rec_encode_truncate(rec, sl->shard, index);
    int rv = cons__append_small(sl, rec, len, NULL, NULL);
    if (rv != 0) {
        return rv;
    }
    cons__span_truncate(sl, index);
    sl->next_index = index;
    return 0;
}
