/* SPDX-License-Identifier: Apache-2.0 */
/* libherald over TLS: a non-blocking socket wrapped in a common/hd_tls.c
 * session, with recv()/send()-like calls so that the blocking exchanges
 * (net.c) and the subscription state machine (sub_io.c) use it alike. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_tls.h"

/* Ciphertext produced by the session waits in out until the socket takes
 * it (herald__tls_flush). */
static int tls_out(void *arg, const void *data, size_t len)
{
    struct herald__tls *t = arg;
    return herald__buf_append(&t->out, data, len);
}

static int tls_in(void *arg, const void *data, size_t len)
{
    struct herald__tls *t = arg;
    return herald__buf_append(&t->in, data, len);
}

int herald__tls_ctx(struct hd_tls_ctx **ctx, const char *ca_file, char *errmsg, size_t len)
{
    if (*ctx != NULL) return 0;
    return hd_tls_ctx_client(ctx, ca_file, errmsg, len);
}

int herald__tls_open(struct herald__tls **out, struct hd_tls_ctx *ctx, const char *host, int fd,
                     char *errmsg, size_t errmsg_len)
{
    struct herald__tls *t = hd_calloc(1, sizeof *t);
    if (t == NULL) return HD_ENOMEM;
    t->fd = fd;
    struct hd_tls_io io = {.out = tls_out, .in = tls_in, .arg = t};
    int rv = hd_tls_client_new(&t->s, ctx, host, &io);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "TLS: %s", t->s != NULL ? hd_tls_why(t->s) : "out of memory");
        herald__tls_close(t);
        return rv == HD_ENOMEM ? rv : HD_ECORRUPT;
    }
    *out = t;
    return 0;
}

void herald__tls_close(struct herald__tls *t)
{
    if (t == NULL) return;
    hd_tls_free(t->s);
    herald__buf_free(&t->out);
    herald__buf_free(&t->in);
    hd_free(t);
}

bool herald__tls_established(const struct herald__tls *t)
{
    return hd_tls_established(t->s);
}

bool herald__tls_want_write(const struct herald__tls *t)
{
    return t->out_off < t->out.len;
}

const char *herald__tls_why(const struct herald__tls *t)
{
    return hd_tls_why(t->s);
}

int herald__tls_flush(struct herald__tls *t)
{
    while (t->out_off < t->out.len) {
        ssize_t n = send(t->fd, t->out.data + t->out_off, t->out.len - t->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        t->out_off += (size_t)n;
    }
    herald__buf_reset(&t->out);
    t->out_off = 0;
    return 0;
}

ssize_t herald__tls_send(struct herald__tls *t, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)data, .iov_len = len};
    int rv = hd_tls_writev(t->s, &iov, 1);
    if (rv != 0) {
        errno = rv == HD_ENOMEM ? ENOMEM : EPROTO;
        return -1;
    }
    if (herald__tls_flush(t) < 0) return -1;
    return (ssize_t)len; /* the rest waits in out: want write */
}

/* Plaintext already decrypted, up to len bytes. */
static ssize_t tls_take(struct herald__tls *t, void *buf, size_t len)
{
    size_t n = t->in.len - t->in_off;
    if (n > len) n = len;
    memcpy(buf, t->in.data + t->in_off, n);
    t->in_off += n;
    if (t->in_off == t->in.len) {
        herald__buf_reset(&t->in);
        t->in_off = 0;
    }
    return (ssize_t)n;
}

ssize_t herald__tls_recv(struct herald__tls *t, void *buf, size_t len)
{
    for (;;) {
        if (t->in_off < t->in.len) return tls_take(t, buf, len);
        if (t->eof) return 0;
        char cipher[16384];
        ssize_t n = recv(t->fd, cipher, sizeof cipher, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1; /* EAGAIN included */
        if (n == 0) {
            t->eof = true;
            continue;
        }
        int rv = hd_tls_feed(t->s, cipher, (size_t)n);
        if (herald__tls_flush(t) < 0) return -1; /* handshake answers */
        if (rv == HD_ESHUTDOWN) {
            t->eof = true;
        } else if (rv != 0) {
            errno = rv == HD_ENOMEM ? ENOMEM : EPROTO;
            return -1;
        } else if (t->in_off == t->in.len) {
            /* Only handshake or session bytes: the caller waits for more
             * (the handshake also ends here, with nothing to hand back). */
            errno = EAGAIN;
            return -1;
        }
    }
}
