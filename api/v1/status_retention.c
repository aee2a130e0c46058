/* SPDX-License-Identifier: Apache-2.0 */
/* The node's retention policy in /v1/status, so that nodes' policies can be compared. */
#include "api.h"
#include "hd_retention.h"

/*
 * A shard's leader trims by its own node's policy, so nodes given different
 * policies would keep different history after a leader change: the status
 * shows each node's canonical policy and a short hash of it, and `herald
 * cluster status` warns when the hashes differ.
 */
json_t *api_status_retention(const struct api_server *s)
{
    char text[HD_RETENTION_TEXT_MAX], hash[9];
    hd_retention_format(s->retention, text, sizeof text);
    hd_retention_hash(s->retention, hash);
    json_t *rules = json_array();
    for (size_t i = 0; s->retention != NULL && i < s->retention->n; i++) {
        const struct hd_retention_rule *r = &s->retention->rules[i];
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
    return json_pack("{s:s, s:s, s:I, s:o}", "policy", text, "hash", hash, "interval_ms",
                     (json_int_t)s->retention_interval_ms, "rules", rules);
}
