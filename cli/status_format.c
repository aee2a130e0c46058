/* SPDX-License-Identifier: Apache-2.0 */
/* `herald status` / `herald cluster status` tables (see status_format.h). */
#include "status_format.h"

#include <stdbool.h>
#include <string.h>

#include "table.h"

static long long cli__int(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static const char *cli__str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "?";
}

const char *cli_bytes(unsigned long long n, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0) {
        snprintf(buf, size, "%llu B", n);
    } else {
        snprintf(buf, size, "%.1f %s", v, units[u]);
    }
    return buf;
}

double cli_rate(const json_t *st, const json_t *prev, const char *obj, const char *field)
{
    if (st == NULL || prev == NULL) return -1;
    const json_t *a = obj != NULL ? json_object_get(st, obj) : st;
    const json_t *b = obj != NULL ? json_object_get(prev, obj) : prev;
    const json_t *va = json_object_get(a, field), *vb = json_object_get(b, field);
    long long dt = cli__int(st, "now_ms") - cli__int(prev, "now_ms");
    if (!json_is_integer(va) || !json_is_integer(vb) || dt <= 0) return -1;
    long long d = json_integer_value(va) - json_integer_value(vb);
    if (d < 0) return -1;
    return (double)d * 1000.0 / (double)dt;
}

static void cli__rates(FILE *out, const json_t *st, const json_t *prev)
{
    double appends = cli_rate(st, prev, "appends", "committed");
    double live = cli_rate(st, prev, "deliveries", "live");
    double catchup = cli_rate(st, prev, "deliveries", "catchup");
    double requests = cli_rate(st, prev, NULL, "http_requests");
    if (appends < 0 || live < 0 || catchup < 0 || requests < 0) {
        fputs("rates: not available (the node restarted, or answers without counters)\n", out);
        return;
    }
    fprintf(out, "rates: %.1f appends/s, %.1f deliveries/s, %.1f HTTP requests/s (over %.1f s)\n",
            appends, live + catchup, requests,
            (double)(cli__int(st, "now_ms") - cli__int(prev, "now_ms")) / 1000.0);
}

static void cli__members(const json_t *shard, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(shard, "members"), i, m) {
        int n = snprintf(buf + len, size - len, "%s%lld%s", i ? "," : "", cli__int(m, "id"),
                         strcmp(cli__str(m, "role"), "voter") == 0 ? "" : "*");
        if (n < 0 || (size_t)n >= size - len) break;
        len += (size_t)n;
    }
}

static int cli__shards(FILE *out, const json_t *st)
{
    static const char *const head[] = {"SHARD", "STATE",  "LEADER", "TERM",   "COMMIT",
                                       "APPLIED", "LAG", "LAST", "QUEUED", "MEMBERS"};
    struct cli_table t;
    cli_table_init(&t, 10, head);
    size_t i;
    const json_t *sh;
    bool non_voters = false;
    json_array_foreach(json_object_get(st, "shards"), i, sh) {
        char members[256];
        cli__members(sh, members, sizeof members);
        non_voters |= strchr(members, '*') != NULL;
        long long leader = cli__int(sh, "leader");
        char leader_s[24];
        snprintf(leader_s, sizeof leader_s, leader ? "%lld" : "-", leader);
        cli_table_row(&t, "%lld\t%s\t%s\t%lld\t%lld\t%lld\t%lld\t%lld\t%lld\t%s",
                      cli__int(sh, "shard"), cli__str(sh, "state"), leader_s,
                      cli__int(sh, "term"), cli__int(sh, "commit_index"),
                      cli__int(sh, "applied_index"),
                      cli__int(sh, "commit_index") - cli__int(sh, "applied_index"),
                      cli__int(sh, "last_index"), cli__int(sh, "queued"), members);
    }
    int rv = cli_table_print(&t, out);
    cli_table_free(&t);
    if (non_voters) fputs("(* a member that is not a voter)\n", out);
    return rv;
}

static int cli__peers(FILE *out, const json_t *st)
{
    const json_t *peers = json_object_get(st, "peers");
    if (json_array_size(peers) == 0) {
        fputs("peers: none\n", out);
        return 0;
    }
    static const char *const head[] = {"PEER", "ADDRESS", "CONNECTED", "LAG", "SENT",
                                       "RECEIVED", "DROPPED"};
    struct cli_table t;
    cli_table_init(&t, 7, head);
    size_t i;
    const json_t *p;
    json_array_foreach(peers, i, p) {
        cli_table_row(&t, "%lld\t%s\t%s\t%lld\t%lld\t%lld\t%lld", cli__int(p, "id"),
                      cli__str(p, "address"),
                      json_is_true(json_object_get(p, "connected")) ? "yes" : "no",
                      cli__int(p, "lag_entries"), cli__int(p, "frames_sent"),
                      cli__int(p, "frames_received"), cli__int(p, "frames_dropped"));
    }
    int rv = cli_table_print(&t, out);
    cli_table_free(&t);
    return rv;
}

static void cli__disk(FILE *out, const json_t *st)
{
    const json_t *d = json_object_get(st, "disk");
    if (!json_is_object(d)) return;
    char wal[32], snap[32], state[32], free_s[32], total[32];
    fprintf(out, "disk: %s: WAL %s, snapshots %s, state %s", cli__str(d, "data_dir"),
            cli_bytes((unsigned long long)cli__int(d, "wal_bytes"), wal, sizeof wal),
            cli_bytes((unsigned long long)cli__int(d, "snapshot_bytes"), snap, sizeof snap),
            cli_bytes((unsigned long long)cli__int(d, "state_bytes"), state, sizeof state));
    if (json_object_get(d, "fs_free_bytes") != NULL) {
        fprintf(out, "; %s free of %s",
                cli_bytes((unsigned long long)cli__int(d, "fs_free_bytes"), free_s,
                          sizeof free_s),
                cli_bytes((unsigned long long)cli__int(d, "fs_total_bytes"), total,
                          sizeof total));
    }
    fputc('\n', out);
}

int cli_retention_print(FILE *out, const json_t *r)
{
    const json_t *rules = json_object_get(r, "rules");
    if (!json_is_array(rules)) {
        return -1;
    }
    /* Nodes older than cluster policies have no source: their own config. */
    const char *source = json_string_value(json_object_get(r, "source"));
    bool cluster = source != NULL && strcmp(source, "cluster") == 0;
    if (json_array_size(rules) == 0) {
        fputs(cluster ? "the cluster's retention policy is empty: every channel keeps all its"
                        " messages\n"
                      : "no retention policy: every channel keeps all its messages\n",
              out);
        return 0;
    }
    static const char *const head[] = {"PATTERN", "MAX AGE", "MAX MESSAGES", "MAX BYTES"};
    struct cli_table t;
    cli_table_init(&t, 4, head);
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule) {
        char age[32] = "-", msgs[32] = "-", bytes[16] = "-";
        const json_t *a = json_object_get(rule, "max_age_s");
        const json_t *m = json_object_get(rule, "max_messages");
        const json_t *b = json_object_get(rule, "max_bytes");
        if (json_is_integer(a)) snprintf(age, sizeof age, "%llds", (long long)json_integer_value(a));
        if (json_is_integer(m)) snprintf(msgs, sizeof msgs, "%lld", (long long)json_integer_value(m));
        if (json_is_integer(b)) cli_bytes((unsigned long long)json_integer_value(b), bytes, sizeof bytes);
        cli_table_row(&t, "%s\t%s\t%s\t%s", cli__str(rule, "pattern"), age, msgs, bytes);
    }
    int rv = cli_table_print(&t, out);
    cli_table_free(&t);
    fprintf(out, "first matching pattern wins; policy hash %s, %s; each shard's leader sweeps"
                 " every %lld ms\n",
            cli__str(r, "hash"),
            cluster ? "the cluster's (herald retention set)" : "this node's --retention",
            cli__int(r, "interval_ms"));
    return rv;
}

int cli_status_print(FILE *out, const json_t *st, const json_t *prev)
{
    if (!json_is_object(st) || !json_is_integer(json_object_get(st, "node_id")) ||
        !json_is_array(json_object_get(st, "shards"))) {
        return -1;
    }
    long long up = cli__int(st, "uptime_s");
    fprintf(out, "node %lld  cluster %s  version %s  up %lldd %02lld:%02lld:%02lld\n",
            cli__int(st, "node_id"), cli__str(st, "cluster_id"), cli__str(st, "version"),
            up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
    const json_t *a = json_object_get(st, "appends");
    fprintf(out, "appends: %lld committed, %lld duplicate, %lld forwarded; delivery sessions: %lld\n",
            cli__int(a, "committed"), cli__int(a, "duplicate"), cli__int(a, "forwarded"),
            cli__int(a, "tails"));
    if (prev != NULL) cli__rates(out, st, prev);
    cli__disk(out, st);
    fputc('\n', out);
    int rv = cli__shards(out, st);
    fputc('\n', out);
    if (cli__peers(out, st) != 0) rv = -1;
    return ferror(out) ? -1 : rv;
}

/* "0:1 1:2 2:-": the leader this node sees for each shard. */
static void cli__leaders(const json_t *st, char *buf, size_t size)
{
    size_t len = 0, i;
    const json_t *sh;
    buf[0] = '\0';
    json_array_foreach(json_object_get(st, "shards"), i, sh) {
        long long leader = cli__int(sh, "leader");
        char who[24];
        snprintf(who, sizeof who, leader ? "%lld" : "-", leader);
        int n = snprintf(buf + len, size - len, "%s%lld:%s", i ? " " : "",
                         cli__int(sh, "shard"), who);
        if (n < 0 || (size_t)n >= size - len) break;
        len += (size_t)n;
    }
}

static unsigned cli__led(const json_t *st)
{
    unsigned n = 0;
    size_t i;
    const json_t *sh;
    long long self = cli__int(st, "node_id");
    json_array_foreach(json_object_get(st, "shards"), i, sh) {
        n += cli__int(sh, "leader") == self;
    }
    return n;
}

/* Says which shards the answering nodes disagree on (leader or term):
 * normal for a moment during an election, a problem if it stays. */
static void cli__disagreements(FILE *out, const struct cli_node_view *nodes, size_t n)
{
    const json_t *first = NULL;
    for (size_t k = 0; k < n && first == NULL; k++) first = nodes[k].st;
    if (first == NULL) return;
    size_t i;
    const json_t *sh;
    json_array_foreach(json_object_get(first, "shards"), i, sh) {
        long long leader = cli__int(sh, "leader"), term = cli__int(sh, "term");
        bool differ = false;
        for (size_t k = 0; k < n; k++) {
            if (nodes[k].st == NULL) continue;
            const json_t *o = json_array_get(json_object_get(nodes[k].st, "shards"), i);
            differ |= cli__int(o, "leader") != leader || cli__int(o, "term") != term;
        }
        if (differ) {
            fprintf(out, "shard %zu: nodes see different leaders or terms (an election in "
                         "progress, or a node cut off)\n", i);
        }
    }
}

/* Warns when the answering nodes have different retention policies: a
 * shard's leader trims by its own node's policy, so the history kept
 * would change with the leader. */
static void cli__retention_differs(FILE *out, const struct cli_node_view *nodes, size_t n)
{
    const char *first = NULL;
    bool differ = false;
    for (size_t k = 0; k < n; k++) {
        const json_t *r = nodes[k].st != NULL ? json_object_get(nodes[k].st, "retention") : NULL;
        const char *hash = json_string_value(json_object_get(r, "hash"));
        if (hash == NULL) continue; /* a node older than retention policies */
        differ |= first != NULL && strcmp(first, hash) != 0;
        first = first != NULL ? first : hash;
    }
    if (!differ) return;
    fprintf(out, "WARNING: retention policies differ between nodes (each shard's leader trims "
                 "by its own; set one for the cluster with herald retention set, or give every"
                 " node the same --retention):\n");
    for (size_t k = 0; k < n; k++) {
        const json_t *r = nodes[k].st != NULL ? json_object_get(nodes[k].st, "retention") : NULL;
        const char *hash = json_string_value(json_object_get(r, "hash"));
        const char *policy = json_string_value(json_object_get(r, "policy"));
        if (hash == NULL) continue;
        fprintf(out, "  node %lld: %s %s\n", cli__int(nodes[k].st, "node_id"), hash,
                policy != NULL && policy[0] != '\0' ? policy : "(none)");
    }
}

int cli_cluster_print(FILE *out, const struct cli_node_view *nodes, size_t n)
{
    static const char *const head[] = {"NODE", "URL", "ANSWER", "LEADS", "LEADER PER SHARD",
                                       "PEERS UP", "UP"};
    struct cli_table t;
    cli_table_init(&t, 7, head);
    int missing = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *st = nodes[k].st;
        if (st == NULL) {
            /* The reason is long: the caller prints it below the table. */
            cli_table_row(&t, "%s\t%s\t%s\t%s\t%s\t%s\t%s", "?", nodes[k].url, "no", "", "", "",
                          "");
            missing++;
            continue;
        }
        char leaders[512];
        cli__leaders(st, leaders, sizeof leaders);
        size_t i, up = 0;
        const json_t *p;
        json_array_foreach(json_object_get(st, "peers"), i, p) {
            up += json_is_true(json_object_get(p, "connected"));
        }
        cli_table_row(&t, "%lld\t%s\tok\t%u/%zu\t%s\t%zu/%zu\t%llds", cli__int(st, "node_id"),
                      nodes[k].url, cli__led(st), json_array_size(json_object_get(st, "shards")),
                      leaders, up, json_array_size(json_object_get(st, "peers")),
                      cli__int(st, "uptime_s"));
    }
    cli_table_print(&t, out);
    cli_table_free(&t);
    cli__disagreements(out, nodes, n);
    cli__retention_differs(out, nodes, n);
    return missing;
}
