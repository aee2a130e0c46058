/* SPDX-License-Identifier: Apache-2.0 */
/* Applying committed entries: the seq/ts rule and the dedup rule (log.h). */
#include <string.h>

#include "command.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fault.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

#if defined(HERALD_FAULT_SIM_BROKEN_APPLY)
/* Test-only (tests/sim builds a second log library with it, for the
 * herald_sim_broken binary): a retry whose entry carries an earlier stamp
 * than the first one (a leader whose clock stepped back) is taken as new. */
#define LOG_SIM_BROKEN_APPLY 1
#else
#define LOG_SIM_BROKEN_APPLY 0
#endif

/* Reads a value that must be exactly `size` bytes; *found false if the key
 * is absent. */
static int log__get_exact(struct log_store *ls, const uint8_t *key, size_t key_len,
                          uint8_t *val, size_t size, bool *found)
{
    HD_ASSERT(key_len > 0 && key_len <= LOG_KEY_MAX);
    size_t len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, key_len, val, size, &len);
    *found = rv == 0;
    if (rv == HD_ENOTFOUND) {
        return 0;
    }
    return rv != 0 ? rv : (len == size ? 0 : HD_ECORRUPT);
}

int log_applied_index(struct log_store *ls, uint16_t shard, uint64_t *index)
{
    uint8_t key[4], val[8];
    bool found;
    int rv = log__get_exact(ls, key, log_key_applied(key, shard), val, sizeof val, &found);
    *index = rv == 0 && found ? hd_get_u64(val) : 0;
    return rv;
}

/* ---------------------------------------------- heads moved by an entry --- */

static int log__overlay_reset(struct log_store *ls, uint32_t count)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)count) {
        cap *= 2;
    }
    struct log_overlay *o = &ls->overlay;
    if (cap > o->cap) {
        struct log_head *slots = hd_realloc(o->slots, cap * sizeof *slots);
        if (slots == NULL) {
            return HD_ENOMEM;
        }
        o->slots = slots;
        o->cap = cap;
    }
    memset(o->slots, 0, o->cap * sizeof *o->slots);
    o->n = 0;
    /* Open addressing: a power of two, at most half full by this entry. */
    HD_ASSERT((o->cap & (o->cap - 1)) == 0 && o->cap >= 2 * (size_t)count);
    return 0;
}

/* The overlay slot of a channel: its own, or the empty one to take. */
static struct log_head *log__overlay_slot(struct log_store *ls, const struct log_append *a,
                                          uint64_t hash)
{
    struct log_overlay *o = &ls->overlay;
    HD_ASSERT(o->n < o->cap);
    HD_ASSERT(hash != 0); /* 0 marks an empty slot */
    for (size_t i = hash & (o->cap - 1);; i = (i + 1) & (o->cap - 1)) {
        struct log_head *h = &o->slots[i];
        if (h->hash == 0 || (h->hash == hash && h->len == a->channel_len &&
                             memcmp(h->channel, a->channel, a->channel_len) == 0)) {
            return h;
        }
    }
}

/* A channel's head as of the appends of this entry applied so far. */
static int log__head_in_entry(struct log_store *ls, const struct log_append *a,
                              struct log_head **slot)
{
    uint64_t hash = hd_hash64(a->channel, a->channel_len) | 1;
    struct log_head *h = log__overlay_slot(ls, a, hash);
    if (h->hash == 0) {
        HD_ASSERT(a->channel_len > 0 && a->channel_len <= sizeof h->channel);
        int rv = log__head(ls, ls->shard, a->channel, a->channel_len, hash, &h->seq, &h->ts);
        if (rv != 0) {
            return rv;
        }
        h->hash = hash;
        h->len = (uint8_t)a->channel_len;
        memcpy(h->channel, a->channel, a->channel_len);
        ls->overlay.n++;
    }
    HD_ASSERT(h->hash == hash && h->len == a->channel_len);
    *slot = h;
    return 0;
}

/* After the batch is written: the cache learns the new heads. */
static void log__overlay_commit(struct log_store *ls)
{
    size_t moved = 0;
    for (size_t i = 0; i < ls->overlay.cap; i++) {
        const struct log_head *h = &ls->overlay.slots[i];
        if (h->hash != 0) {
            /* Moved by an append, or as read from state (a retry). */
            log__head_cache_put(ls, h->hash, h->channel, h->len, h->seq, h->ts);
            moved++;
        }
    }
    HD_ASSERT(moved == ls->overlay.n);
}

/* ------------------------------------------------------------- applying --- */

/* ----------------------------------------- nonces seen in this entry --- */

static int log__seen_reset(struct log_store *ls, uint32_t count)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)count) {
        cap *= 2;
    }
    if (cap > ls->seen_cap) {
        struct log_seen *seen = hd_realloc(ls->seen, cap * sizeof *seen);
        struct log_append *appends = hd_realloc(ls->appends, cap / 2 * sizeof *appends);
        if (seen != NULL) ls->seen = seen;
        if (appends != NULL) ls->appends = appends;
        if (seen == NULL || appends == NULL) {
            return HD_ENOMEM;
        }
        ls->seen_cap = cap;
    }
    memset(ls->seen, 0, ls->seen_cap * sizeof *ls->seen);
    /* seen: a power of two, at most half full; appends: count of them. */
    HD_ASSERT((ls->seen_cap & (ls->seen_cap - 1)) == 0 && ls->seen_cap >= 2 * (size_t)count);
    return 0;
}

static bool log__same_key(const struct log_append *a, const struct log_append *b)
{
    return a->channel_len == b->channel_len && a->nonce_len == b->nonce_len &&
           memcmp(a->channel, b->channel, a->channel_len) == 0 &&
           memcmp(a->nonce, b->nonce, a->nonce_len) == 0;
}

/* Finds an earlier append of this entry with the same (channel, nonce), or
 * records append i as seen. Returns its index, or -1. */
static int64_t log__seen_check(struct log_store *ls, uint32_t i)
{
    HD_ASSERT(i < ls->seen_cap / 2);
    const struct log_append *a = &ls->appends[i];
    uint64_t hash = (hd_hash64(a->channel, a->channel_len) * 31 +
                     hd_hash64(a->nonce, a->nonce_len)) | 1;
    size_t mask = ls->seen_cap - 1;
    for (size_t k = hash & mask;; k = (k + 1) & mask) {
        struct log_seen *s = &ls->seen[k];
        if (s->hash == 0) {
            *s = (struct log_seen){hash, i};
            return -1;
        }
        if (s->hash == hash && log__same_key(&ls->appends[s->index], a)) {
            HD_ASSERT(s->index < i); /* each append is recorded once */
            return s->index;
        }
    }
}

/* Looks the (channel, nonce) up; 1 if a live duplicate, filling *r. */
static int log__dedup_lookup(struct log_store *ls, const struct log_append *a,
                             uint64_t stamp_us, struct log_result *r)
{
    uint8_t key[LOG_KEY_MAX], val[24];
    size_t key_len = log_key_dedup(key, ls->shard, a->channel, a->channel_len, a->nonce,
                                   a->nonce_len);
    HD_ASSERT(key_len <= sizeof key);
    bool found;
    int rv = log__get_exact(ls, key, key_len, val, sizeof val, &found);
    if (rv != 0 || !found) {
        return rv;
    }
    uint64_t first_stamp = hd_get_u64(val + 16);
    if (LOG_SIM_BROKEN_APPLY && stamp_us < first_stamp) {
        return 0;
    }
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

static int log__put_message(struct log_store *ls, const struct log_append *a,
                            const struct log_result *r)
{
    HD_ASSERT(r->seq > 0 && !r->duplicate); /* only a new message is put */
    uint8_t key[LOG_KEY_MAX];
    size_t key_len = log_key_message(key, ls->shard, a->channel, a->channel_len, r->seq);
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
    return 0;
}

static void log__put_dedup(struct log_store *ls, const struct log_append *a, uint64_t stamp_us,
                           const struct log_result *r)
{
    HD_ASSERT(r->seq > 0 && !r->duplicate); /* only a new message has its nonce recorded */
    uint8_t key[LOG_KEY_MAX];
    size_t key_len =
        log_key_dedup(key, ls->shard, a->channel, a->channel_len, a->nonce, a->nonce_len);
    uint8_t dedup[24];
    hd_put_u64(dedup, r->seq);
    hd_put_u64(dedup + 8, r->ts);
    hd_put_u64(dedup + 16, stamp_us);
    st_batch_put(ls->batch, key, key_len, dedup, sizeof dedup);
}

/*
 * The dedup keys of an entry go into the batch after all of its message
 * keys, not each beside its message. RocksDB inserts a batch into the
 * memtable's skip list in batch order, starting each search from where the
 * previous key went (a splice): a channel's messages of one entry have
 * consecutive seqs, so put one after another each lands next to the last
 * and the search is short, while a 'd' key between them sent every search
 * back up the list (FindSpliceForLevel was the top self-time symbol of the
 * node). The batch is written atomically either way.
 */
static void log__put_dedups(struct log_store *ls, uint32_t count, uint64_t stamp_us,
                            const struct log_result *results)
{
    for (uint32_t i = 0; i < count; i++) {
        if (!results[i].duplicate) {
            log__put_dedup(ls, &ls->appends[i], stamp_us, &results[i]);
        }
    }
}

static int log__apply_one(struct log_store *ls, uint32_t i, uint64_t stamp_us,
                          struct log_result *results)
{
    const struct log_append *a = &ls->appends[i];
    struct log_result *r = &results[i];
    if (log_shard_of(ls->n_shards, a->channel, a->channel_len) != ls->shard) {
        return HD_ECORRUPT; /* an entry only holds its own shard's channels */
    }
    int64_t earlier = HD_FAULT_SKIP_DEDUP ? -1 : log__seen_check(ls, i);
    if (earlier >= 0) {
        /* The same nonce twice in one entry: the second is a retry. */
        HD_ASSERT((uint32_t)earlier < i);
        *r = results[earlier];
        r->duplicate = true;
        return 0;
    }
    struct log_head *head;
    int rv = log__head_in_entry(ls, a, &head);
    if (rv != 0) {
        return rv;
    }
    /* A channel without a message in this epoch has no dedup key either
     * (a delete removes them with the messages, a trim keeps the head), so
     * its nonce is not looked up: with many channels, most appends that
     * find an empty head are a channel's first, and the lookup was one more
     * probe of every memtable and table file's filter. */
    if (!HD_FAULT_SKIP_DEDUP && head->seq > 0) {
        rv = log__dedup_lookup(ls, a, stamp_us, r);
        if (rv != 0) {
            return rv < 0 ? rv : 0;
        }
    }
    r->seq = head->seq + 1;
    r->ts = stamp_us > head->ts ? stamp_us : head->ts + 1;
    r->duplicate = false;
    HD_ASSERT(r->seq > head->seq);
    HD_ASSERT(r->ts > head->ts);
    head->seq = r->seq;
    head->ts = r->ts;
    return log__put_message(ls, a, r); /* its dedup key: log__put_dedups */
}

static void log__put_applied(struct log_store *ls, uint16_t shard, uint64_t index)
{
    HD_ASSERT(index > 0 && shard == ls->shard);
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
    if (log__applied_known(ls, shard, &applied)) {
        return index <= applied ? HD_EEXIST : 0;
    }
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
    if (log_entry_is_command(entry, len)) {
        ls->shard = shard;
        return log__apply_command(ls, shard, index, entry, len);
    }
    struct log_entry_header h;
    rv = log_entry_decode(entry, len, &h);
    if (rv != 0) {
        return rv;
    }
    HD_ASSERT(results != NULL && results_cap >= h.count);
    rv = log__overlay_reset(ls, h.count);
    if (rv == 0) {
        rv = log__seen_reset(ls, h.count);
    }
    if (rv != 0) {
        return rv;
    }
    st_batch_clear(ls->batch);
    ls->shard = shard;
    struct log_entry_iter it;
    log_entry_iter_init(&it, entry, len);
    uint32_t i = 0;
    for (; log_entry_iter_next(&it, &ls->appends[i]); i++) {
        rv = log__apply_one(ls, i, h.stamp_us, results);
        if (rv != 0) {
            st_batch_clear(ls->batch);
            return rv;
        }
    }
    HD_ASSERT(i == h.count); /* the iterator walks exactly what decode counted */
    HD_ASSERT(ls->overlay.n <= h.count);
    log__put_dedups(ls, h.count, h.stamp_us, results);
    log__put_applied(ls, shard, index);
    rv = log__write_applied(ls, shard, index);
    st_batch_clear(ls->batch);
    if (rv == 0) {
        log__overlay_commit(ls);
    }
    return rv;
}
