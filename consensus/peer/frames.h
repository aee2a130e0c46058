/* SPDX-License-Identifier: Apache-2.0 */
/* Peer frame kinds, and the one codec of herald's own frames (every kind but RAFT). */
#ifndef CONS_FRAMES_H
#define CONS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "command.h"  /* struct log_command: a forwarded trim, delete or policy */
#include "entry.h"    /* struct log_append: a forwarded append is the log's append */

/*
 * The transport carries (kind, shard, payload) opaquely. RAFT payloads are
 * raft messages (msg_codec.h); every other payload starts with u8 version
 * (1) and u64 id, then (little-endian; docs/wire-format.md):
 *
 *   FORWARD_REQ   u8 channel_len, channel, u8 nonce_len, nonce,
 *                 u32 payload_len, payload
 *   FORWARD_RESP  i32 status (0 or HD_E*), u64 seq, u64 ts, u8 duplicate;
 *                 answering a COMMAND_REQ: seq is the leader's Raft index
 *                 of the command's entry, ts and duplicate 0
 *   STATE_REQ     u64 min_applied                       (frame shard = shard)
 *   STATE_CHUNK   u32 seq, u8 flags (1 last, 2 error), chunk bytes to the end
 *   MEMBER_REQ    u8 op (1 add, 2 remove), u64 node, u8 address_len, address
 *   MEMBER_RESP   i32 status
 *   READ_REQ      nothing more                          (frame shard = shard)
 *   READ_RESP     i32 status, u64 applied index
 *   COMMAND_REQ   u8 kind (2 trim, 3 delete), u8 channel_len, channel,
 *                 u64 before_seq (trim: >= 1; delete: 0)  (answer: FORWARD_RESP)
 *                 or, for the cluster's retention policy: u8 kind (4),
 *                 u8 flags (0 set, 1 clear), u32 text_len, text (printable
 *                 ASCII, at most 16383 bytes; none for a clear)
 *   REPAIR_REQ    u64 old node (>= 1), u8 address_len, address (node/repair.c)
 *   REPAIR_RESP   i32 status, u64 new node (0 unless status is 0)
 *
 * The id pairs an answer with its request. Peers are trusted members of
 * the cluster, yet the decoder checks everything (exact length, version,
 * channel and nonce rules, flags, statuses) so that a bug or a corrupted
 * frame is dropped with a log line, never acted upon.
 */

enum {
    CONS_FRAME_RAFT = 1,
    CONS_FRAME_FORWARD_REQ = 2,   /* node/forward.c */
    CONS_FRAME_FORWARD_RESP = 3,
    CONS_FRAME_STATE_REQ = 4,     /* node/catchup.c */
    CONS_FRAME_STATE_CHUNK = 5,
    CONS_FRAME_MEMBER_REQ = 6,    /* node/membership.c */
    CONS_FRAME_MEMBER_RESP = 7,
    CONS_FRAME_READ_REQ = 8,      /* node/read_barrier.c */
    CONS_FRAME_READ_RESP = 9,
    CONS_FRAME_COMMAND_REQ = 10,  /* node/forward.c: a forwarded trim, delete or policy */
    CONS_FRAME_REPAIR_REQ = 11,   /* node/repair.c: a damaged node asks to be replaced */
    CONS_FRAME_REPAIR_RESP = 12,
};

#define CONS_FRAME_VERSION 1
#define CONS_FRAME_ADDRESS_MAX 63u    /* bytes of a member's peer address */
/* The encoded frame without its bulk bytes (forwarded payload, state chunk). */
#define CONS_FRAME_HEAD_MAX (1 + 8 + 1 + HD_CHANNEL_MAX + 1 + HD_NONCE_MAX + 4)

enum { CONS_FRAME_MEMBER_ADD = 1, CONS_FRAME_MEMBER_REMOVE = 2 };
enum { CONS_FRAME_STATE_LAST = 1, CONS_FRAME_STATE_ERROR = 2 };

/* One decoded (or to be encoded) frame. Pointers borrow from the buffer it
 * was decoded from, or from the caller when encoding. */
struct cons_frame {
    uint8_t kind;                 /* CONS_FRAME_*, not RAFT */
    uint64_t id;
    union {
        struct log_append forward_req; /* ids valid by hd_ids.h */
        struct log_command command_req; /* kind, channel, before_seq; or a policy's
                                         * flags and text */
        struct cons_frame_forward_resp {
            int32_t status;
            uint64_t seq;
            uint64_t ts;
            bool duplicate;
        } forward_resp;
        struct cons_frame_state_req {
            uint64_t min_applied;
        } state_req;
        struct cons_frame_state_chunk {
            uint32_t seq;
            uint8_t flags;        /* CONS_FRAME_STATE_* */
            const uint8_t *chunk;
            size_t len;
        } state_chunk;
        struct cons_frame_member_req {
            uint8_t op;           /* CONS_FRAME_MEMBER_* */
            uint64_t node;
            const char *address;  /* not NUL-terminated */
            size_t address_len;
        } member_req;
        struct cons_frame_member_resp {
            int32_t status;
        } member_resp;
        struct cons_frame_repair_req {
            uint64_t old_node;
            const char *address;  /* not NUL-terminated */
            size_t address_len;
        } repair_req;
        struct cons_frame_repair_resp {
            int32_t status;
            uint64_t new_node;
        } repair_resp;
        struct cons_frame_read_resp {
            int32_t status;
            uint64_t index;
        } read_resp;
    } u;
};

/* Encodes f into head plus, for FORWARD_REQ and STATE_CHUNK, its bulk
 * bytes borrowed in iov[1]. Returns the number of iovecs (1 or 2) to send.
 * f must be valid (asserted): the sender builds it from its own state. */
unsigned cons_frame_encode(const struct cons_frame *f, uint8_t head[CONS_FRAME_HEAD_MAX],
                           struct iovec iov[2]);

/* Decodes a frame of the given kind. HD_ECORRUPT unless the bytes are
 * exactly one valid frame; *out is then unspecified. */
int cons_frame_decode(uint8_t kind, const uint8_t *buf, size_t len, struct cons_frame *out);

/* Encodes f and queues it to peer `to` (cons_transport_send's result). */
struct cons_transport;
int cons_frame_send(struct cons_transport *t, uint64_t to, uint16_t shard,
                    const struct cons_frame *f);

#endif
