/* SPDX-License-Identifier: Apache-2.0 */
/* The cache of channel heads (log_internal.h says what it holds and why). */
#include <stdint.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_assert.h"
#include "log_internal.h"

#define LOG_HEAD_CACHE_LINE 64u
#define LOG_HEAD_CACHE_SETS (LOG_HEAD_CACHE_SLOTS / LOG_HEAD_CACHE_WAYS)

_Static_assert(sizeof(struct log_head_slot) == LOG_HEAD_CACHE_LINE,
               "a head cache slot is one cache line");

static struct log_head_slot *log__set(struct log_store *ls, uint64_t hash)
{
    HD_ASSERT(hash != 0); /* 0 marks an empty slot */
    /* Not the lowest bit: every hash has it set. */
    return &ls->heads[((hash >> 1) % LOG_HEAD_CACHE_SETS) * LOG_HEAD_CACHE_WAYS];
}

static bool log__slot_holds(const struct log_head_slot *s, uint64_t hash, const char *ch,
                            size_t len)
{
    return s->hash == hash && s->len == len && memcmp(s->channel, ch, len) == 0;
}

int log__head_cache_init(struct log_store *ls)
{
    /* calloc of this size maps fresh zero pages: a page of slots takes
     * memory only once a channel is written into it. One line more to
     * start the slots on a cache line, so a slot is read in one. */
    ls->heads_mem = hd_calloc(1, LOG_HEAD_CACHE_SLOTS * sizeof *ls->heads + LOG_HEAD_CACHE_LINE);
    if (ls->heads_mem == NULL) {
        return HD_ENOMEM;
    }
    uintptr_t p = (uintptr_t)ls->heads_mem;
    ls->heads = (struct log_head_slot *)((p + LOG_HEAD_CACHE_LINE - 1) &
                                         ~(uintptr_t)(LOG_HEAD_CACHE_LINE - 1));
    return 0;
}

void log__head_cache_free(struct log_store *ls)
{
    hd_free(ls->heads_mem);
    ls->heads_mem = NULL;
    ls->heads = NULL;
}

bool log__head_cache_get(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t *seq, uint64_t *ts)
{
    if (len > LOG_HEAD_CACHE_ID_MAX) {
        return false;
    }
    const struct log_head_slot *set = log__set(ls, hash);
    for (unsigned i = 0; i < LOG_HEAD_CACHE_WAYS; i++) {
        if (log__slot_holds(&set[i], hash, ch, len)) {
            *seq = set[i].seq;
            *ts = set[i].ts;
            return true;
        }
    }
    return false;
}

void log__head_cache_put(struct log_store *ls, uint64_t hash, const char *ch, size_t len,
                         uint64_t seq, uint64_t ts)
{
    if (len > LOG_HEAD_CACHE_ID_MAX) {
        return; /* read from state each time */
    }
    struct log_head_slot *set = log__set(ls, hash);
    for (unsigned i = 0; i < LOG_HEAD_CACHE_WAYS; i++) {
        if (log__slot_holds(&set[i], hash, ch, len)) {
            set[i].seq = seq;
            set[i].ts = ts;
            return;
        }
    }
    /* The way taken: the first empty one, else the last (the oldest). */
    unsigned take = 0;
    while (take < LOG_HEAD_CACHE_WAYS - 1 && set[take].hash != 0) {
        take++;
    }
    /* The newest first: the ways before the one taken move down one. */
    memmove(&set[1], &set[0], take * sizeof *set);
    struct log_head_slot *s = &set[0];
    s->hash = hash;
    s->len = (uint8_t)len;
    memcpy(s->channel, ch, len);
    s->seq = seq;
    s->ts = ts;
}

void log__head_cache_drop(struct log_store *ls, uint64_t hash)
{
    struct log_head_slot *set = log__set(ls, hash);
    for (unsigned i = 0; i < LOG_HEAD_CACHE_WAYS; i++) {
        if (set[i].hash == hash) {
            set[i].hash = 0;
        }
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
