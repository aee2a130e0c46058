/* SPDX-License-Identifier: Apache-2.0 */
/* Cross-origin access to the v1 API (CORS): the one rule of which origins may use it. */
#ifndef API_CORS_H
#define API_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "http_server.h"

/*
 * heraldd --cors-origins LIST: "*" (any origin) or a comma-separated list
 * of origins ("https://app.example.com,http://localhost:8080"). Without the
 * flag there is no struct api_cors and no CORS header at all.
 *
 * With it, every response of a /v1/ route (streams and the errors the HTTP
 * engine answers by itself included) says "Vary: Origin"; when the
 * request's Origin is allowed it also says
 * "Access-Control-Allow-Origin: <that origin>" and exposes Retry-After.
 * Preflights (OPTIONS) are answered by api_cors_preflight(), and the
 * WebSocket handshake, which browsers send without a preflight, is refused
 * when its Origin is not allowed (api_cors_check()). Credentials (cookies)
 * are never allowed: herald has none.
 */

struct api_cors;

/* Origins longer than this are never allowed (nor echoed under "*"). */
#define API_CORS_ORIGIN_MAX 256u

/* Parses list into *out (free with api_cors_free()). An origin is
 * scheme://host or scheme://host:port, with no path and no trailing slash;
 * "*" must stand alone. Returns 0, HD_EINVAL with a message in errmsg (what
 * is wrong; the caller names the flag or config key), or HD_ENOMEM. */
int api_cors_parse(const char *list, struct api_cors **out, char *errmsg, size_t errmsg_len);

void api_cors_free(struct api_cors *cors);

/* What a request's Origin header means. */
enum api_cors_verdict {
    API_CORS_NO_ORIGIN = 0, /* no Origin header: not a cross-origin browser request */
    API_CORS_ALLOWED = 1,   /* allowed: the answer names it */
    API_CORS_REFUSED = 2,   /* present and not allowed */
};

/* The verdict on origin (len bytes; NULL: absent). cors may be NULL (no
 * --cors-origins): then every origin is API_CORS_REFUSED, since nothing is
 * allowed cross-origin (callers that keep today's behaviour without the
 * flag do not ask). */
enum api_cors_verdict api_cors_origin(const struct api_cors *cors, const char *origin,
                                      size_t len);

/* The verdict on req's Origin header. */
enum api_cors_verdict api_cors_check(const struct api_cors *cors,
                                     const struct api_http_request *req);

/* The HTTP engine's head hook (api_http_server_set_head_hook, arg: the
 * struct api_cors): the CORS headers of a /v1/ response. */
size_t api_cors_head_hook(const struct api_http_request *req, int status, char *out,
                          size_t out_len, void *arg);

/* The headers of an allowed preflight's 204 (besides the hook's); browsers
 * may cache the answer for Max-Age seconds. */
#define API_CORS_PREFLIGHT_HEADERS                                                      \
    "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"                 \
    "Access-Control-Allow-Headers: Content-Type, Idempotency-Key, Last-Event-ID, "      \
    "Authorization\r\n"                                                                 \
    "Access-Control-Max-Age: 600\r\n"

#endif
