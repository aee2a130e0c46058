/* SPDX-License-Identifier: Apache-2.0 */
/* Forwarding, both sides: a follower's append, trim or delete sent to its shard's leader, and the leader's answer. */
#include "forward.h"

#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"
#include "proposer.h"
#include "read_barrier.h"
#include "transport.h"

/*
 * Forwarding. An append that reaches a follower goes to its shard's leader
 * in a FORWARD_REQ frame and is answered by the FORWARD_RESP that comes back.
 * Only the leader decides: a forwarded append is never forwarded again (a
 * node that is no longer leader answers HD_ENOTLEADER: nothing was written).
 * A forward that gets no answer within CONS_FORWARD_TIMEOUT_MS is answered
 * HD_EUNKNOWN: it may have committed, and the client's retry with the same
 * nonce tells which.
 *
 * A trim or delete (log/command.h) takes the same path in a COMMAND_REQ
 * frame: the same list of forwards waiting, the same deadline and orphan
 * rule, the same FORWARD_RESP, which then carries the Raft index of the
 * command's entry. The follower answers its caller once it applied that
 * index itself (read_barrier.h), so its own reads already show the command.
 */

#define CONS_FORWARD_TIMEOUT_MS 5000u

/* A follower's append, or command, waiting for the leader's answer. */
struct cons_forward {
    uint64_t id;
    uint64_t to;
    unsigned shard;
    uint64_t deadline_ms;
    struct cons_append_req *req;  /* an append, or NULL for a command: */
    cons_command_cb command_cb;
    void *command_arg;
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

/* Sends fr (its id set here) to the leader and lists f, filled by the
 * caller with what waits, until its answer. */
static int cons__forward_send(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                              struct cons_frame *fr, struct cons_forward *f)
{
    /* Only a follower forwards, to a known leader other than itself. */
    HD_ASSERT(n->transport != NULL && leader != 0 && leader != n->opts.node_id);
    HD_ASSERT(sh->id < n->opts.n_shards && (f->req != NULL) != (f->command_cb != NULL));
    fr->id = ++n->next_request;
    if (cons_frame_send(n->transport, leader, (uint16_t)sh->id, fr) != 0) {
        hd_free(f);
        return HD_EUNAVAIL; /* not sent: a known failure */
    }
    f->id = fr->id;
    f->to = leader;
    f->shard = sh->id;
    f->deadline_ms = uv_now(n->opts.loop) + CONS_FORWARD_TIMEOUT_MS;
    f->next = n->forwards;
    n->forwards = f;
    return 0;
}

int cons__forward(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                  struct cons_append_req *req)
{
    HD_ASSERT(req->cb != NULL);
    struct cons_forward *f = hd_calloc(1, sizeof *f);
    if (f == NULL) {
        return HD_ENOMEM;
    }
    f->req = req;
    struct cons_frame fr = {.kind = CONS_FRAME_FORWARD_REQ, .u.forward_req = req->a};
    int rv = cons__forward_send(n, sh, leader, &fr, f);
    if (rv == 0) {
        n->stats.appends_forwarded++;
    }
    return rv;
}

int cons__forward_command(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                          const struct log_command *c, cons_command_cb cb, void *arg)
{
    /* the frame carries a policy's flags, no trim's */
    HD_ASSERT(cb != NULL && (c->flags == 0 || c->kind == LOG_ENTRY_KIND_POLICY));
    struct cons_forward *f = hd_calloc(1, sizeof *f);
    if (f == NULL) {
        return HD_ENOMEM;
    }
    f->command_cb = cb;
    f->command_arg = arg;
    struct cons_frame fr = {.kind = CONS_FRAME_COMMAND_REQ, .u.command_req = *c};
    return cons__forward_send(n, sh, leader, &fr, f);
}

/* Answers a waiting forward with an error (never a result). */
static void cons__forward_fail(struct cons_forward *f, int status)
{
    HD_ASSERT(status < 0);
    if (f->req != NULL) {
        f->req->cb(f->req, status, NULL);
    } else {
        f->command_cb(f->command_arg, status);
    }
    hd_free(f);
}

/* Removes and returns the forward with this id, or NULL. */
static struct cons_forward *cons__forward_take(struct cons_node *n, uint64_t id)
{
    for (struct cons_forward **pp = &n->forwards; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct cons_forward *f = *pp;
            *pp = f->next;
            HD_ASSERT((f->req != NULL) != (f->command_cb != NULL));
            HD_ASSERT(f->shard < n->opts.n_shards);
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
    HD_ASSERT(f->shard < n->opts.n_shards && f->to != n->opts.node_id);
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
    HD_ASSERT(status < 0); /* a forward expires with an error, never a result */
    uint64_t now = uv_now(n->opts.loop);
    struct cons_forward **pp = &n->forwards;
    while (*pp != NULL) {
        struct cons_forward *f = *pp;
        if (all || f->deadline_ms <= now || cons__forward_orphaned(n, f)) {
            *pp = f->next;
            cons__forward_fail(f, status);
        } else {
            pp = &f->next;
        }
    }
    HD_ASSERT(!all || n->forwards == NULL);
}

/* ------------------------------------------------------------ leader --- */

static void cons__forwarded_done(struct cons_append_req *req, int status,
                                 const struct log_result *result)
{
    struct cons_forwarded *fw = req->data;
    HD_ASSERT((status == 0) == (result != NULL));
    HD_ASSERT(status <= 0 && fw->from != 0);
    struct cons_frame resp = {.kind = CONS_FRAME_FORWARD_RESP, .id = fw->id,
                              .u.forward_resp.status = status};
    if (status == 0) {
        resp.u.forward_resp.seq = result->seq;
        resp.u.forward_resp.ts = result->ts;
        resp.u.forward_resp.duplicate = result->duplicate;
    }
    if (HD_ALWAYS(fw->node->transport != NULL)) { /* the request came over it */
        /* If this is lost, the follower answers "unknown" at its deadline. */
        (void)cons_frame_send(fw->node->transport, fw->from, 0, &resp);
    }
    hd_free(fw);
}

static void cons__recv_forward_request(struct cons_node *n, uint64_t from,
                                       const struct cons_frame *f)
{
    const struct log_append r = f->u.forward_req; /* ids checked by the codec */
    HD_ASSERT(r.channel_len <= LOG_CHANNEL_MAX && r.nonce_len <= LOG_NONCE_MAX);
    struct cons_forwarded *fw = hd_calloc(1, sizeof *fw + r.payload_len);
    if (fw == NULL) {
        return; /* the follower answers "unknown" at its deadline */
    }
    fw->node = n;
    fw->from = from;
    fw->id = f->id;
    memcpy(fw->channel, r.channel, r.channel_len);
    memcpy(fw->nonce, r.nonce, r.nonce_len);
    if (r.payload_len > 0) {
        memcpy(fw->payload, r.payload, r.payload_len);
    }
    fw->req = (struct cons_append_req){.a = {fw->channel, r.channel_len, fw->nonce,
                                             r.nonce_len, fw->payload, r.payload_len},
                                       .data = fw};
    int rv = cons__append_local(n, &fw->req, cons__forwarded_done);
    if (rv != 0) {
        cons__forwarded_done(&fw->req, rv, NULL);
    }
}

static void cons__recv_forward_answer(struct cons_node *n, uint64_t from,
                                      const struct cons_frame *fr)
{
    struct cons_forward *f = cons__forward_take(n, fr->id);
    if (f == NULL) {
        return; /* answered "unknown" already, at its deadline */
    }
    if (f->to != from) {
        /* Not the node it went to: ignore, the real answer may still come. */
        f->next = n->forwards;
        n->forwards = f;
        return;
    }
    const struct cons_frame_forward_resp *r = &fr->u.forward_resp;
    if (r->status != 0) {
        cons__forward_fail(f, r->status);
    } else if (f->req != NULL) {
        struct log_result result = {r->seq, r->ts, r->duplicate};
        f->req->cb(f->req, 0, &result);
        hd_free(f);
    } else {
        /* Applied on the leader at index seq: answer once applied here. */
        int rv = cons__read_wait_index(n, f->shard, r->seq, f->command_cb, f->command_arg);
        if (rv != 0) {
            cons__forward_fail(f, HD_EUNKNOWN);
        } else {
            hd_free(f);
        }
    }
}

void cons__recv_forward(struct cons_node *n, uint64_t from, const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_FORWARD_REQ || f->kind == CONS_FRAME_FORWARD_RESP);
    if (f->kind == CONS_FRAME_FORWARD_REQ) {
        cons__recv_forward_request(n, from, f);
    } else {
        cons__recv_forward_answer(n, from, f);
    }
}
