/* SPDX-License-Identifier: Apache-2.0 */
/* struct raft_io over the node's WAL: load, append, truncate, snapshots, timers. */
#include "raft_io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fifo.h"
#include "hd_util.h"
#include "meta_file.h"
#include "raft_io_internal.h"
#include "wal.h"
#include "wal_record.h"

/* ------------------------------------------------------------- helpers --- */

static struct cons_shard_log *cons__sl(struct raft_io *io) { return io->impl; }

static int cons__raft_err(int rv)
{
    switch (rv) {
        case 0:
            return 0;
        case HD_ENOMEM:
            return RAFT_NOMEM;
        case HD_ECORRUPT:
            return RAFT_CORRUPT;
        case HD_ETOOBIG:
            return RAFT_TOOBIG;
        default:
            return RAFT_IOERR;
    }
}

/* Runs fn(arg) on the next loop iteration: raft requires callbacks of
 * snapshot_put and snapshot_get to be asynchronous. */
struct cons_deferred {
    uv_timer_t timer;
    void (*fn)(void *arg);
    void *arg;
};

static void cons__deferred_closed(uv_handle_t *h) { hd_free(h->data); }

static void cons__deferred_fire(uv_timer_t *t)
{
    struct cons_deferred *d = t->data;
    d->fn(d->arg);
    uv_close((uv_handle_t *)&d->timer, cons__deferred_closed);
}

static int cons__defer(struct cons_store *s, void (*fn)(void *), void *arg)
{
    struct cons_deferred *d = hd_calloc(1, sizeof *d);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    d->fn = fn;
    d->arg = arg;
    uv_timer_init(s->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, cons__deferred_fire, 0, 0);
    return 0;
}

/* -------------------------------------------------------- term and vote --- */

int cons__store_votes(struct cons_store *s)
{
    uint8_t *blob = hd_malloc((size_t)s->n_shards * 16);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    for (unsigned i = 0; i < s->n_shards; i++) {
        hd_put_u64(blob + i * 16, s->shards[i].term);
        hd_put_u64(blob + i * 16 + 8, s->shards[i].voted_for);
    }
    int rv = st_meta_file_store(&s->votes, blob, (size_t)s->n_shards * 16);
    hd_free(blob);
    if (rv != 0) {
        HD_LOG_ERROR("store term/vote: %s", hd_strerror(rv));
    }
    return rv;
}

static int cons__load_votes(struct cons_store *s, char *errmsg, size_t errmsg_len)
{
    size_t cap = (size_t)s->n_shards * 16, len = 0;
    uint8_t *blob = hd_malloc(cap);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    int rv = st_meta_file_load(&s->votes, blob, cap, &len);
    if (rv == HD_ENOTFOUND) {
        rv = 0;
    } else if (rv == 0 && len != cap) {
        snprintf(errmsg, errmsg_len, "term/vote file holds %zu shards, expected %u",
                 len / 16, s->n_shards);
        rv = HD_ECORRUPT;
    } else if (rv == 0) {
        for (unsigned i = 0; i < s->n_shards; i++) {
            s->shards[i].term = hd_get_u64(blob + i * 16);
            s->shards[i].voted_for = hd_get_u64(blob + i * 16 + 8);
        }
    } else {
        snprintf(errmsg, errmsg_len, "load term/vote: %s", hd_strerror(rv));
    }
    hd_free(blob);
    return rv;
}

static int cons__set_term(struct raft_io *io, raft_term term)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(term >= sl->term);
    sl->term = term;
    sl->voted_for = 0;
    return cons__raft_err(cons__store_votes(sl->store));
}

static int cons__set_vote(struct raft_io *io, raft_id server_id)
{
    struct cons_shard_log *sl = cons__sl(io);
    sl->voted_for = server_id;
    return cons__raft_err(cons__store_votes(sl->store));
}

/* ------------------------------------------------------ appending, spans --- */

int cons__span_push(struct cons_shard_log *sl, uint64_t first, uint64_t last,
                    uint64_t lsn)
{
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
    while (sl->span_n > sl->span_head && sl->spans[sl->span_n - 1].first >= index) {
        sl->span_n--;
    }
    if (sl->span_n > sl->span_head && sl->spans[sl->span_n - 1].last >= index) {
        sl->spans[sl->span_n - 1].last = index - 1;
    }
}

/* Forgets spans whose entries are all <= index (compacted away). */
static void cons__span_compact(struct cons_shard_log *sl, uint64_t index)
{
    while (sl->span_head < sl->span_n && sl->spans[sl->span_head].last <= index) {
        sl->span_head++;
    }
}

static void cons__release(struct cons_store *s)
{
    uint64_t lsn = st_wal_next_lsn(s->wal);
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        if (sl->span_head < sl->span_n && sl->spans[sl->span_head].lsn < lsn) {
            lsn = sl->spans[sl->span_head].lsn;
        }
    }
    int rv = st_wal_release_before(s->wal, lsn);
    if (rv != 0) {
        HD_LOG_WARN("release WAL before lsn %llu: %s", (unsigned long long)lsn,
                    hd_strerror(rv));
    }
}

struct cons_append {
    struct st_wal_append wal;
    struct cons_shard_log *sl;
    struct raft_io_append *req;  /* NULL for truncations and resets */
    void (*done)(struct cons_append *a, int status); /* for resets */
    void *done_arg;
};

static void cons__append_cb(struct st_wal_append *w, int status)
{
    struct cons_append *a = w->data;
    if (status != 0) {
        HD_LOG_ERROR("WAL write failed: %s", hd_strerror(status));
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

static int cons__append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n,
                        raft_io_append_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(n > 0);
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
    int rv = st_wal_append(sl->store->wal, &a->wal, iov, (unsigned)iov_n, cons__append_cb);
    if (rv != 0) {
        hd_free(a);
        return cons__raft_err(rv);
    }
    sl->pending++;
    rv = cons__span_push(sl, sl->next_index, sl->next_index + n - 1, a->wal.lsn);
    HD_ASSERT(rv == 0 || rv == HD_ENOMEM); /* a lost span only delays release */
    sl->next_index += n;
    return 0;
}

/* Writes a small record (truncate or reset) through the WAL queue. */
static int cons__append_small(struct cons_shard_log *sl, const uint8_t *rec, size_t len,
                              void (*done)(struct cons_append *, int), void *arg)
{
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

static int cons__truncate(struct raft_io *io, raft_index index)
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

/* ------------------------------------------------------------ lifecycle --- */

static int cons__init(struct raft_io *io, raft_id id, const char *address)
{
    (void)address;
    struct cons_shard_log *sl = cons__sl(io);
    sl->id = id;
    sl->rng = hd_hash64(&id, sizeof id) ^ hd_mono_us() ^ sl->shard;
    return 0;
}

static void cons__tick(uv_timer_t *t)
{
    struct cons_shard_log *sl = t->data;
    if (sl->tick != NULL) {
        sl->tick(&sl->io);
    }
}

static int cons__start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(!sl->started);
    sl->tick = tick;
    sl->recv = recv;
    sl->started = true;
    uv_timer_start(&sl->tick_timer, cons__tick, msecs, msecs);
    return 0;
}

static void cons__timer_closed(uv_handle_t *h)
{
    struct cons_shard_log *sl = h->data;
    if (sl->close_cb != NULL) {
        sl->close_cb(&sl->io);
    }
}

static void cons__close_finish(struct cons_shard_log *sl)
{
    uv_close((uv_handle_t *)&sl->tick_timer, cons__timer_closed);
}

void cons__pending_done(struct cons_shard_log *sl)
{
    HD_ASSERT(sl->pending > 0);
    sl->pending--;
    if (sl->closing && sl->pending == 0) {
        cons__close_finish(sl);
    }
}

static void cons__close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(!sl->closing);
    sl->close_cb = cb;
    sl->tick = NULL;
    sl->closing = true;
    uv_timer_stop(&sl->tick_timer);
    if (sl->pending == 0) {
        cons__close_finish(sl);
    }
}

static raft_time cons__time(struct raft_io *io)
{
    return uv_now(cons__sl(io)->store->loop);
}

static int cons__random(struct raft_io *io, int min, int max)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(max >= min);
    /* xorshift64: election timeouts only need to differ between nodes. */
    sl->rng ^= sl->rng << 13;
    sl->rng ^= sl->rng >> 7;
    sl->rng ^= sl->rng << 17;
    return min + (int)(sl->rng % (uint64_t)(max - min + 1));
}

static void cons__sends_run(uv_idle_t *h)
{
    struct cons_store *s = h->data;
    struct cons_send_done *d = s->sends_head;
    s->sends_head = s->sends_tail = NULL;
    uv_idle_stop(h);
    while (d != NULL) {
        struct cons_send_done *next = d->next;
        struct cons_shard_log *sl = d->sl;
        if (d->req->cb != NULL) { /* raft sends TimeoutNow without one */
            d->req->cb(d->req, d->status);
        }
        hd_free(d);
        cons__pending_done(sl);
        d = next;
    }
}

static int cons__send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *message, raft_io_send_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    struct cons_store *s = sl->store;
    if (s->send == NULL) {
        return RAFT_NOCONNECTION; /* a one-node cluster has no one to send to */
    }
    struct cons_send_done *d = hd_calloc(1, sizeof *d);
    if (d == NULL) {
        return RAFT_NOMEM;
    }
    int rv = s->send(s->send_arg, sl->shard, message->server_id, message);
    /* The transport copied the message; raft may reuse it once cb fires. A
     * failed send is reported through cb too: raft retries on its own. */
    req->cb = cb;
    *d = (struct cons_send_done){req, sl, rv == 0 ? 0 : RAFT_NOCONNECTION, NULL};
    HD_FIFO_PUSH(s->sends_head, s->sends_tail, d);
    sl->pending++;
    uv_idle_start(&s->sends_idle, cons__sends_run);
    return 0;
}

void cons_store_set_sender(struct cons_store *s,
                           int (*send)(void *arg, unsigned shard, raft_id to,
                                       const struct raft_message *m),
                           void *arg)
{
    s->send = send;
    s->send_arg = arg;
}

bool cons_store_deliver(struct cons_store *s, unsigned shard, struct raft_message *m)
{
    if (shard >= s->n_shards) {
        return false;
    }
    struct cons_shard_log *sl = &s->shards[shard];
    if (!sl->started || sl->closing || sl->recv == NULL) {
        return false;
    }
    sl->recv(&sl->io, m);
    return true;
}

static int cons__recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)io;
    (void)conf;
    return RAFT_NOTFOUND;
}

struct cons_work {
    uv_work_t work;
    struct cons_shard_log *sl;
    struct raft_io_async_work *req;
    int status;
};

static void cons__work_run(uv_work_t *w)
{
    struct cons_work *cw = w->data;
    cw->status = cw->req->work(cw->req);
}

static void cons__work_done(uv_work_t *w, int status)
{
    struct cons_work *cw = w->data;
    struct cons_shard_log *sl = cw->sl;
    cw->req->cb(cw->req, status != 0 ? RAFT_CANCELED : cw->status);
    hd_free(cw);
    cons__pending_done(sl);
}

static int cons__async_work(struct raft_io *io, struct raft_io_async_work *req,
                            raft_io_async_work_cb cb)
{
    struct cons_work *cw = hd_calloc(1, sizeof *cw);
    if (cw == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    cw->req = req;
    cw->sl = cons__sl(io);
    cw->work.data = cw;
    int rv = uv_queue_work(cw->sl->store->loop, &cw->work, cons__work_run, cons__work_done);
    if (rv != 0) {
        hd_free(cw);
        return RAFT_IOERR;
    }
    cw->sl->pending++;
    return 0;
}

void cons__io_setup(struct cons_shard_log *sl)
{
    struct raft_io *io = &sl->io;
    memset(io, 0, sizeof *io);
    io->version = 2;
    io->impl = sl;
    io->init = cons__init;
    io->close = cons__close;
    io->load = cons__load;
    io->start = cons__start;
    io->bootstrap = cons__bootstrap;
    io->recover = cons__recover;
    io->set_term = cons__set_term;
    io->set_vote = cons__set_vote;
    io->send = cons__send;
    io->append = cons__append;
    io->truncate = cons__truncate;
    io->snapshot_put = cons__snapshot_put;
    io->snapshot_get = cons__snapshot_get;
    io->time = cons__time;
    io->random = cons__random;
    io->async_work = cons__async_work;
    uv_timer_init(sl->store->loop, &sl->tick_timer);
    sl->tick_timer.data = sl;
}

/* --------------------------------------------------- snapshot put / get --- */

struct cons_snap_put {
    struct cons_shard_log *sl;
    struct raft_io_snapshot_put *req;
    int status;
    const struct raft_snapshot *snapshot; /* raft's, alive until req->cb */
};

static void cons__snapshot_put_done(void *arg)
{
    struct cons_snap_put *p = arg;
    struct cons_shard_log *sl = p->sl;
    p->req->cb(p->req, p->status);
    hd_free(p);
    cons__pending_done(sl);
}

static void cons__reset_written(struct cons_append *a, int status)
{
    struct cons_snap_put *p = a->done_arg;
    p->status = cons__raft_err(status);
    /* The RESET record's own pending count is dropped by cons__append_cb. */
    p->sl->pending++;
    cons__snapshot_put_done(p);
}

/* Installs a snapshot received from the leader: its manifest is written,
 * then a RESET record replaces the shard's log. Any failure is reported to
 * raft through the callback (it retries the snapshot later). */
static void cons__install_snapshot(struct cons_snap_put *p)
{
    struct cons_shard_log *sl = p->sl;
    const struct raft_snapshot *snapshot = p->snapshot;
    int rv = cons__snapshot_store(sl, snapshot);
    if (rv == 0) {
        uint8_t rec[32];
        size_t len = cons_rec_encode_reset(rec, sl->shard, snapshot->index, snapshot->term);
        rv = cons__append_small(sl, rec, len, cons__reset_written, p);
    }
    if (rv != 0) {
        p->status = cons__raft_err(rv);
        p->sl->pending++; /* dropped again by cons__snapshot_put_done */
        cons__snapshot_put_done(p);
        return;
    }
    sl->span_head = sl->span_n = 0;
    sl->next_index = snapshot->index + 1;
    cons__release(sl->store);
}

/* The state of the snapshot is here (or the copy failed). */
static void cons__caught_up(void *ctx, int status)
{
    struct cons_snap_put *p = ctx;
    cons__pending_done(p->sl); /* the catch-up's own count */
    if (status != 0) {
        HD_LOG_WARN("shard %u: state for snapshot %llu not received: %s; raft will retry",
                    p->sl->shard, (unsigned long long)p->snapshot->index, hd_strerror(status));
        p->status = RAFT_IOERR;
        p->sl->pending++;
        cons__snapshot_put_done(p);
        return;
    }
    cons__install_snapshot(p);
}

int cons__snapshot_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    struct cons_store *s = sl->store;
    struct cons_snap_put *p = hd_calloc(1, sizeof *p);
    if (p == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    *p = (struct cons_snap_put){sl, req, 0, snapshot};
    if (trailing == 0) {
        /* The whole log is replaced by a snapshot from the leader. Its
         * manifest names applied state this node may not have: the node
         * fetches that first (raft keeps `snapshot` alive until cb). */
        sl->pending++;
        if (s->catch_up != NULL) {
            int rv = s->catch_up(s->catch_up_arg, sl->shard, snapshot, cons__caught_up, p);
            if (rv != 0) {
                sl->pending--;
                hd_free(p);
                return cons__raft_err(rv);
            }
        } else {
            cons__caught_up(p, 0);
        }
        return 0;
    }
    int rv = cons__snapshot_store(sl, snapshot);
    if (rv != 0) {
        hd_free(p);
        return cons__raft_err(rv);
    }
    /* The WAL keeps nothing at or below the snapshot, trailing or not: raft
     * keeps the trailing entries in memory for followers, and after a
     * restart a follower that needs older ones is sent the snapshot. */
    cons__span_compact(sl, snapshot->index);
    cons__release(sl->store);
    rv = cons__defer(sl->store, cons__snapshot_put_done, p);
    if (rv != 0) {
        hd_free(p);
        return rv;
    }
    sl->pending++;
    return 0;
}

void cons_store_set_catch_up(struct cons_store *s, cons_catch_up_fn fn, void *arg)
{
    s->catch_up = fn;
    s->catch_up_arg = arg;
}

struct cons_snap_get {
    struct cons_shard_log *sl;
    struct raft_io_snapshot_get *req;
    struct raft_snapshot *snapshot;
    int status;
};

static void cons__snapshot_get_done(void *arg)
{
    struct cons_snap_get *g = arg;
    struct cons_shard_log *sl = g->sl;
    g->req->cb(g->req, g->snapshot, g->status);
    hd_free(g);
    cons__pending_done(sl);
}

int cons__snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    struct cons_snap_get *g = hd_calloc(1, sizeof *g);
    if (g == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    g->req = req;
    g->sl = sl;
    int rv = cons__snapshot_load(sl, &g->snapshot);
    g->status = rv == 0 ? 0 : cons__raft_err(rv);
    rv = cons__defer(sl->store, cons__snapshot_get_done, g);
    if (rv != 0) {
        hd_free(g);
        return rv;
    }
    sl->pending++;
    return 0;
}

/* ----------------------------------------------------------- the store --- */

static int cons__mkdir(const char *dir, char *errmsg, size_t errmsg_len)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errmsg_len, "create %s: %s", dir, strerror(errno));
        return hd_from_errno(errno);
    }
    return 0;
}

static int cons__open_shards(struct cons_store *s, const struct cons_store_options *o,
                             char *errmsg, size_t errmsg_len)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        sl->store = s;
        sl->shard = (uint16_t)i;
        char name[32];
        snprintf(name, sizeof name, "shard-%u", i);
        int rv = st_meta_file_init(&sl->snap, o->snap_dir, name);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "open %s/%s: %s", o->snap_dir, name, hd_strerror(rv));
            return rv;
        }
        cons__io_setup(sl);
    }
    return 0;
}

int cons_store_open(struct cons_store **out, const struct cons_store_options *o,
                    char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(o->n_shards > 0 && o->n_shards <= 65536);
    int rv = cons__mkdir(o->snap_dir, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    struct cons_store *s = hd_calloc(1, sizeof *s);
    if (s == NULL) {
        return HD_ENOMEM;
    }
    s->loop = o->loop;
    s->n_shards = o->n_shards;
    s->shards = hd_calloc(o->n_shards, sizeof *s->shards);
    if (s->shards == NULL) {
        hd_free(s);
        return HD_ENOMEM;
    }
    uv_idle_init(o->loop, &s->sends_idle);
    s->sends_idle.data = s;
    for (unsigned i = 0; i < s->n_shards; i++) {
        s->shards[i].snap.dir_fd = -1;
    }
    s->votes.dir_fd = -1;
    rv = st_meta_file_init(&s->votes, o->snap_dir, "vote");
    if (rv == 0) {
        rv = cons__open_shards(s, o, errmsg, errmsg_len);
    }
    if (rv == 0) {
        rv = cons__load_votes(s, errmsg, errmsg_len);
    }
    if (rv == 0) {
        struct st_wal_options wo = {.loop = o->loop, .dir = o->wal_dir,
                                    .segment_size = o->segment_size,
                                    .no_uring = o->no_uring};
        rv = st_wal_open(&s->wal, &wo, errmsg, errmsg_len);
    }
    if (rv == 0) {
        rv = cons__replay(s, errmsg, errmsg_len);
    }
    if (rv != 0) {
        cons_store_close(s, NULL, NULL);
        return rv;
    }
    *out = s;
    return 0;
}

struct raft_io *cons_store_io(struct cons_store *s, unsigned shard)
{
    HD_ASSERT(shard < s->n_shards);
    return &s->shards[shard].io;
}

bool cons_store_has_state(const struct cons_store *s)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        const struct cons_shard_log *sl = &s->shards[i];
        if (sl->term != 0 || sl->n_entries > 0 || sl->snap.generation != 0 ||
            sl->next_index > 1) {
            return true;
        }
    }
    return false;
}

bool cons_store_uses_uring(const struct cons_store *s) { return st_wal_uses_uring(s->wal); }

int cons_store_pinning_shard(const struct cons_store *s, unsigned segments_max)
{
    struct st_wal_stats st;
    st_wal_stats(s->wal, &st);
    if (st.segments <= segments_max) {
        return -1;
    }
    int oldest = -1;
    uint64_t oldest_lsn = UINT64_MAX;
    for (unsigned i = 0; i < s->n_shards; i++) {
        const struct cons_shard_log *sl = &s->shards[i];
        if (sl->span_head < sl->span_n && sl->spans[sl->span_head].lsn < oldest_lsn) {
            oldest_lsn = sl->spans[sl->span_head].lsn;
            oldest = (int)i;
        }
    }
    return oldest;
}

struct cons_close {
    struct cons_store *s;
    void (*cb)(void *arg);
    void *arg;
    unsigned handles;
};

static void cons__store_free(struct cons_store *s)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        st_meta_file_close(&sl->snap);
        cons__replay_free(sl);
        hd_free(sl->spans);
    }
    st_meta_file_close(&s->votes);
    hd_free(s->shards);
    hd_free(s);
}

static void cons__wal_closed(void *arg)
{
    struct cons_close *c = arg;
    cons__store_free(c->s);
    if (c->cb != NULL) {
        c->cb(c->arg);
    }
    hd_free(c);
}

static void cons__close_step(struct cons_close *c)
{
    if (--c->handles == 0) {
        if (c->s->wal != NULL) {
            st_wal_close(c->s->wal, cons__wal_closed, c);
        } else {
            cons__wal_closed(c);
        }
    }
}

static void cons__sends_idle_closed(uv_handle_t *h)
{
    struct cons_store *s = h->data;
    cons__close_step(s->closing);
}

static void cons__unstarted_timer_closed(uv_handle_t *h)
{
    struct cons_shard_log *sl = h->data;
    cons__close_step(sl->store->closing);
}

void cons_store_close(struct cons_store *s, void (*cb)(void *arg), void *arg)
{
    struct cons_close *c = hd_calloc(1, sizeof *c);
    HD_ASSERT(c != NULL);
    *c = (struct cons_close){s, cb, arg, 2};
    s->closing = c;
    HD_ASSERT(s->sends_head == NULL); /* raft closed: every send completed */
    uv_close((uv_handle_t *)&s->sends_idle, cons__sends_idle_closed);
    /* Shards whose raft instance never closed the io (never started, or
     * store opening failed) still own an open timer handle. */
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        if (sl->tick_timer.loop != NULL && !uv_is_closing((uv_handle_t *)&sl->tick_timer)) {
            c->handles++;
            uv_close((uv_handle_t *)&sl->tick_timer, cons__unstarted_timer_closed);
        }
    }
    cons__close_step(c); /* drops the count taken above */
}
