/* SPDX-License-Identifier: Apache-2.0 */
/* Reads of a channel: head, range by seq, and seq lookup by ts. */
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "entry.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

int log_head(struct log_store *ls, const char *ch, size_t len,
             uint64_t *last_seq, uint64_t *last_ts)
{
    HD_ASSERT(len > 0 && len <= LOG_CHANNEL_MAX);
    uint16_t shard = (uint16_t)log_shard_of(ls->n_shards, ch, len);
    return log__head(ls, shard, ch, len, hd_hash64(ch, len), last_seq, last_ts);
}

/* Reads a head from state, bypassing the cache: the channel's last message
 * (there is no head key: one fewer write per append, see keys.h). */
static int log__head_stored(struct log_store *ls, uint16_t shard, const char *ch, size_t len,
                            uint64_t *last_seq, uint64_t *last_ts)
{
    HD_ASSERT(len > 0 && len <= LOG_CHANNEL_MAX);
    uint64_t first, emptied_ts;
    bool emptied;
    int rv = log__get_first(ls, shard, ch, len, &first, &emptied, &emptied_ts);
    if (rv != 0) {
        return rv;
    }
    /* No message: never written, deleted, or emptied by a trim that kept
     * the head in the channel's 'f' key (command_apply.c). */
    *last_seq = emptied ? first - 1 : 0;
    *last_ts = emptied ? emptied_ts : 0;
    uint8_t lower[LOG_KEY_MAX], upper[LOG_KEY_MAX];
    size_t lower_len = log_key_message(lower, shard, ch, len, first);
    /* A channel with messages has one at its first seq (keys.h), so when
     * the filters rule that key out there is none, and no iterator is
     * opened: with many channels most misses are channels never written,
     * and an iterator's backward seek over every memtable and file cost a
     * fifth of the loop (a million channels). */
    if (!st_rocks_may_exist(ls->rocks, lower, lower_len)) {
        return 0;
    }
    size_t upper_len = log_key_message(upper, shard, ch, len, UINT64_MAX);
    HD_ASSERT(lower_len == upper_len && lower_len <= sizeof lower);
    struct st_iter *it;
    rv = st_iter_open_last(&it, ls->rocks, lower, lower_len, upper, upper_len);
    if (rv != 0) {
        return rv;
    }
    if (st_iter_valid(it)) {
        size_t klen, vlen;
        const uint8_t *k = st_iter_key(it, &klen);
        const uint8_t *v = st_iter_value(it, &vlen);
        if (klen != lower_len || vlen < 8) {
            rv = HD_ECORRUPT;
        } else {
            *last_seq = hd_get_be64(k + klen - 8);
            *last_ts = hd_get_u64(v);
        }
    } else {
        rv = st_iter_status(it);
    }
    st_iter_close(it);
    return rv;
}

int log__head(struct log_store *ls, uint16_t shard, const char *ch, size_t len,
              uint64_t hash, uint64_t *seq, uint64_t *ts)
{
    HD_ASSERT(shard < ls->n_shards && len > 0 && len <= LOG_CHANNEL_MAX);
    hash |= 1; /* 0 marks an empty slot */
    if (log__head_cache_get(ls, hash, ch, len, seq, ts)) {
        return 0;
    }
    int rv = log__head_stored(ls, shard, ch, len, seq, ts);
    if (rv == 0) {
        log__head_cache_put(ls, hash, ch, len, *seq, *ts);
    }
    return rv;
}

/* Decodes a message value; HD_ECORRUPT if it does not fit. */
static int log__decode_message(const uint8_t *v, size_t len, uint64_t seq,
                               struct log_message *m)
{
    if (len < 9 || len < 9u + v[8]) {
        return HD_ECORRUPT;
    }
    m->seq = seq;
    m->ts = hd_get_u64(v);
    m->nonce_len = v[8];
    m->nonce = (const char *)v + 9;
    m->payload = v + 9 + m->nonce_len;
    m->payload_len = len - 9 - m->nonce_len;
    HD_ASSERT(m->payload + m->payload_len == v + len);
    return 0;
}

int log_read(struct log_store *ls, const char *ch, size_t len,
             uint64_t after_seq, size_t limit, log_read_cb cb, void *arg,
             uint64_t *next_seq)
{
    HD_ASSERT(len > 0 && len <= LOG_CHANNEL_MAX);
    HD_ASSERT(cb != NULL);
    *next_seq = after_seq + 1;
    if (limit == 0 || after_seq == UINT64_MAX) {
        return 0;
    }
    struct log_channel_info info;
    int rv = log_channel_info(ls, ch, len, &info);
    if (rv != 0) {
        return rv;
    }
    if (log_position_gone(&info, after_seq)) {
        return HD_EGONE; /* never a silent skip over trimmed messages */
    }
    uint8_t lower[LOG_KEY_MAX], upper[LOG_KEY_MAX];
    uint16_t shard = (uint16_t)log_shard_of(ls->n_shards, ch, len);
    size_t lower_len = log_key_message(lower, shard, ch, len, after_seq + 1);
    size_t upper_len = log_key_message(upper, shard, ch, len, UINT64_MAX);
    HD_ASSERT(lower_len == upper_len && lower_len <= sizeof lower);
    struct st_iter *it;
    rv = st_iter_open(&it, ls->rocks, lower, lower_len, upper, upper_len);
    if (rv != 0) {
        return rv;
    }
    uint64_t expect = after_seq + 1;
    size_t n = 0;
    for (; st_iter_valid(it) && n < limit; st_iter_next(it), n++) {
        size_t klen, vlen;
        const uint8_t *k = st_iter_key(it, &klen);
        const uint8_t *v = st_iter_value(it, &vlen);
        struct log_message m;
        if (klen != lower_len || log__decode_message(v, vlen, hd_get_be64(k + klen - 8), &m) != 0) {
            rv = HD_ECORRUPT;
            break;
        }
        /* seq is gapless by construction; a gap here means lost state. */
        if (m.seq != expect) {
            HD_LOG_ERROR("channel %.*s: expected seq %llu, found %llu", (int)len, ch,
                         (unsigned long long)expect, (unsigned long long)m.seq);
            rv = HD_ECORRUPT;
            break;
        }
        expect++;
        *next_seq = expect;
        if (cb(arg, &m) != 0) {
            break;
        }
    }
    if (rv == 0) {
        rv = st_iter_status(it);
    }
    st_iter_close(it);
    /* Delivered messages are the gapless run after after_seq, at most limit. */
    HD_ASSERT(*next_seq > after_seq && *next_seq - after_seq - 1 <= limit);
    return rv;
}

/* The ts of message `seq`, which must exist. */
static int log__ts_of(struct log_store *ls, const char *ch, size_t len,
                      uint64_t seq, uint64_t *ts)
{
    HD_ASSERT(seq > 0); /* seq 0 is "none", never a message */
    uint8_t key[LOG_KEY_MAX];
    uint16_t shard = (uint16_t)log_shard_of(ls->n_shards, ch, len);
    size_t key_len = log_key_message(key, shard, ch, len, seq);
    uint8_t val[9];
    size_t val_len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, key_len, val, sizeof val, &val_len);
    if (rv == HD_ETOOBIG || (rv == 0 && val_len >= 8)) {
        *ts = hd_get_u64(val);
        return 0;
    }
    return rv == 0 || rv == HD_ENOTFOUND ? HD_ECORRUPT : rv;
}

int log_seq_at_ts(struct log_store *ls, const char *ch, size_t len,
                  uint64_t ts_us, uint64_t *seq)
{
    struct log_channel_info info;
    int rv = log_channel_info(ls, ch, len, &info);
    if (rv != 0) {
        return rv;
    }
    uint64_t last_seq = info.last_seq;
    /* ts strictly increases with seq, so binary search over the seqs still
     * present for the largest seq with ts <= ts_us; first_seq - 1 stands for
     * "none left" (0 on an untrimmed channel). */
    uint64_t lo = info.first_seq - 1, hi = last_seq > lo ? last_seq : lo;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        HD_ASSERT(mid > lo && mid <= hi); /* the range shrinks every step */
        uint64_t ts;
        rv = log__ts_of(ls, ch, len, mid, &ts);
        if (rv != 0) {
            return rv;
        }
        if (ts <= ts_us) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    HD_ASSERT(lo <= last_seq);
    *seq = lo;
    return 0;
}
