/* SPDX-License-Identifier: Apache-2.0 */
/* `herald bench`: options, the settings it runs, and the report. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_internal.h"
#include "herald/herald.h"

#define SETTINGS_MAX 16

static const char bench_help[] =
    "usage: herald bench [--in-flight N[,N...]] [--duration S] [--payload-bytes B]\n"
    "                    [--channels C] [--connections K] [--seed X] [--json]\n"
    "                    [--servers URL,URL...] [--leader-aware] [--random-nonces]\n"
    "\n"
    "Closed-loop append benchmark on one libuv loop: keeps N appends outstanding\n"
    "(each answered one starts the next) for S seconds, over K keep-alive\n"
    "connections, each append a JSON body with a unique nonce and a B-byte text\n"
    "payload, to channels bench-0 .. bench-(C-1). Only answers with status 201, a\n"
    "positive seq, a ts and duplicate=false count as acknowledged; everything else\n"
    "is counted as an error by status or kind (io, connect, bad_http, bad_answer,\n"
    "duplicate, timeout). Reports per setting: appends_per_s (acknowledged inside\n"
    "the window / window length) and p50/p90/p99/p99.9/max latency in\n"
    "microseconds over every acknowledged append (exact: all are kept and sorted).\n"
    "Beside them: server_cpu_us_per_ack, the CPU time the servers spent (the rise\n"
    "of process_cpu_seconds_total in each server's /metrics, from the window's\n"
    "start to the last answer, summed over the servers) per acknowledged append,\n"
    "and server_rss_mib, their resident memory at the end, summed.\n"
    "\n"
    "  --in-flight N[,N...]  outstanding appends; default 1,16,256 in turn\n"
    "  --duration S          seconds per setting, default 10\n"
    "  --payload-bytes B     payload size, default 200\n"
    "  --channels C          channels to spread over, default 16\n"
    "  --connections K       connections, default = in-flight (one outstanding\n"
    "                        request each); fewer means HTTP/1.1 pipelining,\n"
    "                        more is capped at in-flight\n"
    "  --seed X              seed for payload bytes and channel choice, default 1\n"
    "                        (nonces hold a random run id, so reruns never collide)\n"
    "  --random-nonces       nonces of 128 random-looking bits, as from UUIDv4,\n"
    "                        instead of time-ordered ones (the milliseconds first,\n"
    "                        as libherald makes them), which the node stores\n"
    "                        more cheaply\n"
    "  --json                print one JSON object instead of the table\n"
    "  --server URL          server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n"
    "  --servers URL,URL...  spread the connections over these servers (connection\n"
    "                        i to server i mod count) instead, and sum their CPU\n"
    "  --leader-aware        send each append to the server leading its channel's\n"
    "                        shard (GET /v1/shards at the start, servers matched\n"
    "                        by node id), so no follower forwards it; connection\n"
    "                        i takes the server of channel i mod C (not with\n"
    "                        --fanout)\n"
    "  --ca-file FILE        https:// servers: trust this CA (PEM; default\n"
    "                        $HERALD_CA_FILE, else the system's store)\n"
    "\n"
    "exit status: 0 if every setting acknowledged appends, 1 otherwise, 2 usage.\n"
    "\n"
    "usage: herald bench --rate R[,R...] [--connections K] [--duration S]\n"
    "                    [--payload-bytes B] [--channels C] [--servers URL,...]\n"
    "                    [--leader-aware] [--random-nonces] [--json]\n"
    "\n"
    "Open-loop benchmark, the way web workers load a server: R appends/s offered\n"
    "at fixed intervals for S seconds, whatever the answers do, over K keep-alive\n"
    "connections (default 256) with at most one request each. A send due while no\n"
    "connection is free waits for one, and latency runs from the time the send\n"
    "was due, so the wait counts (no coordinated omission). Reports per rate:\n"
    "offered_per_s, achieved_per_s (sends made / S), acked_per_s, latency\n"
    "p50/p99/p99.9/max in microseconds, sent, acked (sent = acked + failed once\n"
    "every answer is in), failed, late (sent 1 ms or more after their time),\n"
    "unsent (due inside the window but never sent), server_cpu_us_per_ack and\n"
    "server_rss_mib as above. Example: --rate 1000,5000,10000,20000\n"
    "\n"
    "  --rate R[,R...]       offered appends per second, one setting each\n"
    "exit status: 0 if every setting acknowledged appends, 1 otherwise, 2 usage.\n"
    "\n"
    "usage: herald bench --fanout [--subscribers S] [--sub-channels K] [--channels C]\n"
    "                    [--in-flight N | --rate R] [--connections K] [--duration D]\n"
    "                    [--payload-bytes B] [--servers URL,...] [--sub-servers URL,...]\n"
    "                    [--json]\n"
    "\n"
    "Fan-out benchmark: S WebSocket connections (GET /v1/subscribe, driven by\n"
    "libherald's non-blocking subscriptions on one libuv loop) each subscribe K of\n"
    "the channels bench-0 .. bench-(C-1) from \"now\" (connection i takes channels\n"
    "i*K .. i*K+K-1, mod C); once all are subscribed, appends go to those channels\n"
    "over HTTP for D seconds: N in flight (default 64) as above, or with --rate\n"
    "R appends/s offered in the open loop as above (one R; --connections default\n"
    "256). Each payload starts with its send time, so every delivery is timed\n"
    "without a lookup. Reports appends_per_s, deliveries_per_s (messages received\n"
    "by all subscribers inside the window), append-to-delivery latency\n"
    "p50/p99/max (deliv_*) and commit-to-delivery latency (commit_*: the\n"
    "message's ts against this host's clock, so meaningful only on the servers'\n"
    "host), delivered and expected: the sum over channels of acknowledged appends\n"
    "x subscribers, counted per channel. Appends whose answer was lost may add\n"
    "deliveries beyond it. After the appends it waits until every subscriber has\n"
    "its channels' acknowledged appends, or none came for 20 s, or 60 s\n"
    "(drain_end: complete, quiet, limit); undelivered and subscribers_short count\n"
    "what is missing then. With --rate also offered_per_s, achieved_per_s,\n"
    "acked_per_s, sent, failed, late and unsent, as --rate reports them.\n"
    "Examples:\n"
    "  --subscribers 1000 --channels 16                1000 connections, 16 channels\n"
    "  --subscribers 1000 --channels 16 --rate 1000    the same at 1000 appends/s\n"
    "  --subscribers 10000 --channels 10000            one channel each\n"
    "  --subscribers 100 --sub-channels 10000 --channels 10000\n"
    "Thousands of connections need heraldd --max-connections above S (plus the\n"
    "append connections on a server that takes both).\n"
    "\n"
    "  --subscribers S   subscriber connections, default 1000\n"
    "  --sub-channels K  channels per connection, default 1\n"
    "  --sub-servers URL,URL...  subscriber connection i goes to server i mod count\n"
    "                    (a cluster's followers, say), appends still to --server\n"
    "                    or --servers; default: the (first) append server\n"
    "  --ready-wait W    seconds subscribing may take, default 120\n"
    "exit status: 0 if appends were acknowledged and every subscriber received\n"
    "every acknowledged append of its channels, 1 otherwise, 2 usage.\n";

struct bench_opts {
    int in_flight[SETTINGS_MAX]; /* settings to run */
    int settings;                /* entries in in_flight */
    int connections;             /* 0: same as in-flight */
    double duration_s;
    long payload_bytes;
    long channels;
    unsigned long long seed;
    bool json;
    bool fanout;                 /* --fanout */
    bool in_flight_set;          /* --in-flight was given */
    long subscribers, sub_channels;
    double ready_wait_s;
    struct bench_rate_opts rate;  /* --rate */
    char servers[2048];           /* --servers, split in place by resolve_all() */
    char sub_servers[2048];       /* --sub-servers, split in place by sub_servers() */
    bool leader_aware;            /* --leader-aware */
    bool random_nonces;           /* --random-nonces */
};

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "herald bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try `herald bench --help`)\n");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static int parse_in_flight(struct bench_opts *o, const char *arg)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", arg);
    o->settings = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (o->settings == SETTINGS_MAX || !parse_long(tok, 1, 100000, &v)) return -1;
        o->in_flight[o->settings++] = (int)v;
    }
    return o->settings > 0 ? 0 : -1;
}

static int parse_rates(struct bench_opts *o, const char *arg)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", arg);
    o->rate.settings = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (*end || !(v >= 1 && v <= 10000000) || o->rate.settings == 16) return -1;
        o->rate.rates[o->rate.settings++] = v;
    }
    return o->rate.settings > 0 ? 0 : -1;
}

static int parse_options(int argc, char **argv, struct bench_opts *o)
{
    static const struct option opts[] = {
        {"in-flight", required_argument, NULL, 'i'},   {"duration", required_argument, NULL, 'd'},
        {"payload-bytes", required_argument, NULL, 'p'}, {"channels", required_argument, NULL, 'c'},
        {"connections", required_argument, NULL, 'k'}, {"seed", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},              {"help", no_argument, NULL, 'h'},
        {"fanout", no_argument, NULL, 'F'},            {"subscribers", required_argument, NULL, 'S'},
        {"sub-channels", required_argument, NULL, 'K'}, {"ready-wait", required_argument, NULL, 'W'},
        {"rate", required_argument, NULL, 'R'},        {"servers", required_argument, NULL, 'V'},
        {"leader-aware", no_argument, NULL, 'L'},   {"random-nonces", no_argument, NULL, 'N'},
        {"sub-servers", required_argument, NULL, 'U'}, {0}};
    *o = (struct bench_opts){.in_flight = {1, 16, 256}, .settings = 3, .duration_s = 10,
                             .payload_bytes = 200, .channels = 16, .seed = 1,
                             .subscribers = 1000, .sub_channels = 1, .ready_wait_s = 120};
    int ch;
    long v;
    char *end;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': fputs(bench_help, stdout); return 1;
        case 'i':
            if (parse_in_flight(o, optarg) != 0) return usage("bad --in-flight \"%s\"", optarg);
            o->in_flight_set = true;
            break;
        case 'd':
            o->duration_s = strtod(optarg, &end);
            if (*end || !(o->duration_s >= 0.1 && o->duration_s <= 86400)) {
                return usage("--duration wants seconds (0.1-86400), not \"%s\"", optarg);
            }
            break;
        case 'p':
            if (!parse_long(optarg, 1, 1 << 20, &o->payload_bytes)) {
                return usage("--payload-bytes wants 1-1048576, not \"%s\"", optarg);
            }
            break;
        case 'c':
            if (!parse_long(optarg, 1, 10000000, &o->channels)) {
                return usage("--channels wants 1-10000000, not \"%s\"", optarg);
            }
            break;
        case 'k':
            if (!parse_long(optarg, 1, 100000, &v)) {
                return usage("--connections wants 1-100000, not \"%s\"", optarg);
            }
            o->connections = (int)v;
            break;
        case 's':
            o->seed = strtoull(optarg, &end, 0);
            if (*end || !*optarg) return usage("--seed wants a number, not \"%s\"", optarg);
            break;
        case 'j': o->json = true; break;
        case 'F': o->fanout = true; break;
        case 'S':
            if (!parse_long(optarg, 1, 1000000, &o->subscribers)) {
                return usage("--subscribers wants 1-1000000, not \"%s\"", optarg);
            }
            break;
        case 'K':
            if (!parse_long(optarg, 1, 100000, &o->sub_channels)) {
                return usage("--sub-channels wants 1-100000, not \"%s\"", optarg);
            }
            break;
        case 'W':
            o->ready_wait_s = strtod(optarg, &end);
            if (*end || !(o->ready_wait_s > 0 && o->ready_wait_s <= 86400)) {
                return usage("--ready-wait wants seconds, not \"%s\"", optarg);
            }
            break;
        case 'R':
            if (parse_rates(o, optarg) != 0) {
                return usage("--rate wants appends/s (1-10000000), comma-separated, not \"%s\"",
                             optarg);
            }
            break;
        case 'L':
            o->leader_aware = true;
            break;
        case 'N':
            o->random_nonces = true;
            break;
        case 'V':
            if (strlen(optarg) >= sizeof o->servers) return usage("--servers is too long");
            snprintf(o->servers, sizeof o->servers, "%s", optarg);
            break;
        case 'U':
            if (strlen(optarg) >= sizeof o->sub_servers) return usage("--sub-servers is too long");
            if (optarg[0] == '\0') return usage("--sub-servers wants URL,URL...");
            snprintf(o->sub_servers, sizeof o->sub_servers, "%s", optarg);
            break;
        default: return usage("%s", "bad option");
        }
    }
    if (optind != argc) return usage("unexpected argument \"%s\"", argv[optind]);
    if (o->rate.settings > 0 && o->in_flight_set) {
        return usage("--rate is the open loop: no --in-flight with it");
    }
    if (o->fanout && o->rate.settings > 1) return usage("--fanout runs one --rate setting");
    if (o->sub_servers[0] != '\0' && !o->fanout) return usage("--sub-servers goes with --fanout");
    if (o->fanout && o->leader_aware) {
        return usage("--leader-aware is not for --fanout: its appends go to the servers given");
    }
    if (o->fanout && o->in_flight_set && o->settings != 1) return usage("--fanout runs one --in-flight setting");
    if (o->fanout && o->payload_bytes < 16) {
        return usage("--fanout needs --payload-bytes >= 16 (the send time goes there)");
    }
    if (o->fanout && o->sub_channels > o->channels) {
        return usage("--sub-channels (%ld) cannot exceed --channels (%ld)", o->sub_channels,
                     o->channels);
    }
    return 0;
}

static int resolve(const char *url, struct bench_target *cfg)
{
    char host[256], port[8];
    cfg->url = url;
    cfg->tls = herald_url_tls(url);
    if (herald_url_parse(url, host, sizeof host, port, sizeof port, cfg->base_path,
                         sizeof cfg->base_path) != 0) {
        fprintf(stderr, "herald bench: bad server URL \"%s\"\n", url);
        return 2;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0) {
        fprintf(stderr, "herald bench: resolve %s: %s\n", host, gai_strerror(rv));
        return 1;
    }
    memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    snprintf(cfg->host, sizeof cfg->host, "%s", host);
    bool v6 = strchr(host, ':') != NULL;
    snprintf(cfg->host_header, sizeof cfg->host_header, "%s%s%s:%s", v6 ? "[" : "", host,
             v6 ? "]" : "", port);
    return 0;
}

/* The servers appends go to: the --servers list (split in place: the
 * targets point into it), else url. */
static int resolve_all(const char *url, char *servers, struct bench_config *cfg)
{
    cfg->n_targets = 0;
    if (servers[0] == '\0') {
        cfg->n_targets = 1;
        return resolve(url, &cfg->targets[0]);
    }
    for (char *save = NULL, *tok = strtok_r(servers, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (cfg->n_targets == BENCH_SERVERS_MAX) {
            return usage("--servers takes at most %d servers", BENCH_SERVERS_MAX);
        }
        int rc = resolve(tok, &cfg->targets[cfg->n_targets++]);
        if (rc != 0) return rc;
    }
    return cfg->n_targets > 0 ? 0 : usage("--servers wants URL,URL...");
}

/* --sub-servers, split in place into fo's URLs: each must parse and
 * resolve (a subscriber would otherwise retry it until --ready-wait). */
static int sub_servers(char *list, struct bench_fanout_opts *fo)
{
    fo->n_sub_urls = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (fo->n_sub_urls == BENCH_SERVERS_MAX) {
            return usage("--sub-servers takes at most %d servers", BENCH_SERVERS_MAX);
        }
        struct bench_target checked;
        int rc = resolve(tok, &checked);
        if (rc != 0) return rc;
        fo->sub_urls[fo->n_sub_urls++] = tok;
    }
    return fo->n_sub_urls > 0 ? 0 : usage("--sub-servers wants URL,URL...");
}

/* Summary of one setting, as a JSON object (also the table's source). */
static json_t *summarize(const struct bench_config *cfg, struct bench_result *res,
                         const struct bench_server_use *use)
{
    double rate = res->elapsed_s > 0 ? (double)res->acked / res->elapsed_s : 0;
    json_t *run = json_pack("{s:i, s:i, s:f, s:I, s:I, s:I, s:I, s:f}", "in_flight",
                            cfg->in_flight, "connections", cfg->connections, "elapsed_s",
                            res->elapsed_s, "acked", (json_int_t)res->acked, "acked_total",
                            (json_int_t)res->acked_total, "sent", (json_int_t)res->sent,
                            "failed", (json_int_t)res->failed, "appends_per_s", rate);
    bench_result_json(run, res);
    bench_servers_json(run, cfg, use, res->acked_total);
    return run;
}

static int64_t get_int(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static void print_row(json_t *run)
{
    printf("%9d %11d %13.1f %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64
           " %10" PRId64,
           (int)get_int(run, "in_flight"), (int)get_int(run, "connections"),
           json_real_value(json_object_get(run, "appends_per_s")), get_int(run, "p50_us"),
           get_int(run, "p90_us"), get_int(run, "p99_us"), get_int(run, "p99_9_us"),
           get_int(run, "max_us"), get_int(run, "acked"));
    bench_print_server_use(run);
    bench_print_row_end(run);
}

static int bench_main_run(struct bench_opts *opts, const struct bench_config *base);

/* https targets: one client configuration (the CA file read once). */
static int tls_config(struct bench_config *cfg)
{
    bool any = false;
    for (int i = 0; i < cfg->n_targets; i++) any = any || cfg->targets[i].tls;
    if (!any) return 0;
    char errmsg[512];
    if (herald_tls_config_new(&cfg->tls, cfg->ca_file, errmsg, sizeof errmsg) != 0) {
        fprintf(stderr, "herald bench: %s\n", errmsg);
        return 1;
    }
    return 0;
}

int herald_bench_main(const char *url, const char *token, const char *ca_file, int argc,
                      char **argv)
{
    struct bench_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0) return rc == 1 ? 0 : rc;
    struct bench_config cfg = {.duration_s = o.duration_s,
                               .payload_bytes = (size_t)o.payload_bytes,
                               .channels = (int)o.channels,
                               .seed = o.seed,
                               .leader_aware = o.leader_aware,
                               .random_nonces = o.random_nonces,
                               .token = token,
                               .ca_file = ca_file};
    if ((rc = resolve_all(url, o.servers, &cfg)) != 0 || (rc = tls_config(&cfg)) != 0) {
        return rc;
    }
    rc = bench_main_run(&o, &cfg);
    herald_tls_config_free(cfg.tls);
    return rc;
}

/* Every mode of bench, once the servers are resolved. */
static int bench_main_run(struct bench_opts *opts, const struct bench_config *base)
{
    struct bench_opts o = *opts;
    struct bench_config cfg = *base;
    int rc = 0;
    if (o.fanout) {
        struct bench_fanout_opts fo = {
            .subscribers = (int)o.subscribers, .sub_channels = (int)o.sub_channels,
            .channels = (int)o.channels, .in_flight = o.in_flight_set ? o.in_flight[0] : 64,
            .rate = o.rate.settings > 0 ? o.rate.rates[0] : 0,
            .connections = o.connections, .duration_s = o.duration_s,
            .payload_bytes = o.payload_bytes, .ready_wait_s = o.ready_wait_s,
            .seed = o.seed, .json = o.json, .n_sub_urls = 1,
            .sub_urls = {cfg.targets[0].url}};
        /* split in the caller's copy: the URLs point into it */
        if (opts->sub_servers[0] != '\0' && (rc = sub_servers(opts->sub_servers, &fo)) != 0) {
            return rc;
        }
        return bench_fanout_main(&cfg, &fo);
    }
    if (o.rate.settings > 0) {
        o.rate.json = o.json;
        cfg.connections = cfg.in_flight = o.connections > 0 ? o.connections : 256;
        return bench_rate_main(&cfg, &o.rate);
    }
    if (!o.json) {
        char targets[2048];
        printf("herald bench: %s, %ld-byte payloads, %ld channels, %s nonces, %g s per setting, "
               "seed %llu\n",
               bench_targets_text(&cfg, targets, sizeof targets), o.payload_bytes, o.channels,
               bench_nonces_text(&cfg), o.duration_s, o.seed);
        printf("%9s %11s %13s %9s %9s %9s %9s %9s %10s %21s %14s\n", "in_flight",
               "connections", "appends_per_s", "p50_us", "p90_us", "p99_us", "p99_9_us",
               "max_us", "acked", "server_cpu_us_per_ack", "server_rss_mib");
    }
    struct bench_servers servers;
    if (bench_servers_open(&servers, &cfg) != 0) {
        return 1;
    }
    json_t *runs = json_array();
    for (int i = 0; i < o.settings; i++) {
        cfg.in_flight = o.in_flight[i];
        cfg.connections = o.connections > 0 && o.connections < cfg.in_flight ? o.connections
                                                                              : cfg.in_flight;
        struct bench_result res;
        struct bench_server_use use;
        bench_run(&cfg, &res);
        bench_servers_finish(&servers, &use);
        json_t *run = summarize(&cfg, &res, &use);
        if (res.acked == 0) rc = 1;
        bench_result_free(&res);
        if (!o.json) print_row(run);
        json_array_append_new(runs, run);
    }
    bench_servers_close(&servers);
    if (o.json) {
        json_t *all = json_pack("{s:s, s:s, s:o, s:I, s:I, s:f, s:I, s:o}", "bench", "append",
                                "server", cfg.targets[0].url, "servers",
                                bench_targets_json(&cfg), "payload_bytes",
                                (json_int_t)o.payload_bytes,
                                "channels", (json_int_t)o.channels, "duration_s", o.duration_s,
                                "seed", (json_int_t)o.seed, "runs", runs);
        bench_puts_json(all);
    } else {
        json_decref(runs);
    }
    return rc;
}
