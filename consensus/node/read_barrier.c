/* SPDX-License-Identifier: Apache-2.0 */
/* Leader reads: waiting until this node has applied what the leader had. */
#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"
#include "read_barrier.h"
#include "transport.h"

/*
 * A read with consistency=leader must see every append acknowledged before
 * it started. The shard's leader commits a barrier entry (raft_barrier):
 * once it applies, the leader has applied everything committed before the
 * read arrived. A follower asks the leader for that (READ_REQ), gets back
 * the index the leader applied (READ_RESP), and waits until it applied that
 * index itself; then its local read is as fresh as the leader's.
 * (Frame layouts in peer/frames.h.)
 */

#define CONS_READ_TIMEOUT_MS 5000u

struct cons_read_wait {
    bool remote;                 /* waits for another node's answer */
    uint64_t id;                 /* of the request to the leader, 0 after */
    unsigned shard;
    uint64_t index;              /* applied index to wait for, 0 until known */
    uint64_t deadline_ms;
    int expired;                 /* the answer at the deadline */
    cons_read_cb cb;
    void *arg;
    struct cons_read_wait *next;
};

/* A barrier this node runs as leader, for itself or for a follower. */
struct cons_read_barrier {
    struct raft_barrier barrier;
    struct cons_node *node;
    struct cons_shard *shard;
    uint64_t from;               /* follower, or 0 for a local wait */
    uint64_t id;
    struct cons_read_wait *wait; /* local waiter */
};

static void cons__read_reply(struct cons_node *n, uint64_t to, uint16_t shard, uint64_t id,
                             int status, uint64_t index)
{
    /* Answers go back over the transport the request came by. */
    HD_ASSERT(n->transport != NULL && to != 0 && to != n->opts.node_id);
    HD_ASSERT(status <= 0 && shard < n->opts.n_shards);
    struct cons_frame f = {.kind = CONS_FRAME_READ_RESP, .id = id,
                           .u.read_resp = {.status = status, .index = index}};
    (void)cons_frame_send(n->transport, to, shard, &f);
}

static void cons__read_wait_done(struct cons_node *n, struct cons_read_wait *w, int status)
{
    HD_ASSERT(status <= 0);
    bool listed = false;
    for (struct cons_read_wait **pp = &n->read_waits; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            listed = true;
            break;
        }
    }
    HD_ASSERT(listed); /* each wait is answered once, while it is listed */
    w->cb(w->arg, status);
    hd_free(w);
}

static void cons__read_barrier_cb(struct raft_barrier *req, int status)
{
    struct cons_read_barrier *b = req->data;
    struct cons_node *n = b->node;
    /* For a follower (from) or for a local wait, never both. */
    HD_ASSERT((b->from != 0) == (b->wait == NULL));
    uint64_t applied = raft_last_applied(&b->shard->raft);
    int rv = status == 0 ? 0 : HD_ENOTLEADER;
    if (b->from != 0) {
        cons__read_reply(n, b->from, (uint16_t)b->shard->id, b->id, rv, applied);
    } else {
        cons__read_wait_done(n, b->wait, rv);
    }
    hd_free(b);
}

static int cons__read_barrier_start(struct cons_node *n, struct cons_shard *sh, uint64_t from,
                                    uint64_t id, struct cons_read_wait *w)
{
    HD_ASSERT((from != 0) == (w == NULL) && (w == NULL || !w->remote));
    struct cons_read_barrier *b = hd_calloc(1, sizeof *b);
    if (b == NULL) {
        return HD_ENOMEM;
    }
    *b = (struct cons_read_barrier){.node = n, .shard = sh, .from = from, .id = id, .wait = w};
    b->barrier.data = b;
    if (raft_barrier(&sh->raft, &b->barrier, cons__read_barrier_cb) != 0) {
        hd_free(b);
        return HD_ENOTLEADER;
    }
    return 0;
}

void cons__recv_read(struct cons_node *n, uint64_t from, uint16_t shard,
                     const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_READ_REQ || f->kind == CONS_FRAME_READ_RESP);
    if (f->kind == CONS_FRAME_READ_REQ) {
        if (shard >= n->opts.n_shards) return;
        int rv = cons__read_barrier_start(n, &n->shards[shard], from, f->id, NULL);
        if (rv != 0) cons__read_reply(n, from, shard, f->id, rv, 0);
        return;
    }
    for (struct cons_read_wait *w = n->read_waits; w != NULL; w = w->next) {
        if (w->id == f->id && w->id != 0 && w->remote) {
            int status = f->u.read_resp.status;
            w->id = 0;
            if (status != 0) {
                cons__read_wait_done(n, w, status);
            } else {
                /* At least 1: index 0 means "not known yet" below. */
                uint64_t index = f->u.read_resp.index;
                w->index = index > 0 ? index : 1;
                cons__read_waits_check(n);
            }
            return;
        }
    }
}

void cons__read_waits_check(struct cons_node *n)
{
    struct cons_read_wait *w = n->read_waits;
    while (w != NULL) {
        struct cons_read_wait *next = w->next;
        HD_ASSERT(w->shard < n->opts.n_shards);
        /* Only a remote wait learns an index, with the answer it waited for. */
        HD_ASSERT(w->index == 0 || (w->remote && w->id == 0));
        uint64_t applied = raft_last_applied(&n->shards[w->shard].raft);
        if (w->index != 0 && w->index <= applied) {
            cons__read_wait_done(n, w, 0);
        }
        w = next;
    }
}

void cons__read_waits_expire(struct cons_node *n, bool all)
{
    uint64_t now = uv_now(n->opts.loop);
    struct cons_read_wait *w = n->read_waits;
    while (w != NULL) {
        struct cons_read_wait *next = w->next;
        /* A local barrier's wait is answered by raft (also on close). */
        if (w->remote && (all || w->deadline_ms <= now)) {
            cons__read_wait_done(n, w, w->expired);
        }
        w = next;
    }
    for (w = n->read_waits; all && w != NULL; w = w->next) {
        HD_ASSERT(!w->remote); /* local waits end with raft's barrier */
    }
}

int cons_node_read_barrier(struct cons_node *n, const char *channel, size_t len,
                           cons_read_cb cb, void *arg)
{
    HD_ASSERT(cb != NULL && hd_channel_valid(channel, len)); /* the API checked it */
    unsigned shard = cons_shard_of(n->opts.n_shards, channel, len);
    struct cons_shard *sh = &n->shards[shard];
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&sh->raft, &leader, &address);
    if (n->stopping || leader == 0 || (leader != n->opts.node_id && n->transport == NULL)) {
        return HD_ENOTLEADER;
    }
    struct cons_read_wait *w = hd_calloc(1, sizeof *w);
    if (w == NULL) {
        return HD_ENOMEM;
    }
    *w = (struct cons_read_wait){.shard = shard, .cb = cb, .arg = arg, .expired = HD_EUNAVAIL,
                                 .deadline_ms = uv_now(n->opts.loop) + CONS_READ_TIMEOUT_MS};
    int rv;
    if (leader == n->opts.node_id) {
        rv = cons__read_barrier_start(n, sh, 0, 0, w);
    } else {
        w->remote = true;
        w->id = ++n->next_request;
        struct cons_frame f = {.kind = CONS_FRAME_READ_REQ, .id = w->id};
        rv = cons_frame_send(n->transport, leader, (uint16_t)shard, &f) == 0 ? 0 : HD_EUNAVAIL;
    }
    if (rv != 0) {
        hd_free(w);
        return rv;
    }
    HD_ASSERT(w->remote == (leader != n->opts.node_id) && w->index == 0);
    w->next = n->read_waits;
    n->read_waits = w;
    return 0;
}

int cons__read_wait_index(struct cons_node *n, unsigned shard, uint64_t index, cons_read_cb cb,
                          void *arg)
{
    HD_ASSERT(shard < n->opts.n_shards && cb != NULL);
    struct cons_read_wait *w = hd_calloc(1, sizeof *w);
    if (w == NULL) {
        return HD_ENOMEM;
    }
    /* A remote wait whose answer came already: it waits for `index` only.
     * At its deadline the command it waits for did apply on the leader, so
     * its outcome here is unknown, not unavailable. */
    *w = (struct cons_read_wait){.remote = true, .shard = shard, .index = index > 0 ? index : 1,
                                 .cb = cb, .arg = arg, .expired = HD_EUNKNOWN,
                                 .deadline_ms = uv_now(n->opts.loop) + CONS_READ_TIMEOUT_MS,
                                 .next = n->read_waits};
    n->read_waits = w;
    cons__read_waits_check(n);
    return 0;
}
