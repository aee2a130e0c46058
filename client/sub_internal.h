/* SPDX-License-Identifier: Apache-2.0 */
/* libherald subscriptions (struct herald_sub) internals, shared between
 * sub*.c, ws_handshake.c and their unit tests. */
#ifndef HERALD_SUB_INTERNAL_H
#define HERALD_SUB_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "client_internal.h"

/* ------------------------------------------------------------ handshake */

#define HERALD__WS_KEY_LEN 24    /* base64 of 16 random bytes */
#define HERALD__WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */
#define HERALD__WS_HEAD_MAX 8192 /* cap on the handshake answer's head */

/* Fills key (size > HERALD__WS_KEY_LEN) with a fresh Sec-WebSocket-Key. */
int herald__ws_key(char *key, size_t size);

/* The Sec-WebSocket-Accept a server must answer to key (RFC 6455 4.2.2:
 * base64 of SHA-1 of key + the fixed GUID), NUL-terminated into accept
 * (size > HERALD__WS_ACCEPT_LEN). */
int herald__ws_accept(const char *key, char *accept, size_t size);

/* Appends the upgrade request for GET path (the client's base path +
 * /v1/subscribe?frames=binary) to out. */
int herald__ws_request(struct herald__buf *out, const char *host, const char *port,
                       const char *path, const char *key, const char *token);

/* Checks the answer head (the bytes up to and including the blank line).
 * 0 when it is a 101 upgrade with the right accept; else *status holds the
 * HTTP status (0 if unparsable), why[] says what is wrong, and the code is
 * HD_ECORRUPT (not HTTP, bad accept), or the mapped 4xx/5xx code. */
int herald__ws_check_answer(const char *head, size_t len, const char *key, int *status,
                            char *why, size_t why_size);

/* --------------------------------------------------------------- frames */

enum herald__frame_type {
    HERALD__F_UNKNOWN = 0, /* a type this client does not know: ignored */
    HERALD__F_SUBSCRIBED,
    HERALD__F_MESSAGE,
    HERALD__F_UNSUBSCRIBED,
    HERALD__F_ACK,
    HERALD__F_ERROR,
    HERALD__F_PONG,
    HERALD__F_CLOSING,
    HERALD__F_GONE,
};

/* One decoded server frame. Strings borrow from root (or scratch, for a
 * decoded payload_b64) until herald__frame_free(). */
struct herald__frame {
    enum herald__frame_type type;
    json_t *root;            /* the parsed object, owned */
    struct herald_message msg; /* MESSAGE */
    const char *channel;     /* every type that names one */
    const char *id;          /* ACK, ERROR, PONG (may be NULL) */
    const char *code;        /* ERROR code, CLOSING reason */
    const char *message;     /* ERROR, CLOSING (may be "") */
    uint64_t seq;            /* ACK seq, SUBSCRIBED head, GONE first_seq */
    uint64_t epoch;          /* GONE, SUBSCRIBED (if has_epoch) */
    bool has_epoch;          /* SUBSCRIBED: the server said the epoch */
    uint64_t ts_us;          /* ACK */
    bool duplicate;          /* ACK */
};

/* Decodes one text frame. HD_ECORRUPT with why[] set when it is not a JSON
 * object, has no "type", or a known type misses or mistypes a field;
 * HD_ENOMEM. On any return f may be passed to herald__frame_free(). */
int herald__frame_decode(const char *text, size_t len, struct herald__buf *scratch,
                         struct herald__frame *f, char *why, size_t why_size);
void herald__frame_free(struct herald__frame *f);

/* The hot path of herald__frame_decode: a valid "message" frame of the
 * simplest form (hd_json_flat.h), decoded without a JSON tree. false for
 * anything else, which herald__frame_decode then reads with jansson; what
 * this takes, the jansson path decodes to the same message. */
bool herald__frame_scan_message(const char *text, size_t len, struct herald__buf *scratch,
                                struct herald__frame *f);

/* The HD_E* code of a server error code ("outcome_unknown": HD_EUNKNOWN...). */
int herald__frame_error_rv(const char *code);

/* Appends {"type":"append",...} for one append to out. HD_EINVAL when the
 * nonce or id is not valid. */
int herald__frame_append(struct herald__buf *out, const char *id, const char *channel,
                         const char *nonce, const void *payload, size_t len);

/* ------------------------------------------------------ string hash map */

/* A node embedded in what the map holds, keyed by bytes it points at. */
struct herald__snode {
    struct herald__snode *next; /* bucket chain */
    uint64_t hash;              /* of the key */
    const char *key;            /* NUL-terminated, owned by the embedder */
    size_t key_len;
};

struct herald__smap {
    struct herald__snode **buckets; /* power-of-two count, or NULL */
    size_t nbuckets;
    size_t count;
};

struct herald__snode *herald__smap_get(const struct herald__smap *m, const char *key,
                                       size_t len);
/* Inserts n (its key set, not already present). HD_ENOMEM if growing failed. */
int herald__smap_put(struct herald__smap *m, struct herald__snode *n);
void herald__smap_del(struct herald__smap *m, struct herald__snode *n);
void herald__smap_free(struct herald__smap *m);

/* ----------------------------------------------------- the subscription */

enum herald__chan_state {
    HERALD__CH_WANTED,      /* to be subscribed on the next write */
    HERALD__CH_SENT,        /* subscribe sent, "subscribed" not seen yet */
    HERALD__CH_ACTIVE,      /* subscribed */
    HERALD__CH_REMOVING,    /* removed by the user, unsubscribe to send */
    HERALD__CH_REMOVE_SENT, /* unsubscribe sent, "unsubscribed" not seen yet */
};

struct herald__chan {
    struct herald__snode node;  /* in herald_sub.chans, key = name */
    struct herald__chan *dirty_next; /* in the to-send list while dirty */
    uint64_t last_seq;          /* last seq delivered, or the start position */
    bool now;                   /* started at "now" and no head seen yet */
    bool epoch_known;           /* "subscribed" (or the user) said which epoch
                                   last_seq is of */
    uint64_t epoch;             /* that epoch: a resume says it */
    bool dirty;                 /* in the to-send list */
    uint8_t state;              /* enum herald__chan_state */
    uint8_t ahead_tries;        /* epoch_ahead answers since "subscribed" */
    int64_t ahead_retry_ms;     /* after epoch_ahead: subscribe again then
                                   (WANTED, not in the to-send list); 0: no */
    char name[];                /* NUL-terminated */
};

struct herald__pending {
    struct herald__snode node;    /* in herald_sub.appends, key = id */
    struct herald__pending *prev; /* send order, for resending in order */
    struct herald__pending *next;
    char *frame;                  /* the append frame, resent as is */
    size_t frame_len;
    char channel[HERALD_CHANNEL_MAX + 1];
    char nonce[HERALD_NONCE_MAX + 1];
    char id[];                    /* NUL-terminated */
};

/* A received frame kept because a callback stopped processing. */
struct herald__held {
    struct herald__held *next;
    size_t len;
    char text[];
};

enum herald__sub_state {
    HERALD__S_IDLE,       /* no connection */
    HERALD__S_CONNECTING, /* TCP connect in progress */
    HERALD__S_HANDSHAKE,  /* upgrade request being sent / answer awaited */
    HERALD__S_OPEN,       /* WebSocket frames flow */
    HERALD__S_FAILED,     /* a permanent error: unusable */
};

struct herald_sub {
    struct herald_client cfg;      /* URL and timeouts (cfg.fd unused) */
    herald_message_cb on_message;
    herald_sub_event_cb on_event;
    void *arg;
    int state;                     /* enum herald__sub_state */
    int fd;                        /* the connection, or -1 */
    struct herald__tls *tls;       /* wss://: fd's TLS session, or NULL */
    wslay_event_context_ptr ws;    /* framing, while OPEN */
    struct herald__buf io;         /* handshake bytes to send, then answer read */
    size_t io_off;                 /* bytes of io already sent */
    bool req_sent;                 /* the whole handshake request went out */
    struct herald__buf rest;       /* bytes read after the answer's head */
    size_t rest_off;               /* of rest, handed to wslay */
    char key[HERALD__WS_KEY_LEN + 1];
    struct herald__smap chans;     /* struct herald__chan by name */
    struct herald__chan *dirty_head; /* channels with a frame to send */
    struct herald__chan **dirty_tail;
    struct herald__smap appends;   /* struct herald__pending by id */
    struct herald__pending *app_head; /* in send order */
    struct herald__pending *app_tail;
    uint64_t next_id;              /* generated append ids */
    struct herald__held *held_head; /* frames received after a stop */
    struct herald__held **held_tail;
    struct herald__buf scratch;    /* decoded payload_b64 */
    struct herald__buf out;        /* frame being built */
    int64_t deadline_ms;           /* connect/handshake deadline */
    int64_t last_rx_ms;            /* last byte received while OPEN */
    bool ping_out;                 /* keep-alive ping sent, no byte since */
    bool stopped;                  /* a callback asked to stop */
    int attempt;                   /* reconnects since the last handshake */
    int64_t down_since_ms;         /* no open connection since then (0: open) */
    int64_t retry_at_ms;           /* herald_sub_run's next connect (0: none set) */
    int64_t ahead_at_ms;           /* earliest ahead_retry_ms of a channel (0: none) */
    int err;                       /* permanent error found while receiving */
    int lost;                      /* why the connection is being dropped */
    uint64_t max_frame;            /* refuse bigger server frames */
    char errmsg[512];
    struct sockaddr_storage addr;  /* resolved once */
    socklen_t addr_len;
    /* Test hook: makes the connection's socket instead of a TCP connect. */
    int (*connector)(struct herald_sub *s, void *arg);
    void *connector_arg;
};

/* Largest server frame accepted by default: the server's own limit at the
 * default --max-payload (1 MiB x 2 + 64 KiB) with room to spare. */
#define HERALD__SUB_FRAME_MAX ((uint64_t)4 << 20)

/* sub.c: handles one whole text frame. 0, or a permanent error (s->err). */
int herald__sub_on_text(struct herald_sub *s, const char *text, size_t len);
/* sub.c: queues every dirty channel's subscribe/unsubscribe as frames. */
int herald__sub_flush_ops(struct herald_sub *s);
/* sub.c: after a handshake, sends every channel and pending append again. */
int herald__sub_resume(struct herald_sub *s);
/* sub.c: a subscribe answered epoch_ahead waits, then goes again. */
void herald__sub_wait_ahead(struct herald_sub *s, struct herald__chan *ch);
/* sub.c: marks to send the channels whose epoch_ahead wait is over. */
void herald__sub_ahead_due(struct herald_sub *s);
/* sub_io.c: closes the connection, forgets its state (not the channels). */
void herald__sub_reset_conn(struct herald_sub *s);
/* sub.c: forgets an answered append. */
void herald__sub_pending_done(struct herald_sub *s, struct herald__pending *p);
/* sub.c: queues one text frame on the open connection. */
int herald__sub_queue(struct herald_sub *s, const char *text, size_t len);
/* sub.c: calls on_event (if set); returns its value. */
int herald__sub_event(struct herald_sub *s, const struct herald_sub_event *ev);
/* sub.c: sets errmsg and returns rv. */
int herald__sub_fail(struct herald_sub *s, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* sub_io.c: starts the handshake on an already connected socket (tests use
 * a socketpair). */
int herald__sub_attach(struct herald_sub *s, int fd);

#endif
