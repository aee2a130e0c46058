/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 request assembly over http-parser: bytes in, whole requests or an error out. */
#ifndef API_HTTP_PARSE_H
#define API_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

/* Limits of one connection. A field left at 0 takes its default. */
struct api_http_limits {
    size_t header_bytes_max;     /* request line + headers, raw bytes; 16 KiB */
    size_t headers_max;          /* header lines; 64 */
    size_t body_bytes_max;       /* body after de-chunking; 8 MiB */
    uint64_t request_timeout_ms; /* first byte to full request (slowloris); 30 s */
    uint64_t idle_timeout_ms;    /* keep-alive wait between requests; 60 s */
    size_t connections_max;      /* beyond it: accept, answer 503, close; 4096 */
};

#define API_HTTP_HEADER_BYTES_MAX_DEFAULT (16u * 1024u)
#define API_HTTP_HEADERS_MAX_DEFAULT 64u
#define API_HTTP_BODY_BYTES_MAX_DEFAULT (8u * 1024u * 1024u)
#define API_HTTP_REQUEST_TIMEOUT_MS_DEFAULT 30000u
#define API_HTTP_IDLE_TIMEOUT_MS_DEFAULT 60000u
#define API_HTTP_CONNECTIONS_MAX_DEFAULT 4096u

/* Copies *in (or the defaults if in is NULL) to *out, filling 0 fields with
 * their defaults. */
void api_http_limits_resolve(struct api_http_limits *out, const struct api_http_limits *in);

/* One header line. Not NUL-terminated; the value has no surrounding
 * whitespace. Borrowed from the request that holds it. */
struct api_http_header {
    const char *name;  /* as sent (case preserved) */
    size_t name_len;   /* bytes in name */
    const char *value; /* trimmed value, may be empty */
    size_t value_len;  /* bytes in value */
};

/* A complete request. Every pointer points into memory owned by the
 * struct api_http_parse that produced it, and stays valid until
 * api_http_parse_next() or api_http_parse_close() on that parser (in the
 * server: until the response is given). No string is NUL-terminated. */
struct api_http_request {
    int method;                            /* enum http_method */
    unsigned short http_major;             /* 1 */
    unsigned short http_minor;             /* 0 or 1 */
    const char *path;                      /* raw (still percent-encoded), never NULL */
    size_t path_len;                       /* bytes in path; "/" at least for origin-form */
    const char *query;                     /* raw, after '?', never NULL */
    size_t query_len;                      /* 0 if there was no query */
    const struct api_http_header *headers; /* in arrival order; trailers dropped */
    size_t n_headers;                      /* entries in headers */
    const char *body;                      /* de-chunked, never NULL */
    size_t body_len;                       /* bytes in body */
    bool keep_alive;                       /* the connection may carry another request */
    bool upgrade;                          /* Upgrade/CONNECT; keep_alive is then false */
};

/* What went wrong with a request: the status to answer with and a JSON
 * error code and message (static strings, safe to embed in JSON as is). */
struct api_http_error {
    int status;          /* 400, 413, 414, 417, 431 */
    const char *code;    /* "bad_request", "body_too_large", ... */
    const char *message; /* human-readable sentence */
};

/* Results of api_http_parse_feed() that are not errors. */
enum {
    API_HTTP_PARSE_MORE = 0,     /* all input used; the request is not complete yet */
    API_HTTP_PARSE_CONTINUE = 1, /* headers done and the client sent Expect: 100-continue:
                                    send "100 Continue", then feed the rest */
    API_HTTP_PARSE_REQUEST = 2,  /* a request is complete: see api_http_parse_request() */
};

/* Assembler state for one connection. Embed it and treat it as opaque. */
struct api_http_parse {
    http_parser hp;                     /* the tokenizer */
    struct api_http_limits limits;      /* resolved limits */
    char *buf;                          /* url, header names/values, body; owned */
    size_t buf_len;                     /* bytes used in buf */
    size_t buf_cap;                     /* bytes allocated for buf */
    struct api_http__hdr_span *spans;   /* header offsets into buf while parsing; owned */
    struct api_http_header *headers;    /* spans turned into pointers at the end; owned */
    size_t n_headers;                   /* headers seen so far */
    size_t headers_cap;                 /* entries allocated in spans and headers */
    size_t url_off, url_len;            /* request target in buf */
    size_t body_off;                    /* body start in buf (body runs to buf_len) */
    size_t raw_header_bytes;            /* input bytes seen before the end of the headers */
    size_t trailer_bytes;               /* bytes of trailer names and values (dropped) */
    int last_cb;                        /* which header callback ran last */
    bool started;                       /* the first byte of a request has arrived */
    bool headers_done;                  /* on_headers_complete ran */
    bool too_many_headers;              /* over headers_max: 431 when the headers end */
    bool expect_continue;               /* answer 100 Continue before the body */
    bool complete;                      /* on_message_complete ran; request is ready */
    int rv;                             /* sticky error code once failed, else 0 */
    struct api_http_error err;          /* valid when rv != 0 */
    struct api_http_request req;        /* valid when complete */
};

/* Prepares p. limits may be NULL (defaults). Nothing is allocated until
 * bytes arrive. Pair with api_http_parse_close(). */
void api_http_parse_init(struct api_http_parse *p, const struct api_http_limits *limits);

/* Frees what p owns, including any request it produced. */
void api_http_parse_close(struct api_http_parse *p);

/* Feeds bytes. *consumed tells how many were used: on API_HTTP_PARSE_MORE all
 * of them; on CONTINUE and REQUEST possibly fewer, and the rest belongs to
 * what follows (the body, or a pipelined request that must wait until after
 * api_http_parse_next()). Returns an API_HTTP_PARSE_* value, or on a protocol
 * error HD_EINVAL (malformed), HD_ETOOBIG (a limit) or HD_ENOMEM, after which
 * api_http_parse_error() says what to answer and every later call fails
 * the same way. data is only read during the call. */
int api_http_parse_feed(struct api_http_parse *p, const char *data, size_t len, size_t *consumed);

/* The request completed by the last feed (NULL if none is complete). */
const struct api_http_request *api_http_parse_request(const struct api_http_parse *p);

/* The error that failed p (NULL if p has not failed). */
const struct api_http_error *api_http_parse_error(const struct api_http_parse *p);

/* What arrived of the current request, for answering it when it cannot
 * complete (a limit, a malformed body, a timeout): the complete request if
 * there is one, else, once the header section was whole, a view of it
 * (method, path, query, headers; empty body, keep_alive false), else NULL
 * (the request line or headers were not all there, or the target was
 * malformed). The view's pointers live as long as the request's would;
 * feed nothing more to p after asking for a view. */
const struct api_http_request *api_http_parse_view(struct api_http_parse *p);

/* Bytes of a request have arrived but it is not complete yet. */
bool api_http_parse_started(const struct api_http_parse *p);

/* Drops the completed request (invalidating its pointers) and gets ready for
 * the next one on the same connection. */
void api_http_parse_next(struct api_http_parse *p);

/* Value of the first header called name (ASCII case-insensitive, name is
 * NUL-terminated), or NULL if absent. *len gets its length if len != NULL.
 * The value points into req. */
const char *api_http_header(const struct api_http_request *req, const char *name, size_t *len);

/* Percent-decodes (and '+' to space) the value of the first query parameter
 * whose decoded name equals name, into out as a NUL-terminated string.
 * A parameter without '=' has the empty value. Returns 0, HD_ENOTFOUND,
 * HD_ETOOBIG (out_len too small for value + NUL) or HD_EINVAL (bad
 * %-escape, or %00). */
int api_http_query_param(const struct api_http_request *req, const char *name, char *out,
                         size_t out_len);

/* Percent-decodes one path segment (no '+' rule) into out, NUL-terminated;
 * *out_written gets the decoded length without the NUL. Returns 0,
 * HD_ETOOBIG (out_len too small) or HD_EINVAL (bad %-escape, or %00). */
int api_http_path_decode(const char *in, size_t len, char *out, size_t out_len,
                         size_t *out_written);

/* Reason phrase of a status ("Not Found"); "Unknown" if not known. Static. */
const char *api_http_status_text(int status);

#endif
