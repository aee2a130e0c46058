/* SPDX-License-Identifier: Apache-2.0 */
/* Sending raft messages through the node's network, and delivering received ones. */
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fifo.h"
#include "hd_util.h"
#include "raft_io.h"
#include "raft_io_internal.h"

static void cons__sends_run(uv_idle_t *h)
{
    struct cons_store *s = h->data;
    struct cons_send_done *d = s->sends_head;
    s->sends_head = s->sends_tail = NULL;
    uv_idle_stop(h);
    while (d != NULL) {
        struct cons_send_done *next = d->next;
        struct cons_shard_log *sl = d->sl;
        HD_ASSERT(d->status == 0 || d->status == RAFT_NOCONNECTION);
        HD_ASSERT(sl->pending > 0); /* the send holds one until its callback */
        if (d->req->cb != NULL) { /* raft sends TimeoutNow without one */
            d->req->cb(d->req, d->status);
        }
        hd_free(d);
        cons__pending_done(sl);
        d = next;
    }
}

/*
 * What a follower may conclude from an AppendEntries is bounded by what the
 * request covered: prev_log_index (checked) and its entries. Past that its
 * log may hold entries of an older term that are not the leader's.
 *
 * canonical/raft (0.15, and upstream since) answers an AppendEntries it
 * accepts with its last stored index. A follower can hold entries of an
 * older term past what the request covered: a heartbeat, or entries it
 * already had, check nothing beyond prev_log_index + n_entries, so those
 * stale entries stay and are reported as matched. The leader clamps the
 * answer to its own last index and counts the follower as holding its
 * entries up to there: a commit quorum can include a follower that does not
 * hold the entry, and a committed entry (an append, a configuration) can
 * then be lost in the next election. It also leaves the follower stuck
 * (the leader never sends it the entries it "has"). What the follower can
 * vouch for is what the request covered, so an answer sent while the
 * request is delivered claims no more than that.
 */
static const struct raft_message *cons__bound_answer(const struct cons_shard_log *sl,
                                                     const struct raft_message *m,
                                                     struct raft_message *copy)
{
    if (m->type != RAFT_IO_APPEND_ENTRIES_RESULT || m->append_entries_result.rejected != 0 ||
        !sl->answering || m->append_entries_result.last_log_index <= sl->answering_reach) {
        return m;
    }
    *copy = *m;
    copy->append_entries_result.last_log_index = sl->answering_reach;
    return copy;
}

int cons__send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *message, raft_io_send_cb cb)
{
    struct cons_shard_log *sl = cons__sl(io);
    struct cons_store *s = sl->store;
    /* raft sends nothing after close, and never to itself. */
    HD_ASSERT(!sl->closing && message->server_id != sl->id);
    if (s->send == NULL) {
        return RAFT_NOCONNECTION; /* a one-node cluster has no one to send to */
    }
    struct raft_message bounded;
    message = cons__bound_answer(sl, message, &bounded);
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
    HD_ASSERT(s->send == NULL && send != NULL); /* plugged in once, at start */
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
    /* Deliveries do not nest: raft answers from within, it receives nothing. */
    HD_ASSERT(!sl->answering);
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        struct raft_append_entries *ae = &m->append_entries;
        sl->answering = true;
        sl->answering_reach = ae->prev_log_index + ae->n_entries;
        /* Raft's rule is commitIndex = min(leaderCommit, index of the last
         * new entry); raft 0.15 takes its last stored index instead, and on
         * a heartbeat would apply stale entries of an older term past what
         * the request covered as if they were the leader's. */
        if (ae->leader_commit > sl->answering_reach) {
            ae->leader_commit = sl->answering_reach;
        }
    }
    sl->recv(&sl->io, m);
    sl->answering = false;
    return true;
}
