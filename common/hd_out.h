/* SPDX-License-Identifier: Apache-2.0 */
/* Text built piece by piece into a caller's buffer, without printf: for the
 * few texts made once per request or per message (an append's answer, a
 * response head, a ts), where printf's format parsing was ~2% of a node's
 * CPU at saturation. */
#ifndef HD_OUT_H
#define HD_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"

/* len counts every byte added, even those past cap that were not written:
 * the text fits if and only if hd_out_fits(). */
struct hd_out {
    char *buf;
    size_t cap;
    size_t len;
};

static inline struct hd_out hd_out_init(char *buf, size_t cap)
{
    return (struct hd_out){buf, cap, 0};
}

static inline void hd_out_mem(struct hd_out *o, const void *p, size_t n)
{
    if (n <= o->cap && o->len <= o->cap - n) {
        memcpy(o->buf + o->len, p, n);
    }
    o->len += n;
}

static inline void hd_out_str(struct hd_out *o, const char *s)
{
    hd_out_mem(o, s, strlen(s));
}

/* v in decimal, at least min_digits digits (zeros in front). */
static inline void hd_out_u64_width(struct hd_out *o, uint64_t v, unsigned min_digits)
{
    char digits[20]; /* UINT64_MAX has 20 */
    HD_ASSERT(min_digits <= sizeof digits);
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || n < min_digits);
    hd_out_mem(o, digits + sizeof digits - n, n);
}

static inline void hd_out_u64(struct hd_out *o, uint64_t v)
{
    hd_out_u64_width(o, v, 1);
}

/* True if everything added fits with room for a NUL, which it then
 * writes (the NUL is not counted in len). */
static inline bool hd_out_fits(struct hd_out *o)
{
    if (o->len >= o->cap) {
        return false;
    }
    o->buf[o->len] = '\0';
    return true;
}

#endif
