/* SPDX-License-Identifier: Apache-2.0 */
/* The heraldd server: routes of the v1 API over the node's consensus and state. */
#ifndef API_API_H
#define API_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "token_limits.h"
#include "hd_base64.h"
#include "hd_histogram.h"
#include "hd_ids.h"
#include "hd_ts.h"
#include "http_server.h"

struct cons_node;
struct log_store;
struct log_result;
struct api_hub;

struct api_config {
    size_t payload_bytes_max;     /* per message; default 1 MiB */
    size_t read_limit_max;        /* messages per read; default 1000 */
    size_t read_bytes_max;        /* payload bytes per read response; 4 MiB */
    size_t batch_lines_max;       /* lines per batch append; 10000 */
    uint64_t tail_keepalive_ms;   /* SSE comment interval; 15 s */
    size_t tail_channels_max;     /* channels of one multi-channel SSE stream; 1000 */
    size_t ws_message_bytes_max;  /* one WebSocket message from a client */
    size_t ws_appends_max;        /* appends in flight per WebSocket; 1024 */
};

struct api_metrics {
    uint64_t requests;            /* HTTP requests answered */
    uint64_t responses_by_class[6]; /* [status / 100] */
    uint64_t appends_ok;          /* appends answered 201 */
    uint64_t appends_duplicate;   /* appends answered 200 duplicate */
    uint64_t appends_unknown;     /* appends answered 503 outcome unknown */
    uint64_t reads;
    uint64_t ws_opened;           /* WebSockets accepted */
    uint64_t ws_frames_in;        /* client operations received */
    uint64_t ws_errors;           /* error frames sent */
    uint64_t ws_closed_slow;      /* closed as slow consumers */
    /* Microseconds from a request parsed to the answer of each append
     * acknowledged here (201 or 200) queued: a single append's response,
     * a WebSocket append's frame, a batch line's result. */
    struct hd_histogram append_us;
};

struct api_server {
    uv_loop_t *loop;
    struct api_config config;
    struct cons_node *node;
    struct log_store *log;
    struct api_http_server *http;
    struct api_hub *hub;
    struct api_cors *cors;          /* --cors-origins; NULL: no cross-origin access */
    struct api_auth *auth;          /* --auth-file; NULL: open (loopback or --insecure) */
    struct api_metrics metrics;
    uint64_t node_id;
    char cluster_id[40];
    uint64_t started_us;
    const char *data_dir;           /* for disk use in /v1/status; may be NULL */
    uint64_t retention_interval_ms; /* the policy: log_retention_effective(log) */
    bool stopping;
    bool backup_running;            /* POST /v1/backup: one at a time */
    uint64_t repairs_total;         /* repairs of this node's data (heraldd/repair.c) */
};

/* While a damaged node waits to be retired by its peers (heraldd/repair.c)
 * its HTTP port answers only this: GET /v1/status says "repairing" and
 * why, GET /metrics counts repairs, everything else is 503 `repairing`
 * (repair_status.c). The request is NULL once the answer came. */
struct cons_repair_request;
struct api_repair_view {
    struct api_server *server;      /* node_id (the old id), cluster_id, started_us, counters */
    const char *reason;             /* what was found damaged */
    const struct cons_repair_request *request;
};

/* The request callback of the HTTP server while repairing (arg: the view). */
void api_repair_route(struct api_http_conn *c, const struct api_http_request *req, void *arg);

/* Routes one request (the http server's callback). */
void api_route(struct api_http_conn *c, const struct api_http_request *req, void *arg);

/* Handlers, one per route. `channel` is decoded and validated. */
void api_append(struct api_server *s, struct api_http_conn *c,
                const struct api_http_request *req, const char *channel, size_t len);
void api_append_batch(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req, const struct api_principal *who);
void api_read(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len);
void api_tail(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len,
              const struct api_principal *who);
void api_status(struct api_server *s, struct api_http_conn *c);
/* GET /v1/shards: shard count, the shard rule and each shard's leader. */
void api_shards(struct api_server *s, struct api_http_conn *c);
/* GET / and HEAD /: the built-in status page (status_page.c). */
void api_status_page(struct api_server *s, struct api_http_conn *c);
/* {"data_dir","wal_bytes","snapshot_bytes","state_bytes","fs_free_bytes",
 * "fs_total_bytes"} for the data directory, or JSON null without one. */
json_t *api_status_disk(const char *data_dir);
/* {"policy","hash","source","interval_ms","rules":[...]}: this node's
 * effective retention policy for /v1/status and GET /v1/retention
 * (status_retention.c). */
json_t *api_status_retention(const struct api_server *s);
/* GET, PUT and DELETE /v1/retention: the cluster's retention policy
 * (retention_admin.c); the caller checked the token. */
void api_retention_admin(struct api_server *s, struct api_http_conn *c,
                         const struct api_http_request *req);
/* /v1/channels/{ch} and /v1/channels/{ch}/trim (channel_admin.c); rest is
 * what follows the channel in the path. */
void api_channel_admin(struct api_server *s, struct api_http_conn *c,
                       const struct api_http_request *req, const char *channel, size_t len,
                       const char *rest, size_t rest_len);
/* 410 Gone with the channel's first seq and epoch: a read below a trim. */
int api_respond_gone(struct api_server *s, struct api_http_conn *c, const char *channel,
                     size_t len);
/* {"channel","first_seq","epoch"}: what a subscription that a trim or
 * delete ended is told (the WebSocket's gone frame, SSE's event: gone). */
struct log_channel_info;
json_t *api_gone_json(const char *channel, size_t len, const struct log_channel_info *info);
void api_cluster_add(struct api_server *s, struct api_http_conn *c,
                     const struct api_http_request *req);
void api_cluster_remove(struct api_server *s, struct api_http_conn *c,
                        const struct api_http_request *req, const char *id, size_t len);
void api_metrics(struct api_server *s, struct api_http_conn *c);
/* OPTIONS on a /v1/ route with --cors-origins: a CORS preflight. */
void api_preflight(struct api_server *s, struct api_http_conn *c,
                   const struct api_http_request *req);

/* What is wrong with an append's input: the status, code and message. */
struct api_input_error {
    int status;
    const char *code;
    const char *message;
};

/* An append's answer for transports other than a plain request. */
typedef void (*api_append_done_cb)(void *arg, int rv, const struct log_result *result);

/* Appends {"nonce","payload"|"payload_b64"} (obj) to channel (valid) for
 * another transport (the WebSocket): done(arg, ...) fires once it commits or
 * fails. Returns 0, or an error with *err saying what to answer (nothing
 * was queued, done will not fire). */
int api_append_object(struct api_server *s, const char *channel, size_t len, json_t *obj,
                      api_append_done_cb done, void *arg, struct api_input_error *err);

/* The same with the append's fields already read (append_json.h). */
struct api_append_input;
int api_append_fields(struct api_server *s, const char *channel, size_t len,
                      const struct api_append_input *in, api_append_done_cb done, void *arg,
                      struct api_input_error *err);

/* The position a read or tail starts after, from after_seq or after_ts.
 * HD_EINVAL with *bad set for a malformed parameter. */
int api__read_position(struct api_server *s, const struct api_http_request *req,
                       const char *channel, size_t len, uint64_t *after_seq,
                       const char **bad);

/* ---- Delivery (hub.c, tail.c, subscribe.c) ----
 * The hub owns the fan-out engine (fanout.h) and every delivery session:
 * one-channel SSE tails, multi-channel SSE streams and WebSockets. */

struct fan;
struct log_message;

/* A delivery session, in the hub's list so that shutdown can end it. */
struct api_session {
    struct api_hub *hub;
    struct api_session *prev, *next;
    /* Ends the session for a shutdown (says so to the client first). */
    void (*shutdown)(struct api_session *sess);
    /* Every keep-alive period, while the session is open. */
    void (*keepalive)(struct api_session *sess);
    /* The token the session was opened with ("" with auth off). */
    struct api_principal who;
    /* Ends the session because its token was removed (says why first). */
    void (*revoke)(struct api_session *sess);
};

int api_hub_init(struct api_hub **out, struct api_server *s);
/* A message committed on this node (the node's on_commit). */
void api_hub_commit(struct api_hub *h, const char *channel, size_t len,
                    const struct log_message *m);
/* A shard's state was replaced by a snapshot (the node's on_restore). */
void api_hub_restore(struct api_hub *h);
/* A trim or delete of the channel was applied (fan_on_command). */
void api_hub_command(struct api_hub *h, const char *channel, size_t len, bool deleted);
struct fan *api_hub_fan(struct api_hub *h);
void api_hub_add(struct api_hub *h, struct api_session *sess);
void api_hub_remove(struct api_hub *h, struct api_session *sess);
/* Sessions open now. */
size_t api_hub_sessions(const struct api_hub *h);
/* Ends the sessions whose token the auth file no longer holds. */
void api_hub_revoke(struct api_hub *h, struct api_server *s);
/* Ends every session (shutdown); the hub is freed once they are gone. */
void api_hub_close(struct api_hub *h);

struct api_position;
/* The seq a subscription starts after: the position's seq, FAN_NOW for
 * "now", or the last seq at or before a ts (a state read). */
int api_position_resolve(struct api_server *s, const char *channel, size_t len,
                         const struct api_position *pos, uint64_t *after);

/* GET or POST /v1/tail: one SSE stream of many channels. */
void api_tail_multi(struct api_server *s, struct api_http_conn *c,
                    const struct api_http_request *req, const struct api_principal *who);
/* GET /v1/subscribe: the WebSocket. who NULL: auth is on and the
 * handshake had no token; the first frame must be {"type":"auth"}. */
void api_subscribe(struct api_server *s, struct api_http_conn *c,
                   const struct api_http_request *req, const struct api_principal *who);

/* POST /v1/backup (backup.c): a consistent copy of the state, taken online. */
void api_backup(struct api_server *s, struct api_http_conn *c,
                const struct api_http_request *req);

/* ---- shared helpers (util.c) ---- */

/* Answers with a JSON body (takes the reference to `body`). */
int api_respond_json(struct api_server *s, struct api_http_conn *c, int status,
                     json_t *body, const char *extra_headers);
/* Answers with a JSON body already written as text (the hot append's). */
int api_respond_json_text(struct api_server *s, struct api_http_conn *c, int status,
                          const char *text, size_t len);
/* Answers with no body (204 and the like). */
int api_respond_empty(struct api_server *s, struct api_http_conn *c, int status,
                      const char *extra_headers);
/* Answers with the v1 error body. */
int api_respond_error(struct api_server *s, struct api_http_conn *c, int status,
                      const char *code, const char *message);
/* The v1 error code of a consensus error (and its message). */
const char *api_cons_error_code(int rv, const char **message);
/* The HTTP status of a consensus error: 507 for HD_ENOSPC, 500 for an
 * internal one, 503 otherwise (each with Retry-After but 500). */
int api_cons_error_status(int rv);
/* Maps a consensus error to its status and answers. */
int api_respond_cons_error(struct api_server *s, struct api_http_conn *c, int rv);

/* storage_status.c: whether this node takes writes (the "writes" object of
 * /v1/status), and the same figures for /metrics. */
json_t *api_writes_json(struct api_server *s);
struct st_space_status;
/* The reserve's figures (all zero on a node without one). */
void api_writes_metrics(struct api_server *s, struct st_space_status *out);

/* One message as the JSON object of reads and tails. */
json_t *api_message_json(const char *channel, size_t channel_len, uint64_t seq,
                         uint64_t ts, const char *nonce, size_t nonce_len,
                         const uint8_t *payload, size_t payload_len);

#endif
