/* SPDX-License-Identifier: Apache-2.0 */
/* The origin rule of cross-origin access (cors.h): parsing the list, judging an Origin, the headers. */
#include "cors.h"

#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"

struct api_cors {
    bool any;       /* "*" */
    size_t n;       /* entries in origins */
    char **origins; /* each hd_strndup'd, lower-cased */
};

static char api__cors_lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool api__cors_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool api__cors_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* scheme://host[:port] (host: a name, an IPv4 address or [v6]), nothing
 * after. Browsers serialize an Origin exactly so (RFC 6454 6.1). */
static bool api__cors_origin_syntax(const char *o, size_t len)
{
    size_t i = 0;
    if (len == 0 || len > API_CORS_ORIGIN_MAX || !api__cors_alpha(o[0])) {
        return false;
    }
    while (i < len && (api__cors_alpha(o[i]) || api__cors_digit(o[i]) || o[i] == '+' ||
                       o[i] == '-' || o[i] == '.')) {
        i++;
    }
    if (len - i < 4 || memcmp(o + i, "://", 3) != 0) {
        return false;
    }
    i += 3;
    size_t host = i;
    if (o[i] == '[') {
        while (i < len && o[i] != ']') {
            i++;
        }
        if (i == len || i == host + 1) {
            return false;
        }
        i++;
    } else {
        while (i < len && (api__cors_alpha(o[i]) || api__cors_digit(o[i]) || o[i] == '-' ||
                           o[i] == '.' || o[i] == '_')) {
            i++;
        }
        if (i == host) {
            return false;
        }
    }
    if (i < len && o[i] == ':') {
        size_t port = ++i;
        while (i < len && api__cors_digit(o[i])) {
            i++;
        }
        if (i == port || i - port > 5) {
            return false;
        }
    }
    return i == len;
}

/* Anything echoed back must be one harmless header value. */
static bool api__cors_echo_safe(const char *o, size_t len)
{
    if (len == 0 || len > API_CORS_ORIGIN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)o[i] <= 0x20 || (unsigned char)o[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool api__cors_equal(const char *a, size_t a_len, const char *lower_b)
{
    if (a_len != strlen(lower_b)) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (api__cors_lower(a[i]) != lower_b[i]) {
            return false;
        }
    }
    return true;
}

void api_cors_free(struct api_cors *cors)
{
    if (cors == NULL) {
        return;
    }
    for (size_t i = 0; i < cors->n; i++) {
        hd_free(cors->origins[i]);
    }
    hd_free(cors->origins);
    hd_free(cors);
}

/* Adds one trimmed entry of the list. */
static int api__cors_add(struct api_cors *cors, const char *o, size_t len, char *errmsg,
                         size_t errmsg_len)
{
    if (len == 1 && o[0] == '*') {
        cors->any = true;
        return 0;
    }
    if (!api__cors_origin_syntax(o, len)) {
        snprintf(errmsg, errmsg_len,
                 "'%.*s' is not an origin (scheme://host or scheme://host:port, "
                 "no path or trailing slash, at most %u bytes) nor '*'",
                 (int)(len < 300 ? len : 300), o, API_CORS_ORIGIN_MAX);
        return HD_EINVAL;
    }
    char **grown = hd_realloc(cors->origins, (cors->n + 1) * sizeof *grown);
    if (grown == NULL) {
        return HD_ENOMEM;
    }
    cors->origins = grown;
    char *copy = hd_strndup(o, len);
    if (copy == NULL) {
        return HD_ENOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        copy[i] = api__cors_lower(copy[i]);
    }
    cors->origins[cors->n++] = copy;
    return 0;
}

int api_cors_parse(const char *list, struct api_cors **out, char *errmsg, size_t errmsg_len)
{
    struct api_cors *cors = hd_calloc(1, sizeof *cors);
    if (cors == NULL) {
        return HD_ENOMEM;
    }
    int rv = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[0] == ' ' || p[0] == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len > 0) {
            rv = api__cors_add(cors, p, len, errmsg, errmsg_len);
            if (rv != 0) {
                break;
            }
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    if (rv == 0 && cors->any && cors->n > 0) {
        snprintf(errmsg, errmsg_len, "'*' allows every origin; list no other");
        rv = HD_EINVAL;
    }
    if (rv == 0 && !cors->any && cors->n == 0) {
        snprintf(errmsg, errmsg_len, "no origin given");
        rv = HD_EINVAL;
    }
    if (rv != 0) {
        if (rv == HD_ENOMEM) {
            snprintf(errmsg, errmsg_len, "out of memory");
        }
        api_cors_free(cors);
        return rv;
    }
    *out = cors;
    return 0;
}

enum api_cors_verdict api_cors_origin(const struct api_cors *cors, const char *origin,
                                      size_t len)
{
    if (origin == NULL) {
        return API_CORS_NO_ORIGIN;
    }
    if (cors == NULL || !api__cors_echo_safe(origin, len)) {
        return API_CORS_REFUSED;
    }
    if (cors->any) {
        return API_CORS_ALLOWED;
    }
    for (size_t i = 0; i < cors->n; i++) {
        if (api__cors_equal(origin, len, cors->origins[i])) {
            return API_CORS_ALLOWED;
        }
    }
    return API_CORS_REFUSED;
}

enum api_cors_verdict api_cors_check(const struct api_cors *cors,
                                     const struct api_http_request *req)
{
    size_t len = 0;
    const char *origin = api_http_header(req, "Origin", &len);
    return api_cors_origin(cors, origin, len);
}

size_t api_cors_head_hook(const struct api_http_request *req, int status, char *out,
                          size_t out_len, void *arg)
{
    (void)status;
    const struct api_cors *cors = arg;
    if (req == NULL || req->path_len < 4 || memcmp(req->path, "/v1/", 4) != 0) {
        return 0; /* only the v1 API is offered cross-origin */
    }
    size_t len = 0;
    const char *origin = api_http_header(req, "Origin", &len);
    /* The answer depends on Origin whatever it is, so caches must key on it. */
    int n;
    if (api_cors_origin(cors, origin, len) == API_CORS_ALLOWED) {
        n = snprintf(out, out_len,
                     "Access-Control-Allow-Origin: %.*s\r\n"
                     "Access-Control-Expose-Headers: Retry-After\r\n"
                     "Vary: Origin\r\n",
                     (int)len, origin);
    } else {
        n = snprintf(out, out_len, "Vary: Origin\r\n");
    }
    HD_ASSERT(n > 0 && (size_t)n < out_len); /* origins are at most API_CORS_ORIGIN_MAX */
    return (size_t)n;
}
