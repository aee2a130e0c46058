/* SPDX-License-Identifier: Apache-2.0 */
/* TLS on one peer connection (transport_tls.h): what hd_tls produces is
 * gathered into one buffer per step and written with one uv_write, whose
 * request owns the buffer until libuv is done with it. */
#include "transport_tls.h"

#include <string.h>
#include <sys/uio.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_tls.h"

#define CONS__TLS_RBUF (64u << 10)  /* ciphertext read per call */
#define CONS__TLS_OUT_MIN (17u << 10) /* a whole record with its overhead */

/* One uv_write of ciphertext; its bytes follow it. */
struct cons__tls_write {
    uv_write_t req;
    struct cons_tls_link *l;
    bool notify;
    size_t len, cap;
    uint8_t data[];
};

struct cons_tls_link {
    struct hd_tls *tls;
    uv_stream_t *stream;
    struct cons_tls_link_cbs cbs;
    void *arg;
    struct cons__tls_write *out;  /* ciphertext gathered, not yet written */
    bool out_failed;              /* the gathering ran out of memory */
    char rbuf[CONS__TLS_RBUF];
};

static int cons__tls_out(void *arg, const void *data, size_t len)
{
    struct cons_tls_link *l = arg;
    struct cons__tls_write *w = l->out;
    if (w == NULL || w->cap - w->len < len) {
        size_t need = (w != NULL ? w->len : 0) + len;
        size_t cap = w != NULL && w->cap * 2 > need ? w->cap * 2 : need;
        cap = cap < CONS__TLS_OUT_MIN ? CONS__TLS_OUT_MIN : cap;
        struct cons__tls_write *grown = hd_realloc(w, sizeof *w + cap);
        if (grown == NULL) {
            l->out_failed = true;
            return HD_ENOMEM;
        }
        if (w == NULL) {
            grown->len = 0;
        }
        grown->cap = cap;
        l->out = w = grown;
    }
    memcpy(w->data + w->len, data, len);
    w->len += len;
    return 0;
}

static int cons__tls_in(void *arg, const void *data, size_t len)
{
    struct cons_tls_link *l = arg;
    return l->cbs.plain(l->arg, data, len);
}

static void cons__tls_write_cb(uv_write_t *req, int status)
{
    struct cons__tls_write *w = req->data;
    struct cons_tls_link *l = w->l;
    bool notify = w->notify;
    hd_free(w);
    if (notify) {
        l->cbs.written(l->arg, status);
    }
}

/* Writes what was gathered (nothing: no write, and no notification
 * unless asked, which cannot happen after a writev). */
static int cons__tls_send(struct cons_tls_link *l, bool notify)
{
    struct cons__tls_write *w = l->out;
    if (l->out_failed) {
        return HD_ENOMEM;
    }
    if (w == NULL) {
        HD_ASSERT(!notify);
        return 0;
    }
    l->out = NULL;
    w->l = l;
    w->notify = notify;
    w->req.data = w;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rv = uv_write(&w->req, l->stream, &buf, 1, cons__tls_write_cb);
    if (rv != 0) {
        hd_free(w);
        return rv;
    }
    return 0;
}

int cons_tls_link_new(struct cons_tls_link **out, struct hd_tls_ctx *ctx, bool dialer,
                      uv_stream_t *stream, const struct cons_tls_link_cbs *cbs, void *arg)
{
    struct cons_tls_link *l = hd_calloc(1, sizeof *l);
    if (l == NULL) {
        return HD_ENOMEM;
    }
    l->stream = stream;
    l->cbs = *cbs;
    l->arg = arg;
    *out = l;
    struct hd_tls_io io = {.out = cons__tls_out, .in = cons__tls_in, .arg = l};
    int rv = dialer ? hd_tls_client_new(&l->tls, ctx, NULL, &io)
                    : hd_tls_server_new(&l->tls, ctx, &io);
    if (rv == 0) {
        rv = cons__tls_send(l, false); /* the dialer's ClientHello */
    }
    return rv;
}

void cons_tls_link_free(struct cons_tls_link *l)
{
    if (l == NULL) {
        return;
    }
    hd_tls_free(l->tls);
    hd_free(l->out);
    hd_free(l);
}

uv_buf_t cons_tls_link_rbuf(struct cons_tls_link *l)
{
    return uv_buf_init(l->rbuf, sizeof l->rbuf);
}

int cons_tls_link_feed(struct cons_tls_link *l, size_t len)
{
    HD_ASSERT(len <= sizeof l->rbuf);
    int rv = hd_tls_feed(l->tls, l->rbuf, len);
    int sent = cons__tls_send(l, false); /* answers, alerts */
    return rv != 0 ? rv : sent;
}

int cons_tls_link_write(struct cons_tls_link *l, const uv_buf_t *bufs, unsigned n, bool notify)
{
    /* uv_buf_t is laid out as struct iovec on Unix (libuv documents it). */
    int rv = hd_tls_writev(l->tls, (const struct iovec *)(const void *)bufs, n);
    if (rv != 0) {
        hd_free(l->out);
        l->out = NULL;
        return rv;
    }
    return cons__tls_send(l, notify);
}

bool cons_tls_link_established(const struct cons_tls_link *l)
{
    return l->tls != NULL && hd_tls_established(l->tls);
}

const char *cons_tls_link_why(const struct cons_tls_link *l)
{
    return l->tls != NULL ? hd_tls_why(l->tls) : "out of memory";
}
