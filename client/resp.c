/* SPDX-License-Identifier: Apache-2.0 */
/* Incremental HTTP/1.1 response parsing (identity, chunked, EOF-delimited). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "hd_error.h"

/* A collected (non-streamed) body larger than this is refused: a read answer
 * holds at most `limit` messages of at most 1 MiB each, so this is generous
 * without letting a broken server exhaust memory. */
#define RESP_BODY_MAX ((size_t)256 << 20)

static struct herald__resp *resp_of(http_parser *p)
{
    return p->data;
}

/* Keeps the value of a header the caller needs verbatim. */
static void keep_value(struct herald__resp *r, struct herald__buf *dst)
{
    herald__buf_reset(dst);
    if (herald__buf_append(dst, r->value.data ? r->value.data : "", r->value.len) != 0) {
        r->cb_rv = HD_ENOMEM;
    }
}

static void header_done(struct herald__resp *r)
{
    if (r->field.len == 0) return;
    if (strcasecmp(r->field.data, "Retry-After") == 0 && r->value.len > 0) {
        char *end;
        long v = strtol(r->value.data, &end, 10);
        /* An HTTP-date form is treated as "no hint"; backoff still applies. */
        if (*end == '\0' && v >= 0 && v < 3600) r->retry_after_s = (int)v;
    } else if (strcasecmp(r->field.data, "Content-Type") == 0) {
        keep_value(r, &r->content_type);
    } else if (strcasecmp(r->field.data, "Upgrade") == 0) {
        keep_value(r, &r->ws_upgrade);
    } else if (strcasecmp(r->field.data, "Connection") == 0) {
        keep_value(r, &r->ws_connection);
    } else if (strcasecmp(r->field.data, "Sec-WebSocket-Accept") == 0) {
        keep_value(r, &r->ws_accept);
    }
    herald__buf_reset(&r->field);
    herald__buf_reset(&r->value);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct herald__resp *r = resp_of(p);
    if (!r->in_field) header_done(r); /* a new name ends the previous pair */
    r->in_field = true;
    if (r->field.len + len > 8192 || herald__buf_append(&r->field, at, len) != 0) return -1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct herald__resp *r = resp_of(p);
    r->in_field = false;
    if (r->value.len + len > 8192 || herald__buf_append(&r->value, at, len) != 0) return -1;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct herald__resp *r = resp_of(p);
    header_done(r);
    r->status = (int)p->status_code;
    r->headers_done = true;
    return r->cb_rv != 0 ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct herald__resp *r = resp_of(p);
    if (r->body_cb != NULL) {
        int rv = r->body_cb(r->body_arg, at, len);
        if (rv != 0) r->cb_rv = rv;
        return rv != 0 ? -1 : 0;
    }
    if (r->body.len + len > r->body_max) {
        r->cb_rv = HD_ETOOBIG;
        return -1;
    }
    if (herald__buf_append(&r->body, at, len) != 0) {
        r->cb_rv = HD_ENOMEM;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct herald__resp *r = resp_of(p);
    r->done = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    /* Stop here: anything after the response is not ours to consume. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings resp_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void herald__resp_init(struct herald__resp *r, herald__body_cb body_cb, void *body_arg)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->retry_after_s = -1;
    r->body_cb = body_cb;
    r->body_arg = body_arg;
    r->body_max = RESP_BODY_MAX;
}

void herald__resp_close(struct herald__resp *r)
{
    herald__buf_free(&r->field);
    herald__buf_free(&r->value);
    herald__buf_free(&r->content_type);
    herald__buf_free(&r->ws_upgrade);
    herald__buf_free(&r->ws_connection);
    herald__buf_free(&r->ws_accept);
    herald__buf_free(&r->body);
}

long herald__resp_feed(struct herald__resp *r, const char *data, size_t len)
{
    if (r->done) return 0;
    size_t n = http_parser_execute(&r->parser, &resp_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&r->parser, 0);
        return (long)n;
    }
    if (e != HPE_OK) return r->cb_rv != 0 ? r->cb_rv : HD_ECORRUPT;
    if (len == 0 && !r->done) return HD_ECORRUPT; /* EOF mid-message */
    return (long)n;
}
