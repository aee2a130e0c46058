/* SPDX-License-Identifier: Apache-2.0 */
/* Request routing of the v1 API. */
#include <string.h>

#include "api.h"
#include "cors.h"
#include "hd_error.h"
#include "hd_util.h"
#include "log.h"

#define API_CHANNELS_PREFIX "/v1/channels/"

static bool api__path_is(const struct api_http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void api__method_not_allowed(struct api_server *s, struct api_http_conn *c)
{
    api_respond_error(s, c, 405, "method_not_allowed", "this route does not take that method");
}

/* /v1/channels/{channel}/{messages|tail}: decodes and checks the channel. */
static void api__channel_route(struct api_server *s, struct api_http_conn *c,
                               const struct api_http_request *req)
{
    const char *rest = req->path + strlen(API_CHANNELS_PREFIX);
    size_t rest_len = req->path_len - strlen(API_CHANNELS_PREFIX);
    const char *slash = memchr(rest, '/', rest_len);
    if (slash == NULL) {
        slash = rest + rest_len; /* /v1/channels/{ch} itself */
    }
    char channel[LOG_CHANNEL_MAX * 3];
    size_t len = 0;
    int rv = api_http_path_decode(rest, (size_t)(slash - rest), channel, sizeof channel, &len);
    if (rv != 0 || !hd_channel_valid(channel, len)) {
        api_respond_error(s, c, 400, "bad_channel",
                          "channel ids are 1-128 characters of [A-Za-z0-9._:-]");
        return;
    }
    size_t tail_len = rest_len - (size_t)(slash - rest);
    struct api_principal who;
    if (tail_len == 9 && memcmp(slash, "/messages", 9) == 0) {
        if (req->method == HTTP_POST) {
            uint64_t retry = 0;
            if (!api_auth_request(s, c, req, HD_SCOPE_APPEND, channel, len, false, &who)) {
                /* answered */
            } else if (!api_limit_appends(s, &who, 1, req->body_len, &retry)) {
                api_limit_respond(s, c, retry, "append rate");
            } else if (!api_limit_channel(s, &who, channel, len, &retry)) {
                api_limit_respond(s, c, retry, "channels per second");
            } else {
                api_append(s, c, req, channel, len);
            }
        } else if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
            if (api_auth_request(s, c, req, HD_SCOPE_READ, channel, len, false, &who)) {
                api_read(s, c, req, channel, len);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (tail_len == 5 && memcmp(slash, "/tail", 5) == 0) {
        if (req->method == HTTP_GET) {
            /* EventSource cannot send headers: ?access_token= is taken too */
            if (api_auth_request(s, c, req, HD_SCOPE_SUBSCRIBE, channel, len, true, &who)) {
                api_tail(s, c, req, channel, len, &who);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api_auth_request(s, c, req,
                                (req->method == HTTP_GET || req->method == HTTP_HEAD)
                                    ? HD_SCOPE_READ
                                    : HD_SCOPE_ADMIN,
                                channel, len, false, &who)) {
        /* A channel's info is a read; trimming or deleting it is admin. */
        api_channel_admin(s, c, req, channel, len, slash, tail_len);
    }
}

void api_preflight(struct api_server *s, struct api_http_conn *c,
                   const struct api_http_request *req)
{
    if (api_cors_check(s->cors, req) == API_CORS_REFUSED) {
        api_respond_error(s, c, 403, "origin_not_allowed",
                          "this origin may not use the API (heraldd --cors-origins)");
        return;
    }
    /* Without an Origin it is a plain OPTIONS: the same list answers it. */
    api_respond_empty(s, c, 204,
                      "Allow: GET, POST, PUT, DELETE, OPTIONS\r\n" API_CORS_PREFLIGHT_HEADERS);
}

/* Membership changes need admin, and are logged with the token's name. */
static bool api__admin(struct api_server *s, struct api_http_conn *c,
                       const struct api_http_request *req)
{
    struct api_principal who;
    if (!api_auth_request(s, c, req, HD_SCOPE_ADMIN, NULL, 0, false, &who)) {
        return false;
    }
    HD_LOG_INFO("membership: %s %.*s by token '%s'",
                http_method_str((enum http_method)req->method), (int)req->path_len, req->path,
                who.name[0] ? who.name : "(auth off)");
    return true;
}

void api_route(struct api_http_conn *c, const struct api_http_request *req, void *arg)
{
    struct api_server *s = arg;
    size_t prefix = strlen(API_CHANNELS_PREFIX);
    struct api_principal who;
    if (req->method == HTTP_OPTIONS && s->cors != NULL && req->path_len >= 4 &&
        memcmp(req->path, "/v1/", 4) == 0) {
        api_preflight(s, c, req);
    } else if (req->path_len > prefix && memcmp(req->path, API_CHANNELS_PREFIX, prefix) == 0) {
        api__channel_route(s, c, req);
    } else if (api__path_is(req, "/v1/messages:batch")) {
        if (req->method == HTTP_POST) {
            /* each line's channel is checked by the batch */
            if (api_auth_request(s, c, req, 0, NULL, 0, false, &who)) {
                api_append_batch(s, c, req, &who);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/v1/backup")) {
        if (req->method == HTTP_POST) {
            if (api_auth_request(s, c, req, HD_SCOPE_ADMIN, NULL, 0, false, &who)) {
                api_backup(s, c, req);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/v1/cluster/nodes")) {
        if (req->method == HTTP_POST) {
            if (api__admin(s, c, req)) {
                api_cluster_add(s, c, req);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (req->path_len > 18 && memcmp(req->path, "/v1/cluster/nodes/", 18) == 0) {
        if (req->method == HTTP_DELETE) {
            if (api__admin(s, c, req)) {
                api_cluster_remove(s, c, req, req->path + 18, req->path_len - 18);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/v1/subscribe")) {
        /* WebSocket: the token at the handshake (header or ?access_token=)
         * or, with neither, in the first frame; each subscribe and append
         * op checked against its channel */
        if (api_auth_absent(s, req)) {
            api_subscribe(s, c, req, NULL); /* answers a method that is not a handshake */
        } else if (api_auth_request(s, c, req, 0, NULL, 0, true, &who)) {
            api_subscribe(s, c, req, &who);
        }
    } else if (api__path_is(req, "/v1/tail")) {
        if (req->method == HTTP_GET || req->method == HTTP_POST) {
            if (api_auth_request(s, c, req, 0, NULL, 0, true, &who)) {
                api_tail_multi(s, c, req, &who); /* checks each channel */
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/v1/status")) {
        if (req->method == HTTP_GET) {
            if (api_auth_request(s, c, req, HD_SCOPE_STATUS, NULL, 0, false, &who)) {
                api_status(s, c);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/v1/retention")) {
        /* reading it is a status read; setting or clearing it is admin */
        bool read = req->method == HTTP_GET || req->method == HTTP_HEAD;
        if (api_auth_request(s, c, req, read ? HD_SCOPE_STATUS : HD_SCOPE_ADMIN, NULL, 0, false,
                             &who)) {
            api_retention_admin(s, c, req);
        }
    } else if (api__path_is(req, "/v1/shards")) {
        if (req->method == HTTP_GET) {
            /* any valid token: appenders need it, and it holds only topology */
            if (api_auth_request(s, c, req, 0, NULL, 0, false, &who)) {
                api_shards(s, c);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/")) {
        if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
            api_status_page(s, c);
        } else {
            api__method_not_allowed(s, c);
        }
    } else if (api__path_is(req, "/metrics")) {
        if (req->method == HTTP_GET) {
            if (api_auth_request(s, c, req, HD_SCOPE_STATUS, NULL, 0, false, &who)) {
                api_metrics(s, c);
            }
        } else {
            api__method_not_allowed(s, c);
        }
    } else {
        api_respond_error(s, c, 404, "not_found", "no such route");
    }
}
