/* SPDX-License-Identifier: Apache-2.0 */
/* `herald bench --rate`: the open loop at each offered rate (the engine is
 * bench_run() with cfg->rate, the schedule bench_pace.c), with the
 * servers' CPU per acknowledged append beside it. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_internal.h"

static const char rate_head[] = "%13s %14s %11s %9s %9s %9s %9s %9s %9s %7s %7s %7s %21s %14s\n";

/* One rate's summary, as a JSON object (also the table's source). */
static json_t *rate_summary(const struct bench_config *cfg, struct bench_result *res,
                            const struct bench_server_use *use)
{
    double window = cfg->duration_s;
    json_t *run = json_pack(
        "{s:f, s:f, s:f, s:i, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "offered_per_s", cfg->rate,
        "achieved_per_s", (double)res->sent / window, "acked_per_s",
        res->elapsed_s > 0 ? (double)res->acked / res->elapsed_s : 0.0, "connections",
        cfg->connections, "elapsed_s", res->elapsed_s, "scheduled", (json_int_t)res->scheduled,
        "sent", (json_int_t)res->sent, "acked", (json_int_t)res->acked_total, "failed",
        (json_int_t)res->failed, "late", (json_int_t)res->late, "unsent",
        (json_int_t)(res->scheduled > res->sent ? res->scheduled - res->sent : 0));
    bench_result_json(run, res);
    bench_servers_json(run, cfg, use, res->acked_total);
    return run;
}

static int64_t geti(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static double getf(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void rate_print(json_t *r)
{
    printf("%13.0f %14.1f %11.1f %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64
           " %9" PRId64 " %7" PRId64 " %7" PRId64 " %7" PRId64,
           getf(r, "offered_per_s"), getf(r, "achieved_per_s"), getf(r, "acked_per_s"),
           geti(r, "p50_us"), geti(r, "p99_us"), geti(r, "p99_9_us"), geti(r, "max_us"),
           geti(r, "sent"), geti(r, "acked"), geti(r, "failed"), geti(r, "late"),
           geti(r, "unsent"));
    bench_print_server_use(r);
    bench_print_row_end(r);
}

int bench_rate_main(const struct bench_config *base, const struct bench_rate_opts *o)
{
    struct bench_config cfg = *base;
    struct bench_servers servers;
    if (bench_servers_open(&servers, &cfg) != 0) {
        return 1;
    }
    if (!o->json) {
        char targets[2048];
        printf("herald bench --rate: %s, %zu-byte payloads, %d channels, %s nonces, "
               "%d connections, %g s per rate, seed %llu\n",
               bench_targets_text(&cfg, targets, sizeof targets), cfg.payload_bytes,
               cfg.channels, bench_nonces_text(&cfg), cfg.connections, cfg.duration_s,
               (unsigned long long)cfg.seed);
        printf(rate_head, "offered_per_s", "achieved_per_s", "acked_per_s", "p50_us", "p99_us",
               "p99_9_us", "max_us", "sent", "acked", "failed", "late", "unsent",
               "server_cpu_us_per_ack", "server_rss_mib");
        fflush(stdout);
    }
    int rc = 0;
    json_t *runs = json_array();
    for (int i = 0; i < o->settings; i++) {
        cfg.rate = o->rates[i];
        struct bench_result res;
        struct bench_server_use use;
        bench_run(&cfg, &res);
        bench_servers_finish(&servers, &use);
        json_t *run = rate_summary(&cfg, &res, &use);
        if (res.acked == 0) rc = 1;
        bench_result_free(&res);
        if (!o->json) rate_print(run);
        json_array_append_new(runs, run);
    }
    bench_servers_close(&servers);
    if (o->json) {
        json_t *all = json_pack("{s:s, s:o, s:I, s:I, s:i, s:f, s:I, s:o}", "bench", "rate",
                                "servers", bench_targets_json(&cfg), "payload_bytes",
                                (json_int_t)cfg.payload_bytes, "channels",
                                (json_int_t)cfg.channels, "connections", cfg.connections,
                                "duration_s", cfg.duration_s, "seed", (json_int_t)cfg.seed,
                                "runs", runs);
        bench_puts_json(all);
    } else {
        json_decref(runs);
    }
    return rc;
}
