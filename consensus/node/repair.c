/* SPDX-License-Identifier: Apache-2.0 */
/* A damaged member replaced under a new id, coordinated by a healthy node. */
#include <stdio.h>
#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node_internal.h"
#include "repair.h"
#include "transport.h"

/*
 * A node that found its own data damaged (heraldd/repair.c) no longer has
 * the log its id voted and acknowledged with. Letting that id vote again
 * with a shorter log is Raft's forgetful-node hazard: a quorum counted with
 * it may not hold an entry that was committed. So the id is retired:
 *
 *   1. the damaged node, still under its old id and serving nothing, sends
 *      REPAIR_REQ (old id, its peer address) to one healthy member;
 *   2. that member removes the old id from every shard, through each
 *      shard's leader (membership.c), before anything else happens;
 *   3. it answers REPAIR_RESP with a new id, higher than every id it knows,
 *      and then adds the new id at the same address, as `add-node` does: a
 *      spare first, a voter of each shard only once it caught up;
 *   4. the damaged node moves its data aside and starts empty under the new
 *      id, as a joining node; the add of step 3 reaches it there.
 *
 * The removal comes first and alone, so the old id never counts toward a
 * commit once the repair began, and the new id can never vote with a log it
 * does not have. A request repeated (a lost answer) while the removal runs
 * only changes where the answer goes; one for an id already removed from
 * every shard gets the id given out then. The addition is retried here
 * (CONS_REPAIR_ADD_TRIES) if it fails; if this node dies first, the new
 * node waits as a joiner and an operator's add-node finishes it (logged).
 */

#define CONS_REPAIR_REMOVE_TIMEOUT_MS 120000u
#define CONS_REPAIR_ADD_RETRY_MS 5000u
#define CONS_REPAIR_ADD_TRIES 12u

struct cons_repair {
    struct cons_node *node;
    uint64_t old_id;
    uint64_t new_id;              /* 0 until the old id is removed */
    uint64_t reply_to;            /* the damaged node (its old id) */
    uint64_t reply_req;           /* the request id to answer */
    char address[CONS_FRAME_ADDRESS_MAX + 1];
    unsigned add_tries;
    uint64_t add_retry_at_ms;     /* 0: not waiting to retry the addition */
    bool adding;                  /* cons_node_change_member(ADD) under way */
};

static void cons__repair_reply(struct cons_node *n, uint64_t to, uint64_t req_id, int status,
                               uint64_t new_id)
{
    HD_ASSERT(status <= 0 && (status == 0) == (new_id != 0));
    if (n->transport == NULL || n->stopping) {
        return;
    }
    struct cons_frame f = {.kind = CONS_FRAME_REPAIR_RESP, .id = req_id,
                           .u.repair_resp = {.status = status, .new_node = new_id}};
    (void)cons_frame_send(n->transport, to, 0, &f);
}

static void cons__repair_free(struct cons_node *n)
{
    hd_free(n->repair);
    n->repair = NULL;
}

/* Higher than every id of every shard's configuration, this node's and
 * the old id, so that the node that joins with it is dialled by every
 * member (the lower id dials) and the old id is never given out again. */
static uint64_t cons__repair_new_id(struct cons_node *n, uint64_t old_id)
{
    uint64_t max = old_id > n->opts.node_id ? old_id : n->opts.node_id;
    for (unsigned s = 0; s < n->opts.n_shards; s++) {
        const struct raft_configuration *c = &n->shards[s].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id > max) max = c->servers[k].id;
        }
    }
    return max + 1;
}

/* A member other than the old id at this address in some shard, or 0. */
static uint64_t cons__repair_other_at(const struct cons_node *n, uint64_t old_id,
                                      const char *address)
{
    for (unsigned s = 0; s < n->opts.n_shards; s++) {
        const struct raft_configuration *c = &n->shards[s].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id != old_id && strcmp(c->servers[k].address, address) == 0) {
                return c->servers[k].id;
            }
        }
    }
    return 0;
}

static void cons__repair_added(void *arg, int status, const char *message, unsigned shards_done)
{
    struct cons_node *n = arg;
    struct cons_repair *r = n->repair;
    HD_ASSERT(r != NULL && r->adding);
    r->adding = false;
    if (status == 0) {
        HD_LOG_INFO("repair: node %llu (replacing damaged node %llu at %s) is a voter of "
                    "every shard", (unsigned long long)r->new_id,
                    (unsigned long long)r->old_id, r->address);
        cons__repair_free(n);
        return;
    }
    if (n->stopping || ++r->add_tries >= CONS_REPAIR_ADD_TRIES) {
        HD_LOG_ERROR("repair: adding node %llu at %s stopped after %u shards: %s; finish it "
                     "with `herald cluster add-node %llu %s`", (unsigned long long)r->new_id,
                     r->address, shards_done, message, (unsigned long long)r->new_id,
                     r->address);
        cons__repair_free(n);
        return;
    }
    HD_LOG_WARN("repair: adding node %llu at %s stopped after %u shards: %s (retrying)",
                (unsigned long long)r->new_id, r->address, shards_done, message);
    r->add_retry_at_ms = uv_now(n->opts.loop) + CONS_REPAIR_ADD_RETRY_MS;
}

static void cons__repair_add(struct cons_node *n)
{
    struct cons_repair *r = n->repair;
    r->add_retry_at_ms = 0;
    int rv = cons_node_change_member(n, CONS_MEMBER_ADD, r->new_id, r->address, 0,
                                     cons__repair_added, n);
    if (rv == 0) {
        r->adding = true;
        return;
    }
    /* HD_EBUSY: another change runs here (an operator's); try later. */
    HD_LOG_INFO("repair: cannot add node %llu yet: %s (retrying)",
                (unsigned long long)r->new_id, hd_strerror(rv));
    r->add_retry_at_ms = uv_now(n->opts.loop) + CONS_REPAIR_ADD_RETRY_MS;
}

static void cons__repair_removed(void *arg, int status, const char *message,
                                 unsigned shards_done)
{
    struct cons_node *n = arg;
    struct cons_repair *r = n->repair;
    HD_ASSERT(r != NULL && r->new_id == 0);
    if (status != 0) {
        HD_LOG_WARN("repair: removing damaged node %llu stopped after %u shards: %s",
                    (unsigned long long)r->old_id, shards_done, message);
        cons__repair_reply(n, r->reply_to, r->reply_req, status, 0);
        cons__repair_free(n);
        return;
    }
    uint64_t other = cons__repair_other_at(n, r->old_id, r->address);
    if (other != 0) {
        /* Another member coordinated this repair too (a request that
         * reached both): its new id is being added there. Adding a second
         * one would replace it in the shards it has reached so far. */
        HD_LOG_WARN("repair: node %llu already holds %s in some shard: another member is "
                    "adding it in place of node %llu; leaving it to that member",
                    (unsigned long long)other, r->address, (unsigned long long)r->old_id);
        cons__repair_reply(n, r->reply_to, r->reply_req, HD_EBUSY, 0);
        cons__repair_free(n);
        return;
    }
    r->new_id = cons__repair_new_id(n, r->old_id);
    HD_LOG_INFO("repair: damaged node %llu removed from every shard; it rejoins at %s as "
                "node %llu", (unsigned long long)r->old_id, r->address,
                (unsigned long long)r->new_id);
    cons__repair_reply(n, r->reply_to, r->reply_req, 0, r->new_id);
    cons__repair_add(n);
}

/* The old id's address in the shards that still hold it must be the one
 * the request came with: a node may only retire itself. */
static bool cons__repair_address_ok(const struct cons_node *n, uint64_t id, const char *address)
{
    for (unsigned s = 0; s < n->opts.n_shards; s++) {
        const struct raft_configuration *c = &n->shards[s].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (c->servers[k].id == id && strcmp(c->servers[k].address, address) != 0) {
                return false;
            }
        }
    }
    return true;
}

void cons__recv_repair(struct cons_node *n, uint64_t from, const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_REPAIR_REQ);
    const struct cons_frame_repair_req *q = &f->u.repair_req;
    char address[CONS_FRAME_ADDRESS_MAX + 1];
    HD_ASSERT(q->address_len <= CONS_FRAME_ADDRESS_MAX); /* checked by the codec */
    memcpy(address, q->address, q->address_len);
    address[q->address_len] = '\0';
    if (q->old_node != from || from == n->opts.node_id || !cons__repair_address_ok(n, from, address)) {
        HD_LOG_WARN("repair: refused a request from node %llu to replace node %llu at %s "
                    "(a node may only retire its own id and address)",
                    (unsigned long long)from, (unsigned long long)q->old_node, address);
        cons__repair_reply(n, from, f->id, HD_EINVAL, 0);
        return;
    }
    struct cons_repair *r = n->repair;
    if (r != NULL && r->old_id == from) {
        r->reply_to = from;
        r->reply_req = f->id;
        if (r->new_id != 0) {
            cons__repair_reply(n, from, f->id, 0, r->new_id); /* the answer was lost */
        }
        return;
    }
    if (r != NULL || n->change != NULL) {
        cons__repair_reply(n, from, f->id, HD_EBUSY, 0);
        return;
    }
    r = hd_calloc(1, sizeof *r);
    if (r == NULL) {
        cons__repair_reply(n, from, f->id, HD_ENOMEM, 0);
        return;
    }
    *r = (struct cons_repair){.node = n, .old_id = from, .reply_to = from, .reply_req = f->id};
    snprintf(r->address, sizeof r->address, "%s", address);
    n->repair = r;
    HD_LOG_WARN("repair: node %llu at %s reports its data damaged; removing its id from every "
                "shard before it rejoins under a new one", (unsigned long long)from, address);
    int rv = cons_node_change_member(n, CONS_MEMBER_REMOVE, from, NULL,
                                     CONS_REPAIR_REMOVE_TIMEOUT_MS, cons__repair_removed, n);
    if (rv != 0) {
        cons__repair_reply(n, from, f->id, rv == HD_EBUSY ? HD_EBUSY : HD_EUNAVAIL, 0);
        cons__repair_free(n);
    }
}

void cons__repair_tick(struct cons_node *n)
{
    struct cons_repair *r = n->repair;
    if (r != NULL && !r->adding && r->add_retry_at_ms != 0 &&
        uv_now(n->opts.loop) >= r->add_retry_at_ms) {
        cons__repair_add(n);
    }
}

void cons__repair_stop(struct cons_node *n)
{
    /* Called after cons__member_stop ended any change (and its callback
     * freed a repair still removing). */
    if (n->repair != NULL) {
        HD_LOG_WARN("repair: stopping before node %llu was added at %s; finish it with "
                    "`herald cluster add-node %llu %s`", (unsigned long long)n->repair->new_id,
                    n->repair->address, (unsigned long long)n->repair->new_id,
                    n->repair->address);
        cons__repair_free(n);
    }
}
