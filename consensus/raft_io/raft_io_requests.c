/* SPDX-License-Identifier: Apache-2.0 */
/* What every asynchronous raft_io request shares: error codes, deferred callbacks, pending counts. */
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "raft_io_internal.h"

/* ------------------------------------------------------- error codes --- */

int cons__raft_err(int rv)
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
    HD_ASSERT(&d->timer == t && d->fn != NULL);
    d->fn(d->arg);
    uv_close((uv_handle_t *)&d->timer, cons__deferred_closed);
}

int cons__defer(struct cons_store *s, void (*fn)(void *), void *arg)
{
    HD_ASSERT(fn != NULL && s->loop != NULL);
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

/* ------------------------------------------------------------ lifecycle --- */

/* ------------------------------------------------------------ closing --- */

static void cons__timer_closed(uv_handle_t *h)
{
    struct cons_shard_log *sl = h->data;
    HD_ASSERT(sl->closing && sl->pending == 0); /* raft hears nothing after this */
    if (sl->close_cb != NULL) {
        sl->close_cb(&sl->io);
    }
}

static void cons__close_finish(struct cons_shard_log *sl)
{
    HD_ASSERT(sl->closing && sl->pending == 0 && sl->tick == NULL);
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

void cons__close(struct raft_io *io, raft_io_close_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(!sl->closing);
    HD_ASSERT(sl->close_cb == NULL);
    sl->close_cb = cb;
    sl->tick = NULL;
    sl->closing = true;
    uv_timer_stop(&sl->tick_timer);
    if (sl->pending == 0) {
        cons__close_finish(sl);
    }
}
