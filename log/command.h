/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding of the channel commands carried by Raft entries: trim and delete. */
#ifndef LOG_COMMAND_H
#define LOG_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "entry.h"

/*
 * Command entry, version 1 (little-endian; docs/disk-format.md). The header
 * is the append batch's (entry.h), so a proposer matches its own entries the
 * same way; only the kind differs and the count is always 1:
 *
 *   u8  version (1)   u8 kind (2 = trim, 3 = delete)   u16 flags
 *   u32 count (1)     u64 stamp_us   u64 proposer   u64 proposal
 *   u8  channel_len   1..128, then the channel id bytes
 *   u64 arg           trim: before_seq (>= 1); delete: 0
 *   u32 crc32c        over everything above
 *
 * flags: 0, or for a trim LOG_COMMAND_MAY_EMPTY (1): the trim may remove
 * the channel's last message too (retention by age, or a policy of 0
 * messages or bytes); the channel keeps its head (last seq and ts), so the
 * next append continues the seq. Without it the last message stays.
 * LOG_COMMAND_LAZY (2), on a trim: the space of what it removes comes back
 * with RocksDB's own compactions instead of a compaction of the channel's
 * range at once (the retention sweep's trims: many at a time, routine).
 * This one changes nothing but when disk space returns; every replica
 * does the same.
 *
 * An entry of kind 1 is never a command and a command is never an append
 * batch: log_entry_decode() refuses kinds 2 and 3, log_command_decode()
 * refuses everything else.
 */

#define LOG_ENTRY_KIND_TRIM 2
#define LOG_ENTRY_KIND_DELETE 3
#define LOG_COMMAND_MAY_EMPTY 1u
#define LOG_COMMAND_LAZY 2u

struct log_command {
    uint8_t kind;              /* LOG_ENTRY_KIND_TRIM or _DELETE */
    const char *channel;
    size_t channel_len;
    uint64_t before_seq;       /* trim only */
    uint16_t flags;            /* trim only: LOG_COMMAND_MAY_EMPTY, _LAZY or 0 */
    uint64_t stamp_us;
    uint64_t proposer;
    uint64_t proposal;
};

/* True if the entry's kind byte names a command (nothing else is checked). */
bool log_entry_is_command(const uint8_t *buf, size_t len);

/* Bytes of the entry of a command on a channel of this length. */
size_t log_command_size(size_t channel_len);

/* Encodes c into buf (log_command_size() bytes); returns the length. */
size_t log_command_encode(uint8_t *buf, const struct log_command *c);

/* Validates the whole entry and fills *c (channel points into buf).
 * HD_ECORRUPT on any defect. */
int log_command_decode(const uint8_t *buf, size_t len, struct log_command *c);

#endif
