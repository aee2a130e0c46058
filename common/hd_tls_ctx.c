/* SPDX-License-Identifier: Apache-2.0 */
/* TLS contexts: a server's certificate and key, a client's trust store, and
 * the protocol rules every herald endpoint keeps (hd_tls.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hd_error.h"
#include "hd_tls.h"
#include "hd_tls_internal.h"

/* The last OpenSSL error's reason ("no start line"), or a fallback. Clears
 * the thread's error queue, so that no stale error confuses the next
 * call. */
void hd__tls_reason(char *out, size_t out_len, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(out, out_len, "%s", r != NULL ? r : fallback);
    ERR_clear_error();
}

/* The rules both sides keep. */
static SSL_CTX *hd__tls_ctx_new(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

/* fopen first, so that a missing or unreadable file is reported as such
 * rather than as OpenSSL's "system lib". */
static int hd__tls_check_readable(const char *what, const char *path, char *errmsg,
                                  size_t errmsg_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "%s %s: %s", what, path, strerror(errno));
        return HD_EINVAL;
    }
    fclose(f);
    return 0;
}

int hd_tls_ctx_server(struct hd_tls_ctx **out, const char *cert_file, const char *key_file,
                      char *errmsg, size_t errmsg_len)
{
    int rv = hd__tls_check_readable("--tls-cert", cert_file, errmsg, errmsg_len);
    if (rv == 0) {
        rv = hd__tls_check_readable("--tls-key", key_file, errmsg, errmsg_len);
    }
    if (rv != 0) {
        return rv;
    }
    SSL_CTX *ctx = hd__tls_ctx_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(errmsg, errmsg_len, "TLS: out of memory");
        return HD_ENOMEM;
    }
    char why[200];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        hd__tls_reason(why, sizeof why, "unreadable");
        snprintf(errmsg, errmsg_len, "--tls-cert %s: no PEM certificate in it (%s)", cert_file,
                 why);
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        hd__tls_reason(why, sizeof why, "unreadable");
        snprintf(errmsg, errmsg_len, "--tls-key %s: not a private key --tls-cert %s can use (%s)",
                 key_file, cert_file, why);
        goto err;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        hd__tls_reason(why, sizeof why, "mismatch");
        snprintf(errmsg, errmsg_len, "--tls-key %s does not match the certificate of --tls-cert %s",
                 key_file, cert_file);
        goto err;
    }
    *out = (struct hd_tls_ctx *)ctx;
    return 0;
err:
    SSL_CTX_free(ctx);
    return HD_EINVAL;
}

int hd_tls_ctx_client(struct hd_tls_ctx **out, const char *ca_file, char *errmsg,
                      size_t errmsg_len)
{
    if (ca_file != NULL) {
        int rv = hd__tls_check_readable("CA file", ca_file, errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
    }
    SSL_CTX *ctx = hd__tls_ctx_new(TLS_client_method());
    if (ctx == NULL) {
        snprintf(errmsg, errmsg_len, "TLS: out of memory");
        return HD_ENOMEM;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_file(ctx, ca_file)
                             : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char why[200];
        hd__tls_reason(why, sizeof why, "unreadable");
        if (ca_file != NULL) {
            snprintf(errmsg, errmsg_len, "CA file %s: no PEM certificate in it (%s)", ca_file, why);
        } else {
            snprintf(errmsg, errmsg_len, "the system's CA store: %s", why);
        }
        SSL_CTX_free(ctx);
        return HD_EINVAL;
    }
    *out = (struct hd_tls_ctx *)ctx;
    return 0;
}

void hd_tls_ctx_describe(const struct hd_tls_ctx *ctx, char *out, size_t out_len)
{
    snprintf(out, out_len, "?");
    X509 *cert = SSL_CTX_get0_certificate((const SSL_CTX *)ctx);
    BIO *b = BIO_new(BIO_s_mem());
    if (cert == NULL || b == NULL) {
        BIO_free(b);
        return;
    }
    X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    BIO_puts(b, ", valid until ");
    ASN1_TIME_print(b, X509_get0_notAfter(cert));
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
        BIO_puts(b, " (EXPIRED: clients will refuse it)");
    }
    char *text = NULL;
    long len = BIO_get_mem_data(b, &text);
    snprintf(out, out_len, "%.*s", (int)len, text);
    BIO_free(b);
    ERR_clear_error();
}

void hd_tls_ctx_free(struct hd_tls_ctx *ctx)
{
    SSL_CTX_free((SSL_CTX *)ctx);
}
