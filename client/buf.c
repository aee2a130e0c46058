/* SPDX-License-Identifier: Apache-2.0 */
/* libherald's growable byte buffer (struct herald__buf). */
#include <stdio.h>
#include <string.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_base64.h"
#include "hd_error.h"

int herald__buf_reserve(struct herald__buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return HD_ENOMEM;
        cap *= 2;
    }
    char *p = hd_realloc(b->data, cap);
    if (p == NULL) return HD_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int herald__buf_append(struct herald__buf *b, const void *p, size_t n)
{
    int rv = herald__buf_reserve(b, n);
    if (rv != 0) return rv;
    if (n > 0) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int herald__buf_printf(struct herald__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return HD_EINVAL;
    int rv = herald__buf_reserve(b, (size_t)n);
    if (rv != 0) return rv;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void herald__buf_reset(struct herald__buf *b)
{
    b->len = 0;
    if (b->data != NULL) b->data[0] = '\0';
}

void herald__buf_free(struct herald__buf *b)
{
    hd_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int herald__buf_append_base64(struct herald__buf *b, const uint8_t *in, size_t len)
{
    if (len >= SIZE_MAX / 4 * 3) return HD_ENOMEM; /* the length would not fit */
    size_t n = hd_base64_encoded_len(len);
    int rv = herald__buf_reserve(b, n);
    if (rv != 0) return rv;
    b->len += hd_base64_encode(in, len, b->data + b->len);
    b->data[b->len] = '\0';
    return 0;
}
