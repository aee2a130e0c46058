/* SPDX-License-Identifier: Apache-2.0 */
/* Applying committed entries: the seq/ts rule and the dedup rule (log.h). */
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

int log_applied_index(struct log_store *ls, uint16_t shard, uint64_t *index)
{
    uint8_t key[4];
    size_t key_len = log_key_applied(key, shard);
    uint8_t val[8];
    size_t len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, key_len, val, sizeof val, &len);
    if (rv == HD_ENOTFOUND) {
        *index = 0;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (len != 8) {
        return HD_ECORRUPT;
    }
    *index = hd_get_u64(val);
    return 0;
}

/* Reads a channel's head through the batch (sees this entry's own writes). */
static int log__head_in_batch(struct log_store *ls, const struct log_append *a,
                              uint64_t *seq, uint64_t *ts)
{
    uint8_t key[LOG_KEY_MAX];
    size_t key_len = log_key_channel(key, LOG_KEY_HEAD, a->channel, a->channel_len);
    uint8_t val[16];
    size_t len = 0;
    int rv = st_batch_get_into(ls->batch, ls->rocks, key, key_len, val, sizeof val, &len);
    if (rv == HD_ENOTFOUND) {
        *seq = 0;
        *ts = 0;
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (len != 16) {
        return HD_ECORRUPT;
    }
    *seq = hd_get_u64(val);
    *ts = hd_get_u64(val + 8);
    return 0;
}

/* Looks the (channel, nonce) up; 1 if a live duplicate, filling *r. */
static int log__dedup_lookup(struct log_store *ls, const struct log_append *a,
                             uint64_t stamp_us, struct log_result *r)
{
    uint8_t key[LOG_KEY_MAX];
    size_t key_len = log_key_dedup(key, a->channel, a->channel_len, a->nonce, a->nonce_len);
    uint8_t val[24];
    size_t len = 0;
    int rv = st_batch_get_into(ls->batch, ls->rocks, key, key_len, val, sizeof val, &len);
    if (rv == HD_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (len != 24) {
        return HD_ECORRUPT;
    }
    uint64_t first_stamp = hd_get_u64(val + 16);
    /* A later entry may carry an earlier stamp (a new leader's clock behind
     * the old one's): that is within the window too. */
    if (stamp_us >= first_stamp && stamp_us - first_stamp >= ls->dedup_window_us) {
        return 0;
    }
    r->seq = hd_get_u64(val);
    r->ts = hd_get_u64(val + 8);
    r->duplicate = true;
    return 1;
}

static int log__put_new(struct log_store *ls, const struct log_append *a,
                        uint64_t stamp_us, const struct log_result *r)
{
    uint8_t key[LOG_KEY_MAX];
    size_t key_len = log_key_message(key, a->channel, a->channel_len, r->seq);
    uint8_t head[9];
    hd_put_u64(head, r->ts);
    head[8] = (uint8_t)a->nonce_len;
    /* The message value is ts, nonce and payload; put it as one buffer. */
    size_t val_len = 9 + a->nonce_len + a->payload_len;
    uint8_t stack[1024];
    uint8_t *val = val_len <= sizeof stack ? stack : NULL;
    if (val == NULL) {
        val = hd_malloc(val_len);
        if (val == NULL) {
            return HD_ENOMEM;
        }
    }
    memcpy(val, head, 9);
    memcpy(val + 9, a->nonce, a->nonce_len);
    if (a->payload_len > 0) {
        memcpy(val + 9 + a->nonce_len, a->payload, a->payload_len);
    }
    st_batch_put(ls->batch, key, key_len, val, val_len);
    if (val != stack) {
        hd_free(val);
    }

    key_len = log_key_dedup(key, a->channel, a->channel_len, a->nonce, a->nonce_len);
    uint8_t dedup[24];
    hd_put_u64(dedup, r->seq);
    hd_put_u64(dedup + 8, r->ts);
    hd_put_u64(dedup + 16, stamp_us);
    st_batch_put(ls->batch, key, key_len, dedup, sizeof dedup);

    key_len = log_key_channel(key, LOG_KEY_HEAD, a->channel, a->channel_len);
    uint8_t h[16];
    hd_put_u64(h, r->seq);
    hd_put_u64(h + 8, r->ts);
    st_batch_put(ls->batch, key, key_len, h, sizeof h);
    return 0;
}

static int log__apply_one(struct log_store *ls, const struct log_append *a,
                          uint64_t stamp_us, struct log_result *r)
{
    int rv = log__dedup_lookup(ls, a, stamp_us, r);
    if (rv != 0) {
        return rv < 0 ? rv : 0;
    }
    uint64_t last_seq, last_ts;
    rv = log__head_in_batch(ls, a, &last_seq, &last_ts);
    if (rv != 0) {
        return rv;
    }
    r->seq = last_seq + 1;
    r->ts = stamp_us > last_ts ? stamp_us : last_ts + 1;
    r->duplicate = false;
    HD_ASSERT(r->seq > last_seq);
    HD_ASSERT(r->ts > last_ts);
    return log__put_new(ls, a, stamp_us, r);
}

static void log__put_applied(struct log_store *ls, uint16_t shard, uint64_t index)
{
    uint8_t key[4];
    size_t key_len = log_key_applied(key, shard);
    uint8_t val[8];
    hd_put_u64(val, index);
    st_batch_put(ls->batch, key, key_len, val, sizeof val);
}

/* Checks the index against applied[shard]: HD_EEXIST if already applied. */
static int log__check_index(struct log_store *ls, uint16_t shard, uint64_t index)
{
    uint64_t applied = 0;
    int rv = log_applied_index(ls, shard, &applied);
    if (rv != 0) {
        return rv;
    }
    return index <= applied ? HD_EEXIST : 0;
}

int log_apply(struct log_store *ls, uint16_t shard, uint64_t index,
              const uint8_t *entry, size_t len, struct log_result *results,
              size_t results_cap)
{
    HD_ASSERT(ls != NULL);
    HD_ASSERT(index > 0);
    int rv = log__check_index(ls, shard, index);
    if (rv != 0) {
        return rv;
    }
    struct log_entry_header h;
    rv = log_entry_decode(entry, len, &h);
    if (rv != 0) {
        return rv;
    }
    HD_ASSERT(results == NULL || results_cap >= h.count);
    st_batch_clear(ls->batch);
    struct log_entry_iter it;
    log_entry_iter_init(&it, entry, len);
    struct log_append a;
    struct log_result scratch;
    for (uint32_t i = 0; log_entry_iter_next(&it, &a); i++) {
        struct log_result *r = results != NULL ? &results[i] : &scratch;
        rv = log__apply_one(ls, &a, h.stamp_us, r);
        if (rv != 0) {
            st_batch_clear(ls->batch);
            return rv;
        }
    }
    log__put_applied(ls, shard, index);
    rv = st_rocks_write(ls->rocks, ls->batch);
    st_batch_clear(ls->batch);
    return rv;
}

int log_apply_noop(struct log_store *ls, uint16_t shard, uint64_t index)
{
    int rv = log__check_index(ls, shard, index);
    if (rv != 0) {
        return rv == HD_EEXIST ? 0 : rv;
    }
    st_batch_clear(ls->batch);
    log__put_applied(ls, shard, index);
    rv = st_rocks_write(ls->rocks, ls->batch);
    st_batch_clear(ls->batch);
    return rv;
}
