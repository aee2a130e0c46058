/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding, both sides: a follower's append sent to its shard's leader, and the leader's answer. */
#include "forward.h"

#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"
#include "proposer.h"
#include "transport.h"

/*
 * Forwarding. An append that reaches a follower goes to its shard's leader
 * in a FORWARD_REQ frame and is answered by the FORWARD_RESP that comes back.
 * Only the leader decides: a forwarded append is never forwarded again (a
 * node that is no longer leader answers HD_ENOTLEADER: nothing was written).
 * A forward that gets no answer within CONS_FORWARD_TIMEOUT_MS is answered
 * HD_EUNKNOWN: it may have committed, and the client's retry with the same
 * nonce tells which.
 */

#define CONS_FORWARD_TIMEOUT_MS 5000u

/* A follower's append waiting for the leader's answer. */
struct cons_forward {
    uint64_t id;
    uint64_t to;
    unsigned shard;
    uint64_t deadline_ms;
    struct cons_append_req *req;
    struct cons_forward *next;
};

/* A leader's copy of an append forwarded to it. */
struct cons_forwarded {
    struct cons_append_req req;
    struct cons_node *node;
    uint64_t from;
    uint64_t id;
    char channel[LOG_CHANNEL_MAX];
    char nonce[LOG_NONCE_MAX];
    uint8_t payload[];
};

/* ------------------------------------------------------------ follower --- */

int cons__forward(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                  struct cons_append_req *req)
{
    struct cons_forward *f = hd_calloc(1, sizeof *f);
    if (f == NULL) {
        return HD_ENOMEM;
    }
    struct cons_forward_req fr = {.id = ++n->next_request,
                                  .channel = req->channel, .channel_len = req->channel_len,
                                  .nonce = req->nonce, .nonce_len = req->nonce_len,
                                  .payload = req->payload, .payload_len = req->payload_len};
    uint8_t head[CONS_FORWARD_REQ_HEAD_MAX];
    struct iovec iov[2] = {{head, cons_forward_req_encode_head(head, &fr)},
                           {(void *)(uintptr_t)req->payload, req->payload_len}};
    int rv = cons_transport_send(n->transport, leader, CONS_FRAME_FORWARD_REQ,
                                 (uint16_t)sh->id, iov, 2);
    if (rv != 0) {
        hd_free(f);
        return HD_EUNAVAIL; /* not sent: a known failure */
    }
    *f = (struct cons_forward){fr.id, leader, sh->id,
                               uv_now(n->opts.loop) + CONS_FORWARD_TIMEOUT_MS, req, n->forwards};
    n->forwards = f;
    n->stats.appends_forwarded++;
    return 0;
}

/* Removes and returns the forward with this id, or NULL. */
static struct cons_forward *cons__forward_take(struct cons_node *n, uint64_t id)
{
    for (struct cons_forward **pp = &n->forwards; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct cons_forward *f = *pp;
            *pp = f->next;
            return f;
        }
    }
    return NULL;
}

/* True if the forward's answer can no longer come: its shard has another
 * leader now, or the link to the node it went to is down. Waiting for the
 * deadline then only lengthens the client's wait (a leader's kill -9 would
 * cost the full timeout instead of an election). */
static bool cons__forward_orphaned(struct cons_node *n, const struct cons_forward *f)
{
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&n->shards[f->shard].raft, &leader, &address);
    struct cons_peer_stats ps;
    bool linked = cons_transport_peer_stats(n->transport, f->to, &ps) == 0 && ps.connected;
    return (leader != 0 && leader != f->to) || !linked;
}

/* Answers every forward (status) whose deadline passed or whose answer can
 * no longer come, or all if `all`. */
void cons__forwards_expire(struct cons_node *n, bool all, int status)
{
    uint64_t now = uv_now(n->opts.loop);
    struct cons_forward **pp = &n->forwards;
    while (*pp != NULL) {
        struct cons_forward *f = *pp;
        if (all || f->deadline_ms <= now || cons__forward_orphaned(n, f)) {
            *pp = f->next;
            f->req->cb(f->req, status, NULL);
            hd_free(f);
        } else {
            pp = &f->next;
        }
    }
}

/* ------------------------------------------------------------ leader --- */

static void cons__forwarded_done(struct cons_append_req *req, int status,
                                 const struct log_result *result)
{
    struct cons_forwarded *fw = req->data;
    struct cons_forward_resp resp = {.id = fw->id, .status = status};
    if (status == 0) {
        resp.seq = result->seq;
        resp.ts = result->ts;
        resp.duplicate = result->duplicate;
    }
    uint8_t buf[CONS_FORWARD_RESP_SIZE];
    cons_forward_resp_encode(buf, &resp);
    struct iovec iov = {buf, sizeof buf};
    if (fw->node->transport != NULL) {
        /* If this is lost, the follower answers "unknown" at its deadline. */
        (void)cons_transport_send(fw->node->transport, fw->from, CONS_FRAME_FORWARD_RESP, 0,
                                  &iov, 1);
    }
    hd_free(fw);
}

static void cons__recv_forward_request(struct cons_node *n, uint64_t from, const uint8_t *buf,
                                   size_t len)
{
    struct cons_forward_req r;
    if (cons_forward_req_decode(buf, len, &r) != 0) {
        HD_LOG_WARN("peer %llu sent a malformed forwarded append; dropped",
                    (unsigned long long)from);
        return;
    }
    struct cons_forwarded *fw = hd_calloc(1, sizeof *fw + r.payload_len);
    if (fw == NULL) {
        return; /* the follower answers "unknown" at its deadline */
    }
    fw->node = n;
    fw->from = from;
    fw->id = r.id;
    memcpy(fw->channel, r.channel, r.channel_len);
    memcpy(fw->nonce, r.nonce, r.nonce_len);
    if (r.payload_len > 0) {
        memcpy(fw->payload, r.payload, r.payload_len);
    }
    fw->req = (struct cons_append_req){.channel = fw->channel, .channel_len = r.channel_len,
                                       .nonce = fw->nonce, .nonce_len = r.nonce_len,
                                       .payload = fw->payload, .payload_len = r.payload_len,
                                       .data = fw};
    int rv = cons__append_local(n, &fw->req, cons__forwarded_done);
    if (rv != 0) {
        cons__forwarded_done(&fw->req, rv, NULL);
    }
}

static void cons__recv_forward_answer(struct cons_node *n, uint64_t from, const uint8_t *buf,
                                    size_t len)
{
    struct cons_forward_resp r;
    if (cons_forward_resp_decode(buf, len, &r) != 0) {
        HD_LOG_WARN("peer %llu sent a malformed forward answer; dropped",
                    (unsigned long long)from);
        return;
    }
    struct cons_forward *f = cons__forward_take(n, r.id);
    if (f == NULL || f->to != from) {
        hd_free(f);
        return; /* answered "unknown" already, at its deadline */
    }
    struct log_result result = {r.seq, r.ts, r.duplicate};
    f->req->cb(f->req, r.status, r.status == 0 ? &result : NULL);
    hd_free(f);
}

void cons__recv_forward(struct cons_node *n, uint64_t from, uint8_t kind,
                        const uint8_t *payload, size_t len)
{
    HD_ASSERT(kind == CONS_FRAME_FORWARD_REQ || kind == CONS_FRAME_FORWARD_RESP);
    if (kind == CONS_FRAME_FORWARD_REQ) {
        cons__recv_forward_request(n, from, payload, len);
    } else {
        cons__recv_forward_answer(n, from, payload, len);
    }
}
