/* SPDX-License-Identifier: Apache-2.0 */
/* The fan-out engine's private state, shared by fanout.c (channels, messages,
 * windows) and fanout_conn.c (connections, subscribers, catch-up). */
#ifndef API_V1_FANOUT_INTERNAL_H
#define API_V1_FANOUT_INTERNAL_H

#include "fanout.h"
#include "hd_ids.h"

/* One message, shared by every connection that writes it. */
struct fan_msg {
    uint32_t refs;
    uint64_t seq;
    uint64_t epoch;               /* the channel's, for one-channel SSE ids */
    char *json;                   /* the message object (fan_message_json) */
    size_t json_len;
    uint8_t *enc[FAN_ENC_N];      /* wire forms, built on first use */
    size_t enc_len[FAN_ENC_N];
};

struct fan_sub;

/* A channel with subscribers, or with a window of recent messages. */
struct fan_channel {
    struct fan_channel *hnext;    /* in the engine's hash bucket */
    struct fan_channel *lru_prev, *lru_next; /* windowed channels, most recent first */
    uint64_t hash;
    char id[HD_CHANNEL_MAX];
    size_t len;
    uint64_t head;                /* the last seq known committed on this node */
    struct fan_sub *live;         /* live group (doubly linked through live_prev/next) */
    size_t n_subs;                /* live and behind */
    struct fan_msg **win;         /* ring of consecutive seqs; NULL until first use */
    uint32_t win_cap;             /* slots in win */
    uint32_t win_start, win_n;    /* ring index of the oldest, count */
    uint64_t win_first;           /* seq of the oldest */
    size_t win_bytes;
    uint64_t idle_since_ms;       /* when its last subscriber left */
    uint64_t epoch;               /* the channel's deletes as applied on this node */
};

struct fan_sub {
    struct fan_conn *conn;
    struct fan_channel *ch;
    uint64_t last;                /* seq of the last message given */
    uint64_t start;               /* position asked for (multi-SSE ids) */
    uint64_t epoch;               /* the epoch its positions are of */
    uint32_t index;               /* number in a multi-SSE request */
    bool live;                    /* in ch->live, else in conn's behind list */
    bool moved;                   /* in conn's moved list (multi-SSE ids) */
    bool gone;                    /* ended by a trim or delete: in neither list */
    struct fan_sub *prev, *next;  /* in ch->live or conn->behind */
    struct fan_sub *hnext;        /* in conn's table, by channel */
};

struct fan {
    uv_loop_t *loop;
    struct log_store *log;
    struct fan_limits limits;
    struct fan_stats stats;
    struct fan_channel **buckets;
    size_t n_buckets;             /* a power of two */
    struct fan_channel *lru_head, *lru_tail;
    struct fan_conn *dirty;       /* connections with frames or catch-up to do, */
    struct fan_conn *dirty_tail;  /* in the order they became so */
    struct fan_conn *lingering;   /* connections waiting out the linger, */
    struct fan_conn *lingering_tail; /* in the order they were written */
    uint64_t linger_ns;           /* least time between two writes of a connection */
    uint64_t busy_ns;             /* time in write rounds since busy_since */
    uint64_t busy_since;
    uint64_t idle_at;             /* uv_metrics_idle_time at busy_since */
    uv_timer_t linger_timer;      /* wakes the first lingering connection */
    uv_check_t flusher;           /* after the poll phase: catch up, then write */
    uv_idle_t spinner;            /* keeps the loop from blocking while work remains */
    unsigned open_handles;
};

/* ---- fanout.c, for fanout_conn.c ---- */

/* The linger for the next window, from this one's share of the loop
 * thread in write rounds (busy) and in epoll (idle); fanout.c says why. */
uint64_t fan__linger_next(uint64_t linger_ns, double busy, double idle);

/* The channel's entry, created (head from state) when create is set. */
struct fan_channel *fan__channel_get(struct fan *f, const char *id, size_t len, bool create);
/* Frees the entry if nothing holds it any more. */
void fan__channel_maybe_free(struct fan *f, struct fan_channel *ch);
/* The window's message with this seq, or NULL. */
struct fan_msg *fan__window_get(const struct fan_channel *ch, uint64_t seq);
/* A new message (refs = 1) for a message read or committed. */
struct fan_msg *fan__msg_new(const struct fan_channel *ch, const struct log_message *m);
/* Its wire form enc, built on first use; NULL on allocation failure. */
const uint8_t *fan__msg_enc(struct fan_msg *msg, enum fan_enc enc, size_t *len);
void fan__msg_unref(struct fan_msg *msg);
/* Puts the connection on the list of this turn's work. */
void fan__mark_dirty(struct fan_conn *fc);

/* ---- fanout_conn.c, for fanout.c ---- */

/* Moves a live subscriber to its connection's catch-up list. */
void fan__fall_behind(struct fan_sub *s);
/* A committed message for a live subscriber. */
void fan__deliver_live(struct fan_sub *s, struct fan_msg *msg);
/* This turn's work of every dirty connection: catch up, then write. */
void fan__run_dirty(struct fan *f);
/* The lingering connections whose time has come are dirty again. */
void fan__linger_release(struct fan *f);

#endif
