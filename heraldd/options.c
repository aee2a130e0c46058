/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd's option table, its value parsers, the command line and --help.
 * A flag added to the table gets its config-file key and its --help lines
 * with it. */
#include "options.h"

#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"
#include "cors.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_ts.h"
#include "hd_util.h"
#include "options_table.h"

#define API_FIELD(o, opt, type) ((type *)(void *)((char *)(o) + (opt)->offset))

static int api__opt_string(struct api_options *o, const struct api_opt *opt, const char *arg,
                           char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    *API_FIELD(o, opt, const char *) = arg;
    return 0;
}

static int api__opt_number(struct api_options *o, const struct api_opt *opt, const char *arg,
                           char *err, size_t err_len)
{
    uint64_t v;
    if (hd_u64_parse(arg, strlen(arg), &v) != 0 || v < opt->min || v > opt->max) {
        snprintf(err, err_len, " must be a number from %llu to %llu, got '%s'",
                 (unsigned long long)opt->min, (unsigned long long)opt->max, arg);
        return -1;
    }
    *API_FIELD(o, opt, uint64_t) = v;
    return 0;
}

static int api__opt_id(struct api_options *o, const struct api_opt *opt, const char *arg,
                       char *err, size_t err_len)
{
    if (api__opt_number(o, opt, arg, err, err_len) != 0) {
        return -1;
    }
    o->id_given = true;
    return 0;
}

/* A switch: the command line passes "true"; a file says true or false. */
static int api__opt_switch(struct api_options *o, const struct api_opt *opt, const char *arg,
                           char *err, size_t err_len)
{
    if (strcmp(arg, "true") != 0 && strcmp(arg, "false") != 0) {
        snprintf(err, err_len, " must be true or false, got '%s'", arg);
        return -1;
    }
    *API_FIELD(o, opt, bool) = arg[0] == 't';
    return 0;
}

static int api__opt_log_level(struct api_options *o, const struct api_opt *opt, const char *arg,
                              char *err, size_t err_len)
{
    (void)opt;
    for (int i = 0; i < 4; i++) {
        if (strcmp(arg, hd_log_level_name(i)) == 0) {
            o->log_level = i;
            return 0;
        }
    }
    snprintf(err, err_len, " must be error, warn, info or debug");
    return -1;
}

static int api__opt_log_format(struct api_options *o, const struct api_opt *opt, const char *arg,
                               char *err, size_t err_len)
{
    (void)opt;
    if (strcmp(arg, "text") == 0 || strcmp(arg, "json") == 0) {
        o->log_format = arg[0] == 't' ? API_LOG_TEXT : API_LOG_JSON;
        return 0;
    }
    snprintf(err, err_len, " must be text or json, got '%s'", arg);
    return -1;
}

static int api__opt_cors(struct api_options *o, const struct api_opt *opt, const char *arg,
                         char *err, size_t err_len)
{
    (void)opt;
    char msg[480] = "";
    api_cors_free(o->cors); /* the last --cors-origins counts */
    o->cors = NULL;
    if (api_cors_parse(arg, &o->cors, msg, sizeof msg) != 0) {
        snprintf(err, err_len, ": %s", msg);
        return -1;
    }
    return 0;
}

/* Rules append: --retention may be repeated (or hold ';'-separated rules). */
static int api__opt_retention(struct api_options *o, const struct api_opt *opt, const char *arg,
                              char *err, size_t err_len)
{
    (void)opt;
    if (o->retention == NULL && (o->retention = hd_calloc(1, sizeof *o->retention)) == NULL) {
        snprintf(err, err_len, ": out of memory");
        return -1;
    }
    char msg[480] = "";
    if (hd_retention_parse(o->retention, arg, strlen(arg), msg, sizeof msg) != 0) {
        snprintf(err, err_len, ": %s", msg);
        return -1;
    }
    return 0;
}

static int api__opt_repair(struct api_options *o, const struct api_opt *opt, const char *arg,
                           char *err, size_t err_len)
{
    (void)opt;
    if (strcmp(arg, "auto") == 0 || strcmp(arg, "off") == 0) {
        o->repair = arg[0] == 'a';
        return 0;
    }
    snprintf(err, err_len, " must be auto or off, got '%s'", arg);
    return -1;
}

#define OFF(field) offsetof(struct api_options, field)

/* Every option, in the order of --help. */
static const struct api_opt api__opts[] = {
    {"config", API_OPT_CLI, "FILE", NULL, OFF(config_path), 0, 0,
     "read options from FILE: `key = value` lines, each\n"
     "key a flag without --; flags given here override it"},
    {"check-config", API_OPT_CLI, "FILE", NULL, OFF(config_path), 0, 0,
     "check FILE (and the other flags) and exit: 0 valid, 2 not"},
    {"data", API_OPT_VALUE, "DIR", api__opt_string, OFF(data_dir), 0, 0,
     "data directory (default ./herald-data)"},
    {"listen", API_OPT_VALUE, "ADDR", api__opt_string, OFF(listen), 0, 0,
     "HTTP address, host:port (default 127.0.0.1:7400)"},
    {"peer-listen", API_OPT_VALUE, "ADDR", api__opt_string, OFF(peer_listen), 0, 0,
     "address for other nodes (default: --listen port + 1)"},
    {"id", API_OPT_VALUE, "N", api__opt_id, OFF(node_id), 1, UINT32_MAX,
     "this node's id in its cluster (default 1); fixed\n"
     "once the data directory exists"},
    {"bootstrap", API_OPT_VALUE, "LIST", api__opt_string, OFF(bootstrap), 0, 0,
     "create a new cluster of these voters, given alike to\n"
     "every member: 1=HOST:PORT,2=HOST:PORT,... (peer\n"
     "addresses). On later starts it may stay on the\n"
     "command line: DIR's data of this node of this\n"
     "cluster starts as it is; other data is refused."},
    {"join", API_OPT_VALUE, "CLUSTER_ID", api__opt_string, OFF(join), 0, 0,
     "start a new, empty node of an existing cluster; it\n"
     "serves once a member runs `herald cluster add-node`\n"
     "for it (its --id must exceed every member's id)"},
    {"restore", API_OPT_VALUE, "BACKUP_DIR", api__opt_string, OFF(restore), 0, 0,
     "start a new cluster from a backup (`herald backup`):\n"
     "into an empty --data, with --bootstrap's members or\n"
     "alone; other members start empty with --join. On\n"
     "later starts it may stay on the command line."},
    {"shards", API_OPT_VALUE, "N", api__opt_number, OFF(shards), 1, 4096,
     "shards of a new cluster, 1-4096 (default 16);\n"
     "fixed once the data directory exists"},
    {"max-payload", API_OPT_VALUE, "BYTES", api__opt_number, OFF(payload_max), 1, 64u << 20,
     "largest message payload (default 1048576)"},
    {"max-body", API_OPT_VALUE, "BYTES", api__opt_number, OFF(body_max), 1024, 1u << 30,
     "largest request body (default 8388608)"},
    {"max-connections", API_OPT_VALUE, "N", api__opt_number, OFF(connections_max), 1, 1000000,
     "open HTTP connections (default 4096)"},
    {"dedup-window", API_OPT_VALUE, "SECONDS", api__opt_number, OFF(dedup_window_s), 1,
     365u * 86400,
     "retries with the same nonce within this answer the\n"
     "original result (default 86400)"},
    {"disk-reserve", API_OPT_VALUE, "BYTES", api__opt_number, OFF(disk_reserve), 0, 1ull << 50,
     "free space to keep on DIR's file system; below it\n"
     "appends are refused (507 insufficient_storage)\n"
     "until space returns (default 268435456, 0: none)"},
    {"repair", API_OPT_VALUE, "auto|off", api__opt_repair, OFF(repair), 0, 0,
     "auto (default): a node that finds its own data damaged\n"
     "(WAL, state, herald.id) asks a member (--bootstrap's,\n"
     "then those DIR/herald.members kept) to retire its\n"
     "id, moves the data to DIR/damaged-TIME/\n"
     "and rejoins under a new id; never a one-node cluster.\n"
     "off: it refuses to start, or stops, with exit 3"},
    {"no-uring", API_OPT_SWITCH, NULL, api__opt_switch, OFF(no_uring), 0, 0,
     "write the WAL with pwrite+fdatasync instead of io_uring"},
    {"delivery-thread", API_OPT_SWITCH, NULL, api__opt_switch, OFF(delivery_thread), 0, 0,
     "write to subscribers (WebSocket, SSE tails) from a\n"
     "thread of their own: half the loop thread's CPU per\n"
     "delivery, but a third more CPU in all (README:\n"
     "Delivery); for nodes with cores to spare"},
    {"snapshot-every", API_OPT_VALUE, "N", api__opt_number, OFF(snapshot_every), 2, 1u << 20,
     "Raft entries per shard between snapshots (default\n"
     "4096); fewer keeps less log, more snapshots more often"},
    {"raft-log-memory", API_OPT_VALUE, "BYTES", api__opt_number, OFF(raft_log_memory), 1u << 20,
     1ull << 40,
     "bytes of Raft log kept in memory, all shards (default\n"
     "67108864, at least 1 MiB per shard): a shard past\n"
     "half its share snapshots early (README: what it\n"
     "bounds and what it does not)"},
    {"cors-origins", API_OPT_VALUE, "LIST", api__opt_cors, OFF(cors), 0, 0,
     "let web pages of these origins use the v1 API from\n"
     "a browser: scheme://host[:port],... or '*' for any\n"
     "(default: none, no CORS headers). Also refuses\n"
     "WebSocket handshakes from other origins; without\n"
     "the flag every origin's handshake is accepted"},
    {"auth-file", API_OPT_VALUE, "FILE", api__opt_string, OFF(auth_file), 0, 0,
     "tokens (hashed) and their scopes; every request then\n"
     "needs Authorization: Bearer TOKEN (SSE and\n"
     "WebSocket may use ?access_token=). SIGHUP re-reads\n"
     "it; see `herald token create`"},
    {"insecure", API_OPT_SWITCH, NULL, api__opt_switch, OFF(insecure), 0, 0,
     "run without --auth-file on a --listen address that is\n"
     "not loopback (refused otherwise); with --auth-file,\n"
     "run a --peer-listen off loopback without --peer-tls-*"},
    {"retention", API_OPT_VALUE, "RULES", api__opt_retention, OFF(retention), 0, 0,
     "retention policy: PATTERN=LIMIT[,LIMIT...][;...]\n"
     "with limits age:N{s|m|h|d|w}, messages:N and\n"
     "bytes:N[KiB|MiB|GiB|...], or none; the first rule\n"
     "whose channel pattern matches wins; repeatable.\n"
     "A shard's leader trims by it: give every node the\n"
     "same policy (see /v1/status retention.hash). A\n"
     "cluster policy (herald retention set) replaces it"},
    {"retention-interval", API_OPT_VALUE, "N", api__opt_number, OFF(retention_interval_s),
     1, 86400, "seconds between a shard leader's --retention sweeps\n"
     "(default 60; the first up to 10% early or late)"},
    {"tls-cert", API_OPT_VALUE, "FILE", api__opt_string, OFF(tls_cert), 0, 0,
     "serve the client port (--listen) over TLS with this\n"
     "PEM certificate (then any intermediates); needs\n"
     "--tls-key. SIGHUP re-reads both"},
    {"tls-key", API_OPT_VALUE, "FILE", api__opt_string, OFF(tls_key), 0, 0,
     "the PEM private key of --tls-cert"},
    {"peer-tls-cert", API_OPT_VALUE, "FILE", api__opt_string, OFF(peer_tls_cert), 0, 0,
     "mutual TLS 1.3 on the peer port, both ways: this\n"
     "node's PEM certificate, from the cluster CA; needs\n"
     "--peer-tls-key and --peer-tls-ca. SIGHUP re-reads.\n"
     "Needed off loopback with --auth-file (or --insecure)"},
    {"peer-tls-key", API_OPT_VALUE, "FILE", api__opt_string, OFF(peer_tls_key), 0, 0,
     "the PEM private key of --peer-tls-cert"},
    {"peer-tls-ca", API_OPT_VALUE, "FILE", api__opt_string, OFF(peer_tls_ca), 0, 0,
     "the cluster CA (PEM): a peer whose certificate it\n"
     "did not sign (or none, or expired) is refused"},
    {"log-level", API_OPT_VALUE, "LEVEL", api__opt_log_level, OFF(log_level), 0, 0,
     "error, warn, info (default) or debug"},
    {"log-format", API_OPT_VALUE, "FORMAT", api__opt_log_format, OFF(log_format), 0, 0,
     "text (default: time, level, message) or json (one\n"
     "object per line: time, level, message)"},
    {"version", API_OPT_CLI, NULL, NULL, 0, 0, 0, "print the version and exit"},
    {"help", API_OPT_CLI, NULL, NULL, 0, 0, 0, "print this help and exit"},
};

#define API_N_OPTS (sizeof api__opts / sizeof api__opts[0])
#define API_OPT_VAL0 256 /* getopt_long's value of api__opts[0] */
_Static_assert(API_N_OPTS <= API_OPTS_MAX, "raise API_OPTS_MAX");

size_t api_opt_index(const struct api_opt *opt)
{
    return (size_t)(opt - api__opts);
}

const struct api_opt *api_opt_find(const char *name)
{
    for (size_t i = 0; i < API_N_OPTS; i++) {
        if (strcmp(api__opts[i].name, name) == 0) {
            return &api__opts[i];
        }
    }
    return NULL;
}

void api_options_defaults(struct api_options *o)
{
    *o = (struct api_options){.data_dir = "herald-data", .listen = "127.0.0.1:7400",
                              .node_id = 1, .payload_max = 1u << 20,
                              .body_max = 8u << 20, .connections_max = 4096,
                              .dedup_window_s = 86400, .log_level = 2,
                              .retention_interval_s = 60, .repair = true,
                              .log_format = API_LOG_TEXT};
}

void api_options_free(struct api_options *o)
{
    api_cors_free(o->cors);
    o->cors = NULL;
    hd_free(o->retention);
    o->retention = NULL;
    for (size_t i = 0; i < o->n_owned; i++) {
        hd_free(o->owned[i]);
    }
    hd_free(o->owned);
    o->owned = NULL;
    o->n_owned = 0;
}

void api_options_usage(FILE *f)
{
    fprintf(f,
            "Usage: heraldd [OPTIONS]\n"
            "Runs one herald node: a durable, replicated log of channels over HTTP.\n"
            "With no options it serves a one-node cluster from ./herald-data on\n"
            "127.0.0.1:7400, creating (bootstrapping) it on first start.\n\n");
    for (size_t i = 0; i < API_N_OPTS; i++) {
        const struct api_opt *opt = &api__opts[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", opt->name, opt->arg ? " " : "",
                 opt->arg ? opt->arg : "");
        fprintf(f, "  %-22s ", flag);
        for (const char *line = opt->help;;) {
            const char *nl = strchr(line, '\n');
            fprintf(f, "%.*s\n", (int)(nl ? nl - line : (ptrdiff_t)strlen(line)), line);
            if (nl == NULL) {
                break;
            }
            line = nl + 1;
            fprintf(f, "%25s", "");
        }
    }
    fprintf(f,
            "\nEvery option but --config, --check-config, --version and --help is also a\n"
            "config-file key of the same name; a switch takes true or false there.\n"
            "Signals: SIGTERM or SIGINT stop the node gracefully; a second SIGINT exits at\n"
            "once (acknowledged appends are in the WAL either way). SIGHUP re-reads\n"
            "--auth-file (a bad file is refused and the old tokens stay) and\n"
            "--tls-cert/--tls-key and --peer-tls-* (new connections get the new files;\n"
            "a bad set is refused and the old one stays).\n"
            "Exit status: 0 stopped by a signal, 1 could not start, 2 bad usage, 3 data\n"
            "found damaged and not to be repaired (replace the disk), 4 a WAL write\n"
            "failed, 5 a state write failed (4 and 5: restart once the disk answers;\n"
            "nothing unwritten was acknowledged), 6 state found damaged while running\n"
            "and marked for repair (DIR/REPAIR_NEEDED: restart, and the start repairs).\n");
}

struct api__flag {
    const struct api_opt *opt;
    const char *arg;
};

/* Parses one flag's value into o; reports a bad one on stderr. */
static int api__apply_flag(struct api_options *o, const struct api__flag *f)
{
    char err[512] = "";
    if (f->opt->parse(o, f->opt, f->arg, err, sizeof err) != 0) {
        fprintf(stderr, "heraldd: --%s%s\n", f->opt->name, err);
        return -1;
    }
    return 0;
}

enum api_options_verdict api_options_read(int argc, char **argv, struct api_options *o)
{
    struct option longopts[API_N_OPTS + 1];
    for (size_t i = 0; i < API_N_OPTS; i++) {
        const struct api_opt *opt = &api__opts[i];
        longopts[i] = (struct option){opt->name, opt->arg ? required_argument : no_argument,
                                      NULL, API_OPT_VAL0 + (int)i};
    }
    longopts[API_N_OPTS] = (struct option){NULL, 0, NULL, 0};
    /* Flags are checked in order (on a scratch copy, so a bad one is
     * reported before --help) and applied after the file. */
    struct api__flag *flags = hd_calloc((size_t)argc + 1, sizeof *flags);
    struct api_options scratch;
    api_options_defaults(&scratch);
    enum api_options_verdict verdict = API_OPTIONS_RUN;
    size_t n_flags = 0;
    int ch;
    if (flags == NULL) {
        fprintf(stderr, "heraldd: out of memory\n");
        return API_OPTIONS_EXIT_USAGE;
    }
    while (verdict == API_OPTIONS_RUN &&
           (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch < API_OPT_VAL0 || ch >= API_OPT_VAL0 + (int)API_N_OPTS) {
            api_options_usage(stderr);
            verdict = API_OPTIONS_EXIT_USAGE;
            break;
        }
        const struct api_opt *opt = &api__opts[ch - API_OPT_VAL0];
        const char *name = opt->name;
        if (opt->kind != API_OPT_CLI) {
            flags[n_flags] = (struct api__flag){opt, opt->arg ? optarg : "true"};
            if (api__apply_flag(&scratch, &flags[n_flags]) != 0) {
                verdict = API_OPTIONS_EXIT_USAGE;
            }
            n_flags++;
        } else if (strcmp(name, "help") == 0) {
            api_options_usage(stdout);
            verdict = API_OPTIONS_EXIT_OK;
        } else if (strcmp(name, "version") == 0) {
            printf("heraldd %s\n", HERALD_VERSION);
            verdict = API_OPTIONS_EXIT_OK;
        } else {
            o->config_path = optarg; /* --config or --check-config: the last counts */
            o->check_config |= strcmp(name, "check-config") == 0;
        }
    }
    if (verdict == API_OPTIONS_RUN && optind < argc) {
        fprintf(stderr, "heraldd: unexpected argument '%s'\n", argv[optind]);
        verdict = API_OPTIONS_EXIT_USAGE;
    }
    if (verdict == API_OPTIONS_RUN && o->config_path != NULL) {
        char errmsg[1024] = "";
        if (api_options_load_file(o, o->config_path, errmsg, sizeof errmsg) != 0) {
            fprintf(stderr, "heraldd: %s\n", errmsg);
            verdict = API_OPTIONS_EXIT_USAGE;
        }
    }
    for (size_t i = 0; verdict == API_OPTIONS_RUN && i < n_flags; i++) {
        if (strcmp(flags[i].opt->name, "retention") == 0 && !o->retention_from_flags) {
            /* --retention flags replace the file's rules (they append to
             * each other only). */
            hd_free(o->retention);
            o->retention = NULL;
            o->retention_from_flags = true;
        }
        if (api__apply_flag(o, &flags[i]) != 0) {
            verdict = API_OPTIONS_EXIT_USAGE;
        }
    }
    api_options_free(&scratch);
    hd_free(flags);
    return verdict;
}
