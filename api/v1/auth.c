/* SPDX-License-Identifier: Apache-2.0 */
/* Bearer tokens on every route: 401 without a known token, 403 without the scope; reloads. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "api.h"
#include "auth.h"
#include "token_limits.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_util.h"

int api_auth_open(struct api_auth **out, const char *path, char *errmsg, size_t errmsg_len)
{
    struct api_auth *a = hd_calloc(1, sizeof *a);
    size_t n = strlen(path) + 1;
    if (a == NULL || (a->path = hd_malloc(n)) == NULL) {
        hd_free(a);
        return HD_ENOMEM;
    }
    memcpy(a->path, path, n);
    int rv = hd_token_set_load(path, &a->set, errmsg, errmsg_len);
    if (rv != 0) {
        api_auth_free(a);
        return rv;
    }
    *out = a;
    return 0;
}

void api_auth_free(struct api_auth *a)
{
    if (a != NULL) {
        hd_token_set_free(a->set);
        api_limit_free_all(a->tenants);
        hd_free(a->path);
        hd_free(a);
    }
}

const char *api_auth_scope_name(unsigned scope)
{
    switch (scope) {
        case HD_SCOPE_APPEND: return "append";
        case HD_SCOPE_READ: return "read";
        case HD_SCOPE_SUBSCRIBE: return "subscribe";
        case HD_SCOPE_ADMIN: return "admin";
        case HD_SCOPE_STATUS: return "status";
        default: return "any";
    }
}

int api_auth_reload(struct api_server *s)
{
    struct api_auth *a = s->auth;
    if (a == NULL) {
        HD_LOG_INFO("SIGHUP: no --auth-file, nothing to reload");
        return 0;
    }
    struct hd_token_set *set = NULL;
    char errmsg[900] = "";
    int rv = hd_token_set_load(a->path, &set, errmsg, sizeof errmsg);
    if (rv != 0) {
        a->reloads_failed++;
        HD_LOG_ERROR("auth reload refused, the %zu tokens loaded before stay: %s", a->set->n,
                     errmsg);
        return rv;
    }
    size_t added = 0, removed = 0;
    for (size_t i = 0; i < set->n; i++) {
        const struct hd_token *old = hd_token_set_named(a->set, set->tokens[i].name);
        if (old == NULL) {
            added++;
            HD_LOG_INFO("auth reload: token '%s' added", set->tokens[i].name);
        } else if (CRYPTO_memcmp(old->hash, set->tokens[i].hash, HD_TOKEN_HASH_BYTES) != 0) {
            HD_LOG_INFO("auth reload: token '%s' replaced (new secret)", set->tokens[i].name);
        }
    }
    for (size_t i = 0; i < a->set->n; i++) {
        if (hd_token_set_named(set, a->set->tokens[i].name) == NULL) {
            removed++;
            HD_LOG_INFO("auth reload: token '%s' removed; its open streams end",
                        a->set->tokens[i].name);
        }
    }
    hd_token_set_free(a->set);
    a->set = set;
    HD_LOG_INFO("auth reload: %zu tokens from %s (%zu added, %zu removed)", set->n, a->path,
                added, removed);
    if (s->hub != NULL) {
        api_hub_revoke(s->hub, s);
    }
    return 0;
}

/* The token the request presents, or NULL: Authorization: Bearer first,
 * then (query_ok) ?access_token=. */
static const char *api__presented(const struct api_http_request *req, bool query_ok,
                                  char *buf, size_t buf_len, size_t *len)
{
    size_t hlen = 0;
    const char *h = api_http_header(req, "Authorization", &hlen);
    if (h != NULL) {
        if (hlen > 7 && strncasecmp(h, "Bearer ", 7) == 0) {
            const char *t = h + 7;
            size_t tlen = hlen - 7;
            while (tlen > 0 && *t == ' ') {
                t++;
                tlen--;
            }
            *len = tlen;
            return tlen > 0 ? t : NULL;
        }
        return NULL; /* another scheme: no token */
    }
    if (query_ok && api_http_query_param(req, "access_token", buf, buf_len) == 0 &&
        buf[0] != '\0') {
        *len = strlen(buf);
        return buf;
    }
    return NULL;
}

static void api__route_text(const struct api_http_request *req, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s %.*s", http_method_str((enum http_method)req->method),
             (int)(req->path_len > 200 ? 200 : req->path_len), req->path);
}

bool api_auth_request(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req, unsigned scope, const char *channel,
                      size_t len, bool query_ok, struct api_principal *who)
{
    who->name[0] = '\0';
    if (s->auth == NULL) {
        return true;
    }
    char buf[512];
    size_t tlen = 0;
    const char *tok = api__presented(req, query_ok, buf, sizeof buf, &tlen);
    const struct hd_token *t = tok != NULL ? hd_token_set_find(s->auth->set, tok, tlen) : NULL;
    OPENSSL_cleanse(buf, sizeof buf);
    char route[256], peer[80];
    if (t == NULL) {
        s->auth->refused_unauthenticated++;
        api__route_text(req, route, sizeof route);
        api_http_conn_peer(c, peer, sizeof peer);
        HD_LOG_WARN("auth: refused %s from %s: %s", route, peer,
                    tok == NULL ? "no bearer token" : "unknown token");
        s->metrics.requests++;
        s->metrics.responses_by_class[4]++;
        api_http_respond_error(c, 401, "unauthenticated",
                               "this route needs a token: Authorization: Bearer TOKEN",
                               "WWW-Authenticate: Bearer realm=\"herald\"\r\n");
        return false;
    }
    snprintf(who->name, sizeof who->name, "%s", t->name);
    if (scope != 0 && !hd_token_allows(t, scope, channel, len)) {
        api__route_text(req, route, sizeof route);
        api_auth_note_forbidden(s, c, route, who, scope, channel, len);
        api_auth_respond_forbidden(s, c, scope);
        return false;
    }
    return true;
}

bool api_auth_absent(const struct api_server *s, const struct api_http_request *req)
{
    char buf[512];
    size_t tlen = 0;
    size_t hlen = 0;
    bool absent = s->auth != NULL && api_http_header(req, "Authorization", &hlen) == NULL &&
                  api__presented(req, true, buf, sizeof buf, &tlen) == NULL;
    OPENSSL_cleanse(buf, sizeof buf);
    return absent;
}

bool api_auth_token(struct api_server *s, struct api_http_conn *c, const char *route,
                    const char *token, size_t len, struct api_principal *who)
{
    who->name[0] = '\0';
    if (s->auth == NULL) {
        return true;
    }
    const struct hd_token *t = hd_token_set_find(s->auth->set, token, len);
    if (t == NULL) {
        char peer[80];
        s->auth->refused_unauthenticated++;
        api_http_conn_peer(c, peer, sizeof peer);
        HD_LOG_WARN("auth: refused %s from %s: unknown token", route, peer);
        return false;
    }
    snprintf(who->name, sizeof who->name, "%s", t->name);
    return true;
}

bool api_auth_allows(struct api_server *s, const struct api_principal *who, unsigned scope,
                     const char *channel, size_t len)
{
    if (s->auth == NULL) {
        return true;
    }
    const struct hd_token *t = hd_token_set_named(s->auth->set, who->name);
    return t != NULL && hd_token_allows(t, scope, channel, len);
}

void api_auth_note_forbidden(struct api_server *s, struct api_http_conn *c, const char *route,
                             const struct api_principal *who, unsigned scope,
                             const char *channel, size_t len)
{
    char peer[80];
    s->auth->refused_forbidden++;
    api_http_conn_peer(c, peer, sizeof peer);
    if (channel != NULL) {
        HD_LOG_WARN("auth: refused %s from %s: token '%s' lacks %s on channel %.*s", route,
                    peer, who->name, api_auth_scope_name(scope), (int)len, channel);
    } else {
        HD_LOG_WARN("auth: refused %s from %s: token '%s' lacks %s", route, peer, who->name,
                    api_auth_scope_name(scope));
    }
}

void api_auth_respond_forbidden(struct api_server *s, struct api_http_conn *c, unsigned scope)
{
    char msg[128];
    snprintf(msg, sizeof msg, "this token lacks the %s scope for this request; nothing was done",
             api_auth_scope_name(scope));
    api_respond_error(s, c, 403, "forbidden", msg);
}
