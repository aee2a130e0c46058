/* SPDX-License-Identifier: Apache-2.0 */
/* Catch-up: a follower behind the leader's compacted log copies the shard's state. */
#include <stdio.h>
#include <string.h>

#include "catchup.h"
#include "frames.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "manifest.h"
#include "node_internal.h"
#include "raft_io.h"
#include "transport.h"

/*
 * Raft snapshots here are a 16-byte manifest (manifest.h): the state stays in
 * RocksDB. When the leader sends one because a follower is behind its
 * compacted log, the follower first copies the shard's state from the
 * leader over the peer link, then lets raft install the manifest:
 *
 *   follower                          leader
 *   STATE_REQ {id, min applied}  -->  opens a consistent view of the shard
 *                                <--  STATE_CHUNK {id, seq, last, chunk} ...
 *   replaces its shard's state chunk by chunk (log/transfer.c), flushes,
 *   checks applied >= min applied, then installs the snapshot.
 *
 * Chunks are about 1 MiB before zstd; the leader sends one only while the
 * peer's transport queue holds less than CONS_STATE_QUEUE_BYTES, so memory
 * stays bounded whatever the size of the state.
 *
 * A copy, once asked for, ends only when the state is here or the node
 * stops. One that stalls for CONS_STATE_TIMEOUT_MS, gets an error chunk, or
 * finds no leader to ask starts again from the beginning, from the shard's
 * leader of the moment, CONS_STATE_RETRY_MS later. It cannot hand the
 * failure back to raft: canonical/raft (0.15) has already replaced its
 * in-memory log with the snapshot when it asks for the install, and does
 * not undo that when the install fails. A follower left so would never
 * apply again, and its later entries would not line up with its WAL.
 * (Frame layouts in peer/frames.h.)
 */

#define CONS_STATE_QUEUE_BYTES (4u << 20)
#define CONS_STATE_TIMEOUT_MS 30000u
#define CONS_STATE_RETRY_MS 1000u
/* Copies sent at once. They share the peer's queue bound, so more copies
 * cost no memory; refusing one makes raft wait its install timeout (30 s)
 * before it sends that snapshot again. */
#define CONS_STATE_SENDS_MAX 64u
#define CONS_STATE_PUMP_MS 2u


/* A copy this node receives. */
struct cons_catchup {
    uint64_t id;                  /* of the request in flight; 0 while waiting to ask */
    unsigned shard;
    uint64_t from;
    uint64_t min_applied;
    uint32_t next_seq;
    uint64_t deadline_ms;         /* in flight: stalled past it; waiting: ask again then */
    unsigned attempts;            /* requests sent */
    bool begun;                   /* this attempt cleared the shard's state */
    int flush_status;             /* of the final flush */
    void (*done)(void *ctx, int status);
    void *ctx;
    uv_work_t flush;
    struct cons_node *node;
    struct cons_catchup *next;
};

/* A copy this node sends. */
struct cons_state_out {
    uint64_t id;
    uint64_t to;
    unsigned shard;
    uint32_t seq;
    struct log_state_reader *reader;
    struct cons_state_out *next;
};

/* ------------------------------------------------------------ sending --- */

static void cons__state_chunk_send(struct cons_node *n, uint64_t to, unsigned shard,
                                   uint64_t id, uint32_t seq, uint8_t flags,
                                   const uint8_t *chunk, size_t len)
{
    HD_ASSERT(shard < n->opts.n_shards);
    HD_ASSERT((flags & ~(CONS_FRAME_STATE_LAST | CONS_FRAME_STATE_ERROR)) == 0 &&
              (chunk != NULL || len == 0));
    struct cons_frame f = {.kind = CONS_FRAME_STATE_CHUNK, .id = id,
                           .u.state_chunk = {seq, flags, chunk, len}};
    (void)cons_frame_send(n->transport, to, (uint16_t)shard, &f);
}

static void cons__state_out_free(struct cons_state_out *o)
{
    log_state_reader_close(o->reader);
    hd_free(o);
}

/* Sends chunks of one copy while the peer's queue has room; true when done. */
static bool cons__state_out_pump(struct cons_node *n, struct cons_state_out *o)
{
    HD_ASSERT(o->reader != NULL && o->shard < n->opts.n_shards);
    for (;;) {
        struct cons_peer_stats ps;
        if (cons_transport_peer_stats(n->transport, o->to, &ps) != 0) {
            return true; /* the peer is gone */
        }
        if (ps.bytes_queued > CONS_STATE_QUEUE_BYTES) {
            return false;
        }
        uint8_t *chunk = NULL;
        size_t len = 0;
        bool last = false;
        int rv = log_state_reader_next(o->reader, &chunk, &len, &last);
        uint8_t flags = rv != 0 ? CONS_FRAME_STATE_ERROR : (last ? CONS_FRAME_STATE_LAST : 0);
        cons__state_chunk_send(n, o->to, o->shard, o->id, o->seq++, flags, chunk, len);
        hd_free(chunk);
        if (flags != 0) {
            return true;
        }
    }
}

static void cons__state_pump(uv_timer_t *t)
{
    struct cons_node *n = t->data;
    struct cons_state_out **pp = &n->catchups.out;
    while (*pp != NULL) {
        struct cons_state_out *o = *pp;
        if (cons__state_out_pump(n, o)) {
            *pp = o->next;
            HD_ASSERT(n->catchups.out_n > 0);
            n->catchups.out_n--;
            cons__state_out_free(o);
        } else {
            pp = &o->next;
        }
    }
    if (n->catchups.out == NULL) {
        HD_ASSERT(n->catchups.out_n == 0); /* out_n counts the list */
        uv_timer_stop(t);
    }
}

static void cons__recv_state_req(struct cons_node *n, uint64_t from, unsigned shard,
                                 const struct cons_frame *f)
{
    if (shard >= n->opts.n_shards) {
        HD_LOG_WARN("peer %llu asked for the state of shard %u, which does not exist",
                    (unsigned long long)from, shard);
        return;
    }
    uint64_t id = f->id, min_applied = f->u.state_req.min_applied, applied = 0;
    struct cons_state_out *o = NULL;
    int rv = log_applied_index(n->opts.log, (uint16_t)shard, &applied);
    if (rv == 0 && (applied < min_applied || n->catchups.out_n >= CONS_STATE_SENDS_MAX)) {
        rv = HD_EBUSY; /* not there yet, or busy: the follower retries */
    }
    if (rv == 0) {
        o = hd_calloc(1, sizeof *o);
        rv = o == NULL ? HD_ENOMEM : log_state_reader_open(n->opts.log, (uint16_t)shard, &o->reader);
    }
    if (rv != 0) {
        hd_free(o);
        cons__state_chunk_send(n, from, shard, id, 0, CONS_FRAME_STATE_ERROR, NULL, 0);
        return;
    }
    HD_LOG_INFO("shard %u: sending state (applied %llu) to node %llu", shard,
                (unsigned long long)applied, (unsigned long long)from);
    *o = (struct cons_state_out){id, from, shard, 0, o->reader, n->catchups.out};
    n->catchups.out = o;
    n->catchups.out_n++;
    HD_ASSERT(n->catchups.out_n <= CONS_STATE_SENDS_MAX);
    uv_timer_start(&n->catchups.pump, cons__state_pump, 0, CONS_STATE_PUMP_MS);
}

/* ---------------------------------------------------------- receiving --- */

static struct cons_catchup *cons__catchup_take(struct cons_node *n, uint64_t id)
{
    if (id == 0) {
        return NULL; /* no request has id 0: 0 marks a copy waiting to ask */
    }
    for (struct cons_catchup **pp = &n->catchups.in; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct cons_catchup *c = *pp;
            *pp = c->next;
            HD_ASSERT(c->shard < n->opts.n_shards);
            return c;
        }
    }
    return NULL;
}

static void cons__catchup_finish(struct cons_catchup *c, int status)
{
    /* Success only after the last chunk, so after the replace began. */
    HD_ASSERT(status == 0 ? c->begun : status < 0);
    if (status == 0) {
        HD_LOG_INFO("shard %u: state copied from node %llu", c->shard,
                    (unsigned long long)c->from);
    }
    c->done(c->ctx, status);
    hd_free(c);
}

/* Asks the shard's leader for its state; false if there is none to ask
 * (the copy then waits for the next try). */
static bool cons__catchup_ask(struct cons_node *n, struct cons_catchup *c)
{
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&n->shards[c->shard].raft, &leader, &address);
    if (leader == 0 || leader == n->opts.node_id) {
        return false;
    }
    uint64_t id = ++n->next_request;
    struct cons_frame req = {.kind = CONS_FRAME_STATE_REQ, .id = id,
                             .u.state_req.min_applied = c->min_applied};
    if (cons_frame_send(n->transport, leader, (uint16_t)c->shard, &req) != 0) {
        return false;
    }
    c->id = id;
    c->from = leader;
    c->next_seq = 0;
    c->begun = false;
    c->attempts++;
    c->deadline_ms = uv_now(n->opts.loop) + CONS_STATE_TIMEOUT_MS;
    return true;
}

/* A failed attempt: the copy starts again from the beginning a little
 * later (see the comment at the top). It stays on n->catchups.in. */
static void cons__catchup_retry(struct cons_node *n, struct cons_catchup *c, const char *why)
{
    HD_LOG_WARN("shard %u: state copy from node %llu failed (%s); copying again in %u ms",
                c->shard, (unsigned long long)c->from, why, CONS_STATE_RETRY_MS);
    c->id = 0;
    c->deadline_ms = uv_now(n->opts.loop) + CONS_STATE_RETRY_MS;
    c->next = n->catchups.in;
    n->catchups.in = c;
}

static void cons__catchup_flush(uv_work_t *w)
{
    struct cons_catchup *c = w->data;
    /* Durable before raft drops the log that state replaces. */
    c->flush_status = log_flush(c->node->opts.log);
}

static void cons__catchup_flushed(uv_work_t *w, int status)
{
    struct cons_catchup *c = w->data;
    HD_ASSERT(c->begun && c->next_seq > 0); /* queued after the last chunk only */
    uint64_t applied = 0;
    int rv = status != 0 || c->flush_status != 0 ? HD_EIO : 0;
    if (rv == 0) {
        rv = log_applied_index(c->node->opts.log, (uint16_t)c->shard, &applied);
    }
    if (rv == 0 && applied < c->min_applied) {
        rv = HD_EIO; /* the copy is older than the snapshot */
    }
    if (rv != 0 && !c->node->stopping) {
        cons__catchup_retry(c->node, c, "the copied state did not reach the snapshot");
        return;
    }
    cons__catchup_finish(c, rv);
}

/* Applies one chunk; returns non-zero when the copy ended (ok or not). */
static int cons__catchup_chunk(struct cons_catchup *c, uint32_t seq, uint8_t flags,
                               const uint8_t *chunk, size_t len, bool *finished)
{
    struct log_store *ls = c->node->opts.log;
    HD_ASSERT(c->shard < c->node->opts.n_shards);
    *finished = false;
    if ((flags & CONS_FRAME_STATE_ERROR) != 0 || seq != c->next_seq) {
        return HD_EIO;
    }
    c->next_seq++;
    int rv = 0;
    if (!c->begun) {
        rv = log_state_replace_begin(ls, (uint16_t)c->shard);
        c->begun = rv == 0;
    }
    if (rv == 0) {
        rv = log_state_replace_chunk(ls, (uint16_t)c->shard, chunk, len);
    }
    if (rv == 0 && (flags & CONS_FRAME_STATE_LAST) != 0) {
        rv = log_state_replace_end(ls, (uint16_t)c->shard);
        *finished = rv == 0;
    }
    HD_ASSERT(!*finished || (c->begun && rv == 0));
    return rv;
}

static void cons__recv_state_chunk(struct cons_node *n, uint64_t from,
                                   const struct cons_frame *f)
{
    struct cons_catchup *c = cons__catchup_take(n, f->id);
    if (c == NULL) {
        return; /* timed out already */
    }
    if (c->from != from) {
        c->next = n->catchups.in;
        n->catchups.in = c;
        return;
    }
    bool finished;
    const struct cons_frame_state_chunk *ch = &f->u.state_chunk;
    int rv = cons__catchup_chunk(c, ch->seq, ch->flags, ch->chunk, ch->len, &finished);
    if (rv != 0) {
        cons__catchup_retry(n, c, (ch->flags & CONS_FRAME_STATE_ERROR) != 0
                                      ? "it could not send it yet"
                                      : hd_strerror(rv));
    } else if (finished) {
        c->flush.data = c;
        if (uv_queue_work(n->opts.loop, &c->flush, cons__catchup_flush,
                          cons__catchup_flushed) != 0) {
            cons__catchup_retry(n, c, "the final flush could not be queued");
        }
    } else {
        c->deadline_ms = uv_now(n->opts.loop) + CONS_STATE_TIMEOUT_MS;
        c->next = n->catchups.in;
        n->catchups.in = c;
    }
}

void cons__recv_state(struct cons_node *n, uint64_t from, uint16_t shard,
                      const struct cons_frame *f)
{
    HD_ASSERT(f->kind == CONS_FRAME_STATE_REQ || f->kind == CONS_FRAME_STATE_CHUNK);
    if (f->kind == CONS_FRAME_STATE_REQ) {
        cons__recv_state_req(n, from, shard, f);
    } else {
        cons__recv_state_chunk(n, from, f);
    }
}

/* raft_io's hook: called when a snapshot from the leader is to replace the
 * shard's log. */
static int cons__catch_up(void *arg, unsigned shard, const struct raft_snapshot *snap,
                          void (*done)(void *ctx, int status), void *ctx)
{
    struct cons_node *n = arg;
    HD_ASSERT(shard < n->opts.n_shards && n->transport != NULL);
    struct cons_manifest m;
    if (snap->n_bufs != 1 || cons_manifest_decode(snap->bufs[0].base, snap->bufs[0].len, &m) != 0 ||
        m.shard != shard) {
        return HD_ECORRUPT;
    }
    for (struct cons_catchup *c = n->catchups.in; c != NULL; c = c->next) {
        if (c->shard == shard) {
            return HD_EBUSY; /* a copy for this shard is under way */
        }
    }
    uint64_t want = m.applied, applied = 0;
    int rv = log_applied_index(n->opts.log, (uint16_t)shard, &applied);
    if (rv == 0 && applied >= want && !log_state_incomplete(n->opts.log, (uint16_t)shard)) {
        done(ctx, 0); /* state is already here */
        return 0;
    }
    struct cons_catchup *c = rv == 0 ? hd_calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
        return rv != 0 ? rv : HD_ENOMEM;
    }
    *c = (struct cons_catchup){.shard = shard, .min_applied = want, .done = done, .ctx = ctx,
                               .node = n};
    if (cons__catchup_ask(n, c)) {
        HD_LOG_INFO("shard %u: behind the leader's log (applied %llu, snapshot needs %llu): "
                    "copying state from node %llu", shard, (unsigned long long)applied,
                    (unsigned long long)want, (unsigned long long)c->from);
    } else {
        HD_LOG_INFO("shard %u: behind the leader's log (applied %llu, snapshot needs %llu): "
                    "no leader to copy state from yet", shard, (unsigned long long)applied,
                    (unsigned long long)want);
        c->deadline_ms = uv_now(n->opts.loop) + CONS_STATE_RETRY_MS;
    }
    c->next = n->catchups.in;
    n->catchups.in = c;
    return 0;
}

/* Starts again the copies that stalled, asks again for those waiting, or
 * (when stopping) ends them all. */
void cons__catchups_expire(struct cons_node *n, bool all)
{
    uint64_t now = uv_now(n->opts.loop);
    struct cons_catchup *due = NULL;
    struct cons_catchup **pp = &n->catchups.in;
    while (*pp != NULL) {
        struct cons_catchup *c = *pp;
        if (all || c->deadline_ms <= now) {
            *pp = c->next;
            c->next = due;
            due = c;
        } else {
            pp = &c->next;
        }
    }
    while (due != NULL) {
        struct cons_catchup *c = due;
        due = c->next;
        if (all) {
            cons__catchup_finish(c, HD_ESHUTDOWN);
        } else if (c->id != 0) {
            cons__catchup_retry(n, c, "it stalled");
        } else {
            if (!cons__catchup_ask(n, c)) {
                c->deadline_ms = now + CONS_STATE_RETRY_MS; /* still no leader */
            }
            c->next = n->catchups.in;
            n->catchups.in = c;
        }
    }
    HD_ASSERT(!all || n->catchups.in == NULL);
}

void cons__catchup_start(struct cons_node *n)
{
    HD_ASSERT(n->catchups.in == NULL && n->catchups.out == NULL && n->catchups.out_n == 0);
    uv_timer_init(n->opts.loop, &n->catchups.pump);
    n->catchups.pump.data = n;
    cons_store_set_catch_up(n->store, cons__catch_up, n);
}

/* A copy interrupted by a crash left the shard without a state: drop it
 * and the shard's log, so that the leader sends a snapshot again. */
int cons__catchup_recover(struct cons_node *n, char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(n->shards == NULL || !n->shards[0].started); /* before raft loads the log */
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        if (!log_state_incomplete(n->opts.log, (uint16_t)i)) {
            continue;
        }
        HD_LOG_WARN("shard %u: a state copy was interrupted; dropping it to copy again", i);
        int rv = log_state_discard(n->opts.log, (uint16_t)i);
        if (rv == 0) {
            rv = cons_store_forget_shard(n->store, i);
        }
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "shard %u: drop an interrupted state copy: %s", i,
                     hd_strerror(rv));
            return rv;
        }
    }
    return 0;
}

void cons__catchup_stop(struct cons_node *n)
{
    cons__catchups_expire(n, true);
    while (n->catchups.out != NULL) {
        struct cons_state_out *o = n->catchups.out;
        n->catchups.out = o->next;
        cons__state_out_free(o);
    }
    n->catchups.out_n = 0;
    HD_ASSERT(n->catchups.in == NULL);
    uv_timer_stop(&n->catchups.pump);
}
