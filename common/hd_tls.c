/* SPDX-License-Identifier: Apache-2.0 */
/* TLS sessions over memory BIOs: bytes in from the caller, bytes out to a
 * callback, one record at a time (hd_tls.h). */
#include "hd_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_tls_internal.h"

/* Plaintext in one record, and ciphertext fed per step: a whole record
 * with its header and the largest expansion. Feeding in steps and
 * decrypting after each keeps the input BIO near one record. */
#define HD__TLS_RECORD_PLAIN 16384u
#define HD__TLS_RECORD_WIRE (HD__TLS_RECORD_PLAIN + 2048u + 5u)

struct hd_tls {
    SSL *ssl;
    BIO *rbio;            /* ciphertext from the peer; owned by ssl */
    BIO *wbio;            /* ciphertext for the peer; owned by ssl */
    struct hd_tls_io io;  /* where bytes go */
    bool client;          /* connect side (verifies the peer) */
    bool established;     /* handshake complete */
    bool failed;          /* a fatal error: only why and free work */
    bool close_sent;      /* close_notify is out */
    char why[256];        /* the failure, for logs */
};

/* Hands every byte the session produced to out. */
static int hd__tls_flush(struct hd_tls *t)
{
    char buf[HD__TLS_RECORD_WIRE];
    for (;;) {
        int n = BIO_read(t->wbio, buf, (int)sizeof buf);
        if (n <= 0) {
            return 0;
        }
        int rv = t->io.out(t->io.arg, buf, (size_t)n);
        if (rv != 0) {
            t->failed = true;
            snprintf(t->why, sizeof t->why, "could not send: %s", hd_strerror(rv));
            return rv;
        }
    }
}

/* A fatal error after an SSL call that returned ssl_rv: says why, sends
 * the alert OpenSSL queued, and fails the session. */
static int hd__tls_fail(struct hd_tls *t, int ssl_rv)
{
    int err = SSL_get_error(t->ssl, ssl_rv);
    /* X509_V_OK unless a certificate was checked and refused (a server
     * checks one only with a mutual context). */
    long verify = SSL_get_verify_result(t->ssl);
    char reason[200];
    hd__tls_reason(reason, sizeof reason,
                   err == SSL_ERROR_SYSCALL ? "unexpected end of input" : "protocol error");
    if (verify != X509_V_OK) {
        snprintf(t->why, sizeof t->why, "the %s's certificate was refused: %s",
                 t->client ? "server" : "client", X509_verify_cert_error_string(verify));
    } else {
        snprintf(t->why, sizeof t->why, "%s%s", t->established ? "" : "handshake failed: ",
                 reason);
    }
    (void)hd__tls_flush(t); /* the alert, if any */
    t->failed = true;
    return HD_ECORRUPT;
}

static int hd__tls_new(struct hd_tls **out, struct hd_tls_ctx *ctx, const struct hd_tls_io *io)
{
    struct hd_tls *t = hd_calloc(1, sizeof *t);
    if (t == NULL) {
        return HD_ENOMEM;
    }
    t->io = *io;
    t->ssl = SSL_new((SSL_CTX *)ctx); /* takes its own reference on ctx */
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        hd_free(t);
        ERR_clear_error();
        return HD_ENOMEM;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    *out = t;
    return 0;
}

int hd_tls_server_new(struct hd_tls **out, struct hd_tls_ctx *ctx, const struct hd_tls_io *io)
{
    int rv = hd__tls_new(out, ctx, io);
    if (rv == 0) {
        SSL_set_accept_state((*out)->ssl);
    }
    return rv;
}

/* The name or address the certificate must carry. */
static int hd__tls_expect_host(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : HD_EINVAL;
    }
    if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
        return HD_EINVAL;
    }
    return 0;
}

int hd_tls_client_new(struct hd_tls **out, struct hd_tls_ctx *ctx, const char *host,
                      const struct hd_tls_io *io)
{
    struct hd_tls *t = NULL;
    int rv = hd__tls_new(&t, ctx, io);
    if (rv != 0) {
        return rv;
    }
    t->client = true;
    SSL_set_connect_state(t->ssl);
    *out = t;
    if (host != NULL && hd__tls_expect_host(t->ssl, host) != 0) {
        ERR_clear_error();
        snprintf(t->why, sizeof t->why, "cannot check a certificate for host '%s'", host);
        t->failed = true;
        return HD_ECORRUPT;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl); /* the ClientHello; then it waits */
    if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
        return hd__tls_fail(t, r);
    }
    return hd__tls_flush(t);
}

void hd_tls_free(struct hd_tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl); /* frees both BIOs */
    hd_free(t);
    ERR_clear_error();
}

/* Advances the handshake, then decrypts whatever whole records the input
 * holds. */
static int hd__tls_pump(struct hd_tls *t)
{
    ERR_clear_error();
    if (!t->established) {
        int r = SSL_do_handshake(t->ssl);
        int rv = hd__tls_flush(t);
        if (rv != 0) {
            return rv;
        }
        if (r != 1) {
            return SSL_get_error(t->ssl, r) == SSL_ERROR_WANT_READ ? 0 : hd__tls_fail(t, r);
        }
        t->established = true;
    }
    char plain[HD__TLS_RECORD_PLAIN];
    for (;;) {
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, plain, sizeof plain, &got);
        int rv = hd__tls_flush(t); /* e.g. a key update's answer */
        if (rv != 0) {
            return rv;
        }
        if (r == 1) {
            rv = t->io.in(t->io.arg, plain, got);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        int err = SSL_get_error(t->ssl, r);
        if (err == SSL_ERROR_WANT_READ) {
            return 0;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return HD_ESHUTDOWN;
        }
        return hd__tls_fail(t, r);
    }
}

int hd_tls_feed(struct hd_tls *t, const void *data, size_t len)
{
    if (t->failed) {
        return HD_ECORRUPT;
    }
    const char *p = data;
    while (len > 0) {
        size_t step = len < HD__TLS_RECORD_WIRE ? len : HD__TLS_RECORD_WIRE;
        if (BIO_write(t->rbio, p, (int)step) != (int)step) {
            ERR_clear_error();
            t->failed = true;
            snprintf(t->why, sizeof t->why, "out of memory");
            return HD_ENOMEM;
        }
        p += step;
        len -= step;
        int rv = hd__tls_pump(t);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

bool hd_tls_established(const struct hd_tls *t)
{
    return t->established && !t->failed;
}

static int hd__tls_write(struct hd_tls *t, const void *p, size_t len)
{
    size_t done = 0;
    ERR_clear_error();
    int r = SSL_write_ex(t->ssl, p, len, &done);
    if (r != 1) {
        return hd__tls_fail(t, r);
    }
    return hd__tls_flush(t);
}

int hd_tls_writev(struct hd_tls *t, const struct iovec *iov, size_t n)
{
    if (t->failed || !t->established || t->close_sent) {
        return HD_ECORRUPT;
    }
    /* Small buffers (many frames of a delivery round) share records; a
     * record's worth is encrypted straight from the caller's memory. */
    char rec[HD__TLS_RECORD_PLAIN];
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len > 0) {
            int rv = 0;
            size_t take;
            if (fill == 0 && len >= sizeof rec) {
                take = sizeof rec;
                rv = hd__tls_write(t, p, take);
            } else {
                take = sizeof rec - fill < len ? sizeof rec - fill : len;
                memcpy(rec + fill, p, take);
                fill += take;
                if (fill == sizeof rec) {
                    rv = hd__tls_write(t, rec, fill);
                    fill = 0;
                }
            }
            if (rv != 0) {
                return rv;
            }
            p += take;
            len -= take;
        }
    }
    return fill > 0 ? hd__tls_write(t, rec, fill) : 0;
}

int hd_tls_close(struct hd_tls *t)
{
    if (t->failed || t->close_sent || !t->established) {
        return 0;
    }
    t->close_sent = true;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
    return hd__tls_flush(t);
}

const char *hd_tls_why(const struct hd_tls *t)
{
    return t->why;
}

const char *hd_tls_version(const struct hd_tls *t)
{
    return SSL_get_version(t->ssl);
}
