/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the ts and u64 text parsers (common/hd_ts.c) on arbitrary bytes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted ts must be digits with at most one '.', and format to a text
 * that parses back to the same value (and equals the input when it has six
 * fraction digits and no leading zeros); a rejected one must be HD_EINVAL.
 * The same for a u64. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint64_t ts = 0;
    int rv = hd_ts_parse(s, size, &ts);
    if (rv != 0) {
        HD_ASSERT(rv == HD_EINVAL);
    } else {
        HD_ASSERT(size >= 1 && size <= 27);
        char buf[HD_TS_STR_MAX];
        int n = hd_ts_format(ts, buf, sizeof buf);
        HD_ASSERT(n > 0);
        uint64_t back = 0;
        HD_ASSERT(hd_ts_parse(buf, (size_t)n, &back) == 0 && back == ts);
        /* Six fraction digits and no leading zero: the input is canonical. */
        const char *dot = memchr(s, '.', size);
        bool canonical = dot != NULL && (size_t)(s + size - dot) == 7 &&
                         (s[0] != '0' || dot == s + 1);
        HD_ASSERT(!canonical || ((size_t)n == size && memcmp(buf, s, size) == 0));
    }
    uint64_t v = 0;
    rv = hd_u64_parse(s, size, &v);
    HD_ASSERT(rv == 0 || rv == HD_EINVAL);
    if (rv == 0) {
        HD_ASSERT(size >= 1 && size <= 20);
        for (size_t i = 0; i < size; i++) HD_ASSERT(s[i] >= '0' && s[i] <= '9');
    }
    return 0;
}
