/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/status (JSON) and GET /metrics (Prometheus text format). */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "disk_space.h"
#include "fanout.h"
#include "hd_alloc.h"
#include "hd_util.h"
#include "metrics_text.h"
#include "node.h"

void api_status(struct api_server *s, struct api_http_conn *c)
{
    struct cons_node_stats st;
    cons_node_stats(s->node, &st);
    json_t *shards = json_array();
    unsigned n = cons_node_n_shards(s->node);
    for (unsigned i = 0; i < n; i++) {
        struct cons_shard_status ss;
        cons_node_shard_status(s->node, i, &ss);
        json_t *members = json_array();
        for (unsigned k = 0; k < ss.n_members && k < CONS_SHARD_MEMBERS_MAX; k++) {
            json_array_append_new(members, json_pack("{s:I, s:s}", "id",
                                                     (json_int_t)ss.members[k].id, "role",
                                                     ss.members[k].role));
        }
        json_array_append_new(
            shards, json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "shard", (int)i,
                              "state", ss.state, "leader", (json_int_t)ss.leader_id, "term",
                              (json_int_t)ss.term, "commit_index", (json_int_t)ss.commit_index,
                              "applied_index", (json_int_t)ss.applied_index, "last_index",
                              (json_int_t)ss.last_index, "queued", (json_int_t)ss.queued,
                              "in_flight", (json_int_t)ss.in_flight, "members", members));
    }
    json_t *peers = json_array();
    struct cons_peer_status ps[64];
    unsigned n_peers = cons_node_peers(s->node, ps, 64);
    for (unsigned i = 0; i < n_peers; i++) {
        json_array_append_new(
            peers, json_pack("{s:I, s:s, s:b, s:I, s:I, s:I, s:I}", "id", (json_int_t)ps[i].id,
                             "address", ps[i].address, "connected", ps[i].connected,
                             "lag_entries", (json_int_t)ps[i].match_index_lag, "frames_sent",
                             (json_int_t)ps[i].frames_sent, "frames_received",
                             (json_int_t)ps[i].frames_received, "frames_dropped",
                             (json_int_t)ps[i].frames_dropped));
    }
    json_t *body = json_pack(
        "{s:I, s:s, s:s, s:I, s:o, s:o, s:{s:b}, s:{s:I, s:I, s:I, s:I}}", "node_id",
        (json_int_t)s->node_id, "cluster_id", s->cluster_id, "version", HERALD_VERSION,
        "uptime_s", (json_int_t)((hd_now_us() - s->started_us) / 1000000u), "shards", shards,
        "peers", peers, "wal", "io_uring", st.wal_uses_uring, "appends", "committed",
        (json_int_t)st.appends_committed, "duplicate", (json_int_t)st.appends_duplicate,
        "forwarded", (json_int_t)st.appends_forwarded, "tails",
        (json_int_t)api_hub_sessions(s->hub));
    json_object_set_new(body, "writes", api_writes_json(s));
    /* Added for the status page: counters it turns into rates, and disk use. */
    struct fan_stats f = {0};
    if (s->hub != NULL) fan_get_stats(api_hub_fan(s->hub), &f);
    json_object_set_new(body, "deliveries",
                        json_pack("{s:I, s:I, s:I}", "live", (json_int_t)f.deliveries_live,
                                  "catchup", (json_int_t)f.deliveries_catchup, "subscriptions",
                                  (json_int_t)f.subs));
    json_object_set_new(body, "http_requests", json_integer((json_int_t)s->metrics.requests));
    json_object_set_new(body, "disk", api_status_disk(s->data_dir));
    json_object_set_new(body, "retention", api_status_retention(s));
    json_object_set_new(body, "repairs", json_integer((json_int_t)s->repairs_total));
    json_object_set_new(body, "now_ms", json_integer((json_int_t)(hd_now_us() / 1000u)));
    api_respond_json(s, c, 200, body, NULL);
}

void api__printf(struct api_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->buf != NULL ? vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + 4096;
        char *buf = hd_realloc(t->buf, cap);
        if (buf == NULL) {
            return; /* the metrics page comes out short */
        }
        t->buf = buf;
        t->cap = cap;
    }
}

static void api__metric(struct api_text *t, const char *name, const char *type,
                        const char *help, uint64_t value)
{
    api__printf(t, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                value);
}

/* The standard process metrics, from /proc/self: CPU time (user + system),
 * resident memory, open file descriptors. A figure that cannot be read is
 * left out rather than reported as 0. */
static void api__process_metrics(struct api_text *t)
{
    unsigned long utime = 0, stime = 0;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    /* Fields 14 and 15; the command name (field 2) may hold spaces, so
     * scan from its closing parenthesis. */
    char line[1024];
    char *close = f != NULL && fgets(line, sizeof line, f) != NULL ? strrchr(line, ')') : NULL;
    if (close != NULL && ticks > 0 &&
        sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
               &stime) == 2) {
        api__printf(t, "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
                       "# TYPE process_cpu_seconds_total counter\n"
                       "process_cpu_seconds_total %.2f\n",
                    (double)(utime + stime) / (double)ticks);
    }
    if (f != NULL) fclose(f);
    unsigned long size = 0, resident = 0;
    f = fopen("/proc/self/statm", "r");
    if (f != NULL && fscanf(f, "%lu %lu", &size, &resident) == 2 && page > 0) {
        api__metric(t, "process_resident_memory_bytes", "gauge", "Resident memory size.",
                    (uint64_t)resident * (uint64_t)page);
    }
    if (f != NULL) fclose(f);
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        uint64_t n = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            n += e->d_name[0] != '.';
        }
        closedir(d);
        api__metric(t, "process_open_fds", "gauge", "Open file descriptors.", n - 1);
    }
}

/* The fan-out engine's figures and the WebSocket counters. */
static void api__delivery_metrics(struct api_server *s, struct api_text *t)
{
    struct fan_stats f = {0};
    if (s->hub != NULL) {
        fan_get_stats(api_hub_fan(s->hub), &f);
    }
    api__metric(t, "herald_deliveries_live_total", "counter",
                "Messages written to subscribers from the live group.", f.deliveries_live);
    api__metric(t, "herald_deliveries_catchup_total", "counter",
                "Messages written to subscribers catching up.", f.deliveries_catchup);
    api__metric(t, "herald_catchup_window_total", "counter",
                "Catch-up messages served from the recent-message window.", f.catchup_window);
    api__metric(t, "herald_catchup_state_total", "counter",
                "Catch-up messages read from state.", f.catchup_state);
    api__metric(t, "herald_messages_encoded_total", "counter",
                "Committed messages encoded once for their subscribers.", f.encoded);
    api__metric(t, "herald_delivery_writes_total", "counter",
                "Writes to delivery connections (one writev each, any number of messages).",
                f.writes);
    api__printf(t, "# HELP herald_delivery_linger_seconds Least time between two writes of a "
                   "delivery connection now (0: none).\n"
                   "# TYPE herald_delivery_linger_seconds gauge\n"
                   "herald_delivery_linger_seconds %.3f\n",
                (double)f.linger_ns / 1e9);
    api__metric(t, "herald_subscribers_fell_behind_total", "counter",
                "Live subscribers moved to catch-up (slow connection or a gap).", f.fell_behind);
    api__metric(t, "herald_slow_consumers_closed_total", "counter",
                "Delivery connections closed over their hard bound.", f.slow_closed);
    api__metric(t, "herald_subscriptions_gone_total", "counter",
                "Subscriptions ended by a trim past their position or a delete of their channel.",
                f.gone);
    api__metric(t, "herald_subscriptions_refused_total", "counter",
                "Subscriptions refused by a limit.", f.subs_refused);
    api__metric(t, "herald_subscriptions", "gauge", "Subscriptions (channel x connection).",
                f.subs);
    api__metric(t, "herald_delivery_sessions", "gauge",
                "Open SSE tails, multi-channel streams and WebSockets.", api_hub_sessions(s->hub));
    api__metric(t, "herald_fanout_channels", "gauge",
                "Channels with subscribers or a window.", f.channels);
    api__metric(t, "herald_fanout_window_bytes", "gauge",
                "Bytes of messages held in recent-message windows.", f.window_bytes);
    api__metric(t, "herald_ws_opened_total", "counter", "WebSockets accepted.",
                s->metrics.ws_opened);
    api__metric(t, "herald_ws_frames_in_total", "counter",
                "WebSocket operations received.", s->metrics.ws_frames_in);
    api__metric(t, "herald_ws_errors_total", "counter", "WebSocket error frames sent.",
                s->metrics.ws_errors);
}

static void api__limited_line(void *arg, const char *name, uint64_t value)
{
    api__printf(arg, "herald_token_limited_total{token=\"%s\"} %" PRIu64 "\n", name, value);
}

/* Per-shard gauges, one family after another (the text format groups a
 * family's samples under its HELP and TYPE). */
static void api__shard_metrics(struct api_server *s, struct api_text *t)
{
    static const struct {
        const char *name, *help;
    } families[] = {
        {"herald_shard_leader", "1 if this node is the shard's Raft leader."},
        {"herald_shard_term", "The shard's Raft term as this node knows it."},
        {"herald_shard_commit_index", "Last Raft index known committed, by shard."},
        {"herald_shard_applied_index", "Last Raft index applied, by shard."},
    };
    unsigned n = cons_node_n_shards(s->node);
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        api__printf(t, "# HELP %s %s\n# TYPE %s gauge\n", families[f].name, families[f].help,
                    families[f].name);
        for (unsigned i = 0; i < n; i++) {
            struct cons_shard_status ss;
            cons_node_shard_status(s->node, i, &ss);
            uint64_t v = f == 0   ? (uint64_t)(strcmp(ss.state, "leader") == 0)
                         : f == 1 ? ss.term
                         : f == 2 ? ss.commit_index
                                  : ss.applied_index;
            api__printf(t, "%s{shard=\"%u\"} %" PRIu64 "\n", families[f].name, i, v);
        }
    }
}

void api_metrics(struct api_server *s, struct api_http_conn *c)
{
    struct cons_node_stats st;
    cons_node_stats(s->node, &st);
    struct api_text t = {0};
    api__metric(&t, "herald_appends_committed_total", "counter",
                "Messages committed (not duplicates), on any node's proposal.",
                st.appends_committed);
    api__metric(&t, "herald_appends_duplicate_total", "counter",
                "Appends answered with an earlier result (same nonce).", st.appends_duplicate);
    api__metric(&t, "herald_appends_rejected_busy_total", "counter",
                "Appends refused because the shard queue was full.", st.appends_rejected_busy);
    api__metric(&t, "herald_entries_proposed_total", "counter",
                "Raft entries proposed by this node (each a batch of appends).",
                st.entries_proposed);
    api__metric(&t, "herald_appends_unknown_total", "counter",
                "Appends answered 503 outcome unknown.", s->metrics.appends_unknown);
    api__metric(&t, "herald_http_requests_total", "counter", "HTTP requests answered.",
                s->metrics.requests);
    api__printf(&t, "# HELP herald_http_responses_total HTTP responses by status class.\n"
                    "# TYPE herald_http_responses_total counter\n");
    for (int i = 1; i <= 5; i++) {
        api__printf(&t, "herald_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", i,
                    s->metrics.responses_by_class[i]);
    }
    struct st_space_status space;
    api_writes_metrics(s, &space);
    api__metric(&t, "herald_repairs_total", "counter",
                "Times this node found its data damaged and rejoined under a new id.",
                s->repairs_total);
    api__metric(&t, "herald_repairing", "gauge",
                "1 while the node waits for its peers to retire its damaged id.", 0);
    api__metric(&t, "herald_writes_refused", "gauge",
                "1 while appends are refused because free disk space is below the reserve.",
                space.low ? 1 : 0);
    api__metric(&t, "herald_disk_free_bytes", "gauge",
                "Free bytes on the data directory's file system (last reading).",
                space.free_bytes);
    api__metric(&t, "herald_disk_reserve_bytes", "gauge",
                "Free bytes kept in reserve (--disk-reserve).", space.reserve);
    api__metric(&t, "herald_appends_refused_disk_total", "counter",
                "Appends refused with 507 insufficient_storage.", space.refused);
    api__metric(&t, "herald_replication_refused_disk_total", "counter",
                "Replicated entries and snapshots not stored because free disk space is "
                "below half the reserve.", space.floor_refused);
    api__metric(&t, "herald_peer_tls_refused_total", "counter",
                "Peer links refused at the TLS handshake (a certificate refused, TLS on one "
                "side only).", st.peer_tls_refused);
    api__metric(&t, "herald_raft_log_memory_bytes", "gauge",
                "Raft log held in memory, all shards (estimate; bounded by "
                "--raft-log-memory).", st.raft_log_bytes);
    api__metric(&t, "herald_snapshots_total", "counter",
                "Shard snapshots taken (each lets Raft drop the log before it).", st.snapshots);
    api__metric(&t, "herald_snapshot_flushes_total", "counter",
                "State flushes the snapshots waited for; shards snapshotting together share "
                "one.", st.snapshot_flushes);
    api__metric(&t, "herald_raft_commit_notices_total", "counter",
                "Commits this node told its followers of at once, as a shard's leader, "
                "rather than with the next heartbeat.", st.commit_notices);
    api__delivery_metrics(s, &t);
    api__printf(&t, "# HELP herald_retention_trims_total Trims the retention sweep proposed as "
                    "a shard leader, by the limit that asked most.\n"
                    "# TYPE herald_retention_trims_total counter\n");
    for (int i = 1; i <= 3; i++) {
        static const char *const why[] = {"", "age", "messages", "bytes"};
        api__printf(&t, "herald_retention_trims_total{reason=\"%s\"} %" PRIu64 "\n", why[i],
                    st.retention_trims[i]);
    }
    if (s->auth != NULL) {
        api__printf(&t, "# HELP herald_auth_refused_total Requests and operations refused by "
                        "the auth file, by reason.\n# TYPE herald_auth_refused_total counter\n"
                        "herald_auth_refused_total{reason=\"unauthenticated\"} %" PRIu64 "\n"
                        "herald_auth_refused_total{reason=\"forbidden\"} %" PRIu64 "\n",
                    s->auth->refused_unauthenticated, s->auth->refused_forbidden);
        api__metric(&t, "herald_auth_reloads_refused_total", "counter",
                    "SIGHUP reloads of the auth file refused (the old tokens stayed).",
                    s->auth->reloads_failed);
        api__metric(&t, "herald_auth_tokens", "gauge", "Tokens in the auth file.",
                    s->auth->set->n);
        api__printf(&t, "# HELP herald_token_limited_total Requests and streams refused by a "
                        "token's limits, by token name.\n"
                        "# TYPE herald_token_limited_total counter\n");
        api_limit_metrics(s, api__limited_line, &t);
    }
    api_metrics_histograms(s, &st, &t);
    api__process_metrics(&t);
    api__metric(&t, "herald_http_connections", "gauge", "Open HTTP connections.",
                api_http_server_connections(s->http));
    api__shard_metrics(s, &t);
    s->metrics.requests++;
    s->metrics.responses_by_class[2]++;
    api_http_respond(c, 200, "text/plain; version=0.0.4", NULL, t.buf != NULL ? t.buf : "",
                     t.len);
    hd_free(t.buf);
}
