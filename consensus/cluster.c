/* SPDX-License-Identifier: Apache-2.0 */
/* A node among peers: raft traffic over the transport, forwarding, peers, leader spread. */
#include <string.h>

#include "forward.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "msg_codec.h"
#include "node_internal.h"
#include "raft_io.h"
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

/* ------------------------------------------------------------ sending --- */

static int cons__send_raft(void *arg, unsigned shard, raft_id to, const struct raft_message *m)
{
    struct cons_node *n = arg;
    struct cons_msg_enc enc;
    int rv = cons_msg_encode(m, &enc);
    if (rv != 0) {
        return rv;
    }
    rv = cons_transport_send(n->transport, to, CONS_FRAME_RAFT, (uint16_t)shard, enc.iov,
                             enc.iov_n);
    cons_msg_enc_release(&enc);
    return rv;
}

int cons__forward(struct cons_node *n, struct cons_shard *sh, uint64_t leader,
                  struct cons_append_req *req)
{
    struct cons_forward *f = hd_calloc(1, sizeof *f);
    if (f == NULL) {
        return HD_ENOMEM;
    }
    struct cons_forward_req fr = {.id = ++n->next_forward,
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

/* ------------------------------------------------------------ receiving --- */

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

static void cons__recv_forward_req(struct cons_node *n, uint64_t from, const uint8_t *buf,
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

static void cons__recv_forward_resp(struct cons_node *n, uint64_t from, const uint8_t *buf,
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

static void cons__recv(void *arg, uint64_t from, uint8_t kind, uint16_t shard,
                       const uint8_t *payload, size_t len)
{
    struct cons_node *n = arg;
    if (n->stopping) {
        return;
    }
    if (kind == CONS_FRAME_FORWARD_REQ) {
        cons__recv_forward_req(n, from, payload, len);
        return;
    }
    if (kind == CONS_FRAME_FORWARD_RESP) {
        cons__recv_forward_resp(n, from, payload, len);
        return;
    }
    if (kind == CONS_FRAME_READ_REQ || kind == CONS_FRAME_READ_RESP) {
        cons__recv_read(n, from, kind, shard, payload, len);
        return;
    }
    if (kind == CONS_FRAME_MEMBER_REQ || kind == CONS_FRAME_MEMBER_RESP) {
        cons__recv_member(n, from, kind, shard, payload, len);
        return;
    }
    if (kind == CONS_FRAME_STATE_REQ || kind == CONS_FRAME_STATE_CHUNK) {
        cons__recv_state(n, from, kind, shard, payload, len);
        return;
    }
    struct raft_message m;
    if (kind != CONS_FRAME_RAFT || cons_msg_decode(payload, len, &m) != 0) {
        HD_LOG_WARN("peer %llu sent a malformed frame (kind %u, shard %u); dropped",
                    (unsigned long long)from, kind, shard);
        return;
    }
    m.server_id = from;
    m.server_address = "";
    if (shard < n->opts.n_shards) {
        const struct raft_configuration *c = &n->shards[shard].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id == from) m.server_address = c->servers[k].address;
        }
    }
    if (!cons_store_deliver(n->store, shard, &m)) {
        cons_msg_release(&m);
    }
}

/* ------------------------------------------------------- peers, leaders --- */

/* Keeps the transport's peers equal to the voters and standbys of every
 * shard's configuration (every shard has the same members in steady state;
 * during a membership change the union is what must stay reachable). */
void cons__sync_peers(struct cons_node *n)
{
    if (n->transport == NULL) {
        return;
    }
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        const struct raft_configuration *c = &n->shards[i].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id != n->opts.node_id) {
                (void)cons_transport_set_peer(n->transport, c->servers[k].id,
                                              c->servers[k].address);
            }
        }
    }
}

void cons__transfer_done(struct raft_transfer *req)
{
    struct cons_node *n = req->data;
    n->transferring = false;
}

/* Leadership spread: a node that leads more than its share of shards hands
 * one to the member leading the fewest, one transfer at a time. */
void cons__spread_leaders(struct cons_node *n)
{
    if (n->transport == NULL || n->transferring || n->stopping) {
        return;
    }
    const struct raft_configuration *c = &n->shards[0].raft.configuration;
    unsigned voters = 0;
    uint64_t ids[64];
    unsigned leads[64] = {0};
    for (unsigned k = 0; k < c->n && voters < 64; k++) {
        if (c->servers[k].role == RAFT_VOTER) ids[voters++] = c->servers[k].id;
    }
    if (voters < 2) {
        return;
    }
    int mine = -1;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        raft_id leader = 0;
        const char *addr = NULL;
        raft_leader(&n->shards[i].raft, &leader, &addr);
        for (unsigned k = 0; k < voters; k++) {
            if (ids[k] == leader) leads[k]++;
            if (ids[k] == leader && leader == n->opts.node_id) mine = (int)i;
        }
    }
    unsigned share = (n->opts.n_shards + voters - 1) / voters, self = 0, least = 0;
    for (unsigned k = 0; k < voters; k++) {
        if (ids[k] == n->opts.node_id) self = k;
        if (leads[k] < leads[least]) least = k;
    }
    if (mine < 0 || leads[self] <= share || leads[least] + 1 >= leads[self]) {
        return;
    }
    struct cons_peer_stats ps;
    if (cons_transport_peer_stats(n->transport, ids[least], &ps) != 0 || !ps.connected) {
        return;
    }
    n->transfer.data = n;
    if (raft_transfer(&n->shards[mine].raft, &n->transfer, ids[least], cons__transfer_done) == 0) {
        n->transferring = true;
        HD_LOG_INFO("shard %d: handing leadership to node %llu (it leads %u, this node %u)",
                    mine, (unsigned long long)ids[least], leads[least], leads[self]);
    }
}

/* ------------------------------------------------------------ lifecycle --- */

int cons__cluster_start(struct cons_node *n, char *errmsg, size_t errmsg_len)
{
    if (n->opts.peer_listen == NULL) {
        return 0;
    }
    struct cons_transport_options to = {.loop = n->opts.loop, .node_id = n->opts.node_id,
                                        .cluster_id = n->opts.cluster_id,
                                        .listen_addr = n->opts.peer_listen};
    int rv = cons_transport_init(&n->transport, &to, cons__recv, n, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    cons_store_set_sender(n->store, cons__send_raft, n);
    cons__catchup_start(n);
    return 0;
}
