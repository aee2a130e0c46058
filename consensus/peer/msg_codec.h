/* SPDX-License-Identifier: Apache-2.0 */
/* Wire codec of the Raft messages (raft 0.15 struct raft_message) exchanged between peers. */
#ifndef CONS_MSG_CODEC_H
#define CONS_MSG_CODEC_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Layout (little-endian; the full table is in docs/wire-format.md). Every
 * message starts with a 4-byte preamble:
 *
 *   u8 version (CONS_MSG_VERSION), u8 type (RAFT_IO_*), u8 flags, u8 zero
 *
 * then the type's fixed fields (u64 each), then for APPEND_ENTRIES the
 * entry headers followed by all entry payloads back to back, and for
 * INSTALL_SNAPSHOT the configuration followed by the snapshot data. The
 * variable parts come last so the encoder can point iovecs at the entry
 * buffers instead of copying them, and the decoder can copy every payload
 * into one raft batch with a single memcpy. A message must be consumed
 * exactly: trailing bytes, unknown flag bits, a non-zero reserved byte or
 * an unknown version are HD_ECORRUPT, so a later version has to bump
 * CONS_MSG_VERSION instead of silently extending a layout.
 */

#define CONS_MSG_VERSION 1
#define CONS_MSG_SIZE_MAX (64u << 20)      /* whole encoded message, bytes */
#define CONS_MSG_ENTRIES_MAX (1u << 20)    /* entries of one APPEND_ENTRIES */
#define CONS_MSG_SERVERS_MAX 256u          /* servers of one configuration */
#define CONS_MSG_ADDRESS_LEN_MAX 255u      /* bytes of one server address */

/*
 * An encoded message as a gather list. iov[0] is `head` (preamble, fixed
 * fields, entry headers, configuration); the other iovecs borrow the
 * message's entry buffers or snapshot data, in order, so they are valid
 * only as long as the raft_message they were encoded from (raft keeps them
 * alive until the send callback fires). Writing the iovecs back to back
 * yields exactly `len` bytes. Zero-length buffers get no iovec.
 */
struct cons_msg_enc {
    uint8_t *head;      /* hd_malloc'ed; also holds the iovec array */
    struct iovec *iov;  /* iov_n gather entries, iov[0] = head */
    unsigned iov_n;     /* 1 + number of non-empty borrowed buffers */
    size_t len;         /* total encoded bytes, <= CONS_MSG_SIZE_MAX */
};

/*
 * Encodes `m` (server_id and server_address are not encoded: the transport
 * knows who sent a frame). Returns 0, HD_ENOMEM, HD_ETOOBIG (more than
 * CONS_MSG_SIZE_MAX bytes, CONS_MSG_ENTRIES_MAX entries or
 * CONS_MSG_SERVERS_MAX servers, or an address longer than
 * CONS_MSG_ADDRESS_LEN_MAX) or HD_EINVAL (unknown type). On success the
 * caller releases `out` with cons_msg_enc_release(); on failure there is
 * nothing to release.
 */
int cons_msg_encode(const struct raft_message *m, struct cons_msg_enc *out);

/* Frees what cons_msg_encode() allocated; borrowed buffers are untouched. */
void cons_msg_enc_release(struct cons_msg_enc *e);

/*
 * Decodes `len` bytes into `out`, which then follows raft's ownership rules
 * for received messages, so it can be handed to raft's recv callback as is:
 *   - APPEND_ENTRIES with n_entries > 0: `entries` is raft_malloc'ed and
 *     every entry's `batch` is the same raft_malloc'ed buffer (at least one
 *     byte), which holds all payloads; an empty entry has buf.base NULL.
 *     With n_entries == 0, `entries` is NULL.
 *   - INSTALL_SNAPSHOT: `conf` is built with raft_configuration_add (so it
 *     is freed with raft_configuration_close) and `data.base` is
 *     raft_malloc'ed (at least one byte, even when data.len is 0).
 * server_id and server_address are left 0/NULL: the caller sets them from
 * the transport's sender before handing the message to raft; the address
 * must stay valid during the recv callback only (raft copies it).
 * `buf` is not referenced after the call.
 *
 * Returns 0, HD_ECORRUPT for any malformed input (bad version, type, flag,
 * length, count, role, zero or duplicate server id or address, trailing
 * bytes) or HD_ENOMEM. On failure `out` owns nothing.
 */
int cons_msg_decode(const uint8_t *buf, size_t len, struct raft_message *out);

/* Frees what a successful cons_msg_decode() allocated, for a message that
 * was not handed to raft. Safe on any message type; leaves `m` owning
 * nothing. */
void cons_msg_release(struct raft_message *m);

#endif
