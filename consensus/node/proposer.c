/* SPDX-License-Identifier: Apache-2.0 */
/* Proposing: queued appends become one stamped Raft entry per shard and turn. */
#include <string.h>

#include "disk_space.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fifo.h"
#include "hd_util.h"
#include "proposer.h"
#include "commit_notice.h"

#include "node_internal.h"

/* The kick handle only needs to be active; it has nothing to do. */
static void cons__kick_noop(uv_idle_t *h)
{
    (void)h;
}

int cons__append_local(struct cons_node *n, struct cons_append_req *req, cons_append_cb cb)
{
    HD_ASSERT(cb != NULL);
    HD_ASSERT(hd_channel_valid(req->a.channel, req->a.channel_len) &&
              hd_nonce_valid(req->a.nonce, req->a.nonce_len)); /* API or codec checked */
    if (n->stopping) {
        return HD_ESHUTDOWN;
    }
    /* The leader's own disk decides for appends forwarded to it. */
    if (n->opts.space != NULL && st_space_low(n->opts.space)) {
        return HD_ENOSPC;
    }
    struct cons_shard *sh =
        &n->shards[cons_shard_of(n->opts.n_shards, req->a.channel, req->a.channel_len)];
    if (sh->queued >= n->opts.queue_max) {
        n->stats.appends_rejected_busy++;
        return HD_EBUSY;
    }
    req->cb = cb;
    HD_FIFO_PUSH(sh->queue_head, sh->queue_tail, req);
    sh->queued++;
    HD_ASSERT(sh->queued <= n->opts.queue_max);
    sh->dirty = true;
    /* The flusher runs after the poll phase. An append made from a read
     * callback is proposed in the same turn; one made elsewhere (a timer, a
     * test) must not wait for the poll to time out: an active idle handle
     * makes the poll return at once. */
    uv_idle_start(&n->kick, cons__kick_noop);
    return 0;
}

/* Answers a list of appends; results only with status 0. Returns how many. */
static size_t cons__answer(struct cons_append_req *req, int status,
                           const struct log_result *results)
{
    HD_ASSERT((status == 0) == (results != NULL));
    HD_ASSERT(status <= 0);
    size_t i = 0;
    for (; req != NULL; i++) {
        struct cons_append_req *next = req->next; /* cb may free req */
        req->cb(req, status, results != NULL ? &results[i] : NULL);
        req = next;
    }
    return i;
}

void cons__batch_answer(struct cons_batch *b, int status)
{
    HD_ASSERT(b->reqs != NULL); /* a batch is answered once */
    size_t answered = cons__answer(b->reqs, status, status == 0 ? b->results : NULL);
    HD_ASSERT(answered == b->count);
    b->reqs = NULL;
}

void cons__shard_fail_queue(struct cons_shard *sh, int status)
{
    HD_ASSERT(status != 0);
    struct cons_append_req *reqs = sh->queue_head;
    size_t queued = sh->queued;
    sh->queue_head = sh->queue_tail = NULL;
    sh->queued = 0;
    size_t answered = cons__answer(reqs, status, NULL);
    HD_ASSERT(answered == queued); /* queued counts the list */
}

static void cons__flight_remove(struct cons_shard *sh, struct cons_batch *b)
{
    HD_ASSERT(b->shard == sh);
    struct cons_batch **pp = &sh->flight_head;
    while (*pp != b) {
        HD_ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = b->next;
    if (sh->flight_tail == b) {
        struct cons_batch *last = sh->flight_head;
        while (last != NULL && last->next != NULL) {
            last = last->next;
        }
        sh->flight_tail = last;
    }
    HD_ASSERT(sh->in_flight > 0);
    sh->in_flight--;
    HD_ASSERT((sh->in_flight == 0) == (sh->flight_head == NULL));
}

static void cons__apply_cb(struct raft_apply *req, int status, void *result)
{
    struct cons_batch *b = req->data;
    struct cons_shard *sh = b->shard;
    (void)result;
    HD_ASSERT(req == &b->apply && sh->in_flight > 0);
    cons__flight_remove(sh, b);
    if (status == 0) {
        HD_ASSERT(b->applied);
        cons__batch_answer(b, 0);
    } else {
        /* Leadership lost or shutting down after the entry was appended: it
         * may still commit, so the outcome is unknown to the client. */
        HD_LOG_INFO("shard %u: entry of %u appends not confirmed: %s", sh->id, b->count,
                    raft_strerror(status));
        cons__batch_answer(b, HD_EUNKNOWN);
    }
    hd_free(b);
    sh->dirty = true;
}

/* Takes appends off the queue, up to the batch limits, into a new batch. */
static struct cons_batch *cons__take_batch(struct cons_shard *sh)
{
    uint32_t count = 0;
    size_t bytes = 0, size = LOG_ENTRY_HEADER_SIZE + 4;
    struct cons_append_req *last = NULL;
    for (struct cons_append_req *r = sh->queue_head; r != NULL; r = r->next) {
        if (count == CONS_BATCH_APPENDS_MAX ||
            (count > 0 && bytes + r->a.payload_len > CONS_BATCH_BYTES_MAX)) {
            break;
        }
        count++;
        bytes += r->a.payload_len;
        size += log_append_size(&r->a);
        last = r;
    }
    HD_ASSERT(count > 0 && last != NULL);
    HD_ASSERT(count <= sh->queued); /* queued must not underflow below */
    struct cons_batch *b = hd_calloc(1, sizeof *b + count * sizeof(struct log_result));
    if (b == NULL) {
        return NULL;
    }
    b->shard = sh;
    b->count = count;
    b->size = size;
    b->reqs = sh->queue_head;
    sh->queue_head = last->next;
    if (sh->queue_head == NULL) {
        sh->queue_tail = NULL;
    }
    last->next = NULL;
    sh->queued -= count;
    return b;
}

/* Encodes the batch, stamped with this leader's clock, into a raft-owned
 * buffer: straight from the queued appends, with no copy in between. */
static int cons__encode_batch(struct cons_node *n, struct cons_batch *b, struct raft_buffer *buf)
{
    HD_ASSERT(b->count > 0 && b->count <= CONS_BATCH_APPENDS_MAX && b->proposal == 0);
    buf->base = raft_malloc(b->size);
    if (buf->base == NULL) {
        return HD_ENOMEM;
    }
    b->proposal = ++n->next_proposal;
    struct log_entry_header h = {.stamp_us = hd_now_us(), .proposer = n->opts.node_id,
                                 .proposal = b->proposal, .count = b->count};
    struct log_entry_writer w;
    log_entry_begin(&w, buf->base, &h);
    for (struct cons_append_req *r = b->reqs; r != NULL; r = r->next) {
        log_entry_add(&w, &r->a);
    }
    buf->len = log_entry_finish(&w);
    HD_ASSERT(buf->len == b->size);
    return 0;
}

/* Proposes one batch; false if nothing more can be proposed now. */
static bool cons__propose_one(struct cons_shard *sh)
{
    struct cons_node *n = sh->node;
    HD_ASSERT(sh->queue_head != NULL && sh->in_flight < CONS_IN_FLIGHT_MAX);
    if (raft_state(&sh->raft) != RAFT_LEADER) {
        cons__shard_fail_queue(sh, HD_ENOTLEADER);
        return false;
    }
    struct cons_batch *b = cons__take_batch(sh);
    if (b == NULL) {
        return false; /* out of memory: the queue waits for the next turn */
    }
    struct raft_buffer buf;
    int rv = cons__encode_batch(n, b, &buf);
    if (rv == 0) {
        b->apply.data = b;
        HD_FIFO_PUSH(sh->flight_head, sh->flight_tail, b);
        sh->in_flight++;
        HD_ASSERT(sh->in_flight <= CONS_IN_FLIGHT_MAX);
        rv = raft_apply(&sh->raft, &b->apply, &buf, 1, cons__apply_cb);
        if (rv != 0) {
            raft_free(buf.base);
            cons__flight_remove(sh, b);
            HD_LOG_WARN("shard %u: propose: %s", sh->id, raft_strerror(rv));
            rv = rv == RAFT_NOTLEADER ? HD_ENOTLEADER : HD_EUNAVAIL;
        }
    }
    if (rv != 0) {
        cons__batch_answer(b, rv); /* nothing was appended: a known failure */
        hd_free(b);
        return false;
    }
    cons__commit_carried(sh);
    n->stats.entries_proposed++;
    n->stats.appends_proposed += b->count;
    hd_histogram_observe(&n->stats.appends_per_entry, b->count);
    return true;
}

void cons__flush(struct cons_node *n)
{
    HD_ASSERT(!n->stopping); /* the flusher is stopped first */
    uv_idle_stop(&n->kick);
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct cons_shard *sh = &n->shards[i];
        if (!sh->dirty) {
            continue;
        }
        sh->dirty = false;
        while (sh->queue_head != NULL && sh->in_flight < CONS_IN_FLIGHT_MAX) {
            if (!cons__propose_one(sh)) {
                break;
            }
        }
    }
}
