/* SPDX-License-Identifier: Apache-2.0 */
/* Peer transport: one multiplexed TCP connection per pair of nodes, carrying tagged frames. */
#ifndef CONS_TRANSPORT_H
#define CONS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

/*
 * Frames (little-endian; full description in docs/wire-format.md):
 *
 *   u32 magic (CONS_FRAME_MAGIC), u8 version (CONS_FRAME_VERSION), u8 kind,
 *   u16 shard, u32 payload length, u32 crc32c, payload
 *
 * The crc32c covers the first 12 header bytes and then the payload. Kind 0
 * is the transport's own (control frames: the shard field says HELLO or
 * PING); callers use kinds 1..255, opaque to the transport.
 *
 * Connections. Exactly one connection per pair: the node with the lower id
 * dials the node with the higher id, and the connection carries frames both
 * ways. The dialer sends HELLO (cluster id, its id, the id it expects);
 * the acceptor checks version, cluster id and that the sender has a lower
 * id, answers with its own HELLO, and from then on both sides send queued
 * frames. A dialer that is not a peer yet (a node joining, or one that knows
 * the new membership first) is learned: it becomes a peer without address
 * until set_peer() configures it, and is forgotten when its link drops (at
 * most 64 such peers). A newer valid connection from a peer replaces the
 * older one (the peer restarted before we noticed). A refused
 * handshake, a frame with a bad magic, version, checksum or length, a read
 * or write error, or CONS_TRANSPORT_IDLE_MS without any frame closes the
 * connection (logged); the dialer then redials after a backoff of 50 ms
 * doubling to 2 s, with jitter, reset by a completed handshake. Each side
 * sends a PING after a second without sending anything, so an idle link
 * stays alive and a dead one is noticed.
 *
 * Queues. Every peer has its own bounded queue (bytes of frames not yet
 * written to the socket, in flight included). A frame that would overflow
 * it is dropped and counted (Raft retransmits); a frame is always accepted
 * into an empty queue, so the largest frame never becomes undeliverable.
 * Frames to a peer that is not connected wait in its queue and are written
 * once the connection is up; frames that were in flight when a connection
 * broke are written again on the next one, so a peer may see duplicates,
 * never a reordering. A slow or dead peer only fills its own queue.
 *
 * TLS (cons_transport_options.tls): every connection, dialed or
 * accepted, first completes a TLS 1.3 handshake in which each side checks
 * the other's certificate against the cluster CA; HELLO and every frame
 * then travel inside it. A link refused there (no certificate, another
 * CA, expired; a plaintext peer on a TLS transport or a TLS peer on a
 * plaintext one) is logged with the address and the reason and counted
 * (cons_transport_tls_refused). Without TLS, bytes go to and from the
 * socket as before: one branch per read and per write.
 *
 * Threading: everything runs on the loop's thread; callbacks may call back
 * into the transport (send, set_peer, remove_peer, even close).
 */

#define CONS_FRAME_MAGIC 0x46504448u          /* "HDPF" in little-endian bytes */
#define CONS_FRAME_VERSION 1
#define CONS_FRAME_HEADER_SIZE 16u
#define CONS_FRAME_PAYLOAD_MAX (64u << 20)    /* = CONS_MSG_SIZE_MAX */
#define CONS_TRANSPORT_KIND_MIN 1             /* first kind free for callers */
#define CONS_TRANSPORT_IDLE_MS 5000u          /* silence that closes a link */

struct cons_transport;

struct cons_transport_options {
    uv_loop_t *loop;
    uint64_t node_id;            /* > 0 */
    const char *cluster_id;      /* 32 hex chars; copied */
    const char *listen_addr;     /* "127.0.0.1:7401", "[::1]:7401"; port 0 picks one */
    size_t peer_queue_bytes_max; /* per peer; 0 = 64 MiB */
    /* Mutual TLS on every link, both ways (common/hd_tls.h,
     * hd_tls_ctx_mutual); the transport takes its own reference. NULL:
     * plaintext. */
    struct hd_tls_ctx *tls;
};

/* A frame from a peer that completed the handshake. `payload` is valid only
 * during the call (it points into the connection's read buffer). */
typedef void (*cons_transport_recv_cb)(void *arg, uint64_t from_id, uint8_t kind,
                                       uint16_t shard, const uint8_t *payload,
                                       size_t len);

/* Starts listening. Returns 0 with *out set, or HD_EINVAL (bad option,
 * address or cluster id), HD_ENOMEM, or the error of bind/listen; errmsg
 * then says why. cb(arg, ...) is called for every received frame until
 * cons_transport_close() is called. */
int cons_transport_init(struct cons_transport **out, const struct cons_transport_options *o,
                        cons_transport_recv_cb cb, void *arg, char *errmsg,
                        size_t errmsg_len);

/* The TCP port the transport listens on (useful after port 0). */
int cons_transport_port(const struct cons_transport *t);

/* Adds a peer or changes its address ("ip:port", "[ip6]:port"; numeric
 * only, no DNS). If this node dials the peer (lower id), a changed address
 * drops the current connection and dials the new one; queued frames stay.
 * Returns 0, HD_EINVAL (id 0, own id, bad address) or HD_ENOMEM. */
int cons_transport_set_peer(struct cons_transport *t, uint64_t id, const char *addr);

/* Forgets a peer (configured or learned): closes its connection and frees
 * its queued frames. A no-op for an unknown id. */
void cons_transport_remove_peer(struct cons_transport *t, uint64_t id);

/* Queues one frame whose payload is the concatenation of iov[0..n): the
 * bytes are copied, so the iovecs may be reused once this returns. kind
 * must be >= CONS_TRANSPORT_KIND_MIN. Returns 0 (queued, not yet sent),
 * HD_ENOTFOUND (unknown peer), HD_ETOOBIG (payload > CONS_FRAME_PAYLOAD_MAX),
 * HD_EBUSY (peer queue full: frame dropped and counted), HD_ENOMEM or
 * HD_ESHUTDOWN (transport closing). */
int cons_transport_send(struct cons_transport *t, uint64_t to_id, uint8_t kind,
                        uint16_t shard, const struct iovec *iov, unsigned n);

struct cons_peer_stats {
    bool connected;           /* handshake done, frames flow */
    uint64_t frames_sent;     /* caller frames written to the socket */
    uint64_t frames_received; /* caller frames delivered to recv_cb */
    uint64_t frames_dropped;  /* sends refused with HD_EBUSY */
    uint64_t bytes_queued;    /* frame bytes queued or in flight now */
    uint64_t reconnects;      /* handshakes completed after the first */
};

/* Returns 0 with *out filled, or HD_ENOTFOUND. */
int cons_transport_peer_stats(const struct cons_transport *t, uint64_t id,
                              struct cons_peer_stats *out);

/* Replaces the TLS context (a reload): new connections use ctx, open ones
 * keep theirs. The transport takes its own reference. Only on a transport
 * started with TLS (ctx != NULL). */
void cons_transport_set_tls(struct cons_transport *t, struct hd_tls_ctx *ctx);

/* Links refused at the TLS handshake so far. */
uint64_t cons_transport_tls_refused(const struct cons_transport *t);

/* Closes every connection, timer and the listener, frees every queued
 * frame, then calls cb(arg) (may be NULL) from the loop; t is freed before
 * cb runs. No recv_cb is called after this returns. */
void cons_transport_close(struct cons_transport *t, void (*cb)(void *arg), void *arg);

/* ---------------------------- internal: frame codec, for tests and fuzzing */

struct cons__frame_hdr {
    uint8_t version;
    uint8_t kind;
    uint16_t shard;
    uint32_t len; /* payload bytes */
    uint32_t crc;
};

/* Writes the header of a frame whose `len` payload bytes already follow it
 * in `frame` (the checksum covers them). */
void cons__frame_seal(uint8_t *frame, uint8_t kind, uint16_t shard, uint32_t len);

/* Parses a header (CONS_FRAME_HEADER_SIZE bytes available): 0, or
 * HD_ECORRUPT for a bad magic or a length above CONS_FRAME_PAYLOAD_MAX.
 * The version is returned, not judged: the caller logs unknown ones. */
int cons__frame_decode_header(const uint8_t *hdr, struct cons__frame_hdr *out);

/* Checks the checksum of a whole frame (header then h->len payload bytes,
 * contiguous): 0 or HD_ECORRUPT. */
int cons__frame_verify(const uint8_t *frame, const struct cons__frame_hdr *h);

/* The transport's own frames: kind 0, the shard field tells which. */
#define CONS__KIND_CONTROL 0
enum { CONS__CTL_HELLO = 1, CONS__CTL_PING = 2 };

/* HELLO payload: 16 bytes cluster id, u64 sender id, u64 id the sender
 * expects to reach (0: any). */
#define CONS__HELLO_SIZE 32u
struct cons__hello {
    uint8_t cluster[16];
    uint64_t from_id;
    uint64_t to_id;
};
void cons__hello_encode(uint8_t *payload, const struct cons__hello *h);
/* 0, or HD_ECORRUPT for a wrong length or a zero sender id. */
int cons__hello_decode(const uint8_t *payload, size_t len, struct cons__hello *out);

/* "0123...ef" (32 hex chars) to 16 bytes: 0 or HD_EINVAL. */
int cons__parse_cluster_id(const char *hex, uint8_t out[16]);

/* "1.2.3.4:5" or "[::1]:5" (numeric, port <= 65535): 0 or HD_EINVAL. */
int cons__parse_addr(const char *s, struct sockaddr_storage *out);

/* Formats an IPv4/IPv6 socket address as "ip:port" / "[ip]:port". */
void cons__addr_str(const struct sockaddr *sa, char *buf, size_t len);

#endif
