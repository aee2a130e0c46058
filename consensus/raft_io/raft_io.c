/* SPDX-License-Identifier: Apache-2.0 */
/* The raft_io vtable of a shard: lifecycle, ticks, time, randomness, async work. */
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "raft_io.h"
#include "raft_io_internal.h"

static int cons__init(struct raft_io *io, raft_id id, const char *address)
{
    (void)address;
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(id != 0 && !sl->started && !sl->closing);
    sl->id = id;
    sl->rng = hd_hash64(&id, sizeof id) ^ hd_mono_us() ^ sl->shard;
    return 0;
}

static void cons__tick(uv_timer_t *t)
{
    struct cons_shard_log *sl = t->data;
    HD_ASSERT(sl->started && !sl->closing); /* close stops the timer */
    if (HD_ALWAYS(sl->tick != NULL)) {
        sl->tick(&sl->io);
    }
}

void cons_store_tick_now(struct cons_store *s, unsigned shard)
{
    HD_ASSERT(shard < s->n_shards);
    struct cons_shard_log *sl = &s->shards[shard];
    if (sl->started && !sl->closing && HD_ALWAYS(sl->tick != NULL)) {
        sl->tick(&sl->io);
    }
}

static int cons__start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(!sl->started && !sl->closing);
    HD_ASSERT(msecs > 0 && tick != NULL && recv != NULL);
    sl->tick = tick;
    sl->recv = recv;
    sl->started = true;
    uv_timer_start(&sl->tick_timer, cons__tick, msecs, msecs);
    return 0;
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
    int r = min + (int)(sl->rng % (uint64_t)(max - min + 1));
    HD_ASSERT(r >= min && r <= max);
    return r;
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
    HD_ASSERT(sl->pending > 0 && cw->req->cb != NULL);
    /* Work that ends after close began is cancelled, whatever it answered:
     * on success raft goes on to the next request (a snapshot's put after
     * its flush), and a closing io takes none (sl->closing). */
    cw->req->cb(cw->req, status != 0 || sl->closing ? RAFT_CANCELED : cw->status);
    hd_free(cw);
    cons__pending_done(sl);
}

static int cons__async_work(struct raft_io *io, struct raft_io_async_work *req,
                            raft_io_async_work_cb cb)
{
    HD_ASSERT(!cons__sl(io)->closing); /* raft sends no request after close */
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
    HD_ASSERT(sl->store != NULL && !sl->started && sl->pending == 0);
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
