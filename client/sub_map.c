/* SPDX-License-Identifier: Apache-2.0 */
/* A string-keyed intrusive hash map: a subscription's channels and appends
 * in flight, found by name or id in O(1) however many there are. */
#include <string.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_util.h"
#include "sub_internal.h"

struct herald__snode *herald__smap_get(const struct herald__smap *m, const char *key, size_t len)
{
    if (m->nbuckets == 0) return NULL;
    uint64_t h = hd_hash64(key, len);
    for (struct herald__snode *n = m->buckets[h & (m->nbuckets - 1)]; n != NULL; n = n->next) {
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0) return n;
    }
    return NULL;
}

/* Doubles the bucket array (from 16), rehashing every node. */
static int smap_grow(struct herald__smap *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
    struct herald__snode **b = hd_calloc(nb, sizeof *b);
    if (b == NULL) return HD_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        while (m->buckets[i] != NULL) {
            struct herald__snode *n = m->buckets[i];
            m->buckets[i] = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    hd_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int herald__smap_put(struct herald__smap *m, struct herald__snode *n)
{
    /* Load factor at most 1: chains stay short. */
    if (m->count >= m->nbuckets) {
        int rv = smap_grow(m);
        if (rv != 0) return rv;
    }
    n->hash = hd_hash64(n->key, n->key_len);
    struct herald__snode **slot = &m->buckets[n->hash & (m->nbuckets - 1)];
    n->next = *slot;
    *slot = n;
    m->count++;
    return 0;
}

void herald__smap_del(struct herald__smap *m, struct herald__snode *n)
{
    struct herald__snode **p = &m->buckets[n->hash & (m->nbuckets - 1)];
    while (*p != n) p = &(*p)->next;
    *p = n->next;
    n->next = NULL;
    m->count--;
}

void herald__smap_free(struct herald__smap *m)
{
    hd_free(m->buckets);
    memset(m, 0, sizeof *m);
}
