/* SPDX-License-Identifier: Apache-2.0 */
/* libherald: a small blocking C client for herald's HTTP API (v1). */
#ifndef HERALD_H
#define HERALD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Conventions
 *
 * - Every function returning int answers 0 (or a count, where documented) on
 *   success and a negative HD_E* code (common/hd_error.h) on failure;
 *   herald_strerror() describes a code, herald_errmsg() says what went wrong
 *   in more detail (HTTP status, the server's error code and message).
 * - Blocking and thread-compatible: one struct herald_client per thread. The
 *   caller allocates the struct; herald_client_init() fills it in and
 *   herald_client_close() releases what it holds.
 * - seq is the per-channel position (1-based); ts is microseconds since the
 *   epoch, printed on the wire as "1732234567.000123".
 * - Nothing is read from the environment; the CLI reads HERALD_URL itself.
 */

#define HERALD_URL_DEFAULT "http://127.0.0.1:7400"
#define HERALD_CHANNEL_MAX 128 /* bytes in a channel id */
#define HERALD_NONCE_MAX 128   /* bytes in a nonce */
#define HERALD_NONCE_HEX_LEN 32 /* generated nonces: 32 hex digits (herald_nonce_generate) */
#define HERALD_TS_STR_MAX 32   /* buffer size that fits any formatted ts */

struct herald_client {
    /* Settings: herald_client_init() sets the defaults; change them freely
     * between calls. */
    int connect_timeout_ms;   /* one TCP connect; default 2000 */
    int request_timeout_ms;   /* one request/response exchange; default 5000 */
    int retry_deadline_ms;    /* total time spent retrying one call; default 10000 */
    int backoff_initial_ms;   /* first retry delay; doubles, default 50 */
    int backoff_max_ms;       /* cap on one retry delay; default 1000 */
    int tail_idle_timeout_ms; /* silence after which a tail reconnects; default 60000 */
    const char *token;        /* sent as Authorization: Bearer with every request
                                 (heraldd --auth-file); NULL: none. Borrowed: it must
                                 outlive the client and its subscriptions */
    const char *ca_file;      /* https:// URLs: trust the certificates of this PEM
                                 file; NULL: the system's store. The server's
                                 certificate must also name the URL's host.
                                 Borrowed, like token; set it before the first call */

    /* State: private to libherald. */
    char host[256];      /* host name or address from the URL */
    char port[8];        /* decimal port from the URL */
    char base_path[256]; /* path prefix from the URL, without trailing '/' */
    int fd;              /* keep-alive connection, or -1 */
    bool tls;            /* the URL is https:// */
    struct hd_tls_ctx *tls_ctx;     /* the trust store, loaded on first use */
    struct herald__tls *tls_conn;   /* fd's TLS session, or NULL */
    uint64_t rng;        /* xorshift state for backoff jitter */
    int http_status;     /* status of the last response, 0 if none */
    char errmsg[512];    /* details of the last failure */
};

/* A message as read or tailed. Every pointer is borrowed: valid only during
 * the callback that received it. payload is NUL-terminated for convenience
 * but may contain NUL bytes; payload_len is authoritative. */
struct herald_message {
    const char *channel;    /* channel id */
    uint64_t seq;           /* position in the channel, 1-based */
    uint64_t ts_us;         /* commit timestamp, microseconds since the epoch */
    const char *nonce;      /* the appender's idempotency key */
    const uint8_t *payload; /* payload bytes */
    size_t payload_len;     /* payload length in bytes */
    bool payload_binary;    /* true when the server sent it as payload_b64 */
};

/* Answer to one herald_append(). */
struct herald_append_result {
    uint64_t seq;                        /* assigned seq */
    uint64_t ts_us;                      /* assigned ts */
    bool duplicate;                      /* true: an earlier attempt had written it */
    int attempts;                        /* HTTP attempts made, >= 1 */
    char nonce[HERALD_NONCE_MAX + 1];    /* the nonce used (generated or given) */
};

/* Called once per message, in seq order. Return 0 to continue; any other
 * value stops the read or tail, which then returns 0. */
typedef int (*herald_message_cb)(void *arg, const struct herald_message *msg);

/* Parses url ("http://host[:port][/prefix]"; NULL means HERALD_URL_DEFAULT)
 * and sets default timeouts. Does not connect. HD_EINVAL on a bad URL. */
int herald_client_init(struct herald_client *c, const char *url);

/* Closes the connection, if any. The struct may be re-initialised after. */
void herald_client_close(struct herald_client *c);

/* Details of the last failure on c (never NULL, maybe ""). */
const char *herald_errmsg(const struct herald_client *c);

/* Text for a negative HD_E* code. */
const char *herald_strerror(int rv);

/*
 * Appends len bytes of payload to channel. nonce is the idempotency key; NULL
 * generates a random one (reported in result->nonce). Payloads that are valid
 * UTF-8 go as "payload", others as "payload_b64".
 *
 * On 503 (and 429, 500, 502, 504), timeouts and connection errors the append
 * is retried with the SAME nonce, with exponential backoff and jitter
 * (honouring Retry-After), until retry_deadline_ms. Errors: HD_EINVAL (400,
 * bad arguments), HD_ENOTFOUND (404), HD_ETOOBIG (413), HD_EUNKNOWN (deadline
 * passed after a request may have reached the server: it may or may not
 * have been written; retry with result->nonce to find out), HD_EUNAVAIL (the
 * server was never reached), HD_ECORRUPT (malformed answer), HD_EIO.
 */
int herald_append(struct herald_client *c, const char *channel, const void *payload,
                  size_t len, const char *nonce, struct herald_append_result *result);

/*
 * Reads up to limit messages (0: the server's default) with seq > after_seq
 * and calls cb for each. *next_seq (may be NULL) receives the server's
 * "next_seq" (the after_seq to pass to continue reading), or 0 if absent.
 * Returns the number of messages delivered, or a negative HD_E* code.
 * 503s, timeouts and connection errors are retried until the deadline.
 */
int herald_read(struct herald_client *c, const char *channel, uint64_t after_seq,
                unsigned limit, uint64_t *next_seq, herald_message_cb cb, void *arg);

/* As herald_read(), for messages with ts > after_ts_us. */
int herald_read_after_ts(struct herald_client *c, const char *channel, uint64_t after_ts_us,
                         unsigned limit, uint64_t *next_seq, herald_message_cb cb,
                         void *arg);

/*
 * Follows channel from after_seq over SSE, calling cb for each message as it
 * commits, until cb returns non-zero (then returns 0) or a permanent error.
 * A dropped or silent connection is reopened with Last-Event-ID (and
 * after_seq) set to the last seq delivered, so cb sees every message once,
 * in order. The client checks that seqs are consecutive and returns
 * HD_ECORRUPT if the server ever skips or repeats one. Reconnection is given
 * up (HD_EUNAVAIL) only after retry_deadline_ms without any successful
 * connection.
 */
int herald_tail(struct herald_client *c, const char *channel, uint64_t after_seq,
                herald_message_cb cb, void *arg);

/* GET /v1/status. *json_text receives the body (NUL-terminated), to be freed
 * with herald_free(). */
int herald_status(struct herald_client *c, char **json_text);

/* GET /metrics (client/metrics.c): the Prometheus text in *text
 * (NUL-terminated, free with herald_free()). */
int herald_metrics(struct herald_client *c, char **text);

/* The value of the sample `name` without labels ("name 12.5") in len bytes
 * of Prometheus text: 0, HD_ENOTFOUND when no line holds it, HD_ECORRUPT
 * when its value is not a finite number. */
int herald_metric_value(const char *text, size_t len, const char *name, double *value);

/* A channel as a whole (client/channel.c). Each hands back the server's
 * JSON {channel, first_seq, last_seq, epoch} in *json_text (herald_free).
 * Trim (before_seq >= 1) and delete go through Raft on the channel's shard
 * leader; another node refuses (herald_errmsg names the leader's id). They
 * are not retried: a delete sent twice deletes twice. */
int herald_channel_info(struct herald_client *c, const char *channel, char **json_text);
int herald_channel_trim(struct herald_client *c, const char *channel, uint64_t before_seq,
                        char **json_text);
int herald_channel_delete(struct herald_client *c, const char *channel, char **json_text);

/* The cluster's retention policy (client/retention.c): get hands back the
 * node's effective policy {policy, hash, source, interval_ms, rules}; set
 * (rules: "PATTERN=LIMIT[,LIMIT...][;...]") and clear go through Raft and
 * hand back the same object once applied on the node asked. A policy the
 * server's parser refuses is an error naming the rule; nothing changes. */
int herald_retention_get(struct herald_client *c, char **json_text);
int herald_retention_set(struct herald_client *c, const char *rules, char **json_text);
int herald_retention_clear(struct herald_client *c, char **json_text);

/* A backup of the node's whole state into dir, a directory that does not
 * exist yet on the node's machine (client/backup.c): a consistent, online
 * copy (hard links). Hands back the server's JSON {dir, backup_id,
 * cluster_id, node_id, shards, created_ms, version} in *json_text
 * (herald_free). heraldd --restore dir starts a new cluster from it. */
int herald_backup(struct herald_client *c, const char *dir, char **json_text);

/* The shard map (GET /v1/shards, client/shards.c): the shard count and each
 * shard's leader as this node sees it (0 while unknown). */
struct herald_shard_map {
    uint64_t node_id;   /* the node that answered */
    unsigned shards;    /* shard count of the cluster */
    uint64_t *leaders;  /* shards entries; free with herald_shard_map_free() */
};
int herald_shards(struct herald_client *c, struct herald_shard_map *map);
void herald_shard_map_free(struct herald_shard_map *map);
/* The shard of a channel, as every node computes it (XXH3-64 of the id,
 * modulo shards). HD_EINVAL for a bad channel id or shard count. */
int herald_shard_of(unsigned shards, const char *channel, unsigned *shard);

/* Leader-aware appends over the nodes of one cluster: each append goes
 * straight to the node leading its channel's shard, which saves the
 * follower's forwarding hop (CPU on two nodes and a network round trip).
 * The map is re-read every map_ttl_ms (default 1000) and after a node could
 * not be reached; a stale map only costs a forward. A node that cannot be
 * reached (HD_EUNAVAIL after its client's retries, 2 s) passes the append,
 * with the same nonce, to the next node. */
#define HERALD_ROUTER_MAX 16
struct herald_router {
    const char *token;    /* as herald_client.token, for every node */
    const char *ca_file;  /* as herald_client.ca_file */
    int map_ttl_ms;       /* how long a map is used; default 1000 */
    /* State: private to libherald. */
    struct herald_client nodes[HERALD_ROUTER_MAX];
    uint64_t node_ids[HERALD_ROUTER_MAX]; /* each node's id, 0 until it answered */
    int n;
    int next;                             /* round robin while a leader is unknown */
    int last;                             /* the node the last append went to, -1: none */
    struct herald_shard_map map;
    int64_t map_ms;                       /* when map was read */
    char errmsg[512];
};
int herald_router_init(struct herald_router *r, const char *const *urls, int n);
void herald_router_close(struct herald_router *r);
/* As herald_append(), on the leader of channel's shard. */
int herald_router_append(struct herald_router *r, const char *channel, const void *payload,
                         size_t len, const char *nonce, struct herald_append_result *result);
const char *herald_router_errmsg(const struct herald_router *r);

/* Frees memory returned by libherald. */
void herald_free(void *p);

/* Formats ts_us as "SECONDS.MICROS" (always 6 fraction digits) into buf of
 * size >= HERALD_TS_STR_MAX. Returns the length written. */
int herald_ts_format(uint64_t ts_us, char *buf, size_t size);

/* Parses len bytes of "SECONDS[.FRACTION]" (1–6 fraction digits, no sign,
 * no spaces) exactly, without floating point. HD_EINVAL on anything else or
 * on overflow. */
int herald_ts_parse(const char *s, size_t len, uint64_t *ts_us);

/* Serialises msg as one compact JSON object, the line format of `herald read`
 * and `herald tail`: {"channel","seq","ts","nonce","payload"}, with
 * "payload_b64" (base64 of the bytes) instead of "payload" when
 * msg->payload_binary, and without "channel" when msg->channel is NULL.
 * *json_text receives it NUL-terminated, without a newline, to be freed with
 * herald_free(). HD_ENOMEM on failure (also when a text payload is not UTF-8). */
int herald_message_to_json(const struct herald_message *msg, char **json_text);

/* Splits url "http://host[:port][/prefix]" (or https://) as
 * herald_client_init() does: host (a name, an IPv4 address, or an IPv6
 * address given as "[v6]", stored without the brackets), port (decimal
 * 1-65535, "7400" when absent) and the path prefix (no trailing '/', may be
 * ""), each NUL-terminated into a buffer of the given size. For tools that
 * open their own connections (herald_url_tls() tells whether the URL is
 * https). HD_EINVAL on any other form (user info, query, fragment, spaces)
 * or when a part does not fit. */
bool herald_url_tls(const char *url);
int herald_url_parse(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                     char *path, size_t path_size);

/* Writes a nonce of HERALD_NONCE_HEX_LEN lowercase hex digits plus a NUL
 * into out (size >= HERALD_NONCE_HEX_LEN + 1): 12 digits of the Unix time in
 * milliseconds, then 80 random bits (getrandom). Nonces made later sort
 * after earlier ones, which makes them cheaper for the node to store
 * (README: "Nonces"). */
int herald_nonce_generate(char *out, size_t size);

/* TLS for tools that run their own event loop and sockets (herald bench):
 * a client session that never touches a socket. The caller feeds it what
 * it read (herald_tls_feed) and sends what it produces (io.out, which
 * must take every byte); decrypted bytes go to io.in. The rules are
 * libherald's own (TLS 1.2+, the server's chain verified against the CA
 * file, or the system's store when it is NULL, and its host name or
 * address checked). */
struct herald_tls_config;
struct herald_tls;
struct herald_tls_io {
    int (*out)(void *arg, const void *data, size_t len);  /* ciphertext to send */
    int (*in)(void *arg, const void *data, size_t len);   /* plaintext received */
    void *arg;
};
/* 0, or HD_EINVAL/HD_ENOMEM with errmsg (an unreadable CA file...). */
int herald_tls_config_new(struct herald_tls_config **out, const char *ca_file, char *errmsg,
                          size_t errmsg_len);
void herald_tls_config_free(struct herald_tls_config *c);
/* Starts a session to host (the URL's host); its ClientHello goes to
 * io->out at once. 0, HD_ENOMEM or HD_ECORRUPT (herald_tls_why). */
int herald_tls_new(struct herald_tls **out, struct herald_tls_config *c, const char *host,
                   const struct herald_tls_io *io);
/* Bytes read from the server: 0, HD_ESHUTDOWN (closed), HD_ECORRUPT (failed,
 * e.g. its certificate refused: herald_tls_why), or in's/out's return. */
int herald_tls_feed(struct herald_tls *t, const void *data, size_t len);
/* Encrypts len bytes to io.out; only once established. */
int herald_tls_write(struct herald_tls *t, const void *data, size_t len);
bool herald_tls_established(const struct herald_tls *t);
const char *herald_tls_why(const struct herald_tls *t);
void herald_tls_free(struct herald_tls *t);

/* Adds node `id` (peer address `address`) as a voter of every shard, or
 * removes it (add false, address ignored). Waits until every shard changed
 * (this can take minutes while a new node copies state), or until the
 * server gives up: after timeout_s seconds (0: the server's default of
 * 300), or at once when a shard has lost its quorum. On success *json_text
 * is the server's answer, with every shard's result (free with
 * herald_free); on failure herald_errmsg says which shard stopped it. */
int herald_cluster_change(struct herald_client *c, bool add, uint64_t id, const char *address,
                          unsigned timeout_s, char **json_text);

/*
 * Subscriptions over WebSocket (GET /v1/subscribe, docs/subscribe.md).
 *
 * One struct herald_sub is one WebSocket connection carrying any number of
 * channels and appends. The library remembers, per channel, the seq of the
 * last message delivered; when the connection drops it reconnects and
 * subscribes every channel again from there, so on_message sees each
 * channel's messages once, in seq order (channels interleave freely). The
 * resume names the epoch the server gave with "subscribed": a channel
 * deleted meanwhile, or trimmed past that seq, ends with HERALD_SUB_GONE
 * instead of going on in its new epoch. It
 * checks that each channel's seqs are consecutive and fails with
 * HD_ECORRUPT if the server skips or repeats one. Appends not yet answered
 * when a connection drops are sent again, with the same id and nonce, on
 * the next connection (the server dedups by nonce).
 *
 * Two ways to drive it, on the same steps:
 * - blocking: herald_sub_run() waits, reconnects with backoff, and returns
 *   when a callback asks it to;
 * - non-blocking, for event loops holding many subscriptions on one thread:
 *   herald_sub_connect() starts a connection (the TCP connect and the
 *   handshake happen in herald_sub_process()), herald_sub_fd() and
 *   herald_sub_want() say what to poll for, herald_sub_process() reads what
 *   is readable and writes what is writable without ever blocking (except
 *   for the name lookup of the first connect), and herald_sub_timeout_ms()
 *   says when to call it even without I/O.
 * Thread-compatible: one struct herald_sub per thread at a time.
 */

struct herald_sub; /* opaque */

/* Position for herald_sub_add(): only what commits from now on. */
#define HERALD_SUB_NOW UINT64_MAX
/* herald_sub_want() bits. */
#define HERALD_SUB_WANT_READ 1
#define HERALD_SUB_WANT_WRITE 2

/* What happened, besides messages. */
enum herald_sub_event_type {
    HERALD_SUB_CONNECTED = 1, /* handshake done; channels and appends sent again */
    HERALD_SUB_DISCONNECTED,  /* the connection was lost (rv, message say why) */
    HERALD_SUB_SUBSCRIBED,    /* channel subscribed; seq = the channel's head, epoch
                                 = its epoch (the deletes it has been through) */
    HERALD_SUB_UNSUBSCRIBED,  /* channel removed, no message of it follows */
    HERALD_SUB_ACK,           /* append id committed: channel, nonce, seq, ts_us, duplicate */
    HERALD_SUB_ERROR,         /* refused operation: code, message, rv; id and/or channel */
    HERALD_SUB_PONG,          /* answer to herald_sub_ping(id) */
    HERALD_SUB_CLOSING,       /* the server is closing: code = its reason, message */
    HERALD_SUB_GONE,          /* channel's subscription ended: a trim removed what was
                                 next (seq = the first seq left) or the channel was
                                 deleted (epoch = its deletes so far); add it again,
                                 from seq - 1 or 0, to go on */
};

/* One event. Pointers are borrowed for the callback only; absent ones are
 * NULL. */
struct herald_sub_event {
    enum herald_sub_event_type type;
    const char *channel; /* the channel concerned */
    const char *id;      /* the operation's id (append, ping, subscribe) */
    const char *nonce;   /* ACK and append ERROR: the append's nonce */
    uint64_t seq;        /* ACK: the assigned seq; SUBSCRIBED: head */
    uint64_t ts_us;      /* ACK: the assigned ts */
    bool duplicate;      /* ACK: an earlier attempt had written it */
    const char *code;    /* ERROR: the server's code; CLOSING: its reason */
    const char *message; /* ERROR, CLOSING, DISCONNECTED: details */
    int rv;              /* ERROR: the code as HD_E* (HD_EUNKNOWN for
                            outcome_unknown, HD_EUNAVAIL for unavailable,
                            overloaded, shutting_down: retry with the same
                            nonce); DISCONNECTED: why */
    uint64_t epoch;      /* SUBSCRIBED, GONE: the channel's epoch */
};

/* Called per event. Return 0 to continue; any other value stops
 * herald_sub_run() / herald_sub_process() as herald_message_cb does. */
typedef int (*herald_sub_event_cb)(void *arg, const struct herald_sub_event *ev);

/* Creates a subscription to c's server (URL and timeouts are copied: c is
 * not used afterwards). on_message gets every message of every channel;
 * on_event (may be NULL) everything else. Does not connect. HD_ENOMEM. */
int herald_sub_open(struct herald_sub **out, const struct herald_client *c,
                    herald_message_cb on_message, herald_sub_event_cb on_event, void *arg);

/* Closes the connection and frees s (NULL is fine). */
void herald_sub_close(struct herald_sub *s);

/* Details of the last failure or disconnection (never NULL, maybe ""). */
const char *herald_sub_errmsg(const struct herald_sub *s);

/* Subscribes channel from after_seq (0: the whole history; HERALD_SUB_NOW:
 * what commits from now on). Sent now if connected, else on connect; many
 * adds in a row go out as few frames. HD_EINVAL (bad channel), HD_EEXIST
 * (already added), HD_EBUSY (being removed), HD_ENOMEM. */
int herald_sub_add(struct herald_sub *s, const char *channel, uint64_t after_seq);

/* The same for a position kept from an earlier subscription (say, across a
 * restart of the program): after_seq is a seq of epoch (herald_sub_epoch,
 * or a SUBSCRIBED event's), so a delete of the channel since then ends in
 * HERALD_SUB_GONE instead of a start at that seq of the new epoch. A node
 * that has not applied that delete yet (a follower behind) answers
 * epoch_ahead: the first such answer comes as a HERALD_SUB_ERROR event
 * (rv HD_EUNAVAIL), and the channel is asked for again after a backoff
 * (backoff_initial_ms, doubling to backoff_max_ms) until it is subscribed
 * or removed; a reconnect asks at once. */
int herald_sub_add_epoch(struct herald_sub *s, const char *channel, uint64_t after_seq,
                         uint64_t epoch);

/* Unsubscribes channel; no message of it is delivered after this call.
 * HD_ENOTFOUND if it was not added. */
int herald_sub_remove(struct herald_sub *s, const char *channel);

/* *last_seq = the seq of the last message of channel delivered (or the
 * start position; HERALD_SUB_NOW while a "now" start is not known yet).
 * HD_ENOTFOUND if the channel is not subscribed. */
int herald_sub_position(const struct herald_sub *s, const char *channel, uint64_t *last_seq);

/* *epoch = the epoch of channel's position (keep it beside the seq).
 * HD_ENOTFOUND if not subscribed, HD_EBUSY while not known yet (before its
 * SUBSCRIBED event, unless added with herald_sub_add_epoch). */
int herald_sub_epoch(const struct herald_sub *s, const char *channel, uint64_t *epoch);

/* Number of channels added and not removed. */
size_t herald_sub_channel_count(const struct herald_sub *s);

/* Appends len bytes of payload to channel over the WebSocket. id (1-128
 * bytes; NULL: generated) comes back in the ACK or ERROR event; nonce NULL
 * generates one. Payloads that are valid UTF-8 go as "payload", others as
 * "payload_b64". The answer arrives later as an event; until then the
 * append is re-sent after every reconnect. HD_EINVAL (bad channel, id or
 * nonce), HD_EEXIST (id already in flight), HD_ENOMEM. */
int herald_sub_append(struct herald_sub *s, const char *id, const char *channel,
                      const void *payload, size_t len, const char *nonce);

/* Sends {"type":"ping","id":id} (id may be NULL) if connected: a PONG
 * event follows. HD_EUNAVAIL when not connected. */
int herald_sub_ping(struct herald_sub *s, const char *id);

/* Appends sent and not yet answered. */
size_t herald_sub_appends_in_flight(const struct herald_sub *s);

/*
 * Blocking: connects (and reconnects with backoff, as herald_tail() does)
 * and processes until a callback returns non-zero (returns 0), timeout_ms
 * passes (returns 0; -1 waits forever) or a permanent error: HD_ECORRUPT
 * (the server broke the protocol or skipped or repeated a seq), HD_EINVAL /
 * HD_ENOTFOUND (the handshake was refused with 4xx), HD_EUNAVAIL (no
 * connection for retry_deadline_ms), HD_ENOMEM.
 */
int herald_sub_run(struct herald_sub *s, int timeout_ms);

/* Non-blocking: starts a connection (closing any current one). 0, or
 * HD_EUNAVAIL when the name does not resolve or no socket can be made. */
int herald_sub_connect(struct herald_sub *s);

/* The connection's socket, or -1 when there is none. It changes on every
 * connect. */
int herald_sub_fd(const struct herald_sub *s);

/* What herald_sub_process() waits for: HERALD_SUB_WANT_READ and/or
 * HERALD_SUB_WANT_WRITE; 0 when there is no connection. */
int herald_sub_want(const struct herald_sub *s);

/* Milliseconds until herald_sub_process() must run even without I/O (a
 * handshake deadline, a keep-alive ping, an idle timeout); -1 if none. */
int herald_sub_timeout_ms(const struct herald_sub *s);

/*
 * Non-blocking: reads and handles whatever is readable, sends whatever is
 * queued and writable, checks deadlines. Returns 0 (the connection goes on,
 * or a callback stopped processing: call again later), 1 when the
 * connection was lost (an HERALD_SUB_DISCONNECTED event said why; call
 * herald_sub_connect() after herald_sub_backoff_ms()), or a permanent error
 * as herald_sub_run() lists (the subscription is then unusable).
 */
int herald_sub_process(struct herald_sub *s);

/* Delay before the next reconnect attempt: exponential backoff with jitter
 * (backoff_initial_ms .. backoff_max_ms), reset by a successful handshake. */
int herald_sub_backoff_ms(struct herald_sub *s);

#endif
