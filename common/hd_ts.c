/* SPDX-License-Identifier: Apache-2.0 */
/* Decimal numbers and timestamps as the API writes them (hd_ts.h). */
#include "hd_ts.h"

#include <string.h>

#include "hd_error.h"
#include "hd_out.h"

/* The largest SECONDS: sec * 1000000 + 999999 must still fit in 64 bits. */
#define HD__TS_SEC_MAX ((UINT64_MAX - 999999u) / 1000000u)

int hd_u64_parse(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20) {
        return HD_EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return HD_EINVAL;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return HD_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int hd_ts_format(uint64_t ts_us, char *buf, size_t size)
{
    struct hd_out o = hd_out_init(buf, size);
    hd_out_u64(&o, ts_us / 1000000u);
    hd_out_mem(&o, ".", 1);
    hd_out_u64_width(&o, ts_us % 1000000u, 6);
    if (!hd_out_fits(&o)) {
        if (size > 0) {
            buf[0] = '\0';
        }
        return HD_EINVAL;
    }
    return (int)o.len;
}

int hd_ts_parse(const char *s, size_t len, uint64_t *ts_us)
{
    /* Not memchr: s may be NULL when len is 0. */
    size_t sec_len = 0;
    while (sec_len < len && s[sec_len] != '.') {
        sec_len++;
    }
    uint64_t sec, frac = 0;
    if (hd_u64_parse(s, sec_len, &sec) != 0 || sec > HD__TS_SEC_MAX) {
        return HD_EINVAL;
    }
    if (sec_len < len) {
        size_t frac_len = len - sec_len - 1;
        if (frac_len == 0 || frac_len > 6 || hd_u64_parse(s + sec_len + 1, frac_len, &frac) != 0) {
            return HD_EINVAL;
        }
        for (size_t i = frac_len; i < 6; i++) {
            frac *= 10; /* ".5" is half a second */
        }
    }
    *ts_us = sec * 1000000u + frac;
    return 0;
}
