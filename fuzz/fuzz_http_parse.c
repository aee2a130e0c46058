/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: HTTP request assembly must give the same requests however the bytes are split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "hd_error.h"

/*
 * Input: byte 0 = n (mod 8), then n split lengths, then the byte stream.
 * The stream is parsed twice, once in one piece and once in chunks of the
 * given lengths (1 byte at a time if n is 0), with small limits so that
 * every limit is reachable. Both runs must produce the same requests and
 * the same outcome; each request must respect the limits, and the lookup
 * and decoding helpers run over it. Any difference aborts.
 */

#define FZ_HEADER_BYTES_MAX 512
#define FZ_HEADERS_MAX 8
#define FZ_BODY_BYTES_MAX 1024

struct fz_outcome {
    uint64_t hash;   /* over every request's parts */
    int n_requests;  /* completed requests */
    int n_continues; /* 100-continue stops */
    int rv;          /* final error, or 0 */
    int status;      /* its status */
};

static uint64_t fz_mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return (h ^ len) * 0x100000001b3ull;
}

static void fz_check_request(const struct api_http_request *r, struct fz_outcome *o)
{
    if (r->body_len > FZ_BODY_BYTES_MAX || r->n_headers > FZ_HEADERS_MAX ||
        r->path_len + r->query_len > FZ_HEADER_BYTES_MAX || r->path == NULL ||
        r->query == NULL || r->body == NULL) {
        abort();
    }
    if (r->upgrade && r->keep_alive) {
        abort();
    }
    uint64_t h = o->hash;
    int head[2] = {r->method, r->keep_alive};
    h = fz_mix(h, head, sizeof head);
    h = fz_mix(h, r->path, r->path_len);
    h = fz_mix(h, r->query, r->query_len);
    for (size_t i = 0; i < r->n_headers; i++) {
        h = fz_mix(h, r->headers[i].name, r->headers[i].name_len);
        h = fz_mix(h, r->headers[i].value, r->headers[i].value_len);
    }
    h = fz_mix(h, r->body, r->body_len);
    o->hash = h;

    size_t len = 0;
    const char *v = api_http_header(r, "content-type", &len);
    if (v != NULL && len > FZ_HEADER_BYTES_MAX) {
        abort();
    }
    char out[64];
    size_t w = 0;
    int rv = api_http_path_decode(r->path, r->path_len, out, sizeof out, &w);
    if (rv == 0 && (w >= sizeof out || out[w] != '\0')) {
        abort();
    }
    static const char *const names[] = {"a", "after_seq", "limit", " ", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        rv = api_http_query_param(r, names[i], out, sizeof out);
        if (rv == 0 && strlen(out) >= sizeof out) {
            abort();
        }
        if (rv != 0 && rv != HD_ENOTFOUND && rv != HD_ETOOBIG && rv != HD_EINVAL) {
            abort();
        }
    }
}

/* chunks == NULL: one piece. n_chunks == 0: one byte at a time. */
static void fz_run(const uint8_t *data, size_t size, const uint8_t *chunks, size_t n_chunks,
                   struct fz_outcome *o)
{
    static const struct api_http_limits limits = {
        .header_bytes_max = FZ_HEADER_BYTES_MAX,
        .headers_max = FZ_HEADERS_MAX,
        .body_bytes_max = FZ_BODY_BYTES_MAX,
    };
    struct api_http_parse p;
    api_http_parse_init(&p, &limits);
    memset(o, 0, sizeof *o);
    size_t off = 0;
    size_t k = 0;
    while (off < size) {
        size_t piece = size - off;
        if (chunks != NULL) {
            size_t want = n_chunks == 0 ? 1 : 1 + chunks[k++ % n_chunks];
            piece = want < piece ? want : piece;
        }
        while (piece > 0) {
            size_t used = 0;
            int rv = api_http_parse_feed(&p, (const char *)data + off, piece, &used);
            if (used > piece) {
                abort();
            }
            off += used;
            piece -= used;
            if (rv < 0) {
                const struct api_http_error *e = api_http_parse_error(&p);
                if (e == NULL || e->status < 400 || e->code == NULL || e->message == NULL) {
                    abort();
                }
                o->rv = rv;
                o->status = e->status;
                goto done;
            }
            if (rv == API_HTTP_PARSE_REQUEST) {
                fz_check_request(api_http_parse_request(&p), o);
                o->n_requests++;
                api_http_parse_next(&p);
            } else if (rv == API_HTTP_PARSE_CONTINUE) {
                o->n_continues++;
            } else if (rv != API_HTTP_PARSE_MORE || piece != 0) {
                abort();
            }
        }
    }
done:
    api_http_parse_close(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t n_chunks = data[0] % 8;
    if (size < 1 + n_chunks) {
        return 0;
    }
    const uint8_t *chunks = data + 1;
    data += 1 + n_chunks;
    size -= 1 + n_chunks;

    struct fz_outcome whole, split;
    fz_run(data, size, NULL, 0, &whole);
    fz_run(data, size, chunks, n_chunks, &split);
    if (whole.hash != split.hash || whole.n_requests != split.n_requests ||
        whole.n_continues != split.n_continues || whole.rv != split.rv ||
        whole.status != split.status) {
        abort();
    }
    return 0;
}
