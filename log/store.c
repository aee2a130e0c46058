/* SPDX-License-Identifier: Apache-2.0 */
/* Opening the channel state and the compaction filter of the dedup window. */
#include <stdio.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

/* Dedup keys are judged on entry stamps when applied (deterministic); this
 * filter only reclaims space, by the local clock. The margin keeps a key
 * until long after any replica could still see an entry within the window of
 * it, even with clocks an hour apart and entries re-applied after restart. */
#define LOG_DEDUP_GC_MARGIN_US (3600ull * 1000000ull)

static bool log__dedup_filter(void *arg, const void *key, size_t key_len,
                              const void *value, size_t value_len)
{
    struct log_store *ls = arg;
    const uint8_t *k = key;
    HD_ASSERT(ls != NULL && ls->dedup_window_us > 0);
    if (key_len < 4 || k[0] != LOG_KEY_DEDUP || value_len != 24) {
        return false;
    }
    uint64_t stamp_us = hd_get_u64((const uint8_t *)value + 16);
    uint64_t now = hd_now_us();
    return now > stamp_us + ls->dedup_window_us + LOG_DEDUP_GC_MARGIN_US;
}

int log_store_open(struct log_store **out, const struct log_options *opts,
                   char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(out != NULL && opts != NULL);
    struct log_store *ls = hd_calloc(1, sizeof *ls);
    if (ls == NULL) {
        snprintf(errmsg, errmsg_len, "open log: out of memory");
        return HD_ENOMEM;
    }
    HD_ASSERT(opts->n_shards > 0 && opts->n_shards <= 65536);
    ls->n_shards = opts->n_shards;
    ls->dedup_window_us =
        opts->dedup_window_us ? opts->dedup_window_us : 24ull * 3600 * 1000000;
    struct st_rocks_options ro = {
        .dir = opts->dir,
        .block_cache_bytes = opts->cache_bytes,
        .filter = log__dedup_filter,
        .filter_arg = ls,
        .prefix = log_key_prefix,
        .prefix_name = LOG_KEY_PREFIX_NAME,
        .insert_hint = log_key_insert_hint,
    };
    int rv = st_rocks_open(&ls->rocks, &ro, errmsg, errmsg_len);
    if (rv != 0) {
        goto err_free;
    }
    rv = st_batch_init(&ls->batch);
    int cache_rv = log__head_cache_init(ls);
    ls->applied_known = hd_calloc(ls->n_shards, sizeof *ls->applied_known);
    if (rv != 0 || cache_rv != 0 || ls->applied_known == NULL) {
        rv = HD_ENOMEM;
        snprintf(errmsg, errmsg_len, "open log: out of memory");
        goto err_rocks;
    }
    HD_ASSERT(ls->batch != NULL && ls->rocks != NULL);
    ls->config_policy = opts->retention;
    rv = log__policy_load(ls, false);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "open log: the cluster's retention policy: %s",
                 hd_strerror(rv));
        goto err_rocks;
    }
    *out = ls;
    return 0;

err_rocks:
    st_batch_close(ls->batch);
    log__head_cache_free(ls);
    hd_free(ls->applied_known);
    st_rocks_close(ls->rocks);
err_free:
    hd_free(ls);
    HD_ASSERT(rv != 0);
    return rv;
}

void log_store_close(struct log_store *ls)
{
    if (ls == NULL) {
        return;
    }
    st_batch_close(ls->batch);
    st_rocks_close(ls->rocks);
    log__head_cache_free(ls);
    hd_free(ls->applied_known);
    log__policy_free(ls);
    hd_free(ls->overlay.slots);
    hd_free(ls->seen);
    hd_free(ls->appends);
    hd_free(ls);
}

int log_flush(struct log_store *ls) { return st_rocks_flush(ls->rocks); }


unsigned log_shard_of(unsigned n_shards, const char *channel, size_t len)
{
    return hd_shard_of(n_shards, channel, len);
}
