/* SPDX-License-Identifier: Apache-2.0 */
/* libherald helpers: buffers, URL, ts and nonce formats, base64. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_error.h"

/* --------------------------------------------------------------- buffers */

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

/* ------------------------------------------------------------------ URL */

static int copy_part(char *dst, size_t size, const char *src, size_t n)
{
    if (n >= size) return HD_EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int parse_port(const char *p, size_t n, char *port, size_t port_size)
{
    if (n == 0 || n > 5) return HD_EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return HD_EINVAL;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535) return HD_EINVAL;
    return copy_part(port, port_size, p, n);
}

int herald__url_parse(const char *url, char *host, size_t host_size, char *port,
                      size_t port_size, char *path, size_t path_size)
{
    static const char scheme[] = "http://";
    if (url == NULL || strncmp(url, scheme, sizeof scheme - 1) != 0) return HD_EINVAL;
    const char *h = url + sizeof scheme - 1;
    const char *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    if (memchr(h, '@', (size_t)(end - h)) || strpbrk(h, "?# \t\r\n")) return HD_EINVAL;

    const char *host_end;
    const char *colon;
    if (*h == '[') { /* IPv6 literal */
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (rb == NULL || rb == h + 1) return HD_EINVAL;
        if (copy_part(host, host_size, h + 1, (size_t)(rb - h - 1))) return HD_EINVAL;
        host_end = rb + 1;
        if (host_end != end && *host_end != ':') return HD_EINVAL;
        colon = host_end != end ? host_end : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        host_end = colon ? colon : end;
        if (host_end == h) return HD_EINVAL;
        for (const char *q = h; q < host_end; q++) {
            if (!(*q == '-' || *q == '.' || *q == '_' || (*q >= '0' && *q <= '9') ||
                  (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))) {
                return HD_EINVAL;
            }
        }
        if (copy_part(host, host_size, h, (size_t)(host_end - h))) return HD_EINVAL;
    }
    if (colon != NULL) {
        if (parse_port(colon + 1, (size_t)(end - colon - 1), port, port_size)) return HD_EINVAL;
    } else if (copy_part(port, port_size, "7400", 4)) {
        return HD_EINVAL;
    }
    /* Keep a path prefix (for a server behind a proxy) without trailing '/';
     * it goes into request lines verbatim, so only plain URL bytes pass. */
    size_t plen = slash ? strlen(slash) : 0;
    for (size_t i = 0; i < plen; i++) {
        if ((unsigned char)slash[i] <= ' ' || (unsigned char)slash[i] >= 0x7f) return HD_EINVAL;
    }
    while (plen > 0 && slash[plen - 1] == '/') plen--;
    return copy_part(path, path_size, slash ? slash : "", plen);
}

/* ----------------------------------------------------------- ts, nonce */

int herald_ts_format(uint64_t ts_us, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%llu.%06llu", (unsigned long long)(ts_us / 1000000),
                     (unsigned long long)(ts_us % 1000000));
    if (n < 0 || (size_t)n >= size) return HD_EINVAL;
    return n;
}

int herald_ts_parse(const char *s, size_t len, uint64_t *ts_us)
{
    size_t i = 0;
    uint64_t sec = 0;
    /* Seconds must fit so that sec * 1e6 + 999999 fits in 64 bits. */
    const uint64_t sec_max = (UINT64_MAX - 999999) / 1000000;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        sec = sec * 10 + (uint64_t)(s[i] - '0');
        if (sec > sec_max) return HD_EINVAL;
        i++;
    }
    if (i == 0 || i > 20) return HD_EINVAL;
    uint64_t frac = 0;
    if (i < len) {
        if (s[i] != '.') return HD_EINVAL;
        size_t digits = 0;
        for (i++; i < len; i++, digits++) {
            if (s[i] < '0' || s[i] > '9' || digits == 6) return HD_EINVAL;
            frac = frac * 10 + (uint64_t)(s[i] - '0');
        }
        if (digits == 0) return HD_EINVAL;
        for (; digits < 6; digits++) frac *= 10;
    }
    *ts_us = sec * 1000000 + frac;
    return 0;
}

int herald_nonce_generate(char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[HERALD_NONCE_HEX_LEN / 2];
    if (size < HERALD_NONCE_HEX_LEN + 1) return HD_EINVAL;
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return hd_from_errno(errno);
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[HERALD_NONCE_HEX_LEN] = '\0';
    return 0;
}

/* --------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int herald__b64_encode(const uint8_t *in, size_t len, struct herald__buf *out)
{
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        char q[4] = {b64_alphabet[(v >> 18) & 63], b64_alphabet[(v >> 12) & 63],
                     i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=',
                     i + 2 < len ? b64_alphabet[v & 63] : '='};
        int rv = herald__buf_append(out, q, 4);
        if (rv != 0) return rv;
    }
    return len == 0 ? herald__buf_append(out, "", 0) : 0;
}

static int b64_value(char ch)
{
    const char *p = ch ? strchr(b64_alphabet, ch) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

int herald__b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 != 0) return HD_EINVAL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int pad = (last && in[i + 3] == '=') + (last && in[i + 2] == '=');
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int d = k >= 4 - pad ? 0 : b64_value(in[i + (size_t)k]);
            if (d < 0) return HD_EINVAL;
            v = (v << 6) | (uint32_t)d;
        }
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2) out[o++] = (uint8_t)(v >> 8);
        if (pad < 1) out[o++] = (uint8_t)v;
    }
    *out_len = o;
    return 0;
}

/* ----------------------------------------------------------------- misc */

bool herald__channel_valid(const char *channel)
{
    size_t n = channel ? strlen(channel) : 0;
    if (n == 0 || n > HERALD_CHANNEL_MAX) return false;
    return strspn(channel, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789._:-") == n;
}

int herald__fail(struct herald_client *c, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

const char *herald_errmsg(const struct herald_client *c)
{
    return c->errmsg;
}

const char *herald_strerror(int rv)
{
    return hd_strerror(rv);
}

void herald_free(void *p)
{
    hd_free(p);
}
