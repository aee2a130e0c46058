/* SPDX-License-Identifier: Apache-2.0 */
/* The cache of channel heads (log_internal.h says what it holds and why). */
#include <string.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_assert.h"
#include "log_internal.h"

_Static_assert(sizeof(struct log_head_slot) == 64, "a head cache slot is one cache line");

static struct log_head_slot *log__slot(struct log_store *ls, uint64_t hash)
{
    HD_ASSERT(hash != 0); /* 0 marks an empty slot */
    return &ls->heads[hash % LOG_HEAD_CACHE_SLOTS];
}

int log__head_cache_init(struct log_store *ls)
{
    /* calloc of this size maps fresh zero pages: a page of slots takes
     * memory only once a channel is written into it. */
    ls->heads = hd_calloc(LOG_HEAD_CACHE_SLOTS, sizeof *ls->heads);
    return ls->heads != NULL ? 0 : HD_ENOMEM;
}

bool log__head_cache_get(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t *seq, uint64_t *ts)
{
    const struct log_head_slot *s = log__slot(ls, hash);
    if (len > LOG_HEAD_CACHE_ID_MAX || s->hash != hash || s->len != len ||
        memcmp(s->channel, ch, len) != 0) {
        return false;
    }
    *seq = s->seq;
    *ts = s->ts;
    return true;
}

void log__head_cache_put(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t seq, uint64_t ts)
{
    struct log_head_slot *s = log__slot(ls, hash);
    if (len > LOG_HEAD_CACHE_ID_MAX) {
        return; /* read from state each time */
    }
    s->hash = hash;
    s->len = (uint8_t)len;
    memcpy(s->channel, ch, len);
    s->seq = seq;
    s->ts = ts;
}

void log__head_cache_drop(struct log_store *ls, uint64_t hash)
{
    struct log_head_slot *s = log__slot(ls, hash);
    if (s->hash == hash) {
        s->hash = 0;
    }
}

void log__head_cache_clear(struct log_store *ls)
{
    /* Reading a page never written maps the shared zero page; only the
     * slots in use are written, so clearing costs no memory. */
    for (size_t i = 0; i < LOG_HEAD_CACHE_SLOTS; i++) {
        if (ls->heads[i].hash != 0) {
            ls->heads[i].hash = 0;
        }
    }
}
