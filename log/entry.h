/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding of one Raft command entry: a batch of appends stamped by the leader. */
#ifndef LOG_ENTRY_H
#define LOG_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_ids.h"

/*
 * Entry format, version 1 (little-endian; docs/disk-format.md):
 *
 *   u8  version (1)      u8 kind (1 = append batch)    u16 reserved (0)
 *   u32 count            number of appends
 *   u64 stamp_us         leader's wall clock when it proposed the batch
 *   u64 proposer         node id of the proposing leader
 *   u64 proposal         proposer's counter, identifies the batch
 *   count times:
 *     u8  channel_len    1..128, then the channel id bytes
 *     u8  nonce_len      1..128, then the nonce bytes
 *     u32 payload_len    then the payload bytes
 *   u32 crc32c           over everything above
 *
 * The same bytes are in every replica's WAL and are applied by every replica,
 * so the decoder validates everything (bounds, ids, checksum) before any of
 * it is used: a bad entry is HD_ECORRUPT, never an assertion.
 */

#define LOG_ENTRY_VERSION 1
#define LOG_ENTRY_KIND_APPENDS 1
#define LOG_ENTRY_HEADER_SIZE 32u
#define LOG_CHANNEL_MAX HD_CHANNEL_MAX /* the rules live in common/hd_ids.h */
#define LOG_NONCE_MAX HD_NONCE_MAX
#define LOG_PAYLOAD_MAX (64u << 20) /* hard ceiling; the API limit is lower */
#define LOG_ENTRY_APPENDS_MAX 65536u

struct log_append {
    const char *channel;
    size_t channel_len;
    const char *nonce;
    size_t nonce_len;
    const uint8_t *payload;
    size_t payload_len;
};

struct log_entry_header {
    uint64_t stamp_us;  /* leader's clock at proposal */
    uint64_t proposer;  /* node id */
    uint64_t proposal;  /* per-proposer counter */
    uint32_t count;     /* number of appends */
};

/* Bytes one append adds to an entry. */
size_t log_append_size(const struct log_append *a);

/* Bytes of an entry of these appends. */
size_t log_entry_size(const struct log_append *appends, size_t n);

/* Encodes an entry of h->count appends into buf, which holds
 * LOG_ENTRY_HEADER_SIZE + 4 + the log_append_size() of each: begin, add
 * each append in order, finish (writes the checksum, returns the length).
 * The appends need not be in one array (the proposer's are a list). */
struct log_entry_writer {
    uint8_t *buf;
    uint8_t *pos;
    uint32_t left;               /* appends still to add */
};
void log_entry_begin(struct log_entry_writer *w, uint8_t *buf, const struct log_entry_header *h);
void log_entry_add(struct log_entry_writer *w, const struct log_append *a);
size_t log_entry_finish(struct log_entry_writer *w);

/* The same for appends in an array; buf holds log_entry_size() bytes. */
void log_entry_encode(uint8_t *buf, const struct log_entry_header *h,
                      const struct log_append *appends, size_t n);

/* Reads the header of an entry without checking the rest or its checksum:
 * for a proposer matching an entry to its own batch before log_apply
 * validates it all. HD_ECORRUPT if it is shorter than a header, of another
 * version or kind, or counts more than LOG_ENTRY_APPENDS_MAX appends. */
int log_entry_peek(const uint8_t *buf, size_t len, struct log_entry_header *h);

/* Validates the whole entry and fills *h. HD_ECORRUPT on any defect. */
int log_entry_decode(const uint8_t *buf, size_t len, struct log_entry_header *h);

/* Iterates the appends of an entry that log_entry_decode() accepted. */
struct log_entry_iter {
    const uint8_t *pos;
    const uint8_t *end;
    uint32_t left;
};
void log_entry_iter_init(struct log_entry_iter *it, const uint8_t *buf, size_t len);
bool log_entry_iter_next(struct log_entry_iter *it, struct log_append *out);

#endif
