/* SPDX-License-Identifier: Apache-2.0 */
/* The histograms of GET /metrics: where an append's time goes (on this
 * node, in the WAL's sync) and how appends are batched (per Raft entry,
 * entries per WAL sync). Prometheus histograms: cumulative `_bucket{le}`,
 * `_sum`, `_count`. */
#include <inttypes.h>

#include "api.h"
#include "hd_histogram.h"
#include "metrics_text.h"

/* Bounds shown: latencies 1 us .. 2^24 us (about 17 s), counts 1 .. 2^14
 * (a Raft entry holds at most 1024 appends). Anything above is in +Inf. */
#define API__LATENCY_BOUNDS 25u
#define API__COUNT_BOUNDS 15u

/* One histogram; microseconds are printed as seconds, the Prometheus unit. */
static void api__histogram(struct api_text *t, const char *name, const char *help,
                           const struct hd_histogram *h, unsigned bounds, bool micros)
{
    api__printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (unsigned i = 0; i < bounds; i++) {
        uint64_t le = hd_histogram_bound(i), n = hd_histogram_cumulative(h, i);
        if (micros) {
            api__printf(t, "%s_bucket{le=\"%.9g\"} %" PRIu64 "\n", name, (double)le / 1e6, n);
        } else {
            api__printf(t, "%s_bucket{le=\"%" PRIu64 "\"} %" PRIu64 "\n", name, le, n);
        }
    }
    api__printf(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    if (micros) {
        api__printf(t, "%s_sum %" PRIu64 ".%06" PRIu64 "\n", name, h->sum / 1000000u,
                    h->sum % 1000000u);
    } else {
        api__printf(t, "%s_sum %" PRIu64 "\n", name, h->sum);
    }
    api__printf(t, "%s_count %" PRIu64 "\n", name, h->count);
}

void api_metrics_histograms(struct api_server *s, const struct cons_node_stats *st,
                            struct api_text *t)
{
    api__histogram(t, "herald_append_latency_seconds",
                   "Appends acknowledged by this node (201 or 200): from the request parsed "
                   "to the answer queued.",
                   &s->metrics.append_us, API__LATENCY_BOUNDS, true);
    api__histogram(t, "herald_wal_sync_seconds",
                   "WAL group commits: from the write submitted (RWF_DSYNC, or pwrite and "
                   "fdatasync) to its completion.",
                   &st->wal_sync_us, API__LATENCY_BOUNDS, true);
    api__histogram(t, "herald_wal_entries_per_sync",
                   "Raft entries written by each WAL group commit.", &st->wal_entries_per_sync,
                   API__COUNT_BOUNDS, false);
    api__histogram(t, "herald_appends_per_entry",
                   "Appends in each Raft entry this node proposed.", &st->appends_per_entry,
                   API__COUNT_BOUNDS, false);
}
