/* SPDX-License-Identifier: Apache-2.0 */
/* Who may do what: bearer tokens of --auth-file checked on every route, SIGHUP reloads. */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_token.h"
#include "http_server.h"

struct api_server;

/* The tokens of --auth-file and the counts /metrics shows. */
struct api_auth {
    char *path;
    struct hd_token_set *set;
    uint64_t refused_unauthenticated; /* 401s */
    uint64_t refused_forbidden;       /* 403s, WebSocket refusals included */
    uint64_t reloads_failed;
    struct api_tenant *tenants;       /* limits' state by token name (token_limits.c) */
};

/* Who a request or a session acts for: the token's name ("" with auth
 * off). Sessions keep the name, never a pointer into a token set that a
 * reload frees. */
struct api_principal {
    char name[HD_TOKEN_NAME_MAX + 1];
};

/* Loads path; errmsg says why not (with the line number). */
int api_auth_open(struct api_auth **out, const char *path, char *errmsg, size_t errmsg_len);
void api_auth_free(struct api_auth *a);

/* SIGHUP: re-reads the file. A bad file is refused with a log line and the
 * old tokens stay; otherwise the new set replaces the old, and sessions of
 * tokens that are gone end. Returns 0 or the load error. */
int api_auth_reload(struct api_server *s);

/* Authenticates req (Authorization: Bearer, or with query_ok the
 * access_token query parameter that browsers' EventSource and WebSocket
 * need) and checks scope (HD_SCOPE_*; 0 for "any valid token", when the
 * caller checks channels itself) on channel (NULL for admin and status).
 * Returns true to go on, with *who filled; false when it answered 401 or
 * 403 (and logged it). With auth off, always true. */
bool api_auth_request(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req, unsigned scope, const char *channel,
                      size_t len, bool query_ok, struct api_principal *who);

/* True if auth is on and req carries no token at all (no Authorization
 * header, no access_token): a WebSocket then takes it in its first frame. */
bool api_auth_absent(const struct api_server *s, const struct api_http_request *req);

/* Authenticates a token sent inside a connection (a WebSocket's first
 * frame) on c for route: true with *who filled; false when it is unknown
 * (logged and counted as a 401 would be; the caller closes). */
bool api_auth_token(struct api_server *s, struct api_http_conn *c, const char *route,
                    const char *token, size_t len, struct api_principal *who);

/* True if who may use scope on channel now (always, with auth off). */
bool api_auth_allows(struct api_server *s, const struct api_principal *who, unsigned scope,
                     const char *channel, size_t len);

/* Logs and counts a refusal found by api_auth_allows() for a channel of a
 * request (route) that the caller answers itself. */
void api_auth_note_forbidden(struct api_server *s, struct api_http_conn *c, const char *route,
                             const struct api_principal *who, unsigned scope,
                             const char *channel, size_t len);

/* Answers 403 for that refusal (after api_auth_note_forbidden). */
void api_auth_respond_forbidden(struct api_server *s, struct api_http_conn *c, unsigned scope);

/* The scope's name, for messages. */
const char *api_auth_scope_name(unsigned scope);

#endif
