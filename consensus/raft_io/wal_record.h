/* SPDX-License-Identifier: Apache-2.0 */
/* What a WAL record means to Raft: entries, truncations and log resets of a shard. */
#ifndef CONS_WAL_RECORD_H
#define CONS_WAL_RECORD_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Record layouts (little-endian), inside the WAL's checksummed records:
 *
 *   u8 kind, u8 version (1), u16 shard, then by kind:
 *   CONS_REC_ENTRIES  u64 first_index, u32 n,
 *                     n times: u64 term, u8 type, u32 len, len bytes
 *   CONS_REC_TRUNCATE u64 index      entries >= index are gone
 *   CONS_REC_RESET    u64 index, u64 term
 *                     the log was replaced by a snapshot at index/term;
 *                     every earlier entry of the shard is gone
 */

enum { CONS_REC_ENTRIES = 1, CONS_REC_TRUNCATE = 2, CONS_REC_RESET = 3 };

#define CONS_REC_VERSION 1
#define CONS_REC_HEADER_SIZE 4u
#define CONS_REC_ENTRY_HEADER_SIZE 13u

struct cons_rec {
    uint8_t kind;
    uint16_t shard;
    uint64_t index;   /* first_index, truncation index, or reset index */
    uint64_t term;    /* RESET only */
    uint32_t n;       /* ENTRIES only */
    const uint8_t *entries; /* ENTRIES only: the encoded entries */
    size_t entries_len;
};

/* Validates a record; HD_ECORRUPT on any defect (bounds, kind, version). */
int cons_rec_decode(const uint8_t *buf, size_t len, struct cons_rec *out);

/* Walks the entries of a decoded ENTRIES record. The entry's buf points into
 * the record. Returns 0 at the end, 1 for an entry. */
struct cons_rec_iter {
    const uint8_t *pos;
    const uint8_t *end;
    uint32_t left;
};
void cons_rec_iter_init(struct cons_rec_iter *it, const struct cons_rec *r);
int cons_rec_iter_next(struct cons_rec_iter *it, struct raft_entry *out);

/* Encoders write the fixed parts into `head` (caller sizes it with the
 * CONS_REC_* constants); entry payloads are passed separately as iovecs. */
size_t cons_rec_encode_entries_head(uint8_t *head, uint16_t shard,
                                    uint64_t first_index, uint32_t n);
void cons_rec_encode_entry_head(uint8_t *head, const struct raft_entry *e);
size_t cons_rec_encode_truncate(uint8_t *buf, uint16_t shard, uint64_t index);
size_t cons_rec_encode_reset(uint8_t *buf, uint16_t shard, uint64_t index,
                             uint64_t term);

#endif
