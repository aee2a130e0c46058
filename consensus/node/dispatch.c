/* SPDX-License-Identifier: Apache-2.0 */
/* Dispatch: raft messages out over the transport, every received frame to its concept. */
#include "dispatch.h"

#include "catchup.h"
#include "commit_notice.h"
#include "disk_space.h"
#include "forward.h"
#include "command_propose.h"
#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "membership.h"
#include "repair.h"
#include "msg_codec.h"
#include "node_internal.h"
#include "raft_io.h"
#include "read_barrier.h"
#include "transport.h"

static int cons__send_raft(void *arg, unsigned shard, raft_id to, const struct raft_message *m)
{
    struct cons_node *n = arg;
    /* raft_io only sends for its shards, and raft never to itself. */
    HD_ASSERT(shard < n->opts.n_shards && to != n->opts.node_id);
    HD_ASSERT(n->transport != NULL);
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

/* Below the disk's floor (storage/disk_space.h) a follower does not store
 * what leaders send: entries and snapshots are dropped as a lossy link
 * would drop them. Heartbeats still pass, so it starts no election, and
 * the leader keeps retrying; once space returns it catches up. Without
 * this, replicated entries would run the WAL out of space and stop the
 * node (exit 4). */
static bool cons__refuse_replication(struct cons_node *n, const struct raft_message *m)
{
    bool writes = (m->type == RAFT_IO_APPEND_ENTRIES && m->append_entries.n_entries > 0) ||
                  m->type == RAFT_IO_INSTALL_SNAPSHOT;
    return writes && n->opts.space != NULL && st_space_floor(n->opts.space);
}

/* A raft message for the shard's raft, which takes its memory. */
static void cons__recv_raft(struct cons_node *n, uint64_t from, uint16_t shard,
                            const uint8_t *payload, size_t len)
{
    struct raft_message m;
    if (cons_msg_decode(payload, len, &m) != 0) {
        HD_LOG_WARN("peer %llu sent a malformed raft message (shard %u); dropped",
                    (unsigned long long)from, shard);
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
    if (cons__refuse_replication(n, &m)) {
        cons_msg_release(&m);
        return;
    }
    bool stored = m.type == RAFT_IO_APPEND_ENTRIES_RESULT && m.append_entries_result.rejected == 0;
    uint64_t stored_index = stored ? m.append_entries_result.last_log_index : 0;
    if (!cons_store_deliver(n->store, shard, &m)) {
        cons_msg_release(&m);
    } else if (stored) {
        cons__commit_stored(&n->shards[shard], from, stored_index); /* after raft's quorum */
    }
}

/* The transport's receive callback: every frame is decoded here, once, and
 * handed to the concept that owns its kind. */
static void cons__recv(void *arg, uint64_t from, uint8_t kind, uint16_t shard,
                       const uint8_t *payload, size_t len)
{
    struct cons_node *n = arg;
    /* The transport names the peer from its checked HELLO: never 0 nor us. */
    HD_ASSERT(from != 0 && from != n->opts.node_id);
    if (n->stopping) {
        return;
    }
    if (kind == CONS_FRAME_RAFT) {
        cons__recv_raft(n, from, shard, payload, len);
        return;
    }
    struct cons_frame f;
    if (cons_frame_decode(kind, payload, len, &f) != 0) {
        HD_LOG_WARN("peer %llu sent a malformed frame (kind %u, shard %u, %zu bytes); dropped",
                    (unsigned long long)from, kind, shard, len);
        return;
    }
    HD_ASSERT(f.kind == kind);
    switch (kind) {
    case CONS_FRAME_FORWARD_REQ:
    case CONS_FRAME_FORWARD_RESP:
        cons__recv_forward(n, from, &f);
        break;
    case CONS_FRAME_COMMAND_REQ:
        cons__recv_command(n, from, &f);
        break;
    case CONS_FRAME_READ_REQ:
    case CONS_FRAME_READ_RESP:
        cons__recv_read(n, from, shard, &f);
        break;
    case CONS_FRAME_MEMBER_REQ:
    case CONS_FRAME_MEMBER_RESP:
        cons__recv_member(n, from, shard, &f);
        break;
    case CONS_FRAME_STATE_REQ:
    case CONS_FRAME_STATE_CHUNK:
        cons__recv_state(n, from, shard, &f);
        break;
    case CONS_FRAME_REPAIR_REQ:
        cons__recv_repair(n, from, &f);
        break;
    case CONS_FRAME_REPAIR_RESP:
        /* Only a node under repair (heraldd/repair.c) asks; a member never does. */
        HD_LOG_WARN("peer %llu sent a repair answer this node never asked for; dropped",
                    (unsigned long long)from);
        break;
    default:
        HD_ASSERT(!"cons_frame_decode accepts only known kinds");
    }
}

/* ------------------------------------------------------------ lifecycle --- */

void cons_node_set_peer_tls(struct cons_node *n, struct hd_tls_ctx *ctx)
{
    if (n->transport != NULL) {
        cons_transport_set_tls(n->transport, ctx);
    }
}

int cons__peers_start(struct cons_node *n, char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(n->transport == NULL && n->store != NULL);
    if (n->opts.peer_listen == NULL) {
        return 0;
    }
    struct cons_transport_options to = {.loop = n->opts.loop, .node_id = n->opts.node_id,
                                        .cluster_id = n->opts.cluster_id,
                                        .listen_addr = n->opts.peer_listen,
                                        .tls = n->opts.peer_tls};
    int rv = cons_transport_init(&n->transport, &to, cons__recv, n, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    HD_ASSERT(n->transport != NULL);
    cons_store_set_sender(n->store, cons__send_raft, n);
    cons__catchup_start(n);
    return 0;
}
