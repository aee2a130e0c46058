/* SPDX-License-Identifier: Apache-2.0 */
/* The text of GET /metrics as it is built (status.c), for the files that
 * add to it. */
#ifndef API_METRICS_TEXT_H
#define API_METRICS_TEXT_H

#include <stddef.h>

#include "node.h"

struct api_server;

/* A growing buffer; a failed allocation leaves the page short. */
struct api_text {
    char *buf;
    size_t len;
    size_t cap;
};

/* Appends printf output to t. */
void api__printf(struct api_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The latency and batching histograms (metrics_hist.c): append latency on
 * this node, WAL sync latency, entries per sync, appends per entry. */
void api_metrics_histograms(struct api_server *s, const struct cons_node_stats *st,
                            struct api_text *t);

#endif
