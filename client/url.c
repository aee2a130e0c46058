/* SPDX-License-Identifier: Apache-2.0 */
/* Server URLs: "http[s]://host[:port][/prefix]" split into its parts. */
#include <string.h>

#include "hd_error.h"
#include "herald/herald.h"

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

bool herald_url_tls(const char *url)
{
    return url != NULL && strncmp(url, "https://", 8) == 0;
}

int herald_url_parse(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                     char *path, size_t path_size)
{
    if (url == NULL) return HD_EINVAL;
    const char *h;
    if (strncmp(url, "http://", 7) == 0) {
        h = url + 7;
    } else if (herald_url_tls(url)) {
        h = url + 8;
    } else {
        return HD_EINVAL;
    }
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
