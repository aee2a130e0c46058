/* SPDX-License-Identifier: Apache-2.0 */
/* Power-of-two histograms for /metrics (hd_histogram.h). */
#include "hd_histogram.h"

#include "hd_assert.h"

uint64_t hd_histogram_bound(unsigned i)
{
    HD_ASSERT(i < HD_HISTOGRAM_BOUNDS);
    return (uint64_t)1 << i;
}

uint64_t hd_histogram_cumulative(const struct hd_histogram *h, unsigned i)
{
    if (i >= HD_HISTOGRAM_BOUNDS) {
        return h->count;
    }
    uint64_t n = 0;
    for (unsigned k = 0; k <= i; k++) {
        n += h->buckets[k];
    }
    return n;
}
