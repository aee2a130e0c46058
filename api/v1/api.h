/* SPDX-License-Identifier: Apache-2.0 */
/* The heraldd server: routes of the v1 API over the node's consensus and state. */
#ifndef API_API_H
#define API_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hd_base64.h"
#include "hd_ids.h"
#include "hd_ts.h"
#include "http_server.h"

struct cons_node;
struct log_store;
struct api_hub;

struct api_config {
    size_t payload_bytes_max;     /* per message; default 1 MiB */
    size_t read_limit_max;        /* messages per read; default 1000 */
    size_t read_bytes_max;        /* payload bytes per read response; 4 MiB */
    size_t batch_lines_max;       /* lines per batch append; 10000 */
    uint64_t tail_keepalive_ms;   /* SSE comment interval; 15 s */
    size_t tail_queue_bytes_max;  /* pause a tail above this many unsent bytes */
};

struct api_metrics {
    uint64_t requests;            /* HTTP requests answered */
    uint64_t responses_by_class[6]; /* [status / 100] */
    uint64_t appends_ok;          /* appends answered 201 */
    uint64_t appends_duplicate;   /* appends answered 200 duplicate */
    uint64_t appends_unknown;     /* appends answered 503 outcome unknown */
    uint64_t reads;
    uint64_t tail_events;         /* SSE message events written */
};

struct api_server {
    uv_loop_t *loop;
    struct api_config config;
    struct cons_node *node;
    struct log_store *log;
    struct api_http_server *http;
    struct api_hub *hub;
    struct api_metrics metrics;
    uint64_t node_id;
    char cluster_id[40];
    uint64_t started_us;
    bool stopping;
};

/* Routes one request (the http server's callback). */
void api_route(struct api_http_conn *c, const struct api_http_request *req, void *arg);

/* Handlers, one per route. `channel` is decoded and validated. */
void api_append(struct api_server *s, struct api_http_conn *c,
                const struct api_http_request *req, const char *channel, size_t len);
void api_append_batch(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req);
void api_read(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len);
void api_tail(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len);
void api_status(struct api_server *s, struct api_http_conn *c);
void api_cluster_add(struct api_server *s, struct api_http_conn *c,
                     const struct api_http_request *req);
void api_cluster_remove(struct api_server *s, struct api_http_conn *c, const char *id,
                        size_t len);
void api_metrics(struct api_server *s, struct api_http_conn *c);

/* The position a read or tail starts after, from after_seq or after_ts.
 * HD_EINVAL with *bad set for a malformed parameter. */
int api__read_position(struct api_server *s, const struct api_http_request *req,
                       const char *channel, size_t len, uint64_t *after_seq,
                       const char **bad);

/* Tail hub: wakes the tails of a channel when a message commits. */
int api_hub_init(struct api_hub **out, struct api_server *s);
void api_hub_notify(struct api_hub *h, const char *channel, size_t len, uint64_t seq);
size_t api_hub_tails(const struct api_hub *h);
/* Ends every tail (shutdown); the hub is freed once they are gone. */
void api_hub_close(struct api_hub *h);

/* ---- shared helpers (util.c) ---- */

/* Answers with a JSON body (takes the reference to `body`). */
int api_respond_json(struct api_server *s, struct api_http_conn *c, int status,
                     json_t *body, const char *extra_headers);
/* Answers with the v1 error body. */
int api_respond_error(struct api_server *s, struct api_http_conn *c, int status,
                      const char *code, const char *message);
/* Maps a consensus error to 503 + Retry-After (or 500) and answers. */
int api_respond_cons_error(struct api_server *s, struct api_http_conn *c, int rv);

/* One message as the JSON object of reads and tails. */
json_t *api_message_json(const char *channel, size_t channel_len, uint64_t seq,
                         uint64_t ts, const char *nonce, size_t nonce_len,
                         const uint8_t *payload, size_t payload_len);

#endif
