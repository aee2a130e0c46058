/* SPDX-License-Identifier: Apache-2.0 */
/* Membership: adding and removing a node in every shard, one shard at a time. */
#include <stdio.h>
#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "leaders.h"
#include "membership.h"
#include "node_internal.h"
#include "transport.h"

/*
 * The node that receives `add-node` or `remove-node` coordinates: for each
 * shard in turn it asks the shard's leader (itself, or another node through
 * a MEMBER_REQ frame) to make the change, and waits for the answer before
 * the next shard, so only one shard at a time moves a replica.
 *
 * On the leader: an add is raft_add (the node joins as a spare) followed by
 * raft_assign to voter, which raft performs only once the new node has
 * caught up (catchup.c copies the state when the log does not reach back
 * far enough). A remove is raft_remove; a leader asked to remove itself
 * hands leadership over first and answers HD_EBUSY, and the coordinator
 * asks the new leader. The answer "done" is given only from a committed
 * configuration. A shard that is busy (a change, or a configuration not yet
 * committed: config_settle.c commits it), or whose leader is unknown for
 * a moment (an election), is retried every CONS_MEMBER_RETRY_MS; one with
 * no leader for CONS_MEMBER_LEADERLESS_MS has lost its quorum, and the
 * change stops there rather than wait for the caller's whole deadline.
 * (Frame layouts in peer/frames.h.)
 *
 * An address is a shard's key as much as an id is (raft refuses two
 * servers at one address). A change that stopped part way, or a node killed
 * while it coordinated one, can leave a shard holding node A at an address
 * where node B, started on a wiped disk, now listens. Adding B there
 * replaces A in that shard, a remove and then the add through the shard's
 * leader, but only when A is a leftover: absent from some shard's
 * configuration, so a change to remove or add it was under way. A member
 * of every shard at that address is a live node or an operator's mistake;
 * the add is refused (HD_EEXIST) and A must be removed first.
 */

HD_STATIC_ASSERT((int)CONS_MEMBER_ADD == (int)CONS_FRAME_MEMBER_ADD &&
                 (int)CONS_MEMBER_REMOVE == (int)CONS_FRAME_MEMBER_REMOVE,
                 "member ops are wire values");

#define CONS_MEMBER_RETRY_MS 500u
#define CONS_MEMBER_RESEND_MS 5000u

struct cons_member_change {
    int op;                        /* CONS_MEMBER_ADD or CONS_MEMBER_REMOVE */
    uint64_t id;                   /* the node added or removed */
    char address[CONS_FRAME_ADDRESS_MAX + 1];
    unsigned shard;                /* the shard being changed */
    uint64_t req_id;               /* of the request in flight, 0 if none */
    uint64_t sent_to;              /* the leader it went to */
    uint64_t sent_at_ms;
    uint64_t deadline_ms;          /* of the whole change */
    uint64_t leaderless_since_ms;  /* 0: the shard has a leader */
    uint64_t retry_at_ms;          /* 0: not waiting to retry */
    cons_member_cb cb;
    void *arg;
};

/* A change this node makes as some shard's leader. */
struct cons_member_local {
    struct raft_change change;
    struct cons_node *node;
    struct cons_shard *shard;
    int op;
    uint64_t id;
    uint64_t from;                 /* coordinator, or 0 for this node */
    uint64_t req_id;
    uint64_t replacing;            /* a leftover at the address, being removed */
    bool assigning;                /* the add reached raft_assign */
    char address[CONS_FRAME_ADDRESS_MAX + 1];
};

/* ---------------------------------------------------- on the leader --- */

static const struct raft_server *cons__server(const struct raft *r, uint64_t id)
{
    for (unsigned k = 0; k < r->configuration.n; k++) {
        if (r->configuration.servers[k].id == id) return &r->configuration.servers[k];
    }
    return NULL;
}

/* Another server of the shard at this address, or NULL. */
static const struct raft_server *cons__server_at(const struct raft *r, const char *address,
                                                 uint64_t id)
{
    for (unsigned k = 0; k < r->configuration.n; k++) {
        const struct raft_server *srv = &r->configuration.servers[k];
        if (srv->id != id && strcmp(srv->address, address) == 0) return srv;
    }
    return NULL;
}

/* A node some shard's configuration lacks: left over from a change that
 * stopped part way. This node holds every shard, so it can tell. */
static bool cons__is_leftover(const struct cons_node *n, uint64_t id)
{
    for (unsigned s = 0; s < n->opts.n_shards; s++) {
        if (cons__server(&n->shards[s].raft, id) == NULL) return true;
    }
    return false;
}

static void cons__member_reply(struct cons_node *n, uint64_t to, uint64_t req_id, int status);
static void cons__member_shard_done(struct cons_node *n, uint64_t req_id, int status);

static void cons__member_local_done(struct cons_member_local *l, int status)
{
    HD_ASSERT(status == 0 || status == HD_ENOTLEADER || status == HD_EBUSY ||
              status == HD_EEXIST);
    HD_ASSERT(l->op == CONS_MEMBER_ADD || !l->assigning); /* only an add assigns */
    if (l->from == 0) {
        cons__member_shard_done(l->node, l->req_id, status);
    } else {
        cons__member_reply(l->node, l->from, l->req_id, status);
    }
    hd_free(l);
}

static void cons__member_changed(struct raft_change *req, int status)
{
    struct cons_member_local *l = req->data;
    HD_ASSERT(req == &l->change && l->shard->id < l->node->opts.n_shards);
    if (status != 0) {
        HD_LOG_INFO("membership: shard %u: change of node %llu failed: %s (retrying)",
                    l->shard->id, (unsigned long long)l->id, raft_strerror(status));
    }
    if (status == 0 && l->replacing != 0 && !l->shard->closed) {
        HD_LOG_INFO("membership: shard %u: leftover node %llu removed; adding node %llu",
                    l->shard->id, (unsigned long long)l->replacing, (unsigned long long)l->id);
        l->replacing = 0;
        int rv = raft_add(&l->shard->raft, &l->change, l->id, l->address, cons__member_changed);
        if (rv == 0) return;
        status = rv;
    } else if (status == 0 && l->op == CONS_MEMBER_ADD && !l->assigning && !l->shard->closed) {
        l->assigning = true;
        int rv = raft_assign(&l->shard->raft, &l->change, l->id, RAFT_VOTER,
                             cons__member_changed);
        if (rv == 0) return;
        status = rv;
    }
    cons__member_local_done(l, status == 0 ? 0 : (status == RAFT_NOTLEADER ? HD_ENOTLEADER
                                                                           : HD_EBUSY));
}

/* Starts the change on this node, which leads the shard. Returns 0 (the
 * change is under way), 1 (nothing to do), HD_EEXIST or a RAFT_* code. */
static int cons__member_apply(struct cons_member_local *l, const char *address)
{
    struct raft *r = &l->shard->raft;
    HD_ASSERT(raft_state(r) == RAFT_LEADER); /* the caller checked, just now */
    HD_ASSERT(!l->assigning);
    /* Neither "done already" nor a new change may rest on a configuration
     * that is not committed: it can still be lost, and raft 0.15 would let
     * a change follow one it restored at start. config_settle.c commits it. */
    if (!cons__config_committed(r)) {
        return RAFT_CANTCHANGE;
    }
    const struct raft_server *srv = cons__server(r, l->id);
    l->change.data = l;
    if (l->op == CONS_MEMBER_ADD) {
        if (srv != NULL && srv->role == RAFT_VOTER) return 1; /* done already */
        if (srv != NULL) {
            l->assigning = true;
            return raft_assign(r, &l->change, l->id, RAFT_VOTER, cons__member_changed);
        }
        snprintf(l->address, sizeof l->address, "%s", address);
        const struct raft_server *clash = cons__server_at(r, address, l->id);
        if (clash != NULL) {
            if (clash->id == l->node->opts.node_id || !cons__is_leftover(l->node, clash->id)) {
                HD_LOG_WARN("membership: shard %u: %s belongs to node %llu, a member of every "
                            "shard; node %llu cannot take it", l->shard->id, address,
                            (unsigned long long)clash->id, (unsigned long long)l->id);
                return HD_EEXIST;
            }
            HD_LOG_INFO("membership: shard %u: node %llu at %s is left over from an "
                        "unfinished change; removing it to add node %llu there",
                        l->shard->id, (unsigned long long)clash->id, address,
                        (unsigned long long)l->id);
            l->replacing = clash->id;
            return raft_remove(r, &l->change, clash->id, cons__member_changed);
        }
        return raft_add(r, &l->change, l->id, address, cons__member_changed);
    }
    if (srv == NULL) return 1;
    if (l->id == l->node->opts.node_id) {
        /* Hand leadership to another voter; the coordinator retries. */
        (void)cons__hand_over(l->node, l->shard, l->id);
        return RAFT_BUSY;
    }
    return raft_remove(r, &l->change, l->id, cons__member_changed);
}

static void cons__member_local(struct cons_node *n, unsigned shard, int op, uint64_t id,
                               const char *address, uint64_t from, uint64_t req_id)
{
    /* op: ours, or a frame's that the codec checked; shard: checked by callers. */
    HD_ASSERT(shard < n->opts.n_shards);
    HD_ASSERT(op == CONS_MEMBER_ADD || op == CONS_MEMBER_REMOVE);
    struct cons_member_local *l = hd_calloc(1, sizeof *l);
    int rv = HD_ENOMEM;
    if (l != NULL) {
        *l = (struct cons_member_local){.node = n, .shard = &n->shards[shard], .op = op,
                                        .id = id, .from = from, .req_id = req_id};
        rv = raft_state(&l->shard->raft) != RAFT_LEADER ? RAFT_NOTLEADER
                                                         : cons__member_apply(l, address);
    }
    if (rv == 0) return;
    if (rv != 1 && rv != HD_EEXIST) {
        HD_LOG_INFO("membership: shard %u: %s node %llu not possible now: %s (retrying)", shard,
                    op == CONS_MEMBER_ADD ? "adding" : "removing", (unsigned long long)id,
                    rv < 0 ? hd_strerror(rv) : raft_strerror(rv));
    }
    if (l == NULL) {
        if (from == 0) cons__member_shard_done(n, req_id, rv);
        else cons__member_reply(n, from, req_id, rv);
        return;
    }
    cons__member_local_done(l, rv == 1 ? 0
                               : rv == HD_EEXIST ? HD_EEXIST
                               : rv == RAFT_NOTLEADER ? HD_ENOTLEADER : HD_EBUSY);
}

/* -------------------------------------------------------------- frames --- */

static void cons__member_reply(struct cons_node *n, uint64_t to, uint64_t req_id, int status)
{
    /* Only a request that came over the transport is answered over it. */
    HD_ASSERT(n->transport != NULL && to != 0 && to != n->opts.node_id);
    HD_ASSERT(status <= 0);
    struct cons_frame f = {.kind = CONS_FRAME_MEMBER_RESP, .id = req_id,
                           .u.member_resp.status = status};
    (void)cons_frame_send(n->transport, to, 0, &f);
}

void cons__recv_member(struct cons_node *n, uint64_t from, uint16_t shard,
                       const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_MEMBER_REQ || f->kind == CONS_FRAME_MEMBER_RESP);
    if (f->kind == CONS_FRAME_MEMBER_RESP) {
        cons__member_shard_done(n, f->id, f->u.member_resp.status);
        return;
    }
    const struct cons_frame_member_req *r = &f->u.member_req;
    if (shard >= n->opts.n_shards) {
        HD_LOG_WARN("peer %llu asked a membership change of shard %u, which does not exist",
                    (unsigned long long)from, shard);
        return;
    }
    char address[CONS_FRAME_ADDRESS_MAX + 1];
    HD_STATIC_ASSERT(sizeof address == sizeof ((struct cons_member_change *)0)->address,
                     "a member address fits a frame");
    HD_ASSERT(r->address_len <= CONS_FRAME_ADDRESS_MAX); /* checked by the codec */
    memcpy(address, r->address, r->address_len);
    address[r->address_len] = '\0';
    cons__member_local(n, shard, r->op, r->node, address, from, f->id);
}

/* --------------------------------------------------- the coordinator --- */

static void cons__member_finish(struct cons_node *n, int status, const char *msg)
{
    struct cons_member_change *c = n->change;
    /* Success only once every shard made the change. */
    HD_ASSERT(status != 0 || (c->shard == n->opts.n_shards && c->req_id == 0));
    n->change = NULL;
    c->cb(c->arg, status, msg, c->shard);
    hd_free(c);
}

/* Asks the shard's leader to make the change; retries later if none. */
static void cons__member_step(struct cons_node *n)
{
    struct cons_member_change *c = n->change;
    HD_ASSERT(c != NULL && c->shard <= n->opts.n_shards);
    if (c->shard == n->opts.n_shards) {
        HD_LOG_INFO("membership: node %llu %s in all %u shards", (unsigned long long)c->id,
                    c->op == CONS_MEMBER_ADD ? "added" : "removed", n->opts.n_shards);
        cons__member_finish(n, 0, "done");
        return;
    }
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&n->shards[c->shard].raft, &leader, &addr);
    c->retry_at_ms = 0;
    c->req_id = ++n->next_request;
    c->sent_to = leader;
    c->sent_at_ms = uv_now(n->opts.loop);
    if (leader == n->opts.node_id) {
        cons__member_local(n, c->shard, c->op, c->id, c->address, 0, c->req_id);
        return;
    }
    struct cons_frame f = {.kind = CONS_FRAME_MEMBER_REQ, .id = c->req_id,
                           .u.member_req = {(uint8_t)c->op, c->id, c->address,
                                            strlen(c->address)}};
    if (leader == 0 || n->transport == NULL ||
        cons_frame_send(n->transport, leader, (uint16_t)c->shard, &f) != 0) {
        c->req_id = 0;
        c->retry_at_ms = uv_now(n->opts.loop) + CONS_MEMBER_RETRY_MS;
    }
}

static void cons__member_shard_done(struct cons_node *n, uint64_t req_id, int status)
{
    struct cons_member_change *c = n->change;
    if (c == NULL || c->req_id != req_id) {
        return; /* a late answer to an attempt given up */
    }
    c->req_id = 0;
    if (status == 0) {
        HD_ASSERT(c->shard < n->opts.n_shards); /* the shard just done */
        HD_LOG_INFO("membership: shard %u: node %llu %s", c->shard, (unsigned long long)c->id,
                    c->op == CONS_MEMBER_ADD ? "is a voter" : "removed");
        c->shard++;
        cons__member_step(n);
        return;
    }
    if (status == HD_EEXIST) {
        char msg[160];
        snprintf(msg, sizeof msg, "shard %u: %s belongs to another member of every shard; "
                 "remove that node first", c->shard, c->address);
        cons__member_finish(n, HD_EEXIST, msg);
        return;
    }
    c->retry_at_ms = uv_now(n->opts.loop) + CONS_MEMBER_RETRY_MS;
}

/* Called by the node's ticker: retries and deadlines. */
void cons__member_tick(struct cons_node *n)
{
    struct cons_member_change *c = n->change;
    if (c == NULL) {
        return;
    }
    /* A change past the last shard finished in cons__member_step. */
    HD_ASSERT(c->shard < n->opts.n_shards);
    uint64_t now = uv_now(n->opts.loop);
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&n->shards[c->shard].raft, &leader, &addr);
    if (leader != 0) {
        c->leaderless_since_ms = 0;
    } else if (c->leaderless_since_ms == 0) {
        c->leaderless_since_ms = now;
    }
    char msg[192];
    if (c->leaderless_since_ms != 0 && now - c->leaderless_since_ms >= CONS_MEMBER_LEADERLESS_MS) {
        snprintf(msg, sizeof msg, "shard %u has had no leader for %u s: a quorum of its voters "
                 "is unreachable; shards before it made the change (run it again to finish)",
                 c->shard, CONS_MEMBER_LEADERLESS_MS / 1000);
        cons__member_finish(n, HD_EUNAVAIL, msg);
        return;
    }
    if (now >= c->deadline_ms) {
        snprintf(msg, sizeof msg, "the change did not finish in time: shard %u did not make it; "
                 "shards before it did (run it again to finish)", c->shard);
        cons__member_finish(n, HD_EUNAVAIL, msg);
        return;
    }
    if (c->retry_at_ms != 0 && now >= c->retry_at_ms) {
        cons__member_step(n);
        return;
    }
    /* A request to a leader that died or stepped down gets no answer (the
     * transport queues frames for a peer that is down): ask again, of the
     * current leader. A late answer to the old request is ignored. */
    if (c->req_id != 0 && c->sent_to != n->opts.node_id &&
        (leader != c->sent_to || now - c->sent_at_ms >= CONS_MEMBER_RESEND_MS)) {
        cons__member_step(n);
    }
}

int cons_node_change_member(struct cons_node *n, int op, uint64_t id, const char *address,
                            uint64_t timeout_ms, cons_member_cb cb, void *arg)
{
    HD_ASSERT(op == CONS_MEMBER_ADD || op == CONS_MEMBER_REMOVE);
    HD_ASSERT(cb != NULL);
    if (n->change != NULL) {
        return HD_EBUSY;
    }
    if (id == 0 ||
        (op == CONS_MEMBER_ADD && (address == NULL || strlen(address) > CONS_FRAME_ADDRESS_MAX))) {
        return HD_EINVAL;
    }
    /* The lower id of a pair dials the other: a node that does not know
     * the members yet can only be reached if every member's id is lower. */
    const struct raft_configuration *conf = &n->shards[0].raft.configuration;
    for (unsigned k = 0; op == CONS_MEMBER_ADD && k < conf->n; k++) {
        if (conf->servers[k].id > id) {
            return HD_ERANGE;
        }
    }
    struct cons_member_change *c = hd_calloc(1, sizeof *c);
    if (c == NULL) {
        return HD_ENOMEM;
    }
    *c = (struct cons_member_change){
        .op = op, .id = id, .cb = cb, .arg = arg,
        .deadline_ms = uv_now(n->opts.loop) + (timeout_ms != 0 ? timeout_ms
                                                                : CONS_MEMBER_TIMEOUT_MS)};
    snprintf(c->address, sizeof c->address, "%s", address != NULL ? address : "");
    n->change = c;
    HD_LOG_INFO("membership: %s node %llu%s%s", op == CONS_MEMBER_ADD ? "adding" : "removing",
                (unsigned long long)id, op == CONS_MEMBER_ADD ? " at " : "", c->address);
    if (op == CONS_MEMBER_ADD && n->transport != NULL) {
        (void)cons_transport_set_peer(n->transport, id, c->address);
    }
    cons__member_step(n);
    return 0;
}

void cons__member_stop(struct cons_node *n)
{
    if (n->change != NULL) {
        cons__member_finish(n, HD_ESHUTDOWN, "the node is shutting down");
    }
    HD_ASSERT(n->change == NULL && n->stopping);
}
