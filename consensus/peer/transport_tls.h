/* SPDX-License-Identifier: Apache-2.0 */
/* TLS on one peer connection: ciphertext to and from its libuv stream,
 * plaintext to and from the transport (transport.c). It knows no frames
 * and no peers; the TLS itself is common/hd_tls.c. */
#ifndef CONS_TRANSPORT_TLS_H
#define CONS_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct hd_tls_ctx;
struct cons_tls_link;

struct cons_tls_link_cbs {
    /* Decrypted bytes, in order. A non-zero return stops the feed, which
     * returns it. */
    int (*plain)(void *arg, const void *data, size_t len);
    /* The ciphertext of a cons_tls_link_write(..., notify = true) left
     * (status 0), or its write failed or was cancelled (a libuv error). */
    void (*written)(void *arg, int status);
};

/* Starts TLS on a connected stream, as the dialer (client role: its
 * ClientHello is written at once) or the acceptor, with a mutual context
 * (hd_tls_ctx_mutual). 0, HD_ENOMEM, or HD_ECORRUPT (cons_tls_link_why). */
int cons_tls_link_new(struct cons_tls_link **out, struct hd_tls_ctx *ctx, bool dialer,
                      uv_stream_t *stream, const struct cons_tls_link_cbs *cbs, void *arg);

/* Frees the session. Only once the stream is closed: write callbacks
 * still pending refer to the link. NULL is ignored. */
void cons_tls_link_free(struct cons_tls_link *l);

/* Where libuv reads ciphertext to (the link's own buffer). */
uv_buf_t cons_tls_link_rbuf(struct cons_tls_link *l);

/* Ciphertext read into the buffer of cons_tls_link_rbuf: advances the
 * handshake, hands plaintext to cbs->plain, and writes what the session
 * answers (an alert too). 0, HD_ESHUTDOWN (the other end closed the
 * session), HD_ECORRUPT (the session failed: cons_tls_link_why), plain's
 * non-zero return, or a write error. */
int cons_tls_link_feed(struct cons_tls_link *l, size_t len);

/* Encrypts bufs[0..n) in order and writes them in one uv_write; with
 * notify, cbs->written fires once they left. Only once established.
 * 0, HD_ECORRUPT, HD_ENOMEM, or libuv's error. */
int cons_tls_link_write(struct cons_tls_link *l, const uv_buf_t *bufs, unsigned n, bool notify);

/* True once the handshake is done on this side. */
bool cons_tls_link_established(const struct cons_tls_link *l);

/* Why the session failed ("" if it did not). */
const char *cons_tls_link_why(const struct cons_tls_link *l);

#endif
