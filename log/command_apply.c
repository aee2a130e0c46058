/* SPDX-License-Identifier: Apache-2.0 */
/* Applying trim and delete commands (command.h), and what readers see of them. */
#include <string.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

/* A u64 value of a channel key, or `absent` if there is none. */
static int log__get_u64(struct log_store *ls, char kind, uint16_t shard, const char *ch,
                        size_t len, uint64_t absent, uint64_t *out)
{
    uint8_t key[LOG_KEY_MAX], val[8];
    size_t key_len = log_key_channel(key, kind, shard, ch, len);
    size_t val_len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, key_len, val, sizeof val, &val_len);
    if (rv == HD_ENOTFOUND) {
        *out = absent;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (val_len != sizeof val) {
        return HD_ECORRUPT;
    }
    *out = hd_get_u64(val);
    return 0;
}

int log__get_first(struct log_store *ls, uint16_t shard, const char *ch, size_t len,
                   uint64_t *first, bool *emptied, uint64_t *head_ts)
{
    uint8_t key[LOG_KEY_MAX], val[16];
    size_t key_len = log_key_channel(key, LOG_KEY_FIRST, shard, ch, len);
    size_t val_len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, key_len, val, sizeof val, &val_len);
    *first = 1;
    *emptied = false;
    *head_ts = 0;
    if (rv == HD_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv == HD_ETOOBIG ? HD_ECORRUPT : rv;
    }
    if (val_len != 8 && val_len != 16) {
        return HD_ECORRUPT;
    }
    *first = hd_get_u64(val);
    if (val_len == 16) {
        /* A trim removed every message: the head is first - 1 at this ts. */
        *emptied = true;
        *head_ts = hd_get_u64(val + 8);
    }
    return *first >= 1 ? 0 : HD_ECORRUPT;
}

static void log__put_u64(struct log_store *ls, char kind, uint16_t shard, const char *ch,
                         size_t len, uint64_t v)
{
    uint8_t key[LOG_KEY_MAX], val[8];
    size_t key_len = log_key_channel(key, kind, shard, ch, len);
    hd_put_u64(val, v);
    st_batch_put(ls->batch, key, key_len, val, sizeof val);
}

/* Deletes every key of the channel of this kind, as one range tombstone:
 * RocksDB drops the data at the next compaction of those files. */
static void log__delete_channel_keys(struct log_store *ls, char kind, uint16_t shard,
                                     const char *ch, size_t len)
{
    uint8_t lower[LOG_KEY_MAX], upper[LOG_KEY_MAX];
    size_t lower_len = log_key_channel(lower, kind, shard, ch, len);
    size_t upper_len = log_key_channel_end(upper, kind, shard, ch, len);
    st_batch_delete_range(ls->batch, lower, lower_len, upper, upper_len);
}

int log_channel_info(struct log_store *ls, const char *ch, size_t len,
                     struct log_channel_info *info)
{
    HD_ASSERT(len > 0 && len <= LOG_CHANNEL_MAX);
    uint16_t shard = (uint16_t)log_shard_of(ls->n_shards, ch, len);
    memset(info, 0, sizeof *info);
    int rv = log__head(ls, shard, ch, len, hd_hash64(ch, len), &info->last_seq, &info->last_ts);
    if (rv == 0) {
        bool emptied;
        uint64_t ts;
        rv = log__get_first(ls, shard, ch, len, &info->first_seq, &emptied, &ts);
    }
    if (rv == 0) {
        rv = log__get_u64(ls, LOG_KEY_EPOCH, shard, ch, len, 0, &info->epoch);
    }
    return rv;
}

bool log_position_gone(const struct log_channel_info *info, uint64_t after_seq)
{
    /* The reader wants after_seq + 1 next; it is gone if a trim removed it. */
    return after_seq < info->first_seq - 1;
}

/* Trims of at most this many messages delete them one by one. */
#define LOG_TRIM_POINT_DELETES_MAX 64u

/* Trim: messages below min(before_seq, last seq) go; the last message
 * stays, because it is the channel's head (keys.h) and the next seq follows
 * it, unless the trim may empty the channel (LOG_COMMAND_MAY_EMPTY: then
 * messages below min(before_seq, last seq + 1) go, and the 'f' value keeps
 * the head's ts beside the first seq, so the head outlives its message). A
 * trim at or below the first seq changes nothing. */
static void log__trim(struct log_store *ls, uint16_t shard, const struct log_command *c,
                      const struct log_channel_info *before)
{
    uint64_t head_seq = before->last_seq;
    uint64_t limit = head_seq + ((c->flags & LOG_COMMAND_MAY_EMPTY) != 0 ? 1 : 0);
    uint64_t until = c->before_seq < limit ? c->before_seq : limit;
    if (head_seq == 0 || until <= before->first_seq) {
        return;
    }
    uint8_t lower[LOG_KEY_MAX], upper[LOG_KEY_MAX];
    if (until - before->first_seq <= LOG_TRIM_POINT_DELETES_MAX) {
        /* A few messages (the retention sweep's usual trim): point
         * deletes. Range tombstones are checked by every read of their
         * key range until compaction drops them; thousands of small ones
         * slowed appends and reads measurably. */
        for (uint64_t seq = before->first_seq; seq < until; seq++) {
            st_batch_delete(ls->batch, lower,
                            log_key_message(lower, shard, c->channel, c->channel_len, seq));
        }
    } else {
        /* From the channel's prefix, not its message key of seq 0: the
         * same messages, and a range deletion must begin at a key without
         * an insert hint (keys.h). */
        size_t lower_len = log_key_channel(lower, LOG_KEY_MESSAGE, shard, c->channel,
                                           c->channel_len);
        size_t upper_len = log_key_message(upper, shard, c->channel, c->channel_len, until);
        st_batch_delete_range(ls->batch, lower, lower_len, upper, upper_len);
    }
    if (until <= head_seq) {
        log__put_u64(ls, LOG_KEY_FIRST, shard, c->channel, c->channel_len, until);
        return;
    }
    HD_ASSERT(until == head_seq + 1);
    uint8_t key[LOG_KEY_MAX], val[16];
    size_t key_len = log_key_channel(key, LOG_KEY_FIRST, shard, c->channel, c->channel_len);
    hd_put_u64(val, until);
    hd_put_u64(val + 8, before->last_ts);
    st_batch_put(ls->batch, key, key_len, val, sizeof val);
}

/* Delete: the messages, dedup keys and first seq go, the epoch moves on; the
 * next append starts the channel again at seq 1. */
static int log__delete(struct log_store *ls, uint16_t shard, const struct log_command *c)
{
    uint64_t epoch;
    int rv = log__get_u64(ls, LOG_KEY_EPOCH, shard, c->channel, c->channel_len, 0, &epoch);
    if (rv != 0) {
        return rv;
    }
    log__delete_channel_keys(ls, LOG_KEY_MESSAGE, shard, c->channel, c->channel_len);
    log__delete_channel_keys(ls, LOG_KEY_DEDUP, shard, c->channel, c->channel_len);
    uint8_t key[LOG_KEY_MAX];
    st_batch_delete(ls->batch, key,
                    log_key_channel(key, LOG_KEY_FIRST, shard, c->channel, c->channel_len));
    log__put_u64(ls, LOG_KEY_EPOCH, shard, c->channel, c->channel_len, epoch + 1);
    return 0;
}

int log__apply_command(struct log_store *ls, uint16_t shard, uint64_t index,
                       const uint8_t *entry, size_t len)
{
    struct log_command c;
    int rv = log_command_decode(entry, len, &c);
    if (rv != 0) {
        return rv;
    }
    if (c.kind == LOG_ENTRY_KIND_POLICY) {
        return log__apply_policy(ls, shard, index, &c);
    }
    if (log_shard_of(ls->n_shards, c.channel, c.channel_len) != shard) {
        return HD_ECORRUPT; /* a command only names a channel of its shard */
    }
    struct log_channel_info before;
    rv = log_channel_info(ls, c.channel, c.channel_len, &before);
    if (rv != 0) {
        return rv;
    }
    st_batch_clear(ls->batch);
    if (c.kind == LOG_ENTRY_KIND_TRIM) {
        log__trim(ls, shard, &c, &before);
    } else {
        rv = log__delete(ls, shard, &c);
    }
    if (rv == 0) {
        uint8_t key[4], val[8];
        hd_put_u64(val, index);
        st_batch_put(ls->batch, key, log_key_applied(key, shard), val, sizeof val);
        rv = log__write(ls);
    }
    st_batch_clear(ls->batch);
    if (rv != 0) {
        return rv;
    }
    /* Range deletions free disk only when compaction reaches their files:
     * the channel's messages and dedup keys are compacted now, on the
     * state's compaction thread (on the loop, a trim under load stalled
     * every append for 0.3-0.9 s); the space comes back on every replica
     * once that thread has done it. */
    int compact = c.kind == LOG_ENTRY_KIND_DELETE ? 2 : (c.flags & LOG_COMMAND_LAZY) ? 0 : 1;
    for (int k = 0; k < compact; k++) {
        char kind = k == 0 ? LOG_KEY_MESSAGE : LOG_KEY_DEDUP;
        uint8_t lower[LOG_KEY_MAX], upper[LOG_KEY_MAX];
        size_t lower_len = log_key_channel(lower, kind, shard, c.channel, c.channel_len);
        size_t upper_len = log_key_channel_end(upper, kind, shard, c.channel, c.channel_len);
        st_rocks_compact_range_later(ls->rocks, lower, lower_len, upper, upper_len);
    }
    if (c.kind == LOG_ENTRY_KIND_DELETE) {
        /* The cached head is the deleted channel's: the new one is empty. */
        uint64_t hash = hd_hash64(c.channel, c.channel_len) | 1;
        log__head_cache_drop(ls, hash); /* reloaded from state */
    }
    return 0;
}
