/* SPDX-License-Identifier: Apache-2.0 */
/* The fan-out engine: committed messages to every subscriber, encoded once. */
#ifndef API_V1_FANOUT_H
#define API_V1_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http_server.h"
#include "log.h"

/*
 * A subscriber is one channel of one delivery connection (an SSE tail, a
 * multi-channel SSE stream, a WebSocket). It remembers only `last`, the seq
 * of the last message it was given, and it is in one of two places:
 *
 *  - live: in its channel's live group. A commit (fan_on_commit, called as
 *    the entry applies) is encoded once, per wire format, into a
 *    reference-counted message that every live subscriber's connection
 *    writes from the same memory. A live subscriber takes a message only if
 *    its seq is last + 1; otherwise (a gap: the node installed a snapshot)
 *    it falls behind.
 *  - behind: in its connection's catch-up list. It reads what follows
 *    `last` from the channel's window of recent messages or, below the
 *    window, from state, a page at a time while its connection has room,
 *    and joins the live group once last reaches the channel's head.
 *
 * Apply, commit notifications and catch-up all run on the loop thread, so
 * the head a catch-up reads up to is exactly the seq before the next
 * commit notification: joining the live group can neither skip nor repeat.
 *
 * Slow consumers: a connection whose unwritten bytes pass soft_bytes takes
 * no more live messages; its live subscribers fall behind and catch up at
 * the connection's pace, so a slow client costs bounded memory and never
 * slows appends or other subscribers. Frames that must go out (acks,
 * errors) are always queued; past hard_bytes the owner is told to close the
 * connection.
 *
 * Each connection's frames of one loop turn are written with one writev
 * after the poll phase. A write costs about the same whether it carries one
 * message or ten (the syscall and, on the sender, the TCP path), so when
 * write rounds take more than a share of the loop (fanout_conn.c) a
 * connection waits a little after each write (the linger, a few ms at
 * most) and the next write carries everything committed meanwhile; frames
 * of the owner's (acks, errors) never wait.
 */

struct fan;
struct fan_conn;

/* Wire formats of a message, each built at most once per message. */
enum fan_enc {
    FAN_ENC_SSE_EVENT, /* "id: SEQ\nevent: message\ndata: JSON\n\n" (one-channel tails) */
    FAN_ENC_SSE_DATA,  /* "event: message\ndata: JSON\n\n" (multi-channel: id per connection) */
    FAN_ENC_WS,        /* a WebSocket text frame of {"type":"message",...} */
    FAN_ENC_WS_BINARY, /* the same JSON in a binary frame (?frames=binary) */
    FAN_ENC_N,
};

struct fan_limits {
    size_t window_bytes_max;  /* all channels' windows together; 64 MiB */
    uint32_t window_msgs_max; /* per channel; 1024 */
    size_t conn_soft_bytes;   /* unwritten bytes above which live delivery pauses; 256 KiB */
    size_t conn_hard_bytes;   /* unwritten bytes above which the owner closes; 16 MiB */
    size_t subs_max;          /* subscriptions on the node; 4 000 000 */
    size_t conn_subs_max;     /* subscriptions per connection; 100 000 */
};

struct fan_stats {
    uint64_t deliveries_live;    /* messages written from the live group */
    uint64_t deliveries_catchup; /* messages written by catch-up */
    uint64_t catchup_window;     /* of those, from the window */
    uint64_t catchup_state;      /* of those, read from state */
    uint64_t fell_behind;        /* live subscribers that fell behind */
    uint64_t slow_closed;        /* connections closed over the hard bound */
    uint64_t gone;               /* subscriptions ended by a trim or delete */
    uint64_t encoded;            /* messages encoded (shared by their subscribers) */
    uint64_t subs_refused;       /* subscriptions refused by a limit */
    uint64_t writes;             /* connection writes (each one writev) */
    uint64_t linger_ns;          /* least time between two writes of a connection now */
    size_t subs;                 /* subscriptions now */
    size_t conns;                /* delivery connections now */
    size_t channels;             /* channels with subscribers or a window */
    size_t window_bytes;         /* bytes held by windows */
};

/* What a delivery connection's owner provides. */
struct fan_conn_ops {
    enum fan_enc enc;
    /* Multi-channel SSE: precede each message with an id line holding the
     * position of every subscriber that moved (index:seq). */
    bool sse_ids;
    /* The connection is over its hard bound: close it (not from inside). */
    void (*on_overflow)(struct fan_conn *fc, void *arg);
    /* Catch-up failed to read state: close the connection (not from inside). */
    void (*on_error)(struct fan_conn *fc, int rv, void *arg);
    /* A trim removed what the subscription of channel was to deliver next,
     * or the channel was deleted: its subscription has ended (what it had
     * delivered stays). The owner may queue a frame saying so
     * (fan_conn_write) and must not free fc here; it returns 0 to go on
     * with the connection's other channels, or an error that ends the
     * connection through on_error once what is queued is written. A
     * multi-SSE connection keeps the ended subscription in its ids, so a
     * resume with them says the same again. */
    int (*on_gone)(struct fan_conn *fc, const char *channel, size_t len, void *arg);
};

int fan_init(struct fan **out, uv_loop_t *loop, struct log_store *log,
             const struct fan_limits *limits);
/* Frees the engine; every connection must be freed before. */
void fan_close(struct fan *f);
void fan_get_stats(const struct fan *f, struct fan_stats *out);

/* A message committed (called from the node's apply, in seq order per
 * channel). m is lent for the call. */
void fan_on_commit(struct fan *f, const char *channel, size_t len, const struct log_message *m);

/* State moved without commits (a snapshot was installed): every channel
 * whose head moved sends its live subscribers to catch up. */
void fan_on_restore(struct fan *f);

/* A trim or delete of the channel was applied: the window is dropped, and
 * after a delete every subscriber of the channel is behind and its catch-up
 * answers HD_EGONE, which ends its subscription (on_gone; never a silent
 * skip). */
void fan_on_command(struct fan *f, const char *channel, size_t len, bool deleted);

/* The JSON object of a message in reads and deliveries (hd_malloc'd,
 * NUL-terminated), or NULL. */
char *fan_message_json(const char *channel, size_t channel_len, const struct log_message *m,
                       size_t *out_len);

/* A new delivery connection writing to http (a stream or an upgraded
 * connection, owned by the caller). */
struct fan_conn *fan_conn_new(struct fan *f, struct api_http_conn *http,
                              const struct fan_conn_ops *ops, void *arg);
/* Drops its subscriptions and unwritten frames. */
void fan_conn_free(struct fan_conn *fc);

#define FAN_NOW UINT64_MAX

/* Subscribes the channel after seq `after` (FAN_NOW: after its head now)
 * of epoch `epoch` (FAN_NOW: the channel's epoch on this node now; another
 * ends the subscription at once, through on_gone).
 * *head gets the channel's head on this node. For multi-channel SSE ids:
 * index is the channel's number in the request's list and listed its
 * position there (FAN_NOW unless a seq); a channel appears in the ids once
 * its position differs from listed. Messages follow from
 * the next loop turn, never from inside this call, so the owner can first
 * write its own "subscribed" frame. HD_EEXIST: already subscribed;
 * HD_ERANGE: a subscription limit; HD_ENOMEM. */
int fan_conn_subscribe(struct fan_conn *fc, const char *channel, size_t len, uint64_t after,
                       uint64_t epoch, uint64_t listed, uint32_t index, uint64_t *head);

/* A position in SSE ids: "SEQ" in epoch 0, "SEQ@EPOCH" after a delete, so
 * that a resume with Last-Event-ID cannot take a seq of one epoch for the
 * same seq of another (api_sse_position_decode reads it back). */
#define FAN_SSE_POSITION_MAX 42
void fan_sse_position(char *buf, size_t size, uint64_t seq, uint64_t epoch);
/* Multi-channel SSE: queues an event with only an id (not dispatched by
 * EventSource, but remembered as its Last-Event-ID). */
int fan_conn_write_ids(struct fan_conn *fc);
/* HD_ENOTFOUND if not subscribed. Nothing of it is written after the
 * frames already queued. */
int fan_conn_unsubscribe(struct fan_conn *fc, const char *channel, size_t len);
size_t fan_conn_subs(const struct fan_conn *fc);

/* Queues a frame of the owner's (takes the hd_malloc'd buf) after
 * everything queued before. */
int fan_conn_write(struct fan_conn *fc, uint8_t *buf, size_t len);
/* Writes what is queued now (before the owner closes, say). */
void fan_conn_flush(struct fan_conn *fc);
/* The owner's connection drained: catch up on what fell behind. */
void fan_conn_drained(struct fan_conn *fc);

#endif
