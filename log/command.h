/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding of the commands carried by Raft entries: trim, delete, the cluster retention policy. */
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
 * The cluster's retention policy (kind 4) names no channel; it always goes
 * to shard LOG_POLICY_SHARD (0), whose state keeps it (keys.h 'p'):
 *
 *   header as above, kind 4, flags 0 (set) or LOG_POLICY_CLEAR (1)
 *   u32 text_len      0..LOG_POLICY_TEXT_MAX; 0 with LOG_POLICY_CLEAR
 *   text              the policy's canonical text (hd_retention_format),
 *                     printable ASCII; "" is a policy that keeps everything
 *   u32 crc32c        over everything above
 *
 * A clear drops the cluster policy: every node goes back to its own
 * --retention. The codec checks only the bytes; the text is parsed where it
 * is applied (log/policy.c), by the one parser (common/hd_retention.h).
 *
 * An entry of kind 1 is never a command and a command is never an append
 * batch: log_entry_decode() refuses kinds 2, 3 and 4, log_command_decode()
 * refuses everything else.
 */

#define LOG_ENTRY_KIND_TRIM 2
#define LOG_ENTRY_KIND_DELETE 3
#define LOG_COMMAND_MAY_EMPTY 1u
#define LOG_COMMAND_LAZY 2u
#define LOG_ENTRY_KIND_POLICY 4
#define LOG_POLICY_CLEAR 1u
#define LOG_POLICY_SHARD 0u
#define LOG_POLICY_TEXT_MAX 16383u /* HD_RETENTION_TEXT_MAX less its NUL */

struct log_command {
    uint8_t kind;              /* LOG_ENTRY_KIND_TRIM, _DELETE or _POLICY */
    const char *channel;       /* trim and delete */
    size_t channel_len;
    uint64_t before_seq;       /* trim only */
    uint16_t flags;            /* trim: LOG_COMMAND_MAY_EMPTY, _LAZY or 0;
                                * policy: LOG_POLICY_CLEAR or 0 */
    const char *text;          /* policy only: its canonical text */
    size_t text_len;
    uint64_t stamp_us;
    uint64_t proposer;
    uint64_t proposal;
};

/* True if the entry's kind byte names a command (nothing else is checked). */
bool log_entry_is_command(const uint8_t *buf, size_t len);

/* Bytes of the entry of this command. */
size_t log_command_size(const struct log_command *c);

/* True if c is a command the codec can carry (kind and its fields). Inline,
 * so that the peer frame codec (consensus/peer/frames.c), which links no
 * log/, keeps the same rule. A policy's text is printed in logs and
 * answers: printable ASCII only. */
static inline bool log_command_valid(const struct log_command *c)
{
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        if (c->flags == LOG_POLICY_CLEAR) {
            return c->text_len == 0;
        }
        if (c->flags != 0 || c->text_len > LOG_POLICY_TEXT_MAX ||
            (c->text_len > 0 && c->text == NULL)) {
            return false;
        }
        for (size_t i = 0; i < c->text_len; i++) {
            if (c->text[i] < 0x20 || c->text[i] > 0x7e) {
                return false;
            }
        }
        return true;
    }
    if (!hd_channel_valid(c->channel, c->channel_len)) {
        return false;
    }
    if (c->kind == LOG_ENTRY_KIND_TRIM) {
        return c->before_seq >= 1 &&
               (c->flags & ~(LOG_COMMAND_MAY_EMPTY | LOG_COMMAND_LAZY)) == 0;
    }
    return c->kind == LOG_ENTRY_KIND_DELETE && c->before_seq == 0 && c->flags == 0;
}

/* Encodes c (log_command_valid) into buf (log_command_size() bytes);
 * returns the length. */
size_t log_command_encode(uint8_t *buf, const struct log_command *c);

/* Validates the whole entry and fills *c (channel or text points into buf).
 * HD_ECORRUPT on any defect. */
int log_command_decode(const uint8_t *buf, size_t len, struct log_command *c);

#endif
