/* SPDX-License-Identifier: Apache-2.0 */
/* A histogram for /metrics: fixed power-of-two buckets of plain counters,
 * cheap enough for the append path (no allocation, no lock, no loop). */
#ifndef HD_HISTOGRAM_H
#define HD_HISTOGRAM_H

#include <stdint.h>

/*
 * Bucket i counts the observed values v with 2^(i-1) < v <= 2^i (bucket 0:
 * v <= 1, 0 included); the last bucket counts values above 2^(BOUNDS-1).
 * Values are integers in the caller's unit (microseconds, entries, ...).
 * Every histogram has the same buckets, so a zeroed struct is an empty
 * histogram and needs no initialisation; whoever prints one chooses how
 * many bounds to show (cumulative counts stay right whatever is left out).
 *
 * One thread at a time: the node's histograms are written and read on its
 * loop thread; readers copy the struct.
 */
#define HD_HISTOGRAM_BOUNDS 32 /* finite upper bounds 2^0 .. 2^31 */

struct hd_histogram {
    uint64_t buckets[HD_HISTOGRAM_BOUNDS + 1]; /* per bucket, not cumulative */
    uint64_t count;                            /* values observed */
    uint64_t sum;                              /* their sum (wraps past 2^64) */
};

/* The bucket that holds v: ceil(log2(v)), one count-leading-zeros. */
static inline unsigned hd_histogram_bucket(uint64_t v)
{
    if (v <= 1) {
        return 0;
    }
    unsigned b = 64u - (unsigned)__builtin_clzll(v - 1);
    return b < HD_HISTOGRAM_BOUNDS ? b : HD_HISTOGRAM_BOUNDS;
}

static inline void hd_histogram_observe(struct hd_histogram *h, uint64_t v)
{
    h->buckets[hd_histogram_bucket(v)]++;
    h->count++;
    h->sum += v;
}

/* Upper bound i (i < HD_HISTOGRAM_BOUNDS): 2^i. */
uint64_t hd_histogram_bound(unsigned i);

/* Values observed at or below bound i (Prometheus' cumulative `le` count);
 * i >= HD_HISTOGRAM_BOUNDS gives every value (`+Inf`). */
uint64_t hd_histogram_cumulative(const struct hd_histogram *h, unsigned i);

#endif
