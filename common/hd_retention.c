/* SPDX-License-Identifier: Apache-2.0 */
/* The retention policy parser, matcher and canonical text (rules in hd_retention.h). */
#include "hd_retention.h"

#include <stdio.h>
#include <string.h>

#include "hd_error.h"
#include "hd_ts.h"
#include "hd_util.h"

struct hd__unit {
    const char *name;
    uint64_t factor;
};

/* Largest first: hd__format_amount prints the largest unit that divides. */
static const struct hd__unit hd__age_units[] = {
    {"w", 7ull * 86400 * 1000000}, {"d", 86400ull * 1000000}, {"h", 3600ull * 1000000},
    {"m", 60ull * 1000000},        {"s", 1000000},
};
static const struct hd__unit hd__byte_units[] = {
    {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10},
    {"TB", 1000000000000ull}, {"GB", 1000000000}, {"MB", 1000000}, {"kB", 1000}, {"B", 1},
};

/* Ages are kept in microseconds; this bound (about 290 000 years) leaves
 * room to subtract from any clock reading without wrapping. */
#define HD__AGE_MAX_US (UINT64_MAX / 2)

static void hd__trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t')) {
        (*len)--;
    }
}

/* "N" followed by one of units (or none if `bare` is allowed), times its
 * factor, at most max. */
static int hd__parse_amount(const char *s, size_t len, const struct hd__unit *units,
                            size_t n_units, bool bare, uint64_t max, uint64_t *out)
{
    size_t digits = 0;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') {
        digits++;
    }
    uint64_t v;
    if (digits == 0 || hd_u64_parse(s, digits, &v) != 0) {
        return HD_EINVAL;
    }
    uint64_t factor = 0;
    if (digits == len) {
        factor = bare ? 1 : 0;
    }
    for (size_t i = 0; i < n_units && factor == 0; i++) {
        size_t ul = strlen(units[i].name);
        if (len - digits == ul && memcmp(s + digits, units[i].name, ul) == 0) {
            factor = units[i].factor;
        }
    }
    if (factor == 0 || (v != 0 && v > max / factor)) {
        return HD_EINVAL;
    }
    *out = v * factor;
    return 0;
}

/* One LIMIT into r; a message in err (without the rule) on error. */
static int hd__parse_limit(const char *s, size_t len, struct hd_retention_rule *r, char *err,
                           size_t err_len)
{
    const char *colon = memchr(s, ':', len);
    size_t name_len = colon != NULL ? (size_t)(colon - s) : len;
    const char *arg = colon != NULL ? colon + 1 : s + len;
    size_t arg_len = len - name_len - (colon != NULL ? 1 : 0);
    hd__trim(&arg, &arg_len);
    if (name_len == 3 && memcmp(s, "age", 3) == 0) {
        uint64_t us;
        if (r->max_age_us != 0) {
            snprintf(err, err_len, "age is given twice");
        } else if (hd__parse_amount(arg, arg_len, hd__age_units, 5, false, HD__AGE_MAX_US,
                                    &us) != 0 || us == 0) {
            snprintf(err, err_len,
                     "age must be a whole number of seconds, minutes, hours, days or weeks,"
                     " at least 1s (e.g. age:30s, age:7d), got '%.*s'", (int)arg_len, arg);
        } else {
            r->max_age_us = us;
            return 0;
        }
    } else if (name_len == 8 && memcmp(s, "messages", 8) == 0) {
        if (r->has_messages) {
            snprintf(err, err_len, "messages is given twice");
        } else if (hd_u64_parse(arg, arg_len, &r->max_messages) != 0) {
            snprintf(err, err_len, "messages must be a whole number (0 keeps none), got '%.*s'",
                     (int)arg_len, arg);
        } else {
            r->has_messages = true;
            return 0;
        }
    } else if (name_len == 5 && memcmp(s, "bytes", 5) == 0) {
        if (r->has_bytes) {
            snprintf(err, err_len, "bytes is given twice");
        } else if (hd__parse_amount(arg, arg_len, hd__byte_units, 9, true, UINT64_MAX,
                                    &r->max_bytes) != 0) {
            snprintf(err, err_len,
                     "bytes must be a whole number, optionally with B, KiB, MiB, GiB, TiB,"
                     " kB, MB, GB or TB (e.g. bytes:1GiB), got '%.*s'", (int)arg_len, arg);
        } else {
            r->has_bytes = true;
            return 0;
        }
    } else {
        snprintf(err, err_len, "unknown limit '%.*s': use age:, messages: or bytes:, or none",
                 (int)len, s);
    }
    return HD_EINVAL;
}

/* True if every channel b matches, a matches too. */
static bool hd__covers(const struct hd_grant *a, const struct hd_grant *b)
{
    if (!a->prefix) {
        return !b->prefix && a->pattern_len == b->pattern_len &&
               memcmp(a->pattern, b->pattern, a->pattern_len) == 0;
    }
    return b->pattern_len >= a->pattern_len &&
           memcmp(a->pattern, b->pattern, a->pattern_len) == 0;
}

static int hd__parse_rule(const char *s, size_t len, struct hd_retention_rule *r, char *err,
                          size_t err_len)
{
    memset(r, 0, sizeof *r);
    const char *eq = memchr(s, '=', len);
    if (eq == NULL) {
        snprintf(err, err_len, "a rule is PATTERN=LIMIT[,LIMIT...] or PATTERN=none");
        return HD_EINVAL;
    }
    const char *pat = s;
    size_t pat_len = (size_t)(eq - s);
    hd__trim(&pat, &pat_len);
    if (hd_pattern_parse(pat, pat_len, &r->pattern) != 0) {
        snprintf(err, err_len,
                 "bad pattern '%.*s': a channel id, a prefix followed by '*', or '*'",
                 (int)pat_len, pat);
        return HD_EINVAL;
    }
    const char *lim = eq + 1;
    size_t lim_len = (size_t)(s + len - lim);
    hd__trim(&lim, &lim_len);
    if (lim_len == 4 && memcmp(lim, "none", 4) == 0) {
        return 0;
    }
    if (lim_len == 0) {
        snprintf(err, err_len, "no limit after '=': give age:, messages:, bytes: or none");
        return HD_EINVAL;
    }
    while (lim_len > 0) {
        const char *comma = memchr(lim, ',', lim_len);
        const char *one = lim;
        size_t one_len = comma != NULL ? (size_t)(comma - lim) : lim_len;
        size_t used = one_len + (comma != NULL ? 1 : 0);
        lim += used;
        lim_len -= used;
        hd__trim(&one, &one_len);
        if (one_len == 0 || (comma != NULL && lim_len == 0)) {
            snprintf(err, err_len, "an empty limit (two commas, or one at an end)");
            return HD_EINVAL;
        }
        if (hd__parse_limit(one, one_len, r, err, err_len) != 0) {
            return HD_EINVAL;
        }
    }
    return 0;
}

int hd_retention_parse(struct hd_retention *set, const char *text, size_t len, char *err,
                       size_t err_len)
{
    size_t n = set->n;
    const char *p = text, *end = text + len;
    const char *semi;
    if (err_len > 0) {
        err[0] = '\0';
    }
    do {
        semi = memchr(p, ';', (size_t)(end - p));
        const char *rule = p;
        size_t rule_len = (size_t)((semi != NULL ? semi : end) - p);
        p = semi != NULL ? semi + 1 : end;
        hd__trim(&rule, &rule_len);
        char why[320] = "";
        if (rule_len == 0) {
            snprintf(err, err_len, "an empty rule (a policy is RULE[;RULE...])");
            return HD_EINVAL;
        }
        if (n == HD_RETENTION_RULES_MAX) {
            snprintf(err, err_len, "more than %u rules", HD_RETENTION_RULES_MAX);
            return HD_EINVAL;
        }
        struct hd_retention_rule r;
        if (hd__parse_rule(rule, rule_len, &r, why, sizeof why) != 0) {
            snprintf(err, err_len, "rule '%.*s': %s", (int)(rule_len > 200 ? 200 : rule_len),
                     rule, why);
            return HD_EINVAL;
        }
        /* Checked against the rules before it, in the set or parsed here;
         * set->n moves only once all of text parsed, so an error leaves
         * the set as it was. */
        struct hd_retention_rule *slot = &set->rules[n];
        for (size_t i = 0; i < n; i++) {
            if (hd__covers(&set->rules[i].pattern, &r.pattern)) {
                snprintf(err, err_len,
                         "rule '%.*s' never applies: rule %zu ('%s%s') matches every channel"
                         " it does, and the first matching rule wins",
                         (int)(rule_len > 200 ? 200 : rule_len), rule, i + 1,
                         set->rules[i].pattern.pattern, set->rules[i].pattern.prefix ? "*" : "");
                return HD_EINVAL;
            }
        }
        *slot = r;
        n++;
    } while (semi != NULL); /* a ';' is always followed by a rule */
    set->n = n;
    return 0;
}

const struct hd_retention_rule *hd_retention_match(const struct hd_retention *set,
                                                   const char *channel, size_t len)
{
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        if (hd_grant_matches(&set->rules[i].pattern, channel, len)) {
            return &set->rules[i];
        }
    }
    return NULL;
}

bool hd_retention_rule_limits(const struct hd_retention_rule *r)
{
    return r != NULL && (r->max_age_us != 0 || r->has_messages || r->has_bytes);
}

/* v in the largest unit that divides it exactly. */
static int hd__format_amount(char *out, size_t out_len, uint64_t v,
                             const struct hd__unit *units, size_t n_units)
{
    for (size_t i = 0; i < n_units; i++) {
        if (v != 0 && v % units[i].factor == 0) {
            return snprintf(out, out_len, "%llu%s", (unsigned long long)(v / units[i].factor),
                            units[i].factor == 1 && strcmp(units[i].name, "B") == 0
                                ? ""
                                : units[i].name);
        }
    }
    return snprintf(out, out_len, "%llu", (unsigned long long)v);
}

/* snprintf at *n of out, keeping *n the length it would have untruncated. */
#define HD__APPEND(out, out_len, n, ...)                                                  \
    ((n) += (size_t)snprintf((out) + ((n) < (out_len) ? (n) : (out_len)),                \
                             (n) < (out_len) ? (out_len) - (n) : 0, __VA_ARGS__))

size_t hd_retention_rule_format(const struct hd_retention_rule *r, char *out, size_t out_len)
{
    char age[48] = "", bytes[48] = "";
    hd__format_amount(age, sizeof age, r->max_age_us, hd__age_units, 5);
    hd__format_amount(bytes, sizeof bytes, r->max_bytes, hd__byte_units, 9);
    size_t n = 0;
    const char *sep = "";
    HD__APPEND(out, out_len, n, "%s%s=", r->pattern.pattern, r->pattern.prefix ? "*" : "");
    if (!hd_retention_rule_limits(r)) {
        HD__APPEND(out, out_len, n, "none");
    }
    if (r->max_age_us != 0) {
        HD__APPEND(out, out_len, n, "age:%s", age);
        sep = ",";
    }
    if (r->has_messages) {
        HD__APPEND(out, out_len, n, "%smessages:%llu", sep, (unsigned long long)r->max_messages);
        sep = ",";
    }
    if (r->has_bytes) {
        HD__APPEND(out, out_len, n, "%sbytes:%s", sep, bytes);
    }
    return out_len == 0 ? 0 : (n < out_len ? n : out_len - 1);
}

size_t hd_retention_format(const struct hd_retention *set, char *out, size_t out_len)
{
    size_t n = 0;
    if (out_len > 0) {
        out[0] = '\0';
    }
    for (size_t i = 0; set != NULL && i < set->n && n + 1 < out_len; i++) {
        if (i > 0) {
            out[n++] = ';';
            out[n] = '\0';
        }
        n += hd_retention_rule_format(&set->rules[i], out + n, out_len - n);
    }
    return n;
}

void hd_retention_hash(const struct hd_retention *set, char out[9])
{
    char text[HD_RETENTION_TEXT_MAX];
    size_t n = hd_retention_format(set, text, sizeof text);
    snprintf(out, 9, "%08llx", (unsigned long long)(hd_hash64(text, n) & 0xffffffffu));
}
