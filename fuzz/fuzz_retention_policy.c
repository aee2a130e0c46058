/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the retention policy parser (common/hd_retention.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_retention.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A refused policy is HD_EINVAL with a message and leaves the set empty; an
 * accepted one has a canonical text that parses back to the same text, and
 * every rule matches what its own pattern names. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hd_retention set, again;
    static char text[HD_RETENTION_TEXT_MAX], text2[HD_RETENTION_TEXT_MAX];
    char err[512];
    memset(&set, 0, sizeof set);
    int rv = hd_retention_parse(&set, (const char *)data, size, err, sizeof err);
    if (rv != 0) {
        HD_ASSERT(rv == HD_EINVAL && err[0] != '\0' && set.n == 0);
        return 0;
    }
    HD_ASSERT(set.n >= 1 && set.n <= HD_RETENTION_RULES_MAX);
    size_t n = hd_retention_format(&set, text, sizeof text);
    HD_ASSERT(n < sizeof text);
    memset(&again, 0, sizeof again);
    HD_ASSERT(hd_retention_parse(&again, text, n, err, sizeof err) == 0);
    HD_ASSERT(again.n == set.n);
    HD_ASSERT(hd_retention_format(&again, text2, sizeof text2) == n && memcmp(text, text2, n) == 0);
    for (size_t i = 0; i < set.n; i++) {
        const struct hd_grant *p = &set.rules[i].pattern;
        if (p->pattern_len > 0) {
            /* The first rule matching a channel named like this pattern is this one or earlier. */
            const struct hd_retention_rule *r = hd_retention_match(&set, p->pattern, p->pattern_len);
            HD_ASSERT(r != NULL && r <= &set.rules[i]);
        }
    }
    return 0;
}
