/* SPDX-License-Identifier: Apache-2.0 */
/* The node's effective retention policy in /v1/status and GET /v1/retention. */
#include <stdio.h>

#include "api.h"
#include "hd_retention.h"
#include "log.h"

/*
 * A shard's leader trims by its node's effective policy: the cluster's, set
 * through Raft (`source` "cluster"), or without one the node's own
 * --retention ("config"). The status shows the canonical policy and a short
 * hash of it, and `herald cluster status` warns when the hashes differ (a
 * node that has not applied a new cluster policy yet, or nodes given
 * different --retention while no cluster policy is set).
 */
json_t *api_status_retention(const struct api_server *s)
{
    bool cluster = false;
    const struct hd_retention *p = log_retention_effective(s->log, &cluster);
    char text[HD_RETENTION_TEXT_MAX], hash[9];
    hd_retention_format(p, text, sizeof text);
    hd_retention_hash(p, hash);
    json_t *rules = json_array();
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct hd_retention_rule *r = &p->rules[i];
        char one[512], pattern[HD_CHANNEL_MAX + 2];
        hd_retention_rule_format(r, one, sizeof one);
        snprintf(pattern, sizeof pattern, "%s%s", r->pattern.pattern, r->pattern.prefix ? "*" : "");
        json_t *j = json_pack("{s:s, s:s}", "pattern", pattern, "rule", one);
        json_object_set_new(j, "max_age_s", r->max_age_us != 0
                                                ? json_integer((json_int_t)(r->max_age_us / 1000000))
                                                : json_null());
        json_object_set_new(j, "max_messages",
                            r->has_messages ? json_integer((json_int_t)r->max_messages) : json_null());
        json_object_set_new(j, "max_bytes",
                            r->has_bytes ? json_integer((json_int_t)r->max_bytes) : json_null());
        json_array_append_new(rules, j);
    }
    return json_pack("{s:s, s:s, s:s, s:I, s:o}", "policy", text, "hash", hash, "source",
                     cluster ? "cluster" : "config", "interval_ms",
                     (json_int_t)s->retention_interval_ms, "rules", rules);
}
