/* SPDX-License-Identifier: Apache-2.0 */
/* The damaged node's side of a repair (see repair_request.h and repair.c). */
#include "repair_request.h"

#include <stdio.h>
#include <string.h>

#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "transport.h"

#define CONS_REPAIR_TICK_MS 500u
#define CONS_REPAIR_BACKOFF_MIN_MS 1000u
#define CONS_REPAIR_BACKOFF_MAX_MS 30000u

struct cons_repair_request {
    struct cons_repair_request_options o;
    struct cons_member *peers;    /* copied */
    char (*addresses)[CONS_FRAME_ADDRESS_MAX + 1];
    struct cons_transport *transport;
    uv_timer_t timer;
    unsigned next;                /* index of the member to ask */
    uint64_t req_id;              /* of the request waiting for an answer, 0: none */
    uint64_t sent_at_ms;
    uint64_t next_at_ms;          /* when to ask again */
    unsigned backoff_ms;
    unsigned attempts;
    bool done;
    char last_error[128];
    cons_repair_request_cb cb;
    void *arg;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void cons__rq_give_up(struct cons_repair_request *r, const char *why)
{
    uint64_t id = r->peers[r->next].id;
    /* A request still queued for a member that was not reachable must not
     * reach it when it comes back, while another member coordinates: two
     * coordinators would grant two new ids. Forgetting the peer drops its
     * queue; it is configured again at once, empty. */
    cons_transport_remove_peer(r->transport, id);
    (void)cons_transport_set_peer(r->transport, id, r->peers[r->next].address);
    snprintf(r->last_error, sizeof r->last_error, "node %llu: %s", (unsigned long long)id, why);
    HD_LOG_WARN("repair: asking node %llu to retire node %llu: %s (asking %s in %u ms)",
                (unsigned long long)id, (unsigned long long)r->o.old_id, why,
                r->o.n_peers > 1 ? "the next member" : "again", r->backoff_ms);
    r->req_id = 0;
    r->next = (r->next + 1) % r->o.n_peers;
    r->next_at_ms = uv_now(r->o.loop) + r->backoff_ms;
    r->backoff_ms = r->backoff_ms * 2 > CONS_REPAIR_BACKOFF_MAX_MS ? CONS_REPAIR_BACKOFF_MAX_MS
                                                                  : r->backoff_ms * 2;
}

static void cons__rq_send(struct cons_repair_request *r)
{
    uint64_t to = r->peers[r->next].id;
    struct cons_frame f = {.kind = CONS_FRAME_REPAIR_REQ, .id = ++r->attempts,
                           .u.repair_req = {.old_node = r->o.old_id, .address = r->o.address,
                                            .address_len = strlen(r->o.address)}};
    r->req_id = f.id;
    r->sent_at_ms = uv_now(r->o.loop);
    int rv = cons_frame_send(r->transport, to, 0, &f);
    if (rv != 0) {
        cons__rq_give_up(r, hd_strerror(rv));
        return;
    }
    HD_LOG_INFO("repair: asked node %llu to retire damaged node %llu (at %s) and give it a new "
                "id", (unsigned long long)to, (unsigned long long)r->o.old_id, r->o.address);
}

static void cons__rq_tick(uv_timer_t *t)
{
    struct cons_repair_request *r = t->data;
    if (r->done) {
        return;
    }
    uint64_t now = uv_now(r->o.loop);
    if (r->req_id == 0) {
        if (now >= r->next_at_ms) cons__rq_send(r);
        return;
    }
    struct cons_peer_stats ps = {0};
    (void)cons_transport_peer_stats(r->transport, r->peers[r->next].id, &ps);
    if (!ps.connected && now - r->sent_at_ms >= CONS_REPAIR_CONNECT_MS) {
        cons__rq_give_up(r, "not reachable");
    } else if (now - r->sent_at_ms >= CONS_REPAIR_ANSWER_MS) {
        cons__rq_give_up(r, "no answer");
    }
}

static void cons__rq_recv(void *arg, uint64_t from, uint8_t kind, uint16_t shard,
                          const uint8_t *payload, size_t len)
{
    struct cons_repair_request *r = arg;
    (void)shard;
    struct cons_frame f;
    /* Raft and every other frame of the members are for a member; this
     * node is none any more, so it stays silent. */
    if (kind != CONS_FRAME_REPAIR_RESP || r->done ||
        cons_frame_decode(kind, payload, len, &f) != 0 || f.id != r->req_id ||
        from != r->peers[r->next].id) {
        return;
    }
    if (f.u.repair_resp.status != 0) {
        cons__rq_give_up(r, hd_strerror(f.u.repair_resp.status));
        return;
    }
    r->done = true;
    r->req_id = 0;
    HD_LOG_INFO("repair: node %llu retired node %llu from every shard; new id %llu",
                (unsigned long long)from, (unsigned long long)r->o.old_id,
                (unsigned long long)f.u.repair_resp.new_node);
    r->cb(r->arg, f.u.repair_resp.new_node);
}

int cons_repair_request_start(struct cons_repair_request **out,
                              const struct cons_repair_request_options *o,
                              cons_repair_request_cb done, void *arg, char *errmsg,
                              size_t errmsg_len)
{
    HD_ASSERT(o->n_peers >= 1 && o->old_id != 0 && done != NULL);
    if (strlen(o->address) > CONS_FRAME_ADDRESS_MAX) {
        snprintf(errmsg, errmsg_len, "peer address %s is too long", o->address);
        return HD_EINVAL;
    }
    struct cons_repair_request *r = hd_calloc(1, sizeof *r);
    struct cons_member *peers = hd_calloc(o->n_peers, sizeof *peers);
    char (*addresses)[CONS_FRAME_ADDRESS_MAX + 1] = hd_calloc(o->n_peers, sizeof *addresses);
    if (r == NULL || peers == NULL || addresses == NULL) {
        hd_free(r);
        hd_free(peers);
        hd_free(addresses);
        return HD_ENOMEM;
    }
    *r = (struct cons_repair_request){.o = *o, .peers = peers, .addresses = addresses,
                                      .backoff_ms = CONS_REPAIR_BACKOFF_MIN_MS, .cb = done,
                                      .arg = arg};
    for (unsigned i = 0; i < o->n_peers; i++) {
        snprintf(addresses[i], sizeof addresses[i], "%s", o->peers[i].address);
        peers[i] = (struct cons_member){o->peers[i].id, addresses[i]};
    }
    r->o.peers = peers;
    struct cons_transport_options to = {.loop = o->loop, .node_id = o->old_id,
                                        .cluster_id = o->cluster_id,
                                        .listen_addr = o->address, .tls = o->tls};
    int rv = cons_transport_init(&r->transport, &to, cons__rq_recv, r, errmsg, errmsg_len);
    for (unsigned i = 0; rv == 0 && i < o->n_peers; i++) {
        rv = cons_transport_set_peer(r->transport, peers[i].id, peers[i].address);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "member %llu at %s: %s",
                     (unsigned long long)peers[i].id, peers[i].address, hd_strerror(rv));
        }
    }
    if (rv != 0) {
        if (r->transport != NULL) cons_transport_close(r->transport, NULL, NULL);
        hd_free(peers);
        hd_free(addresses);
        hd_free(r);
        return rv;
    }
    uv_timer_init(o->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, cons__rq_tick, 0, CONS_REPAIR_TICK_MS);
    *out = r;
    return 0;
}

void cons_repair_request_status(const struct cons_repair_request *r,
                                struct cons_repair_request_status *out)
{
    *out = (struct cons_repair_request_status){
        .asking = r->req_id != 0 ? r->peers[r->next].id : 0, .attempts = r->attempts};
    snprintf(out->last_error, sizeof out->last_error, "%s", r->last_error);
}

static void cons__rq_timer_closed(uv_handle_t *h)
{
    struct cons_repair_request *r = h->data;
    void (*cb)(void *) = r->close_cb;
    void *arg = r->close_arg;
    hd_free(r->peers);
    hd_free(r->addresses);
    hd_free(r);
    if (cb != NULL) cb(arg);
}

static void cons__rq_transport_closed(void *arg)
{
    struct cons_repair_request *r = arg;
    uv_close((uv_handle_t *)&r->timer, cons__rq_timer_closed);
}

void cons_repair_request_close(struct cons_repair_request *r, void (*cb)(void *arg), void *arg)
{
    r->done = true;
    r->close_cb = cb;
    r->close_arg = arg;
    uv_timer_stop(&r->timer);
    cons_transport_close(r->transport, cons__rq_transport_closed, r);
}
