/* SPDX-License-Identifier: Apache-2.0 */
/* Key and value layouts of the channel state in RocksDB. */
#ifndef LOG_KEYS_H
#define LOG_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_util.h"

/*
 * Keys (one RocksDB keyspace; the kind byte, then the channel's shard):
 *   'm' be16(shard) len channel be64(seq) -> message: u64 ts, u8 nonce_len,
 *                                            nonce, payload
 *   'd' be16(shard) len channel nonce     -> dedup: u64 seq, u64 ts, u64 stamp_us
 *   'a' be16(shard)                       -> applied: u64 raft index
 *   'e' be16(shard) len channel           -> epoch: u64, deletes so far (absent: 0)
 *   'f' be16(shard) len channel           -> first seq left by trims (absent: 1)
 *   'p' be16(0)                           -> the cluster's retention policy, its
 *                                            canonical text (absent: none set;
 *                                            command.h kind 4, policy.c)
 * `len` is one byte, so a channel's keys never prefix another channel's;
 * big-endian seq makes RocksDB's byte order the seq order; and the shard
 * right after the kind makes each shard's state one contiguous key range per
 * kind, which is what a snapshot of one shard copies (transfer.c).
 *
 * A channel that holds messages holds one at its first seq ('f', or 1):
 * messages are gapless, a trim moves 'f' to the first it keeps (or past the
 * head when it empties the channel, and the next append writes that seq),
 * a delete removes 'f' with the messages. The head lookup relies on it
 * (read.c).
 *
 * A channel's head (last seq and ts) is not stored: it is the last message
 * key, kept in a cache (log_internal.h). Storing it cost one more memtable
 * write per append, which with many channels (each entry touching many
 * heads) was a third of the write cost.
 */

#define LOG_KEY_MESSAGE 'm'
#define LOG_KEY_DEDUP 'd'
#define LOG_KEY_APPLIED 'a'
#define LOG_KEY_EPOCH 'e'
#define LOG_KEY_FIRST 'f'
#define LOG_KEY_POLICY 'p'
#define LOG_KEY_MAX (4 + 128 + 128)

static inline size_t log_key_channel(uint8_t *k, char kind, uint16_t shard, const char *ch,
                                     size_t len)
{
    HD_ASSERT(len > 0 && len <= 128); /* one length byte; fits LOG_KEY_MAX */
    k[0] = (uint8_t)kind;
    k[1] = (uint8_t)(shard >> 8);
    k[2] = (uint8_t)shard;
    k[3] = (uint8_t)len;
    memcpy(k + 4, ch, len);
    return 4 + len;
}

static inline size_t log_key_message(uint8_t *k, uint16_t shard, const char *ch, size_t len,
                                     uint64_t seq)
{
    size_t n = log_key_channel(k, LOG_KEY_MESSAGE, shard, ch, len);
    hd_put_be64(k + n, seq);
    return n + 8;
}

static inline size_t log_key_dedup(uint8_t *k, uint16_t shard, const char *ch, size_t len,
                                   const char *nonce, size_t nonce_len)
{
    size_t n = log_key_channel(k, LOG_KEY_DEDUP, shard, ch, len);
    HD_ASSERT(nonce_len > 0 && n + nonce_len <= LOG_KEY_MAX);
    memcpy(k + n, nonce, nonce_len);
    return n + nonce_len;
}

/* The exclusive upper bound of every key of a channel of this kind: the
 * channel prefix with its last byte raised by one. Channel bytes are
 * printable ASCII (hd_ids.h), so the raise never carries, and a longer or
 * other channel differs in the length byte or before the last byte. */
static inline size_t log_key_channel_end(uint8_t *k, char kind, uint16_t shard,
                                         const char *ch, size_t len)
{
    size_t n = log_key_channel(k, kind, shard, ch, len);
    HD_ASSERT(k[n - 1] < 0x7f);
    k[n - 1]++;
    return n;
}

/* The prefix filters of state index each channel's keys of one kind by
 * (kind, shard, len, channel), so that looking up the head of a channel
 * that was never written skips every memtable and file without its prefix.
 * Keys without a channel ('a', 'p') have none (0). The name changes with
 * this layout: RocksDB ignores the filters of files written under another. */
#define LOG_KEY_PREFIX_NAME "herald.channel-prefix.1"

static inline size_t log_key_prefix(const void *key, size_t len)
{
    const uint8_t *k = key;
    if (len < 4 || (k[0] != LOG_KEY_MESSAGE && k[0] != LOG_KEY_DEDUP &&
                    k[0] != LOG_KEY_EPOCH && k[0] != LOG_KEY_FIRST)) {
        return 0;
    }
    return k[3] > 0 && len >= 4u + k[3] ? 4u + k[3] : 0;
}

/* Memtable insert hints (storage/rocks.h): a channel's message keys go in
 * seq after seq, and libherald's nonces grow with time, so each key of
 * these two kinds lands near the last one of its kind and shard. The hint
 * prefix is (kind, shard), not the channel: a hint costs the memtable a few
 * hundred bytes, and with one per channel a memtable of a million
 * channels' keys filled with hints (1.2-1.7x the process CPU per append
 * in herald-apply-bench, two pairs). Only keys longer
 * than their channel prefix have a hint: range deletions begin at a
 * channel prefix or shorter, which RocksDB must never give a hint. */
static inline size_t log_key_insert_hint(const void *key, size_t len)
{
    size_t n = log_key_prefix(key, len);
    return n > 0 && len > n ? 3 : 0;
}

static inline size_t log_key_applied(uint8_t *k, uint16_t shard)
{
    k[0] = LOG_KEY_APPLIED;
    k[1] = (uint8_t)(shard >> 8);
    k[2] = (uint8_t)shard;
    return 3;
}

static inline size_t log_key_policy(uint8_t *k, uint16_t shard)
{
    k[0] = LOG_KEY_POLICY;
    k[1] = (uint8_t)(shard >> 8);
    k[2] = (uint8_t)shard;
    return 3;
}

#endif
