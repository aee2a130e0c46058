/* SPDX-License-Identifier: Apache-2.0 */
/* `herald status` and `herald cluster status` as human tables, from
 * GET /v1/status answers (JSON). */
#ifndef HERALD_CLI_STATUS_FORMAT_H
#define HERALD_CLI_STATUS_FORMAT_H

#include <jansson.h>
#include <stdio.h>

/* Prints one node's status: a summary line, rates (when prev, an earlier
 * answer of the same node, is not NULL), the shards table (leader, term,
 * commit, applied, lag), the peers table and disk use. Returns 0, or -1
 * when st is not a status object (nothing printed). */
int cli_status_print(FILE *out, const json_t *st, const json_t *prev);

/* A node's effective retention policy (the status' "retention" object, or
 * GET /v1/retention's answer): a table of its rules (pattern, max age,
 * messages, bytes), then its hash, whether it is the cluster's or the
 * node's --retention, and the sweep interval; or one line saying there is
 * none. Returns 0, or -1 when it has no rules array (a node older than
 * policies; nothing printed). */
int cli_retention_print(FILE *out, const json_t *retention);

/* "12.5 MiB" for n bytes (buf of at least 16 bytes). */
const char *cli_bytes(unsigned long long n, char *buf, size_t size);

/* Per-second rate of a counter between two answers, from their now_ms;
 * -1 when it cannot be computed (missing fields, no time passed, the
 * counter went back: a restarted node). */
double cli_rate(const json_t *st, const json_t *prev, const char *obj, const char *field);

/* One node as seen in `herald cluster status`: st is NULL when it did not
 * answer (the caller says why: the reason is too long for a cell). */
struct cli_node_view {
    const char *url;
    const json_t *st;
};

/* The cluster table: one row per node asked (answered or not) with its id,
 * what shards it leads and which leader it sees for every shard; then a
 * line per shard whose answering nodes disagree on the leader or term, and
 * a warning naming each node's policy if their retention policies differ.
 * Returns the number of nodes that did not answer. */
int cli_cluster_print(FILE *out, const struct cli_node_view *nodes, size_t n);

#endif
