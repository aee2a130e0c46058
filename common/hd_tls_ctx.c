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

/* Loads a certificate chain and its key into ctx; cert_what and key_what
 * name them in messages (the flags they came from). */
static int hd__tls_use_pair(SSL_CTX *ctx, const char *cert_what, const char *cert_file,
                            const char *key_what, const char *key_file, char *errmsg,
                            size_t errmsg_len)
{
    int rv = hd__tls_check_readable(cert_what, cert_file, errmsg, errmsg_len);
    if (rv == 0) {
        rv = hd__tls_check_readable(key_what, key_file, errmsg, errmsg_len);
    }
    if (rv != 0) {
        return rv;
    }
    char why[200];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        hd__tls_reason(why, sizeof why, "unreadable");
        snprintf(errmsg, errmsg_len, "%s %s: no PEM certificate in it (%s)", cert_what,
                 cert_file, why);
        return HD_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        hd__tls_reason(why, sizeof why, "unreadable");
        snprintf(errmsg, errmsg_len, "%s %s: not a private key %s %s can use (%s)", key_what,
                 key_file, cert_what, cert_file, why);
        return HD_EINVAL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        hd__tls_reason(why, sizeof why, "mismatch");
        snprintf(errmsg, errmsg_len, "%s %s does not match the certificate of %s %s", key_what,
                 key_file, cert_what, cert_file);
        return HD_EINVAL;
    }
    return 0;
}

int hd_tls_ctx_server(struct hd_tls_ctx **out, const char *cert_file, const char *key_file,
                      char *errmsg, size_t errmsg_len)
{
    SSL_CTX *ctx = hd__tls_ctx_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(errmsg, errmsg_len, "TLS: out of memory");
        return HD_ENOMEM;
    }
    int rv = hd__tls_use_pair(ctx, "--tls-cert", cert_file, "--tls-key", key_file, errmsg,
                              errmsg_len);
    if (rv != 0) {
        SSL_CTX_free(ctx);
        return rv;
    }
    *out = (struct hd_tls_ctx *)ctx;
    return 0;
}

/* Checks that the context's own certificate chains to its trust store
 * (dates aside: an expired certificate is logged by the caller, and the
 * other side refuses it, which is what an operator needs to see). */
static int hd__tls_check_own_chain(SSL_CTX *ctx, const char *cert_file, const char *ca_file,
                                   char *errmsg, size_t errmsg_len)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    if (sctx == NULL || X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), cert, chain) != 1) {
        X509_STORE_CTX_free(sctx);
        ERR_clear_error();
        snprintf(errmsg, errmsg_len, "TLS: out of memory");
        return HD_ENOMEM;
    }
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(sctx), X509_V_FLAG_NO_CHECK_TIME);
    int ok = X509_verify_cert(sctx);
    int err = X509_STORE_CTX_get_error(sctx);
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    if (ok != 1) {
        snprintf(errmsg, errmsg_len, "--peer-tls-cert %s is not vouched for by --peer-tls-ca %s "
                 "(%s): the other nodes would refuse it", cert_file, ca_file,
                 X509_verify_cert_error_string(err));
        return HD_EINVAL;
    }
    return 0;
}

int hd_tls_ctx_mutual(struct hd_tls_ctx **out, const char *cert_file, const char *key_file,
                      const char *ca_file, char *errmsg, size_t errmsg_len)
{
    int rv = hd__tls_check_readable("--peer-tls-ca", ca_file, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    SSL_CTX *ctx = hd__tls_ctx_new(TLS_method());
    if (ctx == NULL) {
        snprintf(errmsg, errmsg_len, "TLS: out of memory");
        return HD_ENOMEM;
    }
    /* Both ends are herald 1.3 builds: nothing older is needed. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* Needed for a server that verifies clients and issues tickets. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"herald-peer", 11);
    rv = hd__tls_use_pair(ctx, "--peer-tls-cert", cert_file, "--peer-tls-key", key_file, errmsg,
                          errmsg_len);
    if (rv == 0 && SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
        char why[200];
        hd__tls_reason(why, sizeof why, "unreadable");
        snprintf(errmsg, errmsg_len, "--peer-tls-ca %s: no PEM certificate in it (%s)", ca_file,
                 why);
        rv = HD_EINVAL;
    }
    if (rv == 0) {
        rv = hd__tls_check_own_chain(ctx, cert_file, ca_file, errmsg, errmsg_len);
    }
    if (rv != 0) {
        SSL_CTX_free(ctx);
        return rv;
    }
    *out = (struct hd_tls_ctx *)ctx;
    return 0;
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
        BIO_puts(b, " (EXPIRED: the other end will refuse it)");
    }
    char *text = NULL;
    long len = BIO_get_mem_data(b, &text);
    snprintf(out, out_len, "%.*s", (int)len, text);
    BIO_free(b);
    ERR_clear_error();
}

struct hd_tls_ctx *hd_tls_ctx_ref(struct hd_tls_ctx *ctx)
{
    SSL_CTX_up_ref((SSL_CTX *)ctx);
    return ctx;
}

void hd_tls_ctx_free(struct hd_tls_ctx *ctx)
{
    SSL_CTX_free((SSL_CTX *)ctx);
}
