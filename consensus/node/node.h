/* SPDX-License-Identifier: Apache-2.0 */
/* A node's consensus: its shards' Raft groups, proposing appends, applying them. */
#ifndef CONS_NODE_H
#define CONS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hd_histogram.h"
#include "log.h"

/*
 * Every channel belongs to one shard, by a stable hash of its id; every shard
 * is a canonical/raft group. An append is queued on its shard; at the end of
 * each loop iteration the shard's leader packs what is queued into one Raft
 * entry (up to CONS_BATCH_* limits) stamped with its wall clock, proposes it,
 * and answers every append of the entry once the entry is applied, which is
 * after it is durable in the WAL.
 */

struct cons_node;
struct st_space;
struct hd_retention;
struct log_command;
struct hd_tls_ctx;

/* A member of a cluster being created. */
struct cons_member {
    uint64_t id;
    const char *address;          /* its peer address, host:port */
};

struct cons_node_options {
    uv_loop_t *loop;
    const char *data_dir;         /* uses DATA/wal and DATA/snapshots */
    uint64_t node_id;             /* this node's Raft id, >= 1 */
    const char *address;          /* this node's Raft (peer) address */
    const char *cluster_id;       /* checked in every peer handshake */
    const char *peer_listen;      /* NULL: one node, no peer transport */
    struct hd_tls_ctx *peer_tls;  /* mutual TLS on every peer link (the transport
                                     takes its reference); NULL: plaintext */
    const struct cons_member *members; /* a new cluster's voters, self
                                     included; NULL: a one-node cluster */
    unsigned n_members;
    bool join;                    /* no state: wait to be added, never bootstrap */
    bool restore;                 /* no Raft state, a restored log state: start every
                                     shard from a snapshot of it (shard.c) */
    unsigned n_shards;            /* fixed when the cluster is created */
    struct log_store *log;        /* applied state, owned by the caller */
    bool wal_no_uring;            /* force the WAL's pwrite fallback */
    struct st_space *space;       /* free-space reserve (storage/disk_space.h),
                                     owned by the caller; NULL: none */
    uint64_t wal_segment_size;    /* 0 = default */
    unsigned snapshot_threshold;  /* entries between snapshots; 0 = 4096 */
    unsigned snapshot_trailing;   /* entries kept after one; 0 = 1024 */
    /* Bytes of Raft log all shards may hold in memory; 0 = 64 MiB. Each
     * shard's share is S = log_memory_max / n_shards, at least
     * CONS_LOG_SHARE_MIN (1 MiB), so the shares add up to
     * max(log_memory_max, n_shards MiB). Half a share is for the entries
     * applied since the shard's last snapshot: past it the shard snapshots
     * at the end of that apply round. The other half is for the entries
     * kept after a snapshot for lagging followers: as many as fit by their
     * average size, at least one, at most snapshot_trailing.
     * The bound, at rest (appends stopped; what raft_log_bytes of
     * cons_node_stats says): a shard holds at most S/2 applied since its
     * snapshot (a shard this node leads that is left past S/2 is
     * snapshotted by the node's tick) plus max(S/2, one entry) kept after
     * it: S + E, E its largest entry; a shard never written holds nothing.
     * All shards: max(log_memory_max, n_shards MiB) + E per written shard.
     * While entries apply, a shard also holds those applied after it
     * passed S/2 and before its snapshot could start (the rest of that
     * apply round: one entry on a leader with a single writer), those
     * applied while its previous snapshot was still being written, and,
     * until a snapshot is written, the entries it will release: about one
     * more entry per written shard with a single writer, more under many.
     * After a restart each shard loads the entries after its snapshot and
     * the one at its index (raft_io_load.c drops older ones from the WAL
     * as it reads them). */
    uint64_t log_memory_max;
    size_t queue_max;             /* appends waiting per shard; 0 = 16384 */
    unsigned compact_every_ms;    /* how often shards pinning the WAL (or past
                                     their log memory, leaders only)
                                     are checked; 0 = 1000 */
    /* Every retention_interval_ms (0 = 60000, the first time ±10%) this
     * node trims the channels of the shards it leads by the effective
     * retention policy (log_retention_effective: the cluster's, else the
     * node's log_options.retention); none or empty: nothing is trimmed. */
    uint64_t retention_interval_ms;
    /* Called on the loop for every message that commits (not duplicates),
     * after its entry's state is written, in seq order per channel. The
     * message is lent for the call. */
    void (*on_commit)(void *arg, const char *channel, size_t len, const struct log_message *m);
    void *on_commit_arg;
    /* Called on the loop when a shard's state was replaced by a snapshot
     * (messages arrived without on_commit). May be NULL. */
    void (*on_restore)(void *arg, unsigned shard);
    /* Called on the loop after a trim or delete of a channel is applied
     * (log/command.h; not for the cluster's retention policy). May be NULL. */
    void (*on_command)(void *arg, const struct log_command *c);
    void *on_command_arg;
    /* Called on the loop at start and whenever the members named by the
     * shards' configurations (the union over every shard: ids, rising,
     * and peer addresses, lent for the call) changed; never with none (a
     * joining node not added yet keeps what it knew). A non-zero return
     * (not kept) has it called again CONS_MEMBER_WATCH_RETRY_MS later.
     * May be NULL. heraldd keeps them for a repair (DATA/herald.members). */
    int (*on_members)(void *arg, const struct cons_member *members, unsigned n);
    void *on_members_arg;
};

struct cons_append_req;
typedef void (*cons_append_cb)(struct cons_append_req *req, int status,
                               const struct log_result *result);

/* One client append: log/'s append (the one type of an append, from the
 * HTTP request to the entry bytes) plus what the node needs to answer it.
 * The caller owns the struct and the bytes it points to until the callback
 * fires. */
struct cons_append_req {
    struct log_append a;
    void *data;                      /* caller's */
    /* private */
    cons_append_cb cb;
    struct cons_append_req *next;
};

/* Opens the WAL, replays it, bootstraps a one-node cluster if there is no
 * state yet, and starts every shard. */
int cons_node_start(struct cons_node **out, const struct cons_node_options *o,
                    char *errmsg, size_t errmsg_len);

/* Fails queued appends with HD_ESHUTDOWN, closes every shard and the WAL,
 * then calls cb. In-flight appends get HD_EUNKNOWN unless they commit. */
void cons_node_stop(struct cons_node *n, void (*cb)(void *arg), void *arg);

/* Queues an append. 0: cb will fire with 0 and the result, HD_ENOTLEADER
 * (nothing was written), HD_EUNKNOWN (it may have been written: retry with
 * the same nonce), or HD_ESHUTDOWN. Non-zero return: cb never fires
 * (HD_EBUSY when the shard's queue is full; HD_ENOSPC while this node's
 * free space is below its reserve, or, for a forwarded append, the
 * leader's: nothing was written). */
int cons_node_append(struct cons_node *n, struct cons_append_req *req,
                     cons_append_cb cb);

/* The node's free-space reserve, or NULL (for status and metrics). */
struct st_space *cons_node_space(const struct cons_node *n);
/* Proposes a trim or delete (log/command.h: kind, channel, before_seq,
 * flags 0; the stamp and proposal fields are filled here) on the channel's
 * shard, or the cluster's retention policy (kind LOG_ENTRY_KIND_POLICY, its
 * canonical text or flags LOG_POLICY_CLEAR) on shard LOG_POLICY_SHARD: here
 * if this node leads it, else forwarded to the leader like an append.
 * 0: cb(arg, 0) fires once every replica will apply it and this node
 * applied it; cb(arg, HD_EUNKNOWN) if leadership was lost or no
 * answer came first (it may still apply), or cb(arg, HD_ENOTLEADER) if the
 * leader it went to had lost leadership (nothing proposed). Non-zero
 * return: cb never fires (HD_ENOTLEADER: no leader known, an election is
 * under way; HD_EUNAVAIL: the leader is unreachable; HD_ESHUTDOWN). */
struct log_command;
typedef void (*cons_command_cb)(void *arg, int status);
int cons_node_command(struct cons_node *n, const struct log_command *c, cons_command_cb cb,
                      void *arg);

/* The shard of a channel: a stable hash, the same on every node and version. */
unsigned cons_shard_of(unsigned n_shards, const char *channel, size_t len);

#define CONS_SHARD_MEMBERS_MAX 16

struct cons_shard_status {
    const char *state;        /* "leader", "follower", "candidate", "unavailable" */
    uint64_t leader_id;       /* 0 if unknown */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t queued;          /* appends waiting to be proposed */
    uint64_t in_flight;       /* entries proposed, not yet applied */
    /* The shard's configuration as this node knows it (the first
     * CONS_SHARD_MEMBERS_MAX servers of n_members). */
    unsigned n_members;
    struct {
        uint64_t id;
        const char *role;     /* "voter", "standby", "spare" */
    } members[CONS_SHARD_MEMBERS_MAX];
};

struct cons_node_stats {
    uint64_t entries_proposed;
    uint64_t appends_proposed;
    uint64_t appends_committed;
    uint64_t appends_duplicate;
    uint64_t appends_rejected_busy;
    uint64_t appends_forwarded;   /* sent to another node's leader */
    /* Trims the retention sweep proposed, by enum log_retention_reason
     * (log/retention.h: 1 age, 2 messages, 3 bytes). */
    uint64_t retention_trims[4];
    uint64_t raft_log_bytes;      /* estimate of Raft log held in memory */
    uint64_t snapshots;           /* shard snapshots taken (all shards) */
    uint64_t snapshot_flushes;    /* state flushes they waited for (snapshot_flush.h) */
    uint64_t commit_notices;      /* commits sent to followers at once (commit_notice.h) */
    bool wal_uses_uring;
    uint64_t peer_tls_refused;    /* peer links refused at the TLS handshake */
    struct hd_histogram appends_per_entry;    /* appends in each entry proposed here */
    struct hd_histogram wal_sync_us;          /* WAL group commit, submit to durable */
    struct hd_histogram wal_entries_per_sync; /* Raft entries per WAL group commit */
};

/* Adds a node as a voter of every shard (it catches up first), or removes
 * one, shard after shard. cb(arg, 0 or HD_E*, message, shards_done) fires
 * once: shards below shards_done made the change (or had it already), the
 * others did not, and running the same change again finishes it. It fails
 * with HD_EUNAVAIL when a shard has no leader for CONS_MEMBER_LEADERLESS_MS
 * (no quorum) or timeout_ms passes (0: CONS_MEMBER_TIMEOUT_MS), and with
 * HD_EEXIST when a member of every shard holds the address. One change at a
 * time per node (HD_EBUSY). */
enum { CONS_MEMBER_ADD = 1, CONS_MEMBER_REMOVE = 2 };
#define CONS_MEMBER_TIMEOUT_MS 300000u
#define CONS_MEMBER_LEADERLESS_MS 10000u
typedef void (*cons_member_cb)(void *arg, int status, const char *message, unsigned shards_done);
int cons_node_change_member(struct cons_node *n, int op, uint64_t id, const char *address,
                            uint64_t timeout_ms, cons_member_cb cb, void *arg);

/* Waits until this node has applied everything its channel's shard leader
 * had applied when the call was made (a barrier on the leader), then calls
 * cb(arg, 0); or cb(arg, HD_EUNAVAIL / HD_ENOTLEADER). Non-zero return: cb
 * never fires. For reads with consistency=leader. */
typedef void (*cons_read_cb)(void *arg, int status);
int cons_node_read_barrier(struct cons_node *n, const char *channel, size_t len,
                           cons_read_cb cb, void *arg);

struct cons_peer_status {
    uint64_t id;
    const char *address;
    bool connected;
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t frames_dropped;
    uint64_t match_index_lag;     /* entries behind, summed over led shards */
};

/* Fills up to max peers (members other than this node); returns how many. */
unsigned cons_node_peers(struct cons_node *n, struct cons_peer_status *out, unsigned max);

unsigned cons_node_n_shards(const struct cons_node *n);
void cons_node_shard_status(struct cons_node *n, unsigned shard,
                            struct cons_shard_status *out);
void cons_node_stats(const struct cons_node *n, struct cons_node_stats *out);

/* SIGHUP: new peer connections use ctx (a mutual context), open ones keep
 * theirs. Only on a node started with peer_tls. */
void cons_node_set_peer_tls(struct cons_node *n, struct hd_tls_ctx *ctx);

#endif
