/* SPDX-License-Identifier: Apache-2.0 */
/* Peer frame kinds, and the codecs of herald's own frames (all but RAFT). */
#ifndef CONS_FRAMES_H
#define CONS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Peer frame kinds (the transport carries them opaquely):
 *   CONS_FRAME_RAFT          a raft message of the frame's shard (msg_codec.h)
 *   CONS_FRAME_FORWARD_REQ   u8 version (1), u64 id, u8 channel_len, channel,
 *                            u8 nonce_len, nonce, u32 payload_len, payload
 *   CONS_FRAME_FORWARD_RESP  u8 version (1), u64 id, i32 status (HD_E* or 0),
 *                            u64 seq, u64 ts, u8 duplicate
 */

enum {
    CONS_FRAME_RAFT = 1,
    CONS_FRAME_FORWARD_REQ = 2,
    CONS_FRAME_FORWARD_RESP = 3,
    CONS_FRAME_STATE_REQ = 4,     /* catchup.c */
    CONS_FRAME_STATE_CHUNK = 5,
    CONS_FRAME_MEMBER_REQ = 6,    /* membership.c */
    CONS_FRAME_MEMBER_RESP = 7,
    CONS_FRAME_READ_REQ = 8,      /* read_barrier.c */
    CONS_FRAME_READ_RESP = 9,
};

#define CONS_FORWARD_VERSION 1
#define CONS_FORWARD_REQ_HEAD_MAX (1 + 8 + 1 + 128 + 1 + 128 + 4)
#define CONS_FORWARD_RESP_SIZE (1 + 8 + 4 + 8 + 8 + 1)

struct cons_forward_req {
    uint64_t id;
    const char *channel;
    size_t channel_len;
    const char *nonce;
    size_t nonce_len;
    const uint8_t *payload;  /* points into the frame when decoded */
    size_t payload_len;
};

struct cons_forward_resp {
    uint64_t id;
    int32_t status;
    uint64_t seq;
    uint64_t ts;
    bool duplicate;
};

/* Writes everything but the payload into head; returns its length. */
size_t cons_forward_req_encode_head(uint8_t *head, const struct cons_forward_req *r);
/* HD_ECORRUPT unless the bytes are one whole valid request. */
int cons_forward_req_decode(const uint8_t *buf, size_t len, struct cons_forward_req *out);

void cons_forward_resp_encode(uint8_t out[CONS_FORWARD_RESP_SIZE],
                              const struct cons_forward_resp *r);
int cons_forward_resp_decode(const uint8_t *buf, size_t len, struct cons_forward_resp *out);

#endif
