/* SPDX-License-Identifier: Apache-2.0 */
/* Moving one shard's state to a replica that fell behind the leader's log. */
#include <string.h>

#include "command.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"
#include "zstd.h"

/*
 * A shard's state is six key ranges, one per kind ('a' applied index, 'd'
 * dedup, 'm' messages, 'e' epochs, 'f' first seqs, 'p' the cluster's
 * retention policy, shard 0 only), each [kind shard, kind shard+1). The
 * sender reads them at one RocksDB snapshot, so the copy is consistent, in
 * chunks of about LOG_STATE_CHUNK_BYTES: u32 key length, u32 value length,
 * key, value, repeated, packed with zstd. Memory stays bounded by a chunk
 * however large the state is.
 *
 * The receiver replaces its shard's ranges. Crash safety: the first batch
 * deletes the ranges and writes an "incomplete" marker ('i' shard), the last
 * one removes it. State with the marker (a crash mid-copy, after RocksDB
 * flushed part of it) is not a state at all: log_state_incomplete() lets the
 * node notice at start and discard it, and the shard catches up again.
 */

#define LOG_KEY_INCOMPLETE 'i'
static const char log__kinds[] = {LOG_KEY_APPLIED, LOG_KEY_DEDUP, LOG_KEY_MESSAGE,
                                  LOG_KEY_EPOCH, LOG_KEY_FIRST, LOG_KEY_POLICY};
#define LOG_N_KINDS 6

struct log_state_reader {
    struct log_store *ls;
    struct st_view *view;
    struct st_iter *it;
    uint16_t shard;
    int kind;                    /* index into log__kinds of `it` */
};

static size_t log__range(uint8_t *k, char kind, unsigned shard)
{
    HD_ASSERT(shard <= 65536); /* shard + 1 is the upper bound of the last shard */
    k[0] = (uint8_t)kind;
    k[1] = (uint8_t)(shard >> 8);
    k[2] = (uint8_t)shard;
    return 3;
}

/* ------------------------------------------------------------- sending --- */

static int log__reader_next_kind(struct log_state_reader *r)
{
    HD_ASSERT(r->kind < LOG_N_KINDS); /* not called again after the last kind */
    st_iter_close(r->it);
    r->it = NULL;
    if (++r->kind == LOG_N_KINDS) {
        return 0;
    }
    uint8_t lower[3], upper[3];
    log__range(lower, log__kinds[r->kind], r->shard);
    log__range(upper, log__kinds[r->kind], (unsigned)r->shard + 1);
    return st_iter_open_at(&r->it, r->ls->rocks, r->view, lower, 3, upper, 3);
}

int log_state_reader_open(struct log_store *ls, uint16_t shard, struct log_state_reader **out)
{
    HD_ASSERT(shard < ls->n_shards);
    struct log_state_reader *r = hd_calloc(1, sizeof *r);
    if (r == NULL) {
        return HD_ENOMEM;
    }
    *r = (struct log_state_reader){.ls = ls, .shard = shard, .kind = -1};
    int rv = st_rocks_view_acquire(ls->rocks, &r->view);
    if (rv == 0) {
        rv = log__reader_next_kind(r);
    }
    if (rv != 0) {
        log_state_reader_close(r);
        return rv;
    }
    HD_ASSERT(r->kind == 0 && r->it != NULL); /* positioned on the first range */
    *out = r;
    return 0;
}

void log_state_reader_close(struct log_state_reader *r)
{
    if (r == NULL) {
        return;
    }
    st_iter_close(r->it);
    st_rocks_view_release(r->ls->rocks, r->view);
    hd_free(r);
}

/* Appends one pair to the raw chunk, growing it. */
static int log__chunk_add(uint8_t **raw, size_t *len, size_t *cap, const void *k, size_t klen,
                          const void *v, size_t vlen)
{
    /* Pair lengths are u32 on the wire; our own keys and values fit. */
    HD_ASSERT(klen <= UINT32_MAX && vlen <= UINT32_MAX);
    size_t need = *len + 8 + klen + vlen;
    if (need > *cap) {
        size_t cap2 = need > *cap * 2 ? need : *cap * 2;
        uint8_t *grown = hd_realloc(*raw, cap2);
        if (grown == NULL) {
            return HD_ENOMEM;
        }
        *raw = grown;
        *cap = cap2;
    }
    hd_put_u32(*raw + *len, (uint32_t)klen);
    hd_put_u32(*raw + *len + 4, (uint32_t)vlen);
    memcpy(*raw + *len + 8, k, klen);
    memcpy(*raw + *len + 8 + klen, v, vlen);
    *len = need;
    HD_ASSERT(*len <= *cap);
    return 0;
}

int log_state_reader_next(struct log_state_reader *r, uint8_t **chunk, size_t *chunk_len,
                          bool *last)
{
    HD_ASSERT(r->view != NULL);
    uint8_t *raw = NULL;
    size_t len = 0, cap = 0;
    int rv = 0;
    while (rv == 0 && r->it != NULL && len < LOG_STATE_CHUNK_BYTES) {
        if (!st_iter_valid(r->it)) {
            rv = st_iter_status(r->it);
            if (rv == 0) rv = log__reader_next_kind(r);
            continue;
        }
        size_t klen, vlen;
        const void *k = st_iter_key(r->it, &klen);
        const void *v = st_iter_value(r->it, &vlen);
        rv = log__chunk_add(&raw, &len, &cap, k, klen, v, vlen);
        st_iter_next(r->it);
    }
    if (rv == 0) {
        rv = st_zstd_pack(raw != NULL ? raw : (const uint8_t *)"", len, chunk, chunk_len);
    }
    hd_free(raw);
    *last = r->it == NULL;
    HD_ASSERT(rv != 0 || !*last || r->kind == LOG_N_KINDS); /* last: every range read */
    return rv;
}

/* ----------------------------------------------------------- receiving --- */

static size_t log__marker_key(uint8_t *k, uint16_t shard)
{
    return log__range(k, LOG_KEY_INCOMPLETE, shard);
}

/* Deletes the shard's ranges into the store's batch. */
static void log__delete_ranges(struct log_store *ls, uint16_t shard)
{
    for (int i = 0; i < LOG_N_KINDS; i++) {
        uint8_t lower[3], upper[3];
        log__range(lower, log__kinds[i], shard);
        log__range(upper, log__kinds[i], (unsigned)shard + 1);
        st_batch_delete_range(ls->batch, lower, 3, upper, 3);
    }
}

int log_state_replace_begin(struct log_store *ls, uint16_t shard)
{
    HD_ASSERT(shard < ls->n_shards);
    st_batch_clear(ls->batch);
    log__delete_ranges(ls, shard);
    uint8_t key[3];
    st_batch_put(ls->batch, key, log__marker_key(key, shard), "", 0);
    int rv = log__write(ls);
    st_batch_clear(ls->batch);
    /* Heads of this shard's channels are about to change under the cache. */
    log__head_cache_clear(ls);
    return rv;
}

/* True if the key is one of the shard's state keys. */
static bool log__key_of_shard(const uint8_t *k, size_t len, uint16_t shard)
{
    if (len < 3 || k[1] != (uint8_t)(shard >> 8) || k[2] != (uint8_t)shard) {
        return false;
    }
    return memchr(log__kinds, k[0], LOG_N_KINDS) != NULL && len <= LOG_KEY_MAX + 8;
}

int log_state_replace_chunk(struct log_store *ls, uint16_t shard, const uint8_t *chunk,
                            size_t len)
{
    HD_ASSERT(shard < ls->n_shards);
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int rv = st_zstd_unpack(chunk, len, LOG_STATE_CHUNK_BYTES + LOG_PAYLOAD_MAX + 4096, &raw,
                            &raw_len);
    if (rv != 0) {
        return rv == HD_ENOMEM ? rv : HD_ECORRUPT;
    }
    st_batch_clear(ls->batch);
    for (size_t off = 0; off < raw_len && rv == 0;) {
        if (raw_len - off < 8) {
            rv = HD_ECORRUPT;
            break;
        }
        size_t klen = hd_get_u32(raw + off), vlen = hd_get_u32(raw + off + 4);
        if (raw_len - off - 8 < klen || raw_len - off - 8 - klen < vlen ||
            !log__key_of_shard(raw + off + 8, klen, shard)) {
            rv = HD_ECORRUPT; /* a pair that is cut, or not this shard's */
            break;
        }
        st_batch_put(ls->batch, raw + off + 8, klen, raw + off + 8 + klen, vlen);
        off += 8 + klen + vlen;
        HD_ASSERT(off <= raw_len); /* the bounds were checked just above */
    }
    if (rv == 0) {
        rv = log__write(ls);
    }
    st_batch_clear(ls->batch);
    hd_free(raw);
    return rv;
}

int log_state_replace_end(struct log_store *ls, uint16_t shard)
{
    HD_ASSERT(shard < ls->n_shards);
    uint8_t key[3];
    st_batch_clear(ls->batch);
    st_batch_delete(ls->batch, key, log__marker_key(key, shard));
    int rv = log__write(ls);
    st_batch_clear(ls->batch);
    if (rv == 0 && shard == LOG_POLICY_SHARD) {
        rv = log__policy_load(ls, true); /* the copy may hold another policy */
    }
    return rv;
}

bool log_state_incomplete(struct log_store *ls, uint16_t shard)
{
    HD_ASSERT(shard < ls->n_shards);
    uint8_t key[3], val[1];
    size_t len = 0;
    return st_rocks_get_into(ls->rocks, key, log__marker_key(key, shard), val, sizeof val,
                             &len) == 0;
}

int log_state_discard(struct log_store *ls, uint16_t shard)
{
    HD_ASSERT(shard < ls->n_shards);
    st_batch_clear(ls->batch);
    log__delete_ranges(ls, shard);
    uint8_t key[3];
    st_batch_delete(ls->batch, key, log__marker_key(key, shard));
    int rv = log__write(ls);
    st_batch_clear(ls->batch);
    log__head_cache_clear(ls);
    if (rv == 0 && shard == LOG_POLICY_SHARD) {
        rv = log__policy_load(ls, true); /* gone with the shard's state */
    }
    return rv == 0 ? st_rocks_flush(ls->rocks) : rv;
}
