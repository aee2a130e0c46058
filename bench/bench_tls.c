/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench over https (bench_tls.h): what a session produces in one
 * step is gathered, then written with one uv_write of its own. */
#include "bench_tls.h"

#include <stdlib.h>
#include <string.h>

#include "herald/herald.h"

struct bench_tls {
    struct herald_tls *s;
    uv_stream_t *stream;
    int (*plain)(void *arg, const void *data, size_t len);
    void *arg;
    char *buf;       /* ciphertext gathered in this step */
    size_t len, cap;
    bool nomem;
};

/* One write of ciphertext; outer/cb: the caller's request to complete. */
struct bench_tls_write {
    uv_write_t req;
    uv_write_t *outer;
    uv_write_cb cb;
    char data[];
};

static int gather(void *arg, const void *data, size_t len)
{
    struct bench_tls *t = arg;
    if (t->cap - t->len < len) {
        size_t cap = t->cap * 2 > t->len + len ? t->cap * 2 : t->len + len + 4096;
        char *buf = realloc(t->buf, cap);
        if (buf == NULL) {
            t->nomem = true;
            return -1;
        }
        t->buf = buf;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
    return 0;
}

static int deliver(void *arg, const void *data, size_t len)
{
    struct bench_tls *t = arg;
    return t->plain(t->arg, data, len);
}

static void written(uv_write_t *req, int status)
{
    struct bench_tls_write *w = (struct bench_tls_write *)req;
    if (w->outer != NULL) w->cb(w->outer, status);
    free(w);
}

/* Writes what was gathered; outer completes with it. */
static int flush(struct bench_tls *t, uv_write_t *outer, uv_write_cb cb)
{
    if (t->nomem) return -1;
    if (t->len == 0) return 0;
    struct bench_tls_write *w = malloc(sizeof *w + t->len);
    if (w == NULL) return -1;
    memcpy(w->data, t->buf, t->len);
    w->outer = outer;
    w->cb = cb;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)t->len);
    t->len = 0;
    if (uv_write(&w->req, t->stream, &b, 1, written) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

int bench_tls_open(struct bench_tls **out, struct herald_tls_config *c, const char *host,
                   uv_stream_t *stream, int (*plain)(void *arg, const void *data, size_t len),
                   void *arg)
{
    struct bench_tls *t = calloc(1, sizeof *t);
    *out = t;
    if (t == NULL) return -1;
    t->stream = stream;
    t->plain = plain;
    t->arg = arg;
    struct herald_tls_io io = {.out = gather, .in = deliver, .arg = t};
    if (herald_tls_new(&t->s, c, host, &io) != 0) return -1;
    return flush(t, NULL, NULL);
}

int bench_tls_feed(struct bench_tls *t, const void *data, size_t len)
{
    int rv = herald_tls_feed(t->s, data, len);
    int sent = flush(t, NULL, NULL); /* handshake answers, alerts */
    return rv != 0 || sent != 0 ? -1 : 0;
}

int bench_tls_write(struct bench_tls *t, const void *data, size_t len, uv_write_t *req,
                    uv_write_cb cb)
{
    if (herald_tls_write(t->s, data, len) != 0) return -1;
    return t->len > 0 ? flush(t, req, cb) : -1;
}

bool bench_tls_established(const struct bench_tls *t)
{
    return t->s != NULL && herald_tls_established(t->s);
}

const char *bench_tls_why(const struct bench_tls *t)
{
    return t == NULL || t->s == NULL ? "out of memory"
           : t->nomem                ? "out of memory"
                                     : herald_tls_why(t->s);
}

void bench_tls_free(struct bench_tls *t)
{
    if (t == NULL) return;
    herald_tls_free(t->s);
    free(t->buf);
    free(t);
}
