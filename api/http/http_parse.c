/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 request assembly: copies request parts out of the byte stream, enforces limits. */
#include "http_parse.h"

#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"

/*
 * http-parser is a tokenizer: it hands out pieces of the URL, header names,
 * header values and body as pointers into whatever buffer was fed, and a
 * piece may be split over two feeds. We copy every piece to the end of one
 * growing buffer. Pieces of the same item arrive back to back, so each item
 * stays contiguous in the buffer; we remember offsets (the buffer may move
 * when it grows) and turn them into pointers only when the request is done.
 *
 * The parser is paused at two points so that a feed stops right there:
 * at the end of the headers (to count the raw header bytes exactly, check
 * Content-Length against the limit before any body byte is read, and let the
 * caller answer 100-continue), and at the end of the message (so that a
 * pipelined request waits until the caller is done with this one).
 */

enum { API_HTTP__CB_NONE, API_HTTP__CB_FIELD, API_HTTP__CB_VALUE };

struct api_http__hdr_span {
    size_t name_off;  /* offset of the name in buf */
    size_t name_len;  /* bytes in the name */
    size_t value_off; /* offset of the value in buf */
    size_t value_len; /* bytes in the value */
};

/* A buffer bigger than this is freed between requests, so that one 8 MiB
 * upload does not pin 8 MiB on an idle keep-alive connection. */
#define API_HTTP__BUF_KEEP_MAX (64u * 1024u)

/* ------------------------------------------------------------------ */
/* Limits, errors, buffer                                              */
/* ------------------------------------------------------------------ */

void api_http_limits_resolve(struct api_http_limits *out, const struct api_http_limits *in)
{
    static const struct api_http_limits zero;
    *out = in != NULL ? *in : zero;
    if (out->header_bytes_max == 0) {
        out->header_bytes_max = API_HTTP_HEADER_BYTES_MAX_DEFAULT;
    }
    if (out->headers_max == 0) {
        out->headers_max = API_HTTP_HEADERS_MAX_DEFAULT;
    }
    if (out->body_bytes_max == 0) {
        out->body_bytes_max = API_HTTP_BODY_BYTES_MAX_DEFAULT;
    }
    if (out->request_timeout_ms == 0) {
        out->request_timeout_ms = API_HTTP_REQUEST_TIMEOUT_MS_DEFAULT;
    }
    if (out->idle_timeout_ms == 0) {
        out->idle_timeout_ms = API_HTTP_IDLE_TIMEOUT_MS_DEFAULT;
    }
    if (out->connections_max == 0) {
        out->connections_max = API_HTTP_CONNECTIONS_MAX_DEFAULT;
    }
}

/* Records the first error only: later ones are consequences of it. */
static int api_http__parse_fail(struct api_http_parse *p, int rv, int status, const char *code,
                      const char *message)
{
    HD_ASSERT(rv < 0);
    if (p->rv == 0) {
        p->rv = rv;
        p->err.status = status;
        p->err.code = code;
        p->err.message = message;
    }
    return p->rv;
}

static int api_http__fail_headers_too_large(struct api_http_parse *p)
{
    return api_http__parse_fail(p, HD_ETOOBIG, 431, "headers_too_large",
                      "request headers are too large or too many");
}

static int api_http__fail_body_too_large(struct api_http_parse *p)
{
    return api_http__parse_fail(p, HD_ETOOBIG, 413, "body_too_large", "request body is too large");
}

static int api_http__fail_nomem(struct api_http_parse *p)
{
    return api_http__parse_fail(p, HD_ENOMEM, 503, "overloaded", "out of memory");
}

/* Appends len bytes to buf, growing it by doubling. The caller has already
 * checked the limits, so growth is bounded by them. */
static int api_http__buf_append(struct api_http_parse *p, const char *data, size_t len)
{
    if (len > p->buf_cap - p->buf_len) {
        size_t cap = p->buf_cap != 0 ? p->buf_cap : 1024;
        while (cap - p->buf_len < len) {
            cap *= 2;
        }
        char *grown = hd_realloc(p->buf, cap);
        if (grown == NULL) {
            return api_http__fail_nomem(p);
        }
        p->buf = grown;
        p->buf_cap = cap;
    }
    memcpy(p->buf + p->buf_len, data, len);
    p->buf_len += len;
    return 0;
}

/* Makes room for one more header. The limit is checked by the caller. */
static int api_http__headers_grow(struct api_http_parse *p)
{
    if (p->n_headers < p->headers_cap) {
        return 0;
    }
    size_t cap = p->headers_cap != 0 ? p->headers_cap * 2 : 16;
    struct api_http__hdr_span *spans = hd_realloc(p->spans, cap * sizeof *spans);
    if (spans == NULL) {
        return api_http__fail_nomem(p);
    }
    p->spans = spans;
    struct api_http_header *headers = hd_realloc(p->headers, cap * sizeof *headers);
    if (headers == NULL) {
        return api_http__fail_nomem(p);
    }
    p->headers = headers;
    p->headers_cap = cap;
    return 0;
}

/* ------------------------------------------------------------------ */
/* http-parser callbacks                                               */
/* ------------------------------------------------------------------ */

static int api_http__on_message_begin(http_parser *hp)
{
    struct api_http_parse *p = hp->data;
    p->started = true;
    return 0;
}

static int api_http__on_url(http_parser *hp, const char *at, size_t len)
{
    struct api_http_parse *p = hp->data;
    if (p->url_len == 0) {
        p->url_off = p->buf_len;
    }
    p->url_len += len;
    return api_http__buf_append(p, at, len);
}

/*
 * Which error a bad request gets must not depend on how its bytes were split
 * into reads (the fuzzer checks this). http-parser reports a syntax error at
 * the offending byte, but hands out a partial token to the data callbacks
 * whenever a feed ends, so a limit checked in a data callback would trip
 * earlier or later than a syntax error depending on the split. So the data
 * callbacks only take notes, and the limits are checked at fixed points:
 * raw header bytes in api_http_parse_feed(), header count and target
 * length at the end of the headers, trailer size at the end of the message.
 */

/* Trailers (headers after a chunked body) are counted against the header
 * limit and then dropped: nothing we serve needs them. */
static int api_http__on_trailer(struct api_http_parse *p, size_t len)
{
    p->trailer_bytes += len;
    return 0;
}

static int api_http__on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct api_http_parse *p = hp->data;
    if (p->headers_done) {
        return api_http__on_trailer(p, len);
    }
    if (p->last_cb != API_HTTP__CB_FIELD) {
        p->last_cb = API_HTTP__CB_FIELD;
        if (p->n_headers == p->limits.headers_max) {
            p->too_many_headers = true; /* 431 at the end of the headers */
        }
        if (p->too_many_headers) {
            return 0;
        }
        int rv = api_http__headers_grow(p);
        if (rv != 0) {
            return rv;
        }
        struct api_http__hdr_span *s = &p->spans[p->n_headers++];
        s->name_off = p->buf_len;
        s->name_len = 0;
        s->value_off = p->buf_len;
        s->value_len = 0;
    } else if (p->too_many_headers) {
        return 0;
    }
    p->spans[p->n_headers - 1].name_len += len;
    return api_http__buf_append(p, at, len);
}

static int api_http__on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct api_http_parse *p = hp->data;
    if (p->headers_done) {
        return api_http__on_trailer(p, len);
    }
    bool first = p->last_cb != API_HTTP__CB_VALUE;
    p->last_cb = API_HTTP__CB_VALUE;
    if (p->too_many_headers) {
        return 0;
    }
    HD_ASSERT(p->n_headers > 0);
    struct api_http__hdr_span *s = &p->spans[p->n_headers - 1];
    if (first) {
        s->value_off = p->buf_len;
        s->value_len = 0;
    }
    s->value_len += len;
    return api_http__buf_append(p, at, len);
}

static bool api_http__ascii_case_equal(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') {
            x = (unsigned char)(x - 'A' + 'a');
        }
        if (y >= 'A' && y <= 'Z') {
            y = (unsigned char)(y - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

static bool api_http__is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Checks Expect. Only "100-continue" exists (RFC 9110 10.1.1); anything
 * else gets 417. */
static int api_http__check_expect(struct api_http_parse *p)
{
    for (size_t i = 0; i < p->n_headers; i++) {
        const struct api_http__hdr_span *s = &p->spans[i];
        if (!api_http__ascii_case_equal(p->buf + s->name_off, s->name_len, "expect")) {
            continue;
        }
        size_t vlen = s->value_len;
        while (vlen > 0 && api_http__is_ows(p->buf[s->value_off + vlen - 1])) {
            vlen--;
        }
        if (!api_http__ascii_case_equal(p->buf + s->value_off, vlen, "100-continue")) {
            return api_http__parse_fail(p, HD_EINVAL, 417, "expectation_failed",
                              "only Expect: 100-continue is supported");
        }
        bool has_body = (p->hp.flags & F_CHUNKED) != 0 ||
                        ((p->hp.flags & F_CONTENTLENGTH) != 0 && p->hp.content_length > 0);
        p->expect_continue = has_body && p->hp.http_minor >= 1;
    }
    return 0;
}

static int api_http__on_headers_complete(http_parser *hp)
{
    struct api_http_parse *p = hp->data;
    p->headers_done = true;
    p->body_off = p->buf_len;
    if (p->too_many_headers) {
        return api_http__fail_headers_too_large(p);
    }
    if (p->url_len > UINT16_MAX) {
        /* Only with header_bytes_max raised past 64 KiB: http_parser_parse_url()
         * keeps 16-bit offsets. */
        return api_http__parse_fail(p, HD_ETOOBIG, 414, "uri_too_long",
                                    "request target is too long");
    }
    if ((hp->flags & F_CONTENTLENGTH) != 0 && hp->content_length > p->limits.body_bytes_max) {
        return api_http__fail_body_too_large(p);
    }
    if (hp->http_major != 1) {
        return api_http__parse_fail(p, HD_EINVAL, 505, "http_version_not_supported",
                          "only HTTP/1.x is supported");
    }
    int rv = api_http__check_expect(p);
    if (rv != 0) {
        return rv;
    }
    /* Reserve the announced body at once instead of doubling up to it. */
    if ((hp->flags & F_CONTENTLENGTH) != 0 && hp->content_length > 0) {
        size_t want = p->buf_len + (size_t)hp->content_length;
        if (want > p->buf_cap) {
            char *grown = hd_realloc(p->buf, want);
            if (grown == NULL) {
                return api_http__fail_nomem(p);
            }
            p->buf = grown;
            p->buf_cap = want;
        }
    }
    http_parser_pause(hp, 1);
    return 0;
}

static int api_http__on_body(http_parser *hp, const char *at, size_t len)
{
    struct api_http_parse *p = hp->data;
    if (p->buf_len - p->body_off + len > p->limits.body_bytes_max) {
        return api_http__fail_body_too_large(p);
    }
    return api_http__buf_append(p, at, len);
}

static int api_http__on_message_complete(http_parser *hp)
{
    struct api_http_parse *p = hp->data;
    if (p->trailer_bytes > p->limits.header_bytes_max) {
        return api_http__fail_headers_too_large(p);
    }
    p->complete = true;
    p->req.keep_alive = http_should_keep_alive(hp) != 0;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings api_http__settings = {
    .on_message_begin = api_http__on_message_begin,
    .on_url = api_http__on_url,
    .on_header_field = api_http__on_header_field,
    .on_header_value = api_http__on_header_value,
    .on_headers_complete = api_http__on_headers_complete,
    .on_body = api_http__on_body,
    .on_message_complete = api_http__on_message_complete,
};

/* ------------------------------------------------------------------ */
/* Assembly                                                            */
/* ------------------------------------------------------------------ */

void api_http_parse_init(struct api_http_parse *p, const struct api_http_limits *limits)
{
    memset(p, 0, sizeof *p);
    api_http_limits_resolve(&p->limits, limits);
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
}

void api_http_parse_close(struct api_http_parse *p)
{
    hd_free(p->buf);
    hd_free(p->spans);
    hd_free(p->headers);
    memset(p, 0, sizeof *p);
}

void api_http_parse_next(struct api_http_parse *p)
{
    HD_ASSERT(p->rv == 0);
    char *buf = p->buf;
    size_t buf_cap = p->buf_cap;
    if (buf_cap > API_HTTP__BUF_KEEP_MAX) {
        hd_free(buf);
        buf = NULL;
        buf_cap = 0;
    }
    struct api_http__hdr_span *spans = p->spans;
    struct api_http_header *headers = p->headers;
    size_t headers_cap = p->headers_cap;
    struct api_http_limits limits = p->limits;

    /* A fresh http_parser: the old one may sit in its "dead" state after a
     * Connection: close request, and the server decides about closing. */
    memset(p, 0, sizeof *p);
    p->limits = limits;
    p->buf = buf;
    p->buf_cap = buf_cap;
    p->spans = spans;
    p->headers = headers;
    p->headers_cap = headers_cap;
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
}

/* Splits the request target into path and query. Origin-form ("/a?b") is
 * split here; absolute-form and CONNECT's authority-form go through
 * http_parser_parse_url(). The fragment, if a client sends one, is dropped. */
static int api_http__split_target(struct api_http_parse *p, size_t *path_off, size_t *path_len,
                        size_t *query_off, size_t *query_len)
{
    const char *url = p->buf + p->url_off;
    size_t len = p->url_len;
    *path_off = *query_off = p->url_off;
    *path_len = *query_len = 0;
    if (len > 0 && url[0] == '/') {
        size_t end = 0;
        while (end < len && url[end] != '?' && url[end] != '#') {
            end++;
        }
        *path_len = end;
        if (end < len && url[end] == '?') {
            size_t q = end + 1;
            size_t qend = q;
            while (qend < len && url[qend] != '#') {
                qend++;
            }
            *query_off = p->url_off + q;
            *query_len = qend - q;
        }
        return 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (len == 0 || http_parser_parse_url(url, len, p->hp.method == HTTP_CONNECT, &u) != 0) {
        return HD_EINVAL;
    }
    if ((u.field_set & (1u << UF_PATH)) != 0) {
        *path_off = p->url_off + u.field_data[UF_PATH].off;
        *path_len = u.field_data[UF_PATH].len;
    }
    if ((u.field_set & (1u << UF_QUERY)) != 0) {
        *query_off = p->url_off + u.field_data[UF_QUERY].off;
        *query_len = u.field_data[UF_QUERY].len;
    }
    return 0;
}

/* Fills p->req, turning offsets into pointers (the buffer must no longer
 * move). HD_EINVAL for a malformed request target; p is left as it was. */
static int api_http__fill_request(struct api_http_parse *p)
{
    size_t path_off, path_len, query_off, query_len;
    int rv = api_http__split_target(p, &path_off, &path_len, &query_off, &query_len);
    if (rv != 0) {
        return rv;
    }
    static const char empty[1] = "";
    const char *base = p->buf != NULL ? p->buf : empty;
    for (size_t i = 0; i < p->n_headers; i++) {
        const struct api_http__hdr_span *s = &p->spans[i];
        size_t vlen = s->value_len;
        while (vlen > 0 && api_http__is_ows(base[s->value_off + vlen - 1])) {
            vlen--;
        }
        p->headers[i] = (struct api_http_header){
            .name = base + s->name_off,
            .name_len = s->name_len,
            .value = base + s->value_off,
            .value_len = vlen,
        };
    }
    struct api_http_request *r = &p->req;
    r->method = (int)p->hp.method;
    r->http_major = p->hp.http_major;
    r->http_minor = p->hp.http_minor;
    r->path = base + path_off;
    r->path_len = path_len;
    r->query = base + query_off;
    r->query_len = query_len;
    r->headers = p->headers;
    r->n_headers = p->n_headers;
    r->body = base + p->body_off;
    r->body_len = p->buf_len - p->body_off;
    r->upgrade = p->hp.upgrade != 0;
    if (r->upgrade) {
        /* Bytes after an upgrade request are another protocol. */
        r->keep_alive = false;
    }
    return 0;
}

static int api_http__finish_request(struct api_http_parse *p)
{
    if (api_http__fill_request(p) != 0) {
        return api_http__parse_fail(p, HD_EINVAL, 400, "bad_request", "malformed request target");
    }
    return 0;
}

static int api_http__map_parser_error(struct api_http_parse *p, enum http_errno e)
{
    if (p->rv != 0) {
        return p->rv; /* one of our callbacks failed and said why */
    }
    if (e == HPE_HEADER_OVERFLOW) {
        return api_http__fail_headers_too_large(p);
    }
    return api_http__parse_fail(p, HD_EINVAL, 400, "bad_request", http_errno_description(e));
}

/* Over the raw header limit. Still in the request line (no header name seen
 * yet, which does not depend on the split since partial tokens are handed
 * out at the end of every feed): 414. */
static int api_http__fail_raw_headers(struct api_http_parse *p)
{
    if (p->n_headers == 0 && !p->too_many_headers) {
        return api_http__parse_fail(p, HD_ETOOBIG, 414, "uri_too_long", "request line is too long");
    }
    return api_http__fail_headers_too_large(p);
}

int api_http_parse_feed(struct api_http_parse *p, const char *data, size_t len, size_t *consumed)
{
    HD_ASSERT(!p->complete); /* api_http_parse_next() first */
    *consumed = 0;
    if (p->rv != 0) {
        return p->rv;
    }
    size_t off = 0;
    while (off < len) {
        bool in_headers = !p->headers_done;
        size_t n_in = len - off;
        if (in_headers) {
            /* Never more than one byte past the limit, so that it trips at
             * the same byte however the input is split. Raw bytes count,
             * so whitespace and folding are limited too. */
            size_t room = p->limits.header_bytes_max - p->raw_header_bytes;
            n_in = n_in < room + 1 ? n_in : room + 1;
        }
        size_t n = http_parser_execute(&p->hp, &api_http__settings, data + off, n_in);
        off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if (e != HPE_OK && e != HPE_PAUSED) {
            return api_http__map_parser_error(p, e);
        }
        if (in_headers) {
            p->raw_header_bytes += n;
            if (p->raw_header_bytes > p->limits.header_bytes_max) {
                return api_http__fail_raw_headers(p);
            }
        }
        if (e == HPE_OK) {
            if (n < n_in) {
                /* The parser stopped without pausing or failing: it only
                 * does that after an upgrade, which pauses first. */
                return api_http__parse_fail(p, HD_EINVAL, 400, "bad_request", "unexpected data");
            }
            continue;
        }
        http_parser_pause(&p->hp, 0);
        if (p->complete) {
            int rv = api_http__finish_request(p);
            if (rv != 0) {
                p->complete = false;
                return rv;
            }
            *consumed = off;
            return API_HTTP_PARSE_REQUEST;
        }
        HD_ASSERT(p->headers_done);
        if (p->expect_continue) {
            p->expect_continue = false;
            *consumed = off;
            return API_HTTP_PARSE_CONTINUE;
        }
    }
    *consumed = off;
    return API_HTTP_PARSE_MORE;
}

const struct api_http_request *api_http_parse_request(const struct api_http_parse *p)
{
    return p->complete ? &p->req : NULL;
}

const struct api_http_error *api_http_parse_error(const struct api_http_parse *p)
{
    return p->rv != 0 ? &p->err : NULL;
}

const struct api_http_request *api_http_parse_view(struct api_http_parse *p)
{
    if (p->complete) {
        return &p->req;
    }
    if (!p->headers_done || api_http__fill_request(p) != 0) {
        return NULL;
    }
    p->req.body_len = 0; /* a partial body is nobody's business */
    p->req.keep_alive = false;
    return &p->req;
}

bool api_http_parse_started(const struct api_http_parse *p)
{
    return p->started && !p->complete;
}

/* ------------------------------------------------------------------ */
/* Lookups and decoding                                                */
/* ------------------------------------------------------------------ */

const char *api_http_header(const struct api_http_request *req, const char *name, size_t *len)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct api_http_header *h = &req->headers[i];
        if (api_http__ascii_case_equal(h->name, h->name_len, name)) {
            if (len != NULL) {
                *len = h->value_len;
            }
            return h->value;
        }
    }
    return NULL;
}

static int api_http__hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes in[0..len) into out (no NUL). With out == NULL only validates and
 * measures. %00 is refused: decoded names end up in C strings and keys. */
static int api_http__percent_decode(const char *in, size_t len, bool plus_is_space, char *out,
                          size_t out_len, size_t *out_written)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3) {
                return HD_EINVAL;
            }
            int hi = api_http__hex_value(in[i + 1]);
            int lo = api_http__hex_value(in[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return HD_EINVAL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (out != NULL) {
            if (w == out_len) {
                return HD_ETOOBIG;
            }
            out[w] = c;
        }
        w++;
    }
    *out_written = w;
    return 0;
}

int api_http_path_decode(const char *in, size_t len, char *out, size_t out_len,
                         size_t *out_written)
{
    HD_ASSERT(out != NULL && out_len > 0);
    size_t w = 0;
    int rv = api_http__percent_decode(in, len, false, out, out_len - 1, &w);
    if (rv != 0) {
        return rv;
    }
    out[w] = '\0';
    if (out_written != NULL) {
        *out_written = w;
    }
    return 0;
}

/* Compares the decoded form of a query name with name, without a buffer. */
static bool api_http__query_name_equal(const char *in, size_t len, const char *name)
{
    size_t name_len = strlen(name);
    size_t w = 0;
    if (api_http__percent_decode(in, len, true, NULL, 0, &w) != 0 || w != name_len) {
        return false;
    }
    for (size_t i = 0, j = 0; i < len; i++, j++) {
        char c = in[i];
        if (c == '%') {
            c = (char)(api_http__hex_value(in[i + 1]) * 16 + api_http__hex_value(in[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c != name[j]) {
            return false;
        }
    }
    return true;
}

int api_http_query_param(const struct api_http_request *req, const char *name, char *out,
                         size_t out_len)
{
    HD_ASSERT(out != NULL && out_len > 0);
    const char *q = req->query;
    size_t len = req->query_len;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&') {
            end++;
        }
        size_t eq = i;
        while (eq < end && q[eq] != '=') {
            eq++;
        }
        if (api_http__query_name_equal(q + i, eq - i, name)) {
            size_t vstart = eq < end ? eq + 1 : end;
            size_t w = 0;
            int rv = api_http__percent_decode(q + vstart, end - vstart, true, out, out_len - 1, &w);
            if (rv != 0) {
                return rv;
            }
            out[w] = '\0';
            return 0;
        }
        i = end + 1;
    }
    return HD_ENOTFOUND;
}

const char *api_http_status_text(int status)
{
    if (status < 100 || status > 599) {
        return "Unknown";
    }
    const char *s = http_status_str((enum http_status)status);
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}
