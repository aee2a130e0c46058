/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd: options, start-up and graceful shutdown of a node. */
#include <getopt.h>
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
#include "hd_error.h"
#include "hd_exit.h"
#include "hd_fault.h"
#include "hd_util.h"
#include "node.h"

struct api_options {
    const char *data_dir;
    const char *listen;
    const char *peer_listen;      /* NULL: the --listen port plus one */
    const char *bootstrap;        /* member list of a new cluster */
    const char *join;             /* cluster id to join as a new, empty node */
    bool id_given;
    unsigned shards;              /* 0: as created, or the default */
    uint64_t node_id;
    size_t payload_max;
    size_t body_max;
    size_t connections_max;
    uint64_t dedup_window_s;
    unsigned snapshot_every;      /* raft entries between snapshots; 0 = 4096 */
    bool no_uring;
    uint64_t disk_reserve;        /* --disk-reserve: bytes kept free; 0: none */
    struct api_cors *cors;        /* --cors-origins; NULL: no cross-origin access */
    const char *auth_file;        /* --auth-file; NULL: no tokens */
    bool insecure;                /* --insecure: open off loopback */
};

static void api__usage(FILE *f)
{
    fprintf(f,
            "Usage: heraldd [OPTIONS]\n"
            "Runs one herald node: a durable, replicated log of channels over HTTP.\n"
            "With no options it serves a one-node cluster from ./herald-data on\n"
            "127.0.0.1:7400, creating (bootstrapping) it on first start.\n\n"
            "  --data DIR             data directory (default ./herald-data)\n"
            "  --listen ADDR          HTTP address, host:port (default 127.0.0.1:7400)\n"
            "  --peer-listen ADDR     address for other nodes (default: --listen port + 1)\n"
            "  --id N                 this node's id in its cluster (default 1); fixed\n"
            "                         once the data directory exists\n"
            "  --bootstrap LIST       create a new cluster of these voters, given alike to\n"
            "                         every member: 1=HOST:PORT,2=HOST:PORT,... (peer\n"
            "                         addresses). On later starts it may stay on the\n"
            "                         command line: DIR's data of this node of this\n"
            "                         cluster starts as it is; other data is refused.\n"
            "  --join CLUSTER_ID      start a new, empty node of an existing cluster; it\n"
            "                         serves once a member runs `herald cluster add-node`\n"
            "                         for it (its --id must exceed every member's id)\n"
            "  --shards N             shards of a new cluster, 1-4096 (default 16);\n"
            "                         fixed once the data directory exists\n"
            "  --max-payload BYTES    largest message payload (default 1048576)\n"
            "  --max-body BYTES       largest request body (default 8388608)\n"
            "  --max-connections N    open HTTP connections (default 4096)\n"
            "  --dedup-window SECONDS retries with the same nonce within this answer the\n"
            "                         original result (default 86400)\n"
            "  --disk-reserve BYTES   free space to keep on DIR's file system; below it\n"
            "                         appends are refused (507 insufficient_storage)\n"
            "                         until space returns (default 268435456, 0: none)\n"
            "  --no-uring             write the WAL with pwrite+fdatasync instead of io_uring\n"
            "  --snapshot-every N     Raft entries per shard between snapshots (default\n"
            "                         4096); fewer keeps less log, more snapshots more often\n"
            "  --cors-origins LIST    let web pages of these origins use the v1 API from\n"
            "                         a browser: scheme://host[:port],... or '*' for any\n"
            "                         (default: none, no CORS headers). Also refuses\n"
            "                         WebSocket handshakes from other origins; without\n"
            "                         the flag every origin's handshake is accepted\n"
            "  --auth-file FILE       tokens (hashed) and their scopes; every request then\n"
            "                         needs Authorization: Bearer TOKEN (SSE and\n"
            "                         WebSocket may use ?access_token=). SIGHUP re-reads\n"
            "                         it; see `herald token create`\n"
            "  --insecure             run without --auth-file on a --listen address that is\n"
            "                         not loopback (refused otherwise)\n"
            "  --log-level LEVEL      error, warn, info (default) or debug\n"
            "  --version              print the version and exit\n"
            "  --help                 print this help and exit\n\n"
            "Signals: SIGTERM or SIGINT stop the node gracefully; a second SIGINT exits at\n"
            "once (acknowledged appends are in the WAL either way). SIGHUP re-reads\n"
            "--auth-file (a bad file is refused and the old tokens stay).\n"
            "Exit status: 0 stopped by a signal, 1 could not start, 2 bad usage, 3 state\n"
            "found corrupt, 4 a WAL write failed, 5 a state write failed (4 and 5: restart\n"
            "once the disk answers; nothing unwritten was acknowledged).\n");
}

static int api__parse_size(const char *arg, const char *name, uint64_t min, uint64_t max,
                           uint64_t *out)
{
    if (hd_u64_parse(arg, strlen(arg), out) != 0 || *out < min || *out > max) {
        fprintf(stderr, "heraldd: %s must be a number from %llu to %llu, got '%s'\n", name,
                (unsigned long long)min, (unsigned long long)max, arg);
        return -1;
    }
    return 0;
}

static int api__log_level(const char *arg)
{
    static const char *levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(arg, levels[i]) == 0) {
            hd_log_level = i;
            return 0;
        }
    }
    fprintf(stderr, "heraldd: --log-level must be error, warn, info or debug\n");
    return -1;
}

static int api__cors_origins(const char *arg, struct api_options *o)
{
    char errmsg[512] = "";
    api_cors_free(o->cors); /* the last --cors-origins counts */
    o->cors = NULL;
    if (api_cors_parse(arg, &o->cors, errmsg, sizeof errmsg) != 0) {
        fprintf(stderr, "heraldd: %s\n", errmsg);
        return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 to exit 0 (help, version), -1 to exit 2 (usage). */
static int api__parse_args(int argc, char **argv, struct api_options *o)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},      {"listen", required_argument, NULL, 'l'},
        {"peer-listen", required_argument, NULL, 'P'}, {"id", required_argument, NULL, 'i'},
        {"bootstrap", required_argument, NULL, 'B'}, {"join", required_argument, NULL, 'J'},
        {"shards", required_argument, NULL, 's'},    {"max-payload", required_argument, NULL, 'p'},
        {"max-body", required_argument, NULL, 'b'},  {"max-connections", required_argument, NULL, 'c'},
        {"dedup-window", required_argument, NULL, 'w'}, {"no-uring", no_argument, NULL, 'u'},
        {"snapshot-every", required_argument, NULL, 'S'},
        {"disk-reserve", required_argument, NULL, 'R'},
        {"cors-origins", required_argument, NULL, 'C'},
        {"auth-file", required_argument, NULL, 'A'}, {"insecure", no_argument, NULL, 'I'},
        {"log-level", required_argument, NULL, 'L'}, {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    uint64_t v;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
            case 'd': o->data_dir = optarg; break;
            case 'l': o->listen = optarg; break;
            case 'P': o->peer_listen = optarg; break;
            case 'B': o->bootstrap = optarg; break;
            case 'J': o->join = optarg; break;
            case 'i':
                if (api__parse_size(optarg, "--id", 1, UINT32_MAX, &v) != 0) return -1;
                o->node_id = v;
                o->id_given = true;
                break;
            case 's':
                if (api__parse_size(optarg, "--shards", 1, 4096, &v) != 0) return -1;
                o->shards = (unsigned)v;
                break;
            case 'p':
                if (api__parse_size(optarg, "--max-payload", 1, 64u << 20, &v) != 0) return -1;
                o->payload_max = v;
                break;
            case 'b':
                if (api__parse_size(optarg, "--max-body", 1024, 1u << 30, &v) != 0) return -1;
                o->body_max = v;
                break;
            case 'c':
                if (api__parse_size(optarg, "--max-connections", 1, 1000000, &v) != 0) return -1;
                o->connections_max = v;
                break;
            case 'w':
                if (api__parse_size(optarg, "--dedup-window", 1, 365u * 86400, &v) != 0) return -1;
                o->dedup_window_s = v;
                break;
            case 'u': o->no_uring = true; break;
            case 'A': o->auth_file = optarg; break;
            case 'I': o->insecure = true; break;
            case 'C':
                if (api__cors_origins(optarg, o) != 0) return -1;
                break;
            case 'S':
                if (api__parse_size(optarg, "--snapshot-every", 2, 1u << 20, &v) != 0) return -1;
                o->snapshot_every = (unsigned)v;
                break;
            case 'R':
                if (api__parse_size(optarg, "--disk-reserve", 0, 1ull << 50, &v) != 0) return -1;
                o->disk_reserve = v;
                break;
            case 'L':
                if (api__log_level(optarg) != 0) return -1;
                break;
            case 'V': printf("heraldd %s\n", HERALD_VERSION); return 1;
            case 'h': api__usage(stdout); return 1;
            default: api__usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "heraldd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

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
        api_members_cluster_id(members, want->shards, want->cluster_id);
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

/* ------------------------------------------------------------ running --- */

struct api_daemon {
    struct api_server server;
    struct api_options opts;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    int lock_fd;
    struct st_space *space;       /* the free-space reserve of the data directory */
    bool disk_failed;             /* the data directory took no write at the stop */
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
     * file system that fails (a dead disk, one shut down): RocksDB (as
     * Debian builds it, with assertions) aborts the process when a flush,
     * or closing its files, meets an I/O error; main() then exits without
     * closing the state. The WAL has everything. */
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
    }
}

static int api__open_state(struct api_daemon *d, const struct api_identity *id,
                           const struct api_members *members, char *errmsg, size_t errmsg_len)
{
    struct api_server *s = &d->server;
    char state_dir[PATH_MAX];
    snprintf(state_dir, sizeof state_dir, "%s/state", d->opts.data_dir);
    struct log_options lo = {.dir = state_dir, .n_shards = id->shards,
                             .dedup_window_us = d->opts.dedup_window_s * 1000000u};
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
                                   .members = members->n > 0 ? members->list : NULL,
                                   .n_members = members->n,
                                   .join = d->opts.join != NULL,
                                   .n_shards = id->shards, .log = s->log,
                                   .wal_no_uring = d->opts.no_uring,
                                   .space = d->space,
                                   .snapshot_threshold = d->opts.snapshot_every,
                                   .snapshot_trailing = d->opts.snapshot_every > 0 ? d->opts.snapshot_every / 4 + 1 : 0,
                                   .on_commit = api__on_commit, .on_commit_arg = s,
                                   .on_restore = api__on_restore,
                                   .on_command = api__on_command, .on_command_arg = s};
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
    if (s->cors != NULL) {
        api_http_server_set_head_hook(s->http, api_cors_head_hook, s->cors);
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
    HD_LOG_INFO("node %llu of cluster %s serving http://%s (data %s, %u shards, WAL on %s)",
                (unsigned long long)id->node_id, id->cluster_id, d->opts.listen,
                d->opts.data_dir, id->shards,
                st.wal_uses_uring ? "io_uring" : "pwrite+fdatasync");
    if (d->server.auth != NULL) {
        HD_LOG_INFO("auth: %zu tokens from %s; requests need Authorization: Bearer TOKEN",
                    d->server.auth->set->n, d->opts.auth_file);
    } else if (!api_listen_is_loopback(d->opts.listen)) {
        HD_LOG_WARN("--insecure: %s is open to anyone who reaches it (no --auth-file)",
                    d->opts.listen);
    }
    HD_LOG_INFO("try: curl -s -XPOST http://%s/v1/channels/general/messages "
                "-H 'Content-Type: application/json' -d '{\"nonce\":\"n1\",\"payload\":\"hi\"}'",
                d->opts.listen);
    HD_LOG_INFO("tail: curl -sN http://%s/v1/channels/general/tail?after_seq=0", d->opts.listen);
}

int main(int argc, char **argv)
{
    static struct api_daemon d;
    d.opts = (struct api_options){.data_dir = "herald-data", .listen = "127.0.0.1:7400",
                                  .node_id = 1, .payload_max = 1u << 20,
                                  .body_max = 8u << 20, .connections_max = 4096,
                                  .dedup_window_s = 86400,
                                  .disk_reserve = ST_SPACE_DEFAULT_RESERVE};
    int prv = api__parse_args(argc, argv, &d.opts);
    if (prv != 0) {
        return prv > 0 ? 0 : 2;
    }
    if (d.opts.body_max < d.opts.payload_max) {
        d.opts.body_max = d.opts.payload_max * 2; /* room for JSON and base64 */
    }
    char errmsg[512] = "";
    static struct api_members members;
    struct api_identity want = {.node_id = d.opts.node_id, .shards = d.opts.shards}, id;
    int rv = api_exposure_check(d.opts.listen, d.opts.auth_file != NULL, d.opts.insecure, errmsg,
                                sizeof errmsg);
    if (rv == 0 && d.opts.auth_file != NULL) {
        rv = api_auth_open(&d.server.auth, d.opts.auth_file, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api__cluster_args(&d.opts, &members, &want, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_data_lock(d.opts.data_dir, &d.lock_fd, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api_data_identity(d.opts.data_dir, &want, &id, errmsg, sizeof errmsg);
    }
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
    if (rv == 0) {
        snprintf(d.server.cluster_id, sizeof d.server.cluster_id, "%s", id.cluster_id);
        rv = api__open_state(&d, &id, &members, errmsg, sizeof errmsg);
    }
    if (rv == 0) {
        rv = api__serve(&d, errmsg, sizeof errmsg);
    }
    if (rv != 0) {
        HD_LOG_ERROR("cannot start: %s", errmsg[0] ? errmsg : hd_strerror(rv));
        return 1;
    }
    api__banner(&d, &id);
    uv_run(d.server.loop, UV_RUN_DEFAULT);
    if (d.disk_failed) {
        _exit(HD_EXIT_OK); /* stopped as asked; closing RocksDB would abort */
    }
    api_cors_free(d.opts.cors);
    api_auth_free(d.server.auth);
    log_store_close(d.server.log);
    uv_loop_close(d.server.loop);
    close(d.lock_fd);
    return 0;
}
