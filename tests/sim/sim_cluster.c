/* SPDX-License-Identifier: Apache-2.0 */
/* The simulated cluster: raft_fixture servers whose FSM is herald's log_apply. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "sim.h"

/* The sim's shard: every scenario uses shard 0 of a one-shard store,
 * emptied before it starts. */
#define SIM_SHARD 0
#define SIM_MANIFEST_MAGIC 0x4d495348u /* "HSIM" */
#define SIM_MANIFEST_SIZE 16u
/* Raft never compacts more than this many entries away, so no follower is
 * ever sent a snapshot: catch-up by state copy (consensus/catchup.c) is not
 * simulated, while snapshots themselves (manifest + flush) are. */
#define SIM_TRAILING 1000000u

/* ------------------------------------------------------------ stores --- */

static int sim__store_open(struct sim_stores *st, unsigned w, unsigned i)
{
    char dir[300], err[256];
    snprintf(dir, sizeof dir, "%s/w%u-s%u", st->root, w, i);
    /* Window 0 is herald's default (24 h); window 1 is short, so retries
     * in a scenario both hit and miss it. */
    struct log_options o = {.dir = dir, .n_shards = 1,
                            .dedup_window_us = w == 0 ? 0 : 3000000u,
                            .cache_bytes = 1u << 20};
    int rv = log_store_open(&st->ls[w][i], &o, err, sizeof err);
    if (rv != 0) {
        st->ls[w][i] = NULL;
        sim_alloc_note_error(rv);
        if (!sim_alloc_injected()) {
            fprintf(stderr, "herald_sim: %s\n", err);
        }
    }
    return rv;
}

int sim_stores_open(struct sim_stores *st, const char *root)
{
    memset(st, 0, sizeof *st);
    snprintf(st->root, sizeof st->root, "%s/herald-sim-XXXXXX", root);
    if (mkdtemp(st->root) == NULL) {
        fprintf(stderr, "herald_sim: mkdtemp %s: %s\n", st->root, strerror(errno));
        return HD_EIO;
    }
    return 0;
}

static int sim__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Closes the stores (their next use opens them again): a store keeps the
 * buffers apply grew, so only fresh stores allocate the same way each run. */
void sim_stores_reset(struct sim_stores *st)
{
    for (unsigned w = 0; w < 2; w++) {
        for (unsigned i = 0; i < SIM_SERVERS_MAX; i++) {
            log_store_close(st->ls[w][i]);
            st->ls[w][i] = NULL;
        }
    }
}

void sim_stores_close(struct sim_stores *st)
{
    sim_stores_reset(st);
    if (st->root[0] != '\0') {
        nftw(st->root, sim__rm, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* The store server i uses in this scenario (opened on first use). */
static struct log_store **sim__store(struct sim *s, unsigned i)
{
    return &s->stores->ls[s->p.short_window ? 1 : 0][i];
}

/* ------------------------------------------------------------- the FSM --- */

uint64_t sim_clock_us(struct sim *s, unsigned i)
{
    /* The leader's wall clock, as proposer.c stamps with hd_now_us(): the
     * fixture's virtual time plus this server's skew, which clock faults
     * step back and forth. */
    int64_t t = (int64_t)(SIM_EPOCH_US + s->f.time * 1000u) + s->servers[i].skew_us;
    return (uint64_t)t;
}

/* The proposal of this server that the entry at `index` carries, by
 * cons__own_batch's rule (consensus/node/shard.c): this proposer, the same
 * proposal id and the raft index raft_apply gave it. */
static struct sim_prop *sim__own_prop(struct sim_server *v, uint64_t index,
                                      const struct raft_buffer *buf)
{
    uint64_t proposer = 0, proposal = 0;
    struct log_entry_header h;
    struct log_command c;
    if (log_entry_is_command(buf->base, buf->len)) {
        if (log_command_decode(buf->base, buf->len, &c) == 0) {
            proposer = c.proposer;
            proposal = c.proposal;
        }
    } else if (log_entry_peek(buf->base, buf->len, &h) == 0) {
        proposer = h.proposer;
        proposal = h.proposal;
    }
    if (proposer != v->i + 1u) {
        return NULL;
    }
    for (struct sim_prop *q = v->flight; q != NULL; q = q->next_flight) {
        if (q->req.index == index && q->proposal == proposal) {
            return q;
        }
    }
    return NULL;
}

/* An apply error: herald's shard stops the node (cons__fatal, exit 5; 3 if the state is corrupt). Here
 * the server is crashed after this fixture step and restarted later. */
static int sim__apply_failed(struct sim *s, struct sim_server *v, uint64_t index, int rv)
{
    sim_alloc_note_error(rv);
    s->n_apply_errors++;
    if (!(rv == HD_ENOMEM && sim_alloc_injected())) {
        sim_fail(s, "server %u: log_apply(index %llu) failed with no fault injected: %s",
                 v->i, (unsigned long long)index, hd_strerror(rv));
    }
    v->fatal = true;
    return RAFT_IOERR;
}

static int sim__fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct sim_server *v = fsm->data;
    struct sim *s = v->sim;
    uint64_t index = raft_last_applied(raft_fixture_get(&s->f, v->i)) + 1;
    *result = NULL;
    if (v->fatal) {
        return RAFT_IOERR; /* the node has stopped */
    }
    struct sim_prop *p = sim__own_prop(v, index, buf);
    if (p != NULL && p->entry_hash != sim_entry_hash(buf->base, buf->len)) {
        uint64_t stored = 0;
        log_applied_index(v->ls, SIM_SHARD, &stored);
        sim_fail(s,
                 "server %u: entry %llu (%u appends, proposal %llu) matched an in-flight "
                 "batch of %u appends that it does not carry, so cons__fsm_apply would %s",
                 v->i, (unsigned long long)index, hd_get_u32((const uint8_t *)buf->base + 4),
                 (unsigned long long)p->proposal, p->count,
                 index <= stored ? "abort on HD_ASSERT(b == NULL) (entry applied already)"
                 : hd_get_u32((const uint8_t *)buf->base + 4) > p->count
                     ? "abort in log_apply (results_cap < count)"
                     : "write its results into that batch");
        p = NULL;
    }
    struct log_result results[SIM_BATCH_MAX];
    int rv = log_apply(v->ls, SIM_SHARD, index, buf->base, buf->len, results, SIM_BATCH_MAX);
    if (rv == HD_EEXIST) {
        /* Applied before a restart: shard.c skips it the same way. */
        if (p != NULL) {
            sim_fail(s, "server %u: own in-flight entry %llu reported as applied already",
                     v->i, (unsigned long long)index);
        }
        return 0;
    }
    if (rv != 0) {
        return sim__apply_failed(s, v, index, rv);
    }
    sim_cons_observe(s, v->i, index, buf->base, buf->len, results);
    if (p != NULL) {
        memcpy(p->results, results, p->count * sizeof *results);
        p->applied = true;
        p->index = index;
    }
    return 0;
}

static int sim__fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sim_server *v = fsm->data;
    uint64_t applied = 0;
    if (v->fatal || log_applied_index(v->ls, SIM_SHARD, &applied) != 0) {
        return RAFT_IOERR;
    }
    struct raft_buffer *b = malloc(sizeof *b);
    uint8_t *m = malloc(SIM_MANIFEST_SIZE);
    HD_ASSERT(b != NULL && m != NULL);
    hd_put_u32(m, SIM_MANIFEST_MAGIC);
    hd_put_u32(m + 4, SIM_SHARD);
    hd_put_u64(m + 8, applied);
    *b = (struct raft_buffer){.base = m, .len = SIM_MANIFEST_SIZE};
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

/* As in shard.c: the snapshot may only name state that is durable. */
static int sim__fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                   unsigned *n_bufs)
{
    struct sim_server *v = fsm->data;
    (void)bufs;
    (void)n_bufs;
    return log_flush(v->ls) == 0 ? 0 : RAFT_IOERR;
}

static int sim__fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                      unsigned *n_bufs)
{
    (void)fsm;
    if (*bufs != NULL) {
        free((*bufs)[0].base);
        free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int sim__fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct sim_server *v = fsm->data;
    const uint8_t *m = buf->base;
    uint64_t applied = 0;
    if (buf->len != SIM_MANIFEST_SIZE || hd_get_u32(m) != SIM_MANIFEST_MAGIC ||
        log_applied_index(v->ls, SIM_SHARD, &applied) != 0 || applied < hd_get_u64(m + 8)) {
        sim_fail(v->sim, "server %u: snapshot manifest names state the store does not hold "
                 "(applied %llu)", v->i, (unsigned long long)applied);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    return 0;
}

static void sim__fsm_init(struct sim_server *v)
{
    v->fsm = (struct raft_fsm){.version = 3, .data = v, .apply = sim__fsm_apply,
                               .snapshot = sim__fsm_snapshot,
                               .restore = sim__fsm_restore,
                               .snapshot_finalize = sim__fsm_snapshot_finalize,
                               .snapshot_async = sim__fsm_snapshot_async};
}

/* ------------------------------------------------------------ servers --- */

/* Herald's raft settings (shard.c), with the sim's snapshot cadence. */
static void sim__raft_settings(struct sim *s, unsigned i)
{
    struct raft *r = raft_fixture_get(&s->f, i);
    raft_set_election_timeout(r, 1000);
    raft_set_heartbeat_timeout(r, 100);
    raft_set_pre_vote(r, true);
    raft_set_snapshot_threshold(r, s->p.snapshot_threshold > 0 ? s->p.snapshot_threshold
                                                               : 1u << 30);
    raft_set_snapshot_trailing(r, SIM_TRAILING);
}

static int sim__server_init(struct sim *s, unsigned i)
{
    struct sim_server *v = &s->servers[i];
    *v = (struct sim_server){.sim = s, .i = i, .state = SIM_UP};
    sim__fsm_init(v);
    struct log_store **ls = sim__store(s, i);
    if (*ls == NULL && sim__store_open(s->stores, s->p.short_window ? 1 : 0, i) != 0) {
        return HD_EIO;
    }
    /* An empty state for the shard: herald's replace (transfer.c) with no
     * chunk. Unlike log_state_discard it does not flush, and a flush
     * allocates a new memtable (and its bloom filter) each time. */
    int rv = log_state_replace_begin(*ls, SIM_SHARD);
    if (rv == 0) {
        rv = log_state_replace_end(*ls, SIM_SHARD);
    }
    if (rv != 0) {
        fprintf(stderr, "herald_sim: empty the shard: %s\n", hd_strerror(rv));
        return rv;
    }
    v->ls = *ls;
    /* The fixture's in-memory io implements async_work but leaves
     * io->version as it finds it; herald's FSM takes snapshots with
     * snapshot_async, which raft_init accepts only from a version 2 io. */
    s->f.servers[i].io.version = 2;
    rv = raft_fixture_grow(&s->f, &v->fsm);
    if (rv != 0) {
        fprintf(stderr, "herald_sim: fixture grow: %s\n", raft_strerror(rv));
        return HD_EIO;
    }
    sim__raft_settings(s, i);
    raft_fixture_set_network_latency(&s->f, i, 5 + sim_below(&s->rng, 30));
    raft_fixture_set_disk_latency(&s->f, i, 1 + sim_below(&s->rng, 30));
    raft_fixture_set_randomized_election_timeout(&s->f, i, 1000 + sim_below(&s->rng, 1000));
    v->skew_us = (int64_t)sim_below(&s->rng, 1000000) - 500000;
    return 0;
}

int sim_cluster_setup(struct sim *s)
{
    raft_fixture_initialize(&s->f);
    s->fixture_ready = true;
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        if (sim__server_init(s, i) != 0) {
            return HD_EIO;
        }
    }
    struct raft_configuration conf;
    int rv = raft_fixture_configuration(&s->f, s->p.n_servers, &conf);
    if (rv == 0) {
        rv = raft_fixture_bootstrap(&s->f, &conf);
        raft_configuration_close(&conf);
    }
    if (rv == 0) {
        rv = raft_fixture_start(&s->f);
    }
    if (rv != 0) {
        fprintf(stderr, "herald_sim: fixture: %s\n", raft_strerror(rv));
        return HD_EIO;
    }
    return 0;
}

void sim_cluster_teardown(struct sim *s)
{
    if (s->fixture_ready) {
        /* Flushes the fixture's queued requests (their callbacks may still
         * apply entries) and closes every raft instance. */
        raft_fixture_close(&s->f);
        s->fixture_ready = false;
    }
}

/* raft 0.15 frees an AppendEntries' entries twice when the reply's send
 * fails synchronously (recvAppendEntries, then recvMessage), and the
 * fixture's io fault fails sends as well as disk requests. So disk faults
 * are only injected on an isolated server, and every pending fault is
 * cleared whenever any link opens again. */
void sim_cluster_clear_faults(struct sim *s)
{
    for (unsigned j = 0; j < s->p.n_servers; j++) {
        raft_fixture_io_fault(&s->f, j, -1, 0);
        s->servers[j].io_fault = false;
    }
}

void sim_cluster_pause(struct sim *s, unsigned i)
{
    HD_ASSERT(s->servers[i].state == SIM_UP);
    raft_fixture_kill(&s->f, i);
    s->servers[i].state = SIM_PAUSED;
    s->n_pauses++;
}

void sim_cluster_resume(struct sim *s, unsigned i)
{
    HD_ASSERT(s->servers[i].state == SIM_PAUSED);
    sim_cluster_clear_faults(s);
    raft_fixture_revive(&s->f, i);
    s->servers[i].state = SIM_UP;
}

void sim_cluster_crash(struct sim *s, unsigned i)
{
    struct sim_server *v = &s->servers[i];
    HD_ASSERT(v->state != SIM_DOWN);
    if (v->state == SIM_UP) {
        raft_fixture_kill(&s->f, i);
    }
    if (s->verbose) {
        struct raft *r = raft_fixture_get(&s->f, i);
        printf("  t=%llu crash server %u: state %d term %llu last %llu stored %llu\n",
               (unsigned long long)s->f.time, i, raft_state(r),
               (unsigned long long)r->current_term, (unsigned long long)raft_last_index(r),
               (unsigned long long)r->last_stored);
    }
    v->state = SIM_DOWN;
    v->down_at = s->f.time;
    v->restart_at = v->down_at + SIM_QUIESCE_MS + sim_below(&s->rng, 3000);
    s->n_crashes++;
}

/* A crashed server comes back as a new heraldd would: raft forgets its
 * memory and reloads what the fixture's disk holds (term, vote, stored
 * entries, snapshot), the store is closed and reopened (heads come from
 * RocksDB, not the cache), and the proposal counter starts again at 0. */
static bool sim__restart(struct sim *s, unsigned i)
{
    struct sim_server *v = &s->servers[i];
    struct raft_fixture_server *fs = &s->f.servers[i];
    struct log_store **ls = sim__store(s, i);
    if (!v->raft_reinit) {
        raft_close(&fs->raft, NULL); /* fails what was in flight */
        HD_ASSERT(v->flight == NULL);
        /* A third of restarts also reopen the store; the others keep it (and
         * its head cache) open: a reopen costs two RocksDB memtables, the
         * larger part of a scenario's time, and raft's side of a restart is
         * the same either way. The allocation sweep always reopens. */
        if (s->small || sim_chance(&s->rng, 30)) {
            log_store_close(*ls);
            *ls = NULL;
            v->ls = NULL;
            s->n_reopens++;
        }
        /* Inited at once, so the fixture can always close it. */
        int rv = raft_init(&fs->raft, &fs->io, &v->fsm, fs->id, fs->address);
        HD_ASSERT(rv == 0);
        v->raft_reinit = true;
    }
    if (*ls == NULL && sim__store_open(s->stores, s->p.short_window ? 1 : 0, i) != 0) {
        s->n_open_errors++;
        return false; /* tried again at the next step, as an operator would */
    }
    v->ls = *ls;
    sim_cluster_clear_faults(s); /* links open (above) */
    sim__raft_settings(s, i);
    int rv = raft_start(&fs->raft);
    if (rv != 0) {
        sim_fail(s, "server %u: raft_start after a crash: %s", i, raft_strerror(rv));
        return false;
    }
    v->raft_reinit = false;
    if (s->verbose) {
        printf("  t=%llu restart server %u: term %llu last %llu\n", (unsigned long long)s->f.time,
               i, (unsigned long long)fs->raft.current_term,
               (unsigned long long)raft_last_index(&fs->raft));
    }
    raft_fixture_revive(&s->f, i);
    v->state = SIM_UP;
    v->fatal = false;
    if (s->reset_proposals) {
        v->next_proposal = 0; /* a new heraldd's counter (proposer.c) */
    }
    v->restarts++;
    return true;
}

void sim_cluster_restart_due(struct sim *s, bool now)
{
    for (unsigned i = 0; i < s->p.n_servers && !s->violated; i++) {
        struct sim_server *v = &s->servers[i];
        if (v->state != SIM_DOWN || s->f.time < v->down_at + SIM_QUIESCE_MS) {
            continue;
        }
        if (now || s->f.time >= v->restart_at) {
            sim__restart(s, i);
        }
    }
}

/* A server whose apply failed has stopped; crash it before it does more. */
static void sim__reap_fatal(struct sim *s)
{
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        struct sim_server *v = &s->servers[i];
        if (v->fatal && v->state != SIM_DOWN) {
            sim_cluster_crash(s, i);
            v->restart_at = v->down_at + SIM_QUIESCE_MS;
        }
    }
}

void sim_cluster_advance(struct sim *s, unsigned ms)
{
    raft_time end = s->f.time + ms;
    while (s->f.time < end && !s->violated) {
        raft_fixture_step(&s->f);
        sim__reap_fatal(s);
    }
    sim_cluster_restart_due(s, false);
}

/* --------------------------------------------------------- convergence --- */

static void sim__barrier_cb(struct raft_barrier *req, int status)
{
    struct sim *s = req->data;
    s->barrier_busy = false;
    if (status == 0) {
        s->barrier_done_term = s->barrier_term;
    }
}

/* The stable leader (fixture's view), or NULL. */
static struct raft *sim__leader(struct sim *s)
{
    unsigned l = raft_fixture_leader_index(&s->f);
    return l < s->p.n_servers ? raft_fixture_get(&s->f, l) : NULL;
}

/* Every server is up and has applied the leader's whole log, which ends
 * with an entry of the leader's term (the barrier), so all is committed. */
static bool sim__converged(struct sim *s)
{
    struct raft *l = sim__leader(s);
    if (l == NULL || s->barrier_done_term != l->current_term || s->barrier_busy) {
        return false;
    }
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        struct raft *r = raft_fixture_get(&s->f, i);
        if (s->servers[i].state != SIM_UP || s->servers[i].fatal ||
            raft_last_applied(r) != raft_last_index(l)) {
            return false;
        }
    }
    return true;
}

static void sim__maybe_barrier(struct sim *s)
{
    struct raft *l = sim__leader(s);
    if (l == NULL || s->barrier_busy || s->barrier_done_term == l->current_term) {
        return;
    }
    s->barrier.data = s;
    s->barrier_term = l->current_term;
    if (raft_barrier(l, &s->barrier, sim__barrier_cb) == 0) {
        s->barrier_busy = true;
    }
}

/* A server stuck in RAFT_UNAVAILABLE (a disk fault during an election)
 * never recovers by itself: at teardown it is restarted like a crash. */
static void sim__restart_unavailable(struct sim *s)
{
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        if (s->servers[i].state == SIM_UP && s->p.snapshot_threshold == 0 &&
            raft_state(raft_fixture_get(&s->f, i)) == RAFT_UNAVAILABLE) {
            sim_cluster_crash(s, i);
        }
    }
}

/*
 * raft 0.15 can leave a follower stuck for as long as the leader lasts: a
 * follower holding stale entries of an older term answers a heartbeat with
 * last_log_index = its last stored index, the leader clamps that to its own
 * last index and takes it as matched, then ignores the follower's
 * rejections as stale (progressMaybeDecrement). Only a new leader repairs
 * it. So a cluster that has not converged after SIM_BOUNCE_MS has its
 * leader paused for a few seconds, as an operator restarting it would.
 */
#define SIM_BOUNCE_MS 20000u
#define SIM_BOUNCE_PAUSE_MS 8000u

static void sim__bounce(struct sim *s, raft_time *next_bounce, int *paused)
{
    if (*paused >= 0 && s->f.time >= *next_bounce - SIM_BOUNCE_MS + SIM_BOUNCE_PAUSE_MS) {
        sim_cluster_resume(s, (unsigned)*paused);
        *paused = -1;
    }
    if (s->f.time < *next_bounce || *paused >= 0) {
        return;
    }
    *next_bounce = s->f.time + SIM_BOUNCE_MS;
    unsigned l = raft_fixture_leader_index(&s->f);
    if (l < s->p.n_servers && s->servers[l].state == SIM_UP) {
        sim_cluster_pause(s, l);
        *paused = (int)l;
        s->n_bounces++;
        if (s->verbose) {
            printf("  t=%llu not converged: bouncing leader %u\n",
                   (unsigned long long)s->f.time, l);
        }
    }
}

/* The fixture hands raft a fixed "random" election timeout per server, so
 * candidates can split the vote the same way forever; real timers are
 * random, so the sim draws new ones as time goes by. */
void sim_cluster_shuffle_timeouts(struct sim *s)
{
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        raft_fixture_set_randomized_election_timeout(&s->f, i, 1000 + sim_below(&s->rng, 1000));
    }
}

bool sim_cluster_converge(struct sim *s, unsigned max_ms)
{
    raft_time start = s->f.time, next_bounce = start + SIM_BOUNCE_MS, next_shuffle = start;
    int paused = -1;
    sim__restart_unavailable(s);
    while (s->f.time - start < max_ms && !s->violated) {
        if (paused < 0 && sim__converged(s)) {
            return true;
        }
        sim__maybe_barrier(s);
        raft_fixture_step(&s->f);
        sim__reap_fatal(s);
        sim_cluster_restart_due(s, true);
        sim__bounce(s, &next_bounce, &paused);
        if (s->f.time >= next_shuffle) {
            sim_cluster_shuffle_timeouts(s);
            next_shuffle = s->f.time + 1000;
        }
    }
    return false;
}

static const char *sim__state_name(int state)
{
    switch (state) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    default: return "unavailable";
    }
}

void sim_cluster_dump(struct sim *s)
{
    static const char *states[] = {"up", "paused", "down"};
    printf("herald_sim: fixture time %llu ms, stable leader index %u, model index %llu\n",
           (unsigned long long)s->f.time, raft_fixture_leader_index(&s->f),
           (unsigned long long)s->model.last_index);
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        struct sim_server *v = &s->servers[i];
        struct raft *r = raft_fixture_get(&s->f, i);
        printf("  server %u: %s%s%s raft %s term %llu last %llu stored %llu commit %llu "
               "applied %llu (fsm %llu) restarts %u skew %lld us\n", i, states[v->state],
               v->fatal ? " fatal" : "", v->raft_reinit ? " reinit" : "",
               sim__state_name(raft_state(r)), (unsigned long long)r->current_term,
               (unsigned long long)raft_last_index(r), (unsigned long long)r->last_stored,
               (unsigned long long)r->commit_index, (unsigned long long)raft_last_applied(r),
               (unsigned long long)v->applied, v->restarts, (long long)v->skew_us);
        printf("    saturated to:");
        for (unsigned j = 0; j < s->p.n_servers; j++) {
            if (j != i && raft_fixture_saturated(&s->f, i, j)) {
                printf(" %u", j);
            }
        }
        printf("\n");
    }
}
