/* SPDX-License-Identifier: Apache-2.0 */
/* Deterministic cluster simulation: raft_fixture servers applying through log_apply. */
#ifndef SIM_H
#define SIM_H

#include <raft.h>
#include <raft/fixture.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/*
 * One scenario is a pure function of its seed: every choice (cluster size,
 * latencies, faults, client appends, clock steps) comes from one splitmix64
 * stream, raft_fixture is itself deterministic (virtual time, no threads),
 * and apply depends only on entry bytes. RocksDB's background threads do not
 * change what apply computes. So `herald_sim --seed N` replays run N.
 *
 * Exit status of herald_sim: 0 every scenario held its invariants, 2 an
 * invariant was violated (the message names seed and step), 1 a setup or
 * usage error. A crash (assertion, sanitizer) is none of these.
 */

#define SIM_EXIT_OK 0
#define SIM_EXIT_SETUP 1
#define SIM_EXIT_VIOLATION 2

#define SIM_SERVERS_MAX 5
#define SIM_CHANNELS_MAX 6
#define SIM_NONCES_MAX 1024
#define SIM_BATCH_MAX 6
/* Fixture time a crashed server stays down before its restart, so the
 * requests it had queued in the fixture (disk 10-40 ms, snapshot work
 * 200 ms) have completed: raft_close must not leave callbacks behind. */
#define SIM_QUIESCE_MS 600u
/* The leader clocks start far in the future (2100-01-01), so the dedup
 * compaction filter, which judges by the real clock, never drops a key of
 * a scenario: what apply answers depends on entry stamps alone. */
#define SIM_EPOCH_US 4102444800000000ull

/* splitmix64: tiny, full period, good enough to drive choices. */
struct sim_rng {
    uint64_t s;
};

static inline uint64_t sim_rand(struct sim_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint32_t sim_below(struct sim_rng *r, uint32_t n)
{
    return n == 0 ? 0 : (uint32_t)(sim_rand(r) % n);
}

static inline bool sim_chance(struct sim_rng *r, unsigned percent)
{
    return sim_below(r, 100) < percent;
}

/* A nonce the client made: a retry re-sends the very same bytes. */
struct sim_nonce {
    uint8_t ch;              /* channel index */
    uint8_t len;
    char text[40];           /* "<id>." then printable filler */
    uint32_t payload_len;
    uint8_t *payload;
};

/* One batch proposed as one raft entry at one server (proposer.c's batch),
 * or one trim or delete (command.h; count 0, no results). */
struct sim_prop {
    struct raft_apply req;   /* req.data = this */
    struct sim *sim;
    unsigned server;
    uint64_t proposal;       /* the server's counter, as in the entry header */
    uint8_t kind;            /* LOG_ENTRY_KIND_APPENDS, _TRIM or _DELETE */
    uint32_t count;
    uint16_t nonces[SIM_BATCH_MAX];
    uint64_t entry_hash;     /* of the encoded entry, to know it when applied */
    uint64_t index;          /* raft index it was applied at, at its proposer */
    struct log_result results[SIM_BATCH_MAX];
    uint64_t epochs[SIM_BATCH_MAX]; /* the channel's epoch each append went to */
    bool in_flight;          /* on its server's flight list */
    bool applied;            /* the proposer applied it (results valid) */
    bool done;               /* the apply callback ran */
    int status;              /* its status */
    struct sim_prop *next_flight;
    struct sim_prop *next_all;
};

enum sim_server_state {
    SIM_UP,                  /* running */
    SIM_PAUSED,              /* raft_fixture_kill: frozen, memory kept */
    SIM_DOWN,                /* crashed: restarted after SIM_QUIESCE_MS */
};

struct sim_server {
    struct sim *sim;
    unsigned i;
    struct raft_fsm fsm;
    struct log_store *ls;
    enum sim_server_state state;
    raft_time down_at;
    raft_time restart_at;    /* when a crashed server comes back */
    bool raft_reinit;        /* closed and inited again, not yet started */
    bool io_fault;           /* raft_fixture_io_fault pending */
    bool fatal;              /* an apply failed: herald stops the node (exit 3) */
    int64_t skew_us;         /* this server's wall clock minus fixture time */
    uint64_t next_proposal;  /* in memory only, as in herald's node */
    struct sim_prop *flight;
    uint64_t applied;        /* highest index this server's FSM applied */
    uint64_t head_seq[SIM_CHANNELS_MAX];
    uint64_t head_ts[SIM_CHANNELS_MAX];
    uint64_t first_seq[SIM_CHANNELS_MAX]; /* 0 until a command sets it: 1 */
    uint64_t epoch[SIM_CHANNELS_MAX];
    unsigned restarts;
};

/* What every server's FSM must agree on at one raft index. */
struct sim_slot {
    bool set;
    uint64_t hash;           /* of the entry bytes */
    uint32_t count;          /* appends; 0 for a command */
    struct log_result expect[SIM_BATCH_MAX]; /* from the model */
    uint64_t epoch[SIM_BATCH_MAX];           /* each append's channel epoch */
    int cmd_ch;              /* a trim's or delete's channel, else -1 */
    uint64_t cmd_first;      /* the model's first seq and epoch of it after */
    uint64_t cmd_epoch;
};

/* The reference model: log.h's rule, written independently of apply.c. */
struct sim_model_msg {
    uint16_t nonce;
    uint64_t ts;
};

struct sim_model {
    uint64_t last_index;
    uint64_t head_seq[SIM_CHANNELS_MAX];
    uint64_t head_ts[SIM_CHANNELS_MAX];
    uint64_t first_seq[SIM_CHANNELS_MAX]; /* 0 until a command sets it: 1 */
    uint64_t epoch[SIM_CHANNELS_MAX];     /* deletes so far */
    bool dedup_set[SIM_NONCES_MAX];
    uint64_t dedup_seq[SIM_NONCES_MAX];
    uint64_t dedup_ts[SIM_NONCES_MAX];
    uint64_t dedup_stamp[SIM_NONCES_MAX];
    struct sim_model_msg *log[SIM_CHANNELS_MAX]; /* log[c][seq - 1] */
    size_t log_cap[SIM_CHANNELS_MAX];
};

/* Knobs drawn from the seed, once per scenario. */
struct sim_params {
    unsigned n_servers;
    unsigned n_channels;
    unsigned steps;
    uint64_t dedup_window_us; /* what apply uses: 24 h or 3 s */
    bool short_window;       /* which store set (sim_stores) */
    unsigned snapshot_threshold;
    unsigned p_fault;        /* percent per step that some fault is injected */
    unsigned p_heal;         /* percent per step that some fault is healed */
    unsigned p_retry;        /* percent of appends that retry an old nonce */
    unsigned max_batches;    /* per step */
    unsigned p_command;      /* percent of steps that also trim or delete */
};

/* Shared across scenarios of one process: one RocksDB per server slot,
 * opened once, its shard emptied before each scenario (herald's own state
 * replace, with nothing), so a scenario costs no open. */
struct sim_stores {
    char root[256];
    struct log_store *ls[2][SIM_SERVERS_MAX]; /* [24 h window, short window] */
};

struct sim {
    uint64_t seed;
    struct sim_rng rng;
    /* Trims and deletes draw from a stream of their own, so that with them
     * off (--no-commands) a seed replays the scenario it did before they
     * existed. */
    struct sim_rng cmd_rng;
    bool no_commands;
    struct sim_params p;
    struct sim_stores *stores;
    struct raft_fixture f;
    bool fixture_ready;
    struct sim_server servers[SIM_SERVERS_MAX];
    char channels[SIM_CHANNELS_MAX][LOG_CHANNEL_MAX + 1];
    uint8_t channel_len[SIM_CHANNELS_MAX];
    struct sim_nonce nonces[SIM_NONCES_MAX];
    unsigned n_nonces;
    struct sim_prop *props;  /* every proposal, newest first */
    struct sim_slot *slots;  /* by raft index */
    size_t slots_cap;
    struct sim_model model;
    struct raft_barrier barrier;
    bool barrier_busy;
    raft_term barrier_term;
    raft_term barrier_done_term;
    unsigned step;           /* current step, for reports */
    bool in_teardown;
    bool violated;
    char violation[512];
    bool verbose;
    /* herald's proposal ids restart at 1 with the process (proposer.c);
     * off, the sim keeps counting across restarts (see README: a known
     * herald bug the default run steps around). */
    bool reset_proposals;
    bool small;              /* the allocation sweep's scenario */
    /* counters for the summary */
    unsigned long n_acked, n_dup_acked, n_unknown, n_crashes, n_pauses, n_clock_steps,
        n_io_faults, n_partitions, n_apply_errors, n_open_errors, n_bounces,
        n_reopens, n_trims, n_deletes;
};

/* sim_cluster.c */
int sim_cluster_setup(struct sim *s);
void sim_cluster_teardown(struct sim *s);
void sim_cluster_pause(struct sim *s, unsigned i);
void sim_cluster_resume(struct sim *s, unsigned i);
void sim_cluster_crash(struct sim *s, unsigned i);
void sim_cluster_restart_due(struct sim *s, bool now);
void sim_cluster_advance(struct sim *s, unsigned ms);
void sim_cluster_dump(struct sim *s);
void sim_cluster_clear_faults(struct sim *s);
void sim_cluster_shuffle_timeouts(struct sim *s);
bool sim_cluster_converge(struct sim *s, unsigned max_ms);
uint64_t sim_clock_us(struct sim *s, unsigned i);
int sim_stores_open(struct sim_stores *st, const char *root);
void sim_stores_close(struct sim_stores *st);
void sim_stores_reset(struct sim_stores *st);

/* sim_workload.c */
void sim_params_draw(struct sim *s, bool small);
void sim_names_draw(struct sim *s);
void sim_client_step(struct sim *s);
void sim_fault_step(struct sim *s);
void sim_heal_all(struct sim *s);
uint64_t sim_entry_hash(const void *buf, size_t len);

/* sim_model.c */
void sim_model_apply(struct sim *s, uint64_t index, const uint8_t *entry, size_t len,
                     uint64_t stamp_us, struct sim_slot *slot);
void sim_model_close(struct sim_model *m);
int sim_nonce_id(const struct sim *s, const char *text, size_t len);
int sim_channel_id(const struct sim *s, const char *id, size_t len);
/* The first seq left by trims (1 if none). */
uint64_t sim_first_seq(const uint64_t *first, unsigned c);

/* sim_check.c */
void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_cons_observe(struct sim *s, unsigned server, uint64_t index, const uint8_t *entry,
                      size_t len, const struct log_result *results);
void sim_cons_check(struct sim *s);
void sim_log_check(struct sim *s);
void sim_ack_check(struct sim *s, struct sim_prop *p);
void sim_final_check(struct sim *s);

/* sim_alloc.c: hd_replace_allocator hooks for the allocation sweep */
void sim_alloc_install(void);
void sim_alloc_arm(long fail_at);   /* fail the fail_at'th counted call; 0 = none */
void sim_alloc_pause(bool paused);  /* checkers run unpaused by no fault */
long sim_alloc_count(void);
bool sim_alloc_injected(void);
void sim_alloc_note_error(int rv);  /* a herald call reported HD_ENOMEM */
bool sim_alloc_reported(void);

/* sim_run.c */
struct sim_opts {
    bool verbose;
    bool small;              /* the allocation sweep's short scenario */
    bool reset_proposals;
    bool no_commands;
};
int sim_run_one(struct sim_stores *st, uint64_t seed, const struct sim_opts *o);

#endif
