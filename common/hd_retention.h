/* SPDX-License-Identifier: Apache-2.0 */
/* Retention policies: which channels keep how much history (heraldd --retention). */
#ifndef HD_RETENTION_H
#define HD_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_token.h"

/*
 * A policy is a list of rules, separated by ';' (or given as several
 * --retention flags, which append in order):
 *
 *     PATTERN=LIMIT[,LIMIT...]        or       PATTERN=none
 *
 * PATTERN is a scope's channel pattern (hd_pattern_parse: "chat:*", "*",
 * "audit-log"). Each LIMIT at most once per rule:
 *
 *     age:N{s|m|h|d|w}     drop messages older than this (by their ts)
 *     messages:N           keep at most N messages (0: none at all)
 *     bytes:N[B|KiB|MiB|GiB|TiB|kB|MB|GB|TB]   keep at most N payload bytes
 *
 * A channel takes the first rule whose pattern matches it; `none` keeps
 * everything (to exempt channels from a later catch-all). No rule: kept.
 * A rule that an earlier one shadows entirely ("*" before "chat:*") is an
 * error, as it could never apply. Spaces around the separators are ignored.
 */

#define HD_RETENTION_RULES_MAX 64u
/* The canonical text of a whole policy fits this (64 rules of ~200 bytes). */
#define HD_RETENTION_TEXT_MAX 16384u

struct hd_retention_rule {
    struct hd_grant pattern;     /* scope 0: pattern and prefix only */
    uint64_t max_age_us;         /* 0: no age limit */
    uint64_t max_messages;
    uint64_t max_bytes;
    bool has_messages;           /* messages: given (max_messages may be 0) */
    bool has_bytes;              /* bytes: given (max_bytes may be 0) */
};

struct hd_retention {
    struct hd_retention_rule rules[HD_RETENTION_RULES_MAX];
    size_t n;
};

/* Appends the rules of text (len bytes, any content) to set. HD_EINVAL with
 * a message naming the rule and what is wrong in err, and set unchanged, on
 * any error. */
int hd_retention_parse(struct hd_retention *set, const char *text, size_t len, char *err,
                       size_t err_len);

/* The rule that applies to channel: the first that matches, or NULL. A rule
 * of `none` is returned too (hd_retention_rule_limits false). */
const struct hd_retention_rule *hd_retention_match(const struct hd_retention *set,
                                                   const char *channel, size_t len);

/* True if the rule limits anything. */
bool hd_retention_rule_limits(const struct hd_retention_rule *r);

/* The canonical text of one rule, or of the whole policy ("" for none),
 * which parses back to the same rules; returns its length (truncated to
 * out_len - 1 like snprintf). */
size_t hd_retention_rule_format(const struct hd_retention_rule *r, char *out, size_t out_len);
size_t hd_retention_format(const struct hd_retention *set, char *out, size_t out_len);

/* A short hash of the canonical text (8 lowercase hex digits and NUL), so
 * that nodes' policies compare at a glance. */
void hd_retention_hash(const struct hd_retention *set, char out[9]);

#endif
