/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench: each server's /metrics before and after a run, for the
 * server CPU per acknowledged append (process_cpu_seconds_total, summed
 * over the servers given) and their resident memory. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"
#include "herald/herald.h"

/* One server's CPU seconds and resident bytes; false if it did not answer
 * (said once on stderr: the figures it would feed are then left out). */
static bool read_server(struct herald_client *c, const char *url, double *cpu_s, double *rss)
{
    char *text = NULL;
    int rv = herald_metrics(c, &text);
    if (rv != 0) {
        fprintf(stderr, "herald bench: %s/metrics: %s\n", url, herald_errmsg(c));
        return false;
    }
    size_t len = strlen(text);
    bool ok = herald_metric_value(text, len, "process_cpu_seconds_total", cpu_s) == 0 &&
              herald_metric_value(text, len, "process_resident_memory_bytes", rss) == 0;
    if (!ok) fprintf(stderr, "herald bench: %s/metrics has no process CPU or memory\n", url);
    herald_free(text);
    return ok;
}

static int bench__servers_open(struct bench_servers *sv, const struct bench_config *cfg)
{
    memset(sv, 0, sizeof *sv);
    sv->clients = calloc((size_t)cfg->n_targets, sizeof *sv->clients);
    sv->cpu_before = calloc((size_t)cfg->n_targets, sizeof *sv->cpu_before);
    sv->urls = calloc((size_t)cfg->n_targets, sizeof *sv->urls);
    if (sv->clients == NULL || sv->cpu_before == NULL || sv->urls == NULL) return -1;
    for (int i = 0; i < cfg->n_targets; i++) {
        if (herald_client_init(&sv->clients[i], cfg->targets[i].url) != 0) {
            fprintf(stderr, "herald bench: %s\n", herald_errmsg(&sv->clients[i]));
            return -1;
        }
        sv->n++;
        sv->clients[i].token = cfg->token;
        sv->clients[i].ca_file = cfg->ca_file;
        sv->urls[i] = cfg->targets[i].url;
    }
    return 0;
}

/* Leader-aware: each channel's target is the server leading its shard, as
 * the first server's /v1/shards says, matched to the servers by their node
 * ids. A channel whose leader is unknown or not among the servers goes to
 * server 0 (which forwards it). Says how the channels fell on stderr. */
static int bench__leader_map(struct bench_servers *sv, const struct bench_config *cfg)
{
    uint64_t ids[BENCH_SERVERS_MAX] = {0};
    struct herald_shard_map map = {0};
    for (int i = 0; i < sv->n; i++) {
        struct herald_shard_map m;
        if (herald_shards(&sv->clients[i], &m) != 0) {
            fprintf(stderr, "herald bench: %s/v1/shards: %s\n", sv->urls[i],
                    herald_errmsg(&sv->clients[i]));
            herald_shard_map_free(&map);
            return -1;
        }
        ids[i] = m.node_id;
        if (i == 0) {
            map = m;
        } else {
            herald_shard_map_free(&m);
        }
    }
    sv->channel_target = calloc((size_t)cfg->channels, sizeof *sv->channel_target);
    if (sv->channel_target == NULL) {
        herald_shard_map_free(&map);
        return -1;
    }
    int led[BENCH_SERVERS_MAX] = {0};
    for (int ch = 0; ch < cfg->channels; ch++) {
        char name[32];
        snprintf(name, sizeof name, "bench-%d", ch);
        unsigned shard = 0;
        int rv = herald_shard_of(map.shards, name, &shard);
        for (int i = 0; rv == 0 && i < sv->n; i++) {
            if (map.leaders[shard] != 0 && ids[i] == map.leaders[shard]) {
                sv->channel_target[ch] = i;
            }
        }
        led[sv->channel_target[ch]]++;
    }
    herald_shard_map_free(&map);
    fprintf(stderr, "herald bench: leader-aware, channels per server:");
    for (int i = 0; i < sv->n; i++) fprintf(stderr, " %s %d", sv->urls[i], led[i]);
    fprintf(stderr, "\n");
    return 0;
}

void bench_servers_close(struct bench_servers *sv)
{
    free(sv->channel_target);
    for (int i = 0; i < sv->n; i++) herald_client_close(&sv->clients[i]);
    free(sv->clients);
    free(sv->cpu_before);
    free(sv->urls);
    memset(sv, 0, sizeof *sv);
}

void bench_servers_start(struct bench_servers *sv)
{
    sv->ok = true;
    for (int i = 0; i < sv->n; i++) {
        double rss;
        sv->ok &= read_server(&sv->clients[i], sv->urls[i], &sv->cpu_before[i], &rss);
    }
}

void bench_servers_on_window(void *arg, bool start)
{
    if (start) bench_servers_start(arg);
}

void bench_servers_finish(struct bench_servers *sv, struct bench_server_use *use)
{
    memset(use, 0, sizeof *use);
    use->ok = sv->ok;
    for (int i = 0; i < sv->n && i < BENCH_SERVERS_MAX; i++) {
        double cpu = 0, rss = 0;
        if (!read_server(&sv->clients[i], sv->urls[i], &cpu, &rss)) {
            use->ok = false;
            continue;
        }
        use->cpu_s_each[i] = cpu - sv->cpu_before[i];
        use->rss_each[i] = rss;
        use->cpu_s += use->cpu_s_each[i];
        use->rss_bytes += rss;
    }
    sv->ok = false; /* the next run reads its own start */
}

void bench_servers_json(json_t *run, const struct bench_config *cfg,
                        const struct bench_server_use *use, uint64_t acked)
{
    json_t *each = json_array();
    for (int i = 0; i < cfg->n_targets; i++) {
        json_array_append_new(each, json_pack("{s:s, s:f, s:f}", "url", cfg->targets[i].url,
                                              "cpu_s", use->cpu_s_each[i], "rss_bytes",
                                              use->rss_each[i]));
    }
    bool known = use->ok && acked > 0;
    json_object_set_new(run, "server_cpu_us_per_ack",
                        known ? json_real(use->cpu_s * 1e6 / (double)acked) : json_null());
    json_object_set_new(run, "server_cpu_s", use->ok ? json_real(use->cpu_s) : json_null());
    json_object_set_new(run, "server_rss_bytes",
                        use->ok ? json_integer((json_int_t)use->rss_bytes) : json_null());
    json_object_set_new(run, "servers", each);
    json_object_set_new(run, "leader_aware", json_boolean(cfg->channel_target != NULL));
    json_object_set_new(run, "nonces", json_string(bench_nonces_text(cfg)));
}

void bench_print_server_use(json_t *run)
{
    json_t *cpu = json_object_get(run, "server_cpu_us_per_ack");
    json_t *rss = json_object_get(run, "server_rss_bytes");
    if (json_is_number(cpu)) {
        printf(" %21.1f", json_number_value(cpu));
    } else {
        printf(" %21s", "n/a");
    }
    if (json_is_integer(rss)) {
        printf(" %14.1f", (double)json_integer_value(rss) / (1024.0 * 1024.0));
    } else {
        printf(" %14s", "n/a");
    }
}

const char *bench_nonces_text(const struct bench_config *cfg)
{
    return cfg->random_nonces ? "random" : "time-ordered";
}

const char *bench_targets_text(const struct bench_config *cfg, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < cfg->n_targets && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "", cfg->targets[i].url);
        if (n < 0) break;
        used += (size_t)n;
    }
    return buf;
}

json_t *bench_targets_json(const struct bench_config *cfg)
{
    json_t *urls = json_array();
    for (int i = 0; i < cfg->n_targets; i++) {
        json_array_append_new(urls, json_string(cfg->targets[i].url));
    }
    return urls;
}

int bench_servers_open(struct bench_servers *sv, struct bench_config *cfg)
{
    if (bench__servers_open(sv, cfg) != 0 ||
        (cfg->leader_aware && bench__leader_map(sv, cfg) != 0)) {
        bench_servers_close(sv);
        return -1;
    }
    cfg->channel_target = sv->channel_target;
    cfg->on_window = bench_servers_on_window;
    cfg->window_arg = sv;
    return 0;
}

void bench_puts_json(struct json_t *all)
{
    char *text = json_dumps(all, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (text != NULL) puts(text);
    free(text);
    json_decref(all);
}
