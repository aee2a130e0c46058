/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd: start-up and graceful shutdown of a node (options: options.c). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "command.h"
#include "cors.h"
#include "data_dir.h"
#include "disk_space.h"
#include "exposure.h"
#include "members.h"
#include "hd_damage.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_exit.h"
#include "hd_fault.h"
#include "hd_tls.h"
#include "hd_util.h"
#include "log_json.h"
#include "hd_malloc_policy.h"
#include "node.h"
#include "notify.h"
#include "options.h"
#include "repair.h"
#include "repair_peers.h"
#include "restore.h"
#include "peer_tls.h"
#include "tls.h"

/* Checks --bootstrap, --id and --peer-listen against each other; fills the
 * identity a new data directory gets. */
static int api__cluster_args(struct api_options *o, struct api_members *members,
                             struct api_identity *want, char *errmsg, size_t errmsg_len)
{
    static char peer_default[128];
    if (o->bootstrap != NULL) {
        int rv = api_members_parse(o->bootstrap, members, errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
        const char *self = api_members_address(members, o->node_id);
        if (self == NULL) {
            snprintf(errmsg, errmsg_len, "--bootstrap does not list this node (--id %llu)",
                     (unsigned long long)o->node_id);
            return HD_EINVAL;
        }
        if (o->peer_listen == NULL) {
            o->peer_listen = self;
        } else if (strcmp(o->peer_listen, self) != 0) {
            snprintf(errmsg, errmsg_len, "--peer-listen %s differs from this node's "
                     "--bootstrap address %s", o->peer_listen, self);
            return HD_EINVAL;
        }
        if (want->shards == 0) {
            want->shards = API_DEFAULT_SHARDS;
        }
        api_members_cluster_id(members, want->shards, NULL, want->cluster_id);
        want->bootstrap = true;
    }
    if (o->join != NULL) {
        unsigned shards = 0;
        if (o->bootstrap != NULL || api_cluster_id_shards(o->join, &shards) != 0) {
            snprintf(errmsg, errmsg_len, "--join takes the cluster id that `herald status` shows "
                     "(32 hex digits), and no --bootstrap");
            return HD_EINVAL;
        }
        if (want->shards != 0 && want->shards != shards) {
            snprintf(errmsg, errmsg_len, "cluster %s has %u shards, not --shards %u", o->join,
                     shards, want->shards);
            return HD_EINVAL;
        }
        want->shards = shards;
        snprintf(want->cluster_id, sizeof want->cluster_id, "%s", o->join);
    }
    if (o->peer_listen == NULL) {
        if (api_peer_address_default(o->listen, peer_default, sizeof peer_default) != 0) {
            snprintf(errmsg, errmsg_len, "--listen %s is not HOST:PORT", o->listen);
            return HD_EINVAL;
        }
        o->peer_listen = peer_default;
    }
    return 0;
}

/* --restore: a new cluster from a backup (restore.c); --join is the other
 * way to start without a history, so the two do not go together. */
static int api__restore(const struct api_options *o, const struct api_members *members,
                        struct api_identity *want, char *errmsg, size_t errmsg_len)
{
    if (o->join != NULL) {
        snprintf(errmsg, errmsg_len, "--restore starts a new cluster; it does not go with "
                 "--join (the other members join it)");
        return HD_EINVAL;
    }
    return api_restore_plan(o->restore, members, o->node_id, want, errmsg, errmsg_len);
}

/* Whether the data directory holds a node already (its herald.id). */
static bool api__has_identity(const char *data_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/herald.id", data_dir);
    return access(path, F_OK) == 0;
}

/* ------------------------------------------------------------ running --- */

struct api_daemon {
    struct api_server server;
    struct api_options opts;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    struct api_notify notify;
    int lock_fd;
    struct st_space *space;       /* the free-space reserve of the data directory */
    bool disk_failed;             /* the data directory took no write at the stop */
    bool repaired;                /* runs under an id a repair gave it: a joined member */
    struct hd_tls_ctx *tls;       /* --tls-cert/--tls-key until the server takes it */
    struct hd_tls_ctx *peer_tls;  /* --peer-tls-*: the daemon's reference; NULL: off */
    struct api_member_keeper keeper; /* DATA/herald.members, for a repair */
    unsigned stopping_parts;      /* http server and consensus still closing */
};

static void api__on_commit(void *arg, const char *channel, size_t len,
                           const struct log_message *m)
{
    struct api_server *s = arg;
    if (s->hub != NULL) {
        api_hub_commit(s->hub, channel, len, m);
    }
}

static void api__on_command(void *arg, const struct log_command *c)
{
    struct api_server *s = arg;
    if (s->hub != NULL) {
        api_hub_command(s->hub, c->channel, c->channel_len, c->kind == LOG_ENTRY_KIND_DELETE);
    }
}

static void api__on_restore(void *arg, unsigned shard)
{
    struct api_server *s = arg;
    (void)shard;
    if (s->hub != NULL) {
        api_hub_restore(s->hub);
    }
}

static void api__part_stopped(void *arg)
{
    struct api_daemon *d = arg;
    if (--d->stopping_parts > 0) {
        return;
    }
    /* A flush makes the next start quick: nothing to re-apply. Not on a
     * file system that fails (a dead disk, one shut down): the flush, or
     * closing RocksDB (which flushes), would meet the error, and a failed
     * state write stops the process with exit 5 (storage/rocks_fs.h), not
     * the clean stop asked for; main() then exits without closing the
     * state. The WAL has everything. */
    int rv = st_space_probe(d->opts.data_dir);
    if (rv != 0) {
        HD_LOG_ERROR("%s takes no writes (%s): no final state flush, and the state "
                     "is not closed; the WAL has everything", d->opts.data_dir,
                     hd_strerror(rv));
        d->disk_failed = true;
    } else if ((rv = log_flush(d->server.log)) != 0) {
        HD_LOG_WARN("final state flush: %s (the WAL still has everything)", hd_strerror(rv));
    }
    st_space_close(d->space);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    api_notify_close(&d->notify);
    /* Closing the last watcher restored the default action (inside
     * uv_close), which would let a late SIGTERM (a supervisor repeating
     * itself) kill the final close: ignore it from here on. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    HD_LOG_INFO("stopped");
}

static void api__on_signal(uv_signal_t *h, int signum)
{
    struct api_daemon *d = h->data;
    if (d->server.stopping) {
        if (signum == SIGTERM) {
            return; /* already stopping; supervisors repeat themselves */
        }
        HD_LOG_WARN("second interrupt: exiting at once (the WAL has every acknowledged append)");
        _exit(1);
    }
    HD_LOG_INFO("signal %d: stopping gracefully", signum);
    api_notify_stopping("stopping: closing connections, flushing state");
    d->server.stopping = true;
    d->stopping_parts = 2;
    api_hub_close(d->server.hub);
    d->server.hub = NULL;
    api_http_server_close(d->server.http, api__part_stopped, d);
    cons_node_stop(d->server.node, api__part_stopped, d);
}

static void api__on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    struct api_daemon *d = h->data;
    if (!d->server.stopping) {
        api_auth_reload(&d->server);
        api_tls_reload(d->server.http, &d->opts);
        api_peer_tls_reload(d->server.node, &d->opts, &d->peer_tls);
    }
}

static int api__open_state(struct api_daemon *d, const struct api_identity *id,
                           const struct api_members *members, char *errmsg, size_t errmsg_len)
{
    struct api_server *s = &d->server;
    char state_dir[PATH_MAX];
    snprintf(state_dir, sizeof state_dir, "%s/state", d->opts.data_dir);
    struct log_options lo = {.dir = state_dir, .n_shards = id->shards,
                             .dedup_window_us = d->opts.dedup_window_s * 1000000u,
                             .retention = d->opts.retention};
    struct st_space_options so = {.loop = s->loop, .dir = d->opts.data_dir,
                                  .reserve = d->opts.disk_reserve};
    int rv = st_space_open(&d->space, &so, errmsg, errmsg_len);
    if (rv == 0) {
        rv = log_store_open(&s->log, &lo, errmsg, errmsg_len);
    }
    if (rv != 0) {
        return rv;
    }
    struct cons_node_options no = {.loop = s->loop, .data_dir = d->opts.data_dir,
                                   .node_id = id->node_id, .address = d->opts.peer_listen,
                                   .cluster_id = id->cluster_id,
                                   .peer_listen = d->opts.peer_listen,
                                   .peer_tls = d->peer_tls,
                                   .members = members->n > 0 && !d->repaired ? members->list : NULL,
                                   .n_members = d->repaired ? 0 : members->n,
                                   .join = d->opts.join != NULL || d->repaired,
                                   .restore = d->opts.restore != NULL,
                                   .n_shards = id->shards, .log = s->log,
                                   .wal_no_uring = d->opts.no_uring,
                                   .space = d->space,
                                   .snapshot_threshold = d->opts.snapshot_every,
                                   .log_memory_max = d->opts.raft_log_memory,
                                   .snapshot_trailing = d->opts.snapshot_every > 0 ? d->opts.snapshot_every / 4 + 1 : 0,
                                   .on_commit = api__on_commit, .on_commit_arg = s,
                                   .on_restore = api__on_restore,
                                   .on_command = api__on_command, .on_command_arg = s,
                                   .on_members = api_repair_peers_keep,
                                   .on_members_arg = &d->keeper,
                                   .retention_interval_ms = d->opts.retention_interval_s * 1000};
    return cons_node_start(&s->node, &no, errmsg, errmsg_len);
}

static int api__serve(struct api_daemon *d, char *errmsg, size_t errmsg_len)
{
    struct api_server *s = &d->server;
    s->config = (struct api_config){.payload_bytes_max = d->opts.payload_max,
                                    .read_limit_max = 1000,
                                    .read_bytes_max = 4u << 20,
                                    .batch_lines_max = 10000,
                                    .tail_keepalive_ms = 15000,
                                    .tail_channels_max = 1000,
                                    .ws_message_bytes_max = d->opts.payload_max * 2 + (64u << 10),
                                    .ws_appends_max = 1024};
    int rv = api_hub_init(&s->hub, s);
    if (rv != 0) {
        return rv;
    }
    s->cors = d->opts.cors;
    struct api_http_limits limits = {.body_bytes_max = d->opts.body_max,
                                     .connections_max = d->opts.connections_max};
    rv = api_http_server_init(&s->http, s->loop, d->opts.listen, &limits, api_route, s, errmsg,
                              errmsg_len);
    if (rv != 0) {
        return rv;
    }
    if (d->opts.delivery_thread) {
        rv = api_http_server_start_writer(s->http);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "cannot start the delivery thread: %s", hd_strerror(rv));
            return rv;
        }
        HD_LOG_INFO("delivery: subscriber sockets are written by the herald-writer thread");
    }
    if (s->cors != NULL) {
        api_http_server_set_head_hook(s->http, api_cors_head_hook, s->cors);
    }
    if (d->tls != NULL) {
        api_http_server_set_tls(s->http, d->tls); /* the server owns it from here */
        d->tls = NULL;
    }
    uv_signal_init(s->loop, &d->sigterm);
    uv_signal_init(s->loop, &d->sigint);
    d->sigterm.data = d->sigint.data = d;
    uv_signal_start(&d->sigterm, api__on_signal, SIGTERM);
    uv_signal_start(&d->sigint, api__on_signal, SIGINT);
    uv_signal_init(s->loop, &d->sighup);
    d->sighup.data = d;
    uv_signal_start(&d->sighup, api__on_sighup, SIGHUP);
    return 0;
}

static void api__banner(const struct api_daemon *d, const struct api_identity *id)
{
#ifdef HD_FAULTY_BUILD_NAME
    HD_LOG_ERROR("FAULTY BUILD '%s': this heraldd has a deliberate defect for the "
                 "fault-injection suite and must never hold real data",
                 HD_FAULTY_BUILD_NAME);
#endif
    struct cons_node_stats st;
    cons_node_stats(d->server.node, &st);
    const char *scheme = d->opts.tls_cert != NULL ? "https" : "http";
    const char *curl = d->opts.tls_cert != NULL ? "curl --cacert CA.pem" : "curl";
    HD_LOG_INFO("node %llu of cluster %s serving %s://%s (data %s, %u shards, WAL on %s)",
                (unsigned long long)id->node_id, id->cluster_id, scheme, d->opts.listen,
                d->opts.data_dir, id->shards,
                st.wal_uses_uring ? "io_uring" : "pwrite+fdatasync");
    if (d->server.auth != NULL) {
        HD_LOG_INFO("auth: %zu tokens from %s; requests need Authorization: Bearer TOKEN",
                    d->server.auth->set->n, d->opts.auth_file);
    } else if (!api_listen_is_loopback(d->opts.listen)) {
        HD_LOG_WARN("--insecure: %s is open to anyone who reaches it (no --auth-file)",
                    d->opts.listen);
    }
    bool cluster = false;
    const struct hd_retention *policy = log_retention_effective(d->server.log, &cluster);
    if (policy != NULL && (policy->n > 0 || cluster)) {
        char text[HD_RETENTION_TEXT_MAX], hash[9];
        hd_retention_format(policy, text, sizeof text);
        hd_retention_hash(policy, hash);
        HD_LOG_INFO("retention: policy \"%s\" (%s; hash %s, every %llu s as a shard's"
                    " leader%s)", text, cluster ? "cluster" : "config", hash,
                    (unsigned long long)d->opts.retention_interval_s,
                    cluster ? "" : "; without a cluster policy every node must have the same");
    }
    HD_LOG_INFO("try: %s -s -XPOST %s://%s/v1/channels/general/messages "
                "-H 'Content-Type: application/json' -d '{\"nonce\":\"n1\",\"payload\":\"hi\"}'",
                curl, scheme, d->opts.listen);
    HD_LOG_INFO("tail: %s -sN %s://%s/v1/channels/general/tail?after_seq=0", curl, scheme,
                d->opts.listen);
}

/* --check-config: the options read; the flags that depend on each other
 * are checked too (nothing of the data directory is touched). */
static int api__check_config(struct api_options *o)
{
    char errmsg[512] = "";
    static struct api_members members;
    struct api_identity want = {.node_id = o->node_id, .shards = (unsigned)o->shards};
    if (api__cluster_args(o, &members, &want, errmsg, sizeof errmsg) != 0) {
        fprintf(stderr, "heraldd: %s: %s\n", o->config_path, errmsg);
        return 2;
    }
    printf("heraldd: %s: valid\n", o->config_path);
    return 0;
}

int main(int argc, char **argv)
{
    static struct api_daemon d;
    hd_malloc_policy(); /* before the first allocation it governs */
    api_options_defaults(&d.opts);
    d.opts.disk_reserve = ST_SPACE_DEFAULT_RESERVE;
    enum api_options_verdict verdict = api_options_read(argc, argv, &d.opts);
    if (verdict != API_OPTIONS_RUN) {
        api_options_free(&d.opts);
        return verdict == API_OPTIONS_EXIT_OK ? 0 : 2;
    }
    if (d.opts.check_config) {
        int crv = api__check_config(&d.opts);
        api_options_free(&d.opts);
        return crv;
    }
    hd_log_level = d.opts.log_level;
    if (d.opts.log_format == API_LOG_JSON) {
        api_log_json_start();
    }
    if (d.opts.config_path != NULL) {
        HD_LOG_INFO("options from %s (flags on the command line override it)",
                    d.opts.config_path);
    }
    if (d.opts.body_max < d.opts.payload_max) {
        d.opts.body_max = d.opts.payload_max * 2; /* room for JSON and base64 */
    }
    char errmsg[512] = "";
    static struct api_members members;
    struct api_identity want = {.node_id = d.opts.node_id, .shards = (unsigned)d.opts.shards}, id;
    int rv = api_exposure_check(d.opts.listen, d.opts.auth_file != NULL, d.opts.insecure, errmsg,
                                sizeof errmsg);
    if (rv == 0 && d.opts.auth_file != NULL) {
        rv = api_auth_open(&d.server.auth, d.opts.auth_file, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_tls_open(&d.opts, &d.tls, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_peer_tls_open(&d.opts, &d.peer_tls, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api__cluster_args(&d.opts, &members, &want, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_peer_exposure_check(&d.opts, errmsg, sizeof errmsg);
    }
    if (rv == 0 && d.opts.restore != NULL) {
        rv = api__restore(&d.opts, &members, &want, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_data_lock(d.opts.data_dir, &d.lock_fd, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_repair_adopt(d.opts.data_dir, &want.node_id, &d.repaired,
                              &d.server.repairs_total, errmsg, sizeof errmsg);
        if (d.repaired) d.opts.node_id = want.node_id;
    }
    static struct api_members repair_peers;
    d.keeper = (struct api_member_keeper){.data_dir = d.opts.data_dir,
                                          .cluster_id = d.server.cluster_id};
    if (rv == 0) {
        api_repair_peers(d.opts.data_dir, want.cluster_id, &members, &repair_peers, &d.keeper);
    }
    struct api_repair_ctx repair = {.data_dir = d.opts.data_dir, .listen = d.opts.listen,
                                    .peer_listen = d.opts.peer_listen, .members = &repair_peers,
                                    .want = &want, .repairs = d.server.repairs_total,
                                    .disk_reserve = d.opts.disk_reserve, .tls = &d.tls,
                                    .peer_tls = d.peer_tls, .argv = argv};
    char damage[HD_DAMAGE_REASON_MAX] = "";
    if (rv == 0 && hd_damage_marked(d.opts.data_dir, damage, sizeof damage)) {
        if (d.opts.repair) {
            int code = api_repair_run(&repair, damage);
            hd_tls_ctx_free(d.tls);
            hd_tls_ctx_free(d.peer_tls);
            api_options_free(&d.opts);
            return code;
        }
        HD_LOG_WARN("%s/%s says the data was found damaged (%s); --repair off: starting "
                    "anyway", d.opts.data_dir, HD_DAMAGE_MARKER, damage);
    }
    bool may_repair = d.opts.repair && api_repair_possible(&repair, damage, sizeof damage);
    if (may_repair) {
        hd_damage_arm(d.opts.data_dir);       /* RocksDB damage found running: marked */
        hd_damage_restart_with(argv);         /* found while starting: repaired at once */
    }
    if (rv == 0 && d.opts.restore != NULL && !api__has_identity(d.opts.data_dir)) {
        rv = api_restore_state(d.opts.data_dir, d.opts.restore, want.shards, errmsg,
                               sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_data_identity(d.opts.data_dir, &want, &id, errmsg, sizeof errmsg);
    }
    /* Damaged data, as opposed to a bad command line or backup: herald.id,
     * and below the WAL and the state. */
    bool damaged = rv == HD_ECORRUPT;
    if (rv == 0 && d.opts.id_given && id.node_id != d.opts.node_id) {
        snprintf(errmsg, sizeof errmsg, "%s belongs to node %llu, not --id %llu",
                 d.opts.data_dir, (unsigned long long)id.node_id,
                 (unsigned long long)d.opts.node_id);
        rv = HD_EINVAL;
    }
    d.server.loop = uv_default_loop();
    d.server.node_id = id.node_id;
    d.server.started_us = hd_now_us();
    d.server.data_dir = d.opts.data_dir;
    d.server.retention_interval_ms = d.opts.retention_interval_s * 1000;
    if (rv == 0) {
        snprintf(d.server.cluster_id, sizeof d.server.cluster_id, "%s", id.cluster_id);
        api_notify_status("opening state and the WAL of %u shards", id.shards);
        rv = api__open_state(&d, &id, &members, errmsg, sizeof errmsg);
        damaged = rv == HD_ECORRUPT;
    }
    if (rv == 0) {
        rv = api__serve(&d, errmsg, sizeof errmsg);
    }
    if (damaged && may_repair) {
        api_repair_mark_and_restart(&repair, errmsg[0] ? errmsg : hd_strerror(rv));
    }
    if (damaged) {
        /* Damaged data, not a passing condition: the status that says so. */
        HD_LOG_ERROR("cannot start: %s; %s (exit %d)", errmsg[0] ? errmsg : hd_strerror(rv),
                     !d.opts.repair ? "--repair off"
                     : may_repair    ? "the repair could not begin (see above)"
                                     : damage,
                     HD_EXIT_CORRUPT);
        hd_tls_ctx_free(d.tls);
        api_options_free(&d.opts);
        return HD_EXIT_CORRUPT;
    }
    if (rv != 0) {
        HD_LOG_ERROR("cannot start: %s", errmsg[0] ? errmsg : hd_strerror(rv));
        api_notify_status("cannot start: %s", errmsg[0] ? errmsg : hd_strerror(rv));
        hd_tls_ctx_free(d.tls);
        hd_tls_ctx_free(d.peer_tls);
        api_options_free(&d.opts);
        return 1;
    }
    api__banner(&d, &id);
    /* The listening socket is bound: a request made from here on is
     * answered once the loop runs, which is next. */
    char status[256];
    snprintf(status, sizeof status, "serving %s://%s, node %llu of cluster %s",
             d.opts.tls_cert != NULL ? "https" : "http", d.opts.listen, (unsigned long long)id.node_id, id.cluster_id);
    api_notify_ready(&d.notify, d.server.loop, status);
    hd_damage_restart_with(NULL); /* serving: damage found from now on exits (3) */
    uv_run(d.server.loop, UV_RUN_DEFAULT);
    if (d.disk_failed) {
        _exit(HD_EXIT_OK); /* stopped as asked; closing RocksDB would abort */
    }
    api_auth_free(d.server.auth);
    hd_tls_ctx_free(d.peer_tls);
    api_options_free(&d.opts);
    log_store_close(d.server.log);
    uv_loop_close(d.server.loop);
    close(d.lock_fd);
    return 0;
}
