/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench internals: one measured setting and its statistics. */
#ifndef HERALD_BENCH_INTERNAL_H
#define HERALD_BENCH_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What one setting runs. */
struct bench_config {
    struct sockaddr_storage addr; /* resolved server address */
    char host_header[300];        /* "host:port" for the Host header */
    char base_path[256];          /* URL path prefix, may be "" */
    const char *token;            /* bearer token (--token / HERALD_TOKEN) or NULL */
    int in_flight;                /* requests outstanding at any time */
    int connections;              /* keep-alive connections carrying them */
    double duration_s;            /* measured window */
    size_t payload_bytes;         /* payload size of every append */
    int channels;                 /* appends spread over this many channels */
    uint64_t seed;                /* payload bytes and channel choice */
    bool stamp_payload;           /* payload starts with the send time: 16 hex
                                     digits of uv_hrtime() (needs >= 16 bytes) */
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
    uint64_t *lat_us;        /* latency of every verified append, unsorted */
    size_t lat_len;          /* entries used in lat_us */
    size_t lat_cap;          /* entries allocated in lat_us */
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
/* Records one latency; false when out of memory. */
bool bench_record_latency(struct bench_result *res, uint64_t us);

/* Nearest-rank percentile (q in [0, 1]) of n sorted values; 0 if n == 0. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double q);

/* Checks an append answer: status 201 and a JSON body with a positive
 * integer seq and "duplicate" false. Returns NULL when good, else the error
 * kind to count ("duplicate", "bad_answer", or the status as text in buf). */
const char *bench_check_answer(int status, const char *body, size_t len, char *buf, size_t size);

/* `herald bench --fanout`: subscribers over WebSocket while bench_run()
 * appends. */
struct bench_fanout_opts {
    int subscribers;   /* WebSocket connections */
    int sub_channels;  /* channels each subscribes to */
    int channels;      /* channels appended to: bench-0 .. bench-(C-1) */
    int in_flight;     /* appends outstanding */
    int connections;   /* HTTP connections for appends (0: in_flight) */
    double duration_s; /* append window */
    long payload_bytes;
    double ready_wait_s; /* how long subscribing may take */
    uint64_t seed;
    bool json;
};

/* Runs the fan-out benchmark and prints its report; returns the exit
 * status (0 when messages were delivered, 1 otherwise). */
int bench_fanout_main(const char *url, const struct bench_config *base,
                      const struct bench_fanout_opts *o);

#endif
