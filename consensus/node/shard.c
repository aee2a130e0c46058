/* SPDX-License-Identifier: Apache-2.0 */
/* A shard: its raft instance and the FSM that applies entries to channel state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "commit_notice.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_exit.h"
#include "hd_util.h"
#include "manifest.h"
#include "node_internal.h"
#include "raft_io.h"
#include "shard.h"

unsigned cons_shard_of(unsigned n_shards, const char *channel, size_t len)
{
    return log_shard_of(n_shards, channel, len);
}

_Noreturn static void cons__fatal(struct cons_shard *sh, const char *what, int rv)
{
    /* A committed entry that cannot be applied means the state can no longer
     * follow the log. Serving on would serve wrong data; the WAL holds every
     * acknowledged entry, so stopping loses nothing. */
    int status = rv == HD_ECORRUPT ? HD_EXIT_CORRUPT : HD_EXIT_APPLY_FAILED;
    HD_LOG_ERROR("shard %u: %s: %s; stopping the node (exit %d)", sh->id, what,
                 hd_strerror(rv), status);
    exit(status);
}

/* The batch this node proposed that the entry at `index` carries, if any.
 * Both must match: the index (proposal ids restart at 1 when the node
 * restarts, so an entry this node proposed before a crash, committed now,
 * has the same proposal id as a batch in flight), and the proposal (a new
 * leader may have replaced the entry at that index with another). */
static struct cons_batch *cons__own_batch(struct cons_shard *sh, uint64_t index,
                                          const struct raft_buffer *buf)
{
    struct log_entry_header h;
    if (sh->flight_head == NULL || log_entry_peek(buf->base, buf->len, &h) != 0 ||
        h.proposer != sh->node->opts.node_id) {
        return NULL;
    }
    for (struct cons_batch *b = sh->flight_head; b != NULL; b = b->next) {
        if (b->apply.index == index && h.proposal == b->proposal) {
            HD_ASSERT(h.count == b->count);
            HD_ASSERT(!b->applied && b->shard == sh); /* an entry applies once */
            return b;
        }
    }
    return NULL;
}

static struct log_result *cons__scratch(struct cons_shard *sh, const struct raft_buffer *buf)
{
    struct log_entry_header h;
    if (log_entry_peek(buf->base, buf->len, &h) != 0) {
        return NULL; /* log_apply will call it corrupt */
    }
    uint32_t count = h.count;
    if (count > sh->scratch_cap) {
        struct log_result *r = hd_realloc(sh->scratch, count * sizeof *r);
        if (r == NULL) {
            cons__fatal(sh, "allocate results", HD_ENOMEM);
        }
        sh->scratch = r;
        sh->scratch_cap = count;
    }
    HD_ASSERT(sh->scratch_cap >= count);
    return sh->scratch;
}

static void cons__notify(struct cons_shard *sh, const struct raft_buffer *buf,
                         const struct log_result *results)
{
    struct cons_node *n = sh->node;
    struct log_entry_iter it;
    log_entry_iter_init(&it, buf->base, buf->len);
    struct log_append a;
    for (size_t i = 0; log_entry_iter_next(&it, &a); i++) {
        if (results[i].duplicate) {
            n->stats.appends_duplicate++;
            continue;
        }
        n->stats.appends_committed++;
        if (n->opts.on_commit != NULL) {
            struct log_message m = {results[i].seq, results[i].ts, a.nonce, a.nonce_len,
                                    a.payload, a.payload_len};
            n->opts.on_commit(n->opts.on_commit_arg, a.channel, a.channel_len, &m);
        }
    }
}

/* A shard's share of the Raft log memory: half for the entries since its
 * snapshot, half for those kept after one. */
static uint64_t cons__log_share(const struct cons_shard *sh)
{
    uint64_t share = sh->node->opts.log_memory_max / sh->node->opts.n_shards;
    return share > CONS_LOG_SHARE_MIN ? share : CONS_LOG_SHARE_MIN;
}

/* Raft snapshots after `threshold` entries, whatever their size: with big
 * messages that is gigabytes of log in memory (and to load at a restart).
 * Past half its share of bytes, a shard snapshots at once: raft takes one
 * right after this apply once the threshold is 1. */
static void cons__log_account(struct cons_shard *sh, size_t len)
{
    sh->log_bytes_since += len;
    sh->log_entries_since++;
    if (!sh->log_over && sh->log_bytes_since > cons__log_share(sh) / 2) {
        sh->log_over = true;
        raft_set_snapshot_threshold(&sh->raft, 1);
    }
}

static int cons__fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct cons_shard *sh = fsm->data;
    uint64_t index = raft_last_applied(&sh->raft) + 1;
    HD_ASSERT(sh->started && !sh->closed);
    *result = NULL;
    cons__log_account(sh, buf->len);
    struct cons_batch *b = cons__own_batch(sh, index, buf);
    struct log_result *results = b != NULL ? b->results : cons__scratch(sh, buf);
    int rv = log_apply(sh->node->opts.log, (uint16_t)sh->id, index, buf->base, buf->len,
                       results, b != NULL ? b->count : sh->scratch_cap);
    if (rv == HD_EEXIST) {
        /* Applied before a restart: its effects are in state already. */
        HD_ASSERT(b == NULL);
        return 0;
    }
    if (rv != 0) {
        char what[64];
        snprintf(what, sizeof what, "apply entry %llu", (unsigned long long)index);
        cons__fatal(sh, what, rv);
    }
    if (b != NULL) {
        b->applied = true;
    }
    cons__commit_moved(sh);
    if (log_entry_is_command(buf->base, buf->len)) {
        /* A trim or delete: no appends to announce; readers learn of it.
         * The retention policy: log/policy.c took it in. */
        struct log_command c;
        if (sh->node->opts.on_command != NULL &&
            log_command_decode(buf->base, buf->len, &c) == 0 &&
            c.kind != LOG_ENTRY_KIND_POLICY) {
            sh->node->opts.on_command(sh->node->opts.on_command_arg, &c);
        }
        return 0;
    }
    cons__notify(sh, buf, results);
    return 0;
}

/* Raft is taking a snapshot of everything applied: the entries it keeps
 * after it are as many recent ones as fit half the shard's share (by their
 * average size), at least one, at most the configured count. */
static void cons__log_snapshotted(struct cons_shard *sh)
{
    const struct cons_node_options *o = &sh->node->opts;
    uint64_t keep = o->snapshot_trailing;
    if (sh->log_entries_since > 0 && sh->log_bytes_since > 0) {
        uint64_t avg = sh->log_bytes_since / sh->log_entries_since + 1;
        uint64_t fit = cons__log_share(sh) / 2 / avg;
        keep = fit < 1 ? 1 : (fit < keep ? fit : keep);
        sh->log_bytes_trailing = keep * avg;
    }
    raft_set_snapshot_trailing(&sh->raft, (unsigned)keep);
    sh->log_bytes_since = 0;
    sh->log_entries_since = 0;
    if (sh->log_over || sh->invited) {
        sh->log_over = false;
        sh->invited = false;
        raft_set_snapshot_threshold(&sh->raft, cons__shard_threshold(sh));
    }
}

unsigned cons__shard_threshold(const struct cons_shard *sh)
{
    return sh->log_over || sh->compacting || sh->invited ? 1 : sh->node->opts.snapshot_threshold;
}

/* A shard is snapshotting: the other shards with at least a quarter of
 * their threshold of entries, or of their bytes, since their own snapshot
 * are asked to snapshot at their next apply, so that their snapshots wait
 * for the same state flush (snapshot_flush.h) rather than each for its
 * own a little later. Under load every shard applies within milliseconds;
 * a quiet one snapshots whenever it next applies. */
static void cons__invite_snapshots(struct cons_shard *sh)
{
    struct cons_node *n = sh->node;
    unsigned count = 0;
    for (unsigned i = 0; i < n->opts.n_shards; i++) {
        struct cons_shard *o = &n->shards[i];
        if (o == sh || !o->started || o->closed || o->invited || o->log_over) {
            continue;
        }
        if (o->log_entries_since * 4 >= n->opts.snapshot_threshold ||
            o->log_bytes_since * 8 >= cons__log_share(o)) {
            o->invited = true;
            raft_set_snapshot_threshold(&o->raft, 1);
            count++;
        }
    }
    if (count > 0) {
        cons_snapshot_flush_invite(&n->snapshot_flush, count);
    }
}

static int cons__fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct cons_shard *sh = fsm->data;
    /* A pending configuration rolls back, if truncated, to the last
     * committed one, which raft 0.15 reads from its log and asserts it
     * finds: no snapshot may compact it away meanwhile. Raft tries again
     * at its next apply (RAFT_BUSY is not an error to it); a configuration
     * is pending only until a leader commits or truncates it. */
    if (sh->raft.configuration_uncommitted_index != 0) {
        return RAFT_BUSY;
    }
    uint64_t applied = 0;
    int rv = log_applied_index(sh->node->opts.log, (uint16_t)sh->id, &applied);
    if (rv != 0) {
        return RAFT_IOERR;
    }
    struct raft_buffer *b = hd_malloc(sizeof *b);
    uint8_t *m = hd_malloc(CONS_MANIFEST_SIZE);
    if (b == NULL || m == NULL) {
        hd_free(b);
        hd_free(m);
        return RAFT_NOMEM;
    }
    cons_manifest_encode(m, &(struct cons_manifest){sh->id, applied});
    b->base = m;
    b->len = CONS_MANIFEST_SIZE;
    *bufs = b;
    *n_bufs = 1;
    bool invited = sh->invited;
    cons__log_snapshotted(sh);
    /* Everything applied is in the memtable now: a flush that begins from
     * here on makes it durable. */
    sh->flush_ticket = cons_snapshot_flush_ticket(&sh->node->snapshot_flush, invited);
    sh->node->stats.snapshots++;
    cons__invite_snapshots(sh);
    return 0;
}

/* Runs on the thread pool: the manifest may be written, and the log before
 * it compacted, only once the applied state it names is durable; shards
 * snapshotting together wait for one flush (snapshot_flush.h). */
static int cons__fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                    unsigned *n_bufs)
{
    struct cons_shard *sh = fsm->data;
    (void)bufs;
    (void)n_bufs;
    int rv = cons_snapshot_flush_wait(&sh->node->snapshot_flush, sh->flush_ticket,
                                      sh->node->opts.log);
    return rv == 0 ? 0 : RAFT_IOERR;
}

static int cons__fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                       unsigned *n_bufs)
{
    (void)fsm;
    HD_ASSERT(*bufs == NULL || (*n_bufs == 1 && (*bufs)[0].len == CONS_MANIFEST_SIZE));
    if (*bufs != NULL) {
        hd_free((*bufs)[0].base);
        hd_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int cons__fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct cons_shard *sh = fsm->data;
    struct cons_manifest m;
    if (cons_manifest_decode(buf->base, buf->len, &m) != 0 || m.shard != sh->id) {
        HD_LOG_ERROR("shard %u: snapshot manifest is not valid", sh->id);
        return RAFT_CORRUPT;
    }
    uint64_t wanted = m.applied, applied = 0;
    int rv = log_applied_index(sh->node->opts.log, (uint16_t)sh->id, &applied);
    if (rv != 0 || applied < wanted) {
        HD_LOG_ERROR("shard %u: state holds entries up to %llu but the snapshot needs %llu: "
                     "state/ lost flushed data; refusing to start",
                     sh->id, (unsigned long long)applied, (unsigned long long)wanted);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base); /* restore owns the buffer */
    /* The snapshot replaced the whole log: raft holds no entry of it. */
    sh->log_bytes_since = sh->log_entries_since = sh->log_bytes_trailing = 0;
    if (sh->node->opts.on_restore != NULL) {
        sh->node->opts.on_restore(sh->node->opts.on_commit_arg, sh->id);
    }
    return 0;
}

/* Creates the shard's first configuration: the given members, all voters,
 * or this node alone. Every member bootstraps the same configuration. A
 * restored node (opts.restore) starts it as a snapshot at index 1 over the
 * state it restored, instead of a first entry: a replica without that state
 * is then sent the snapshot, and copies the state, rather than replaying a
 * log that never held it. */
static int cons__shard_bootstrap(struct cons_shard *sh, char *errmsg, size_t errmsg_len)
{
    struct cons_node *n = sh->node;
    HD_ASSERT(!n->opts.join && sh->started); /* a joining node waits to be added */
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = 0;
    if (n->opts.members == NULL) {
        rv = raft_configuration_add(&conf, n->opts.node_id, n->opts.address, RAFT_VOTER);
    }
    for (unsigned i = 0; rv == 0 && i < n->opts.n_members; i++) {
        rv = raft_configuration_add(&conf, n->opts.members[i].id, n->opts.members[i].address,
                                    RAFT_VOTER);
    }
    if (rv == 0 && n->opts.restore) {
        uint8_t manifest[CONS_MANIFEST_SIZE];
        cons_manifest_encode(manifest, &(struct cons_manifest){sh->id, 1});
        int srv = cons_store_seed_snapshot(n->store, sh->id, &conf, manifest, sizeof manifest);
        raft_configuration_close(&conf);
        if (srv != 0) {
            snprintf(errmsg, errmsg_len, "shard %u: start from the restored state: %s", sh->id,
                     hd_strerror(srv));
        }
        return srv;
    }
    if (rv == 0) {
        rv = raft_bootstrap(&sh->raft, &conf);
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "shard %u: bootstrap: %s", sh->id, raft_strerror(rv));
        return HD_EIO;
    }
    return 0;
}

static void cons__gap_filled(struct raft_barrier *req, int status)
{
    struct cons_shard *sh = req->data;
    (void)status;
    HD_ASSERT(sh->gap_left > 0 && sh->gap != NULL);
    if (--sh->gap_left == 0) {
        hd_free(sh->gap);
        sh->gap = NULL;
    }
}

/*
 * State ahead of the log: after a clean stop state is flushed, so if the WAL
 * then loses synced bytes (a damaged disk, an operator's cut), state holds
 * entries up to `applied` while the log ends before it. New entries would
 * get indexes that apply skips as "already applied". A lone voter closes the
 * gap with barrier entries (which apply does not see), so new entries land
 * after `applied`; its state is whole, only the lost log entries are gone.
 * A member of a larger cluster cannot do that safely (its log must match its
 * peers'), so it refuses to start and must be rebuilt from them.
 */
static int cons__check_gap(struct cons_shard *sh, char *errmsg, size_t errmsg_len)
{
    struct cons_node *n = sh->node;
    HD_ASSERT(sh->started && sh->gap == NULL && sh->gap_left == 0);
    uint64_t applied = 0, last = raft_last_index(&sh->raft);
    int rv = log_applied_index(n->opts.log, (uint16_t)sh->id, &applied);
    if (rv != 0 || applied <= last) {
        return rv;
    }
    const struct raft_configuration *c = &sh->raft.configuration;
    if (c->n != 1 || c->servers[0].id != n->opts.node_id || raft_state(&sh->raft) != RAFT_LEADER) {
        snprintf(errmsg, errmsg_len,
                 "shard %u: state/ holds entries up to %llu but the WAL ends at %llu: synced "
                 "WAL data was lost; rebuild this node from its peers (empty its data "
                 "directory and add it back)",
                 sh->id, (unsigned long long)applied, (unsigned long long)last);
        return HD_ECORRUPT;
    }
    HD_LOG_WARN("shard %u: state/ holds entries up to %llu but the WAL ends at %llu: synced WAL "
                "data was lost; state is kept and the log resumes after it",
                sh->id, (unsigned long long)applied, (unsigned long long)last);
    sh->gap_left = (size_t)(applied - last);
    sh->gap = hd_calloc(sh->gap_left, sizeof *sh->gap);
    if (sh->gap == NULL) {
        return HD_ENOMEM;
    }
    size_t n_gap = sh->gap_left;
    for (size_t i = 0; i < n_gap; i++) {
        sh->gap[i].data = sh;
        rv = raft_barrier(&sh->raft, &sh->gap[i], cons__gap_filled);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "shard %u: fill the log gap: %s", sh->id,
                     raft_strerror(rv));
            return HD_EIO;
        }
    }
    HD_ASSERT(raft_last_index(&sh->raft) == applied);
    return 0;
}

int cons__shard_start(struct cons_shard *sh, bool bootstrap, char *errmsg, size_t errmsg_len)
{
    struct cons_node *n = sh->node;
    HD_ASSERT(!sh->started && sh->node != NULL && sh->id < n->opts.n_shards);
    sh->fsm = (struct raft_fsm){.version = 3, .data = sh, .apply = cons__fsm_apply,
                                .snapshot = cons__fsm_snapshot,
                                .restore = cons__fsm_restore,
                                .snapshot_finalize = cons__fsm_snapshot_finalize,
                                .snapshot_async = cons__fsm_snapshot_async};
    struct raft_io *io = cons_store_io(n->store, sh->id);
    int rv = raft_init(&sh->raft, io, &sh->fsm, n->opts.node_id, n->opts.address);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "shard %u: raft init: %s", sh->id, raft_errmsg(&sh->raft));
        return HD_EIO;
    }
    sh->started = true;
    raft_set_snapshot_threshold(&sh->raft, n->opts.snapshot_threshold);
    raft_set_snapshot_trailing(&sh->raft, n->opts.snapshot_trailing);
    raft_set_election_timeout(&sh->raft, CONS_ELECTION_MS);
    raft_set_heartbeat_timeout(&sh->raft, CONS_HEARTBEAT_MS);
    raft_set_pre_vote(&sh->raft, true);
    if (bootstrap) {
        rv = cons__shard_bootstrap(sh, errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
    }
    rv = raft_start(&sh->raft);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "shard %u: raft start: %s", sh->id, raft_errmsg(&sh->raft));
        /* RAFT_CORRUPT: the FSM refused the snapshot (state older than
         * it): damaged data, which heraldd may repair, not an I/O error. */
        return rv == RAFT_CORRUPT ? HD_ECORRUPT : HD_EIO;
    }
    cons_store_mend_loaded_conf(n->store, sh->id, &sh->raft);
    return cons__check_gap(sh, errmsg, errmsg_len);
}

void cons__shard_close(struct cons_shard *sh, void (*cb)(struct raft *r))
{
    HD_ASSERT(sh->started && !sh->closed);
    HD_ASSERT(sh->queue_head == NULL && sh->queued == 0); /* failed just before */
    sh->raft.data = sh;
    raft_close(&sh->raft, cb);
}
