/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench internals: one measured setting and its statistics. */
#ifndef HERALD_BENCH_INTERNAL_H
#define HERALD_BENCH_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define BENCH_SERVERS_MAX 16

struct herald_client;
struct herald_tls_config;
struct bench_pace;

/* One server appends go to. */
struct bench_target {
    const char *url;              /* as given */
    struct sockaddr_storage addr; /* resolved server address */
    char host_header[300];        /* "host:port" for the Host header */
    char base_path[256];          /* URL path prefix, may be "" */
    bool tls;                     /* https:// */
    char host[256];               /* the URL's host: what its certificate must name */
};

/* What one setting runs. */
struct bench_config {
    struct bench_target targets[BENCH_SERVERS_MAX]; /* connection i goes to
                                                      targets[i % n_targets] */
    int n_targets;                /* --servers, or the one --server */
    const char *token;            /* bearer token (--token / HERALD_TOKEN) or NULL */
    const char *ca_file;          /* https: --ca-file / HERALD_CA_FILE, or NULL (the
                                     system's store) */
    struct herald_tls_config *tls; /* https targets' configuration, or NULL */
    int in_flight;                /* requests outstanding at any time */
    int connections;              /* keep-alive connections carrying them */
    double duration_s;            /* measured window */
    size_t payload_bytes;         /* payload size of every append */
    int channels;                 /* appends spread over this many channels */
    uint64_t seed;                /* payload bytes and channel choice */
    bool random_nonces;           /* --random-nonces: 128 random-looking bits
                                     instead of time-ordered nonces */
    bool stamp_payload;           /* payload starts with the send time: 16 hex
                                     digits of uv_hrtime() (needs >= 16 bytes) */
    double rate;                  /* > 0: open loop (bench_pace.h), this many sends
                                     per second at fixed intervals, each on a free
                                     connection (in_flight == connections) */
    bool leader_aware;            /* --leader-aware: bench_servers_open() fills
                                     channel_target from the servers' /v1/shards */
    const int *channel_target;    /* per channel, the target leading its shard:
                                     connection i then goes to the target of
                                     channel i mod channels and appends only to
                                     that target's channels; NULL: round robin */
    bool count_channels;          /* fill res->channel_acked (the fan-out's exact
                                     expected deliveries) */
    void (*on_window)(void *arg, bool start); /* called as the window starts and ends */
    void *window_arg;             /* argument of on_window */
};

#define BENCH_ERROR_KINDS_MAX 32

/* Error counter keyed by a short name ("503", "io", "duplicate"...). */
struct bench_error {
    char kind[16];  /* status code or error kind */
    uint64_t count; /* occurrences */
};

/* What one setting measured. */
struct bench_result {
    double elapsed_s;        /* measured window actually run */
    uint64_t acked;          /* verified 201 answers inside the window */
    uint64_t acked_total;    /* including those drained after it */
    uint64_t sent;           /* requests written, inside the window */
    uint64_t failed;         /* of those, answered with an error or lost:
                                sent == acked_total + failed once drained */
    uint64_t scheduled;      /* open loop: sends the schedule held */
    uint64_t late;           /* open loop: sent >= 1 ms after their time */
    uint64_t *lat_us;        /* latency of every verified append, unsorted */
    size_t lat_len;          /* entries used in lat_us */
    size_t lat_cap;          /* entries allocated in lat_us */
    uint64_t *channel_acked; /* cfg->count_channels: acked_total per channel,
                                cfg->channels entries; else NULL */
    struct bench_error errors[BENCH_ERROR_KINDS_MAX]; /* by kind */
    int error_kinds;         /* entries used in errors */
    char fatal[256];         /* set when the setting could not run at all */
};

/* Runs one setting on a private libuv loop. Returns 0, or -1 with
 * res->fatal explaining why nothing could be measured. */
int bench_run(const struct bench_config *cfg, struct bench_result *res);
void bench_result_free(struct bench_result *res);

/* Adds one to the counter of kind. */
void bench_count_error(struct bench_result *res, const char *kind);
/* The same for a request that was sent: it counts as failed too. */
void bench_count_failed(struct bench_result *res, const char *kind);
/* Records one latency; false when out of memory. */
bool bench_record_latency(struct bench_result *res, uint64_t us);

/* Adds a run's latencies (sorting them: p50_us, p90_us, p99_us, p99_9_us,
 * max_us, mean_us), its errors by kind ("errors") and "fatal" (null when it
 * ran) to the run's JSON object. */
struct json_t;
void bench_result_json(struct json_t *run, struct bench_result *res);
/* Ends a table row: the run's errors by kind, FAILED and why, a newline. */
void bench_print_row_end(struct json_t *run);

/* Nearest-rank percentile (q in [0, 1]) of n sorted values; 0 if n == 0. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double q);

/* Checks an append answer: status 201 and a JSON body with a positive
 * integer seq and "duplicate" false. Returns NULL when good, else the error
 * kind to count ("duplicate", "bad_answer", or the status as text in buf). */
const char *bench_check_answer(int status, const char *body, size_t len, char *buf, size_t size);

/* Each server's /metrics, read before and after a run (bench_servers.c),
 * for the server's CPU per acknowledged append and its memory. */
struct bench_servers {
    int n;
    struct herald_client *clients;  /* one per target, keep-alive */
    const char **urls;              /* their URLs, for messages */
    double *cpu_before;             /* process_cpu_seconds_total at the start */
    bool ok;                        /* every server answered at the start */
    int *channel_target;            /* leader-aware: cfg->channel_target */
};
/* What the servers used between bench_servers_start() and _finish(). */
struct bench_server_use {
    bool ok;                        /* every server answered both times */
    double cpu_s;                   /* CPU seconds, summed over the servers */
    double rss_bytes;               /* resident memory at the end, summed */
    double cpu_s_each[BENCH_SERVERS_MAX];
    double rss_each[BENCH_SERVERS_MAX];
};
/* Opens a client to every server and makes the run's window read their
 * /metrics (cfg->on_window); on failure, closes what it opened. */
int bench_servers_open(struct bench_servers *sv, struct bench_config *cfg);
/* Prints a run's JSON report on one line and releases it. */
void bench_puts_json(struct json_t *all);
void bench_servers_close(struct bench_servers *sv);
void bench_servers_start(struct bench_servers *sv);
/* An on_window hook for bench_config: bench_servers_start() as the window
 * starts (arg: the struct bench_servers). */
void bench_servers_on_window(void *arg, bool start);
void bench_servers_finish(struct bench_servers *sv, struct bench_server_use *use);
/* Adds "server_cpu_us_per_ack" (null when unknown), "server_cpu_s",
 * "server_rss_bytes" and the per-server figures to a run's JSON. */
void bench_servers_json(struct json_t *run, const struct bench_config *cfg,
                        const struct bench_server_use *use, uint64_t acked);

/* Prints a table row's server_cpu_us_per_ack and server_rss_mib columns
 * (n/a when unknown). */
void bench_print_server_use(struct json_t *run);
/* The servers as "URL,URL..." in buf; returns buf. */
const char *bench_targets_text(const struct bench_config *cfg, char *buf, size_t size);
/* "random" or "time-ordered": the nonces the bench sends. */
const char *bench_nonces_text(const struct bench_config *cfg);
/* The servers' URLs as a JSON array. */
struct json_t *bench_targets_json(const struct bench_config *cfg);

/* `herald bench --rate`: open loop (bench_rate.c). */
struct bench_rate_opts {
    double rates[16];  /* offered appends/s, one setting each */
    int settings;
    bool json;
};
int bench_rate_main(const struct bench_config *base, const struct bench_rate_opts *o);

/* `herald bench --fanout`: subscribers over WebSocket while bench_run()
 * appends. */
struct bench_fanout_opts {
    int subscribers;   /* WebSocket connections */
    int sub_channels;  /* channels each subscribes to */
    int channels;      /* channels appended to: bench-0 .. bench-(C-1) */
    int in_flight;     /* appends outstanding (closed loop, rate == 0) */
    double rate;       /* > 0: open loop, this many appends/s (--rate) */
    int connections;   /* HTTP connections for appends (0: in_flight, or
                          256 with rate) */
    double duration_s; /* append window */
    long payload_bytes;
    double ready_wait_s; /* how long subscribing may take */
    uint64_t seed;
    bool json;
    const char *sub_urls[BENCH_SERVERS_MAX]; /* subscriber connection i goes to
                                                sub_urls[i % n_sub_urls] */
    int n_sub_urls;    /* --sub-servers, or the first append server */
};

/* Runs the fan-out benchmark and prints its report; returns the exit
 * status (0 when every subscriber got every acknowledged append of its
 * channels, 1 otherwise). */
int bench_fanout_main(const struct bench_config *base, const struct bench_fanout_opts *o);

#endif
