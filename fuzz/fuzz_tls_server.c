/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the server side of a TLS session (common/hd_tls.c) fed a
 * client's first flight, whole and then again in two pieces, with the
 * client port's context and with the peer port's mutual one (which also
 * demands a client certificate). Whatever
 * arrives, the session answers (an alert at most) and fails cleanly with a
 * reason; it never crashes or hands out plaintext before a handshake. The
 * certificate is a throwaway made at start (no key is kept in the tree). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hd_tls_ctx *fuzz__ctx;
static struct hd_tls_ctx *fuzz__mutual; /* the certificate is its own CA */

/* A self-signed P-256 certificate and its key, written to temporary files
 * for hd_tls_ctx_server (the loader heraldd uses). */
static void fuzz__make_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    HD_ASSERT(key != NULL && cert != NULL);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600L * 24 * 365);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               (const unsigned char *)"herald-fuzz", -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    HD_ASSERT(X509_sign(cert, key, EVP_sha256()) > 0);
    char cert_path[] = "/tmp/herald-fuzz-cert-XXXXXX";
    char key_path[] = "/tmp/herald-fuzz-key-XXXXXX";
    int cfd = mkstemp(cert_path);
    int kfd = mkstemp(key_path);
    HD_ASSERT(cfd >= 0 && kfd >= 0);
    FILE *cf = fdopen(cfd, "w");
    FILE *kf = fdopen(kfd, "w");
    HD_ASSERT(PEM_write_X509(cf, cert) == 1);
    HD_ASSERT(PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(cf);
    fclose(kf);
    char errmsg[512];
    HD_ASSERT(hd_tls_ctx_server(&fuzz__ctx, cert_path, key_path, errmsg, sizeof errmsg) == 0);
    if (hd_tls_ctx_mutual(&fuzz__mutual, cert_path, key_path, cert_path, errmsg,
                          sizeof errmsg) != 0) {
        fprintf(stderr, "fuzz_tls_server: mutual context: %s\n", errmsg);
        abort();
    }
    unlink(cert_path);
    unlink(key_path);
    X509_free(cert);
    EVP_PKEY_free(key);
}

struct fuzz__sink {
    size_t out_bytes;
    size_t in_bytes;
};

static int fuzz__out(void *arg, const void *p, size_t len)
{
    (void)p;
    ((struct fuzz__sink *)arg)->out_bytes += len;
    return 0;
}

static int fuzz__in(void *arg, const void *p, size_t len)
{
    (void)p;
    ((struct fuzz__sink *)arg)->in_bytes += len;
    return 0;
}

static void fuzz__run(struct hd_tls_ctx *ctx, const uint8_t *data, size_t size, size_t split)
{
    struct fuzz__sink sink = {0};
    struct hd_tls_io io = {.out = fuzz__out, .in = fuzz__in, .arg = &sink};
    struct hd_tls *t = NULL;
    HD_ASSERT(hd_tls_server_new(&t, ctx, &io) == 0);
    int rv = hd_tls_feed(t, data, split);
    if (rv == 0) {
        rv = hd_tls_feed(t, data + split, size - split);
    }
    HD_ASSERT(rv == 0 || rv == HD_ECORRUPT || rv == HD_ESHUTDOWN || rv == HD_ENOMEM);
    if (rv == HD_ECORRUPT) {
        HD_ASSERT(hd_tls_why(t)[0] != '\0'); /* a refusal says why */
        HD_ASSERT(!hd_tls_established(t));
        HD_ASSERT(hd_tls_feed(t, data, size) == HD_ECORRUPT); /* and stays refused */
    }
    /* A client's first flight cannot finish a handshake or carry data. */
    HD_ASSERT(!hd_tls_established(t) && sink.in_bytes == 0);
    hd_tls_close(t);
    hd_tls_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz__ctx == NULL) {
        fuzz__make_ctx();
    }
    fuzz__run(fuzz__ctx, data, size, size);
    fuzz__run(fuzz__ctx, data, size, size / 2);
    fuzz__run(fuzz__mutual, data, size, size);
    fuzz__run(fuzz__mutual, data, size, size / 2);
    return 0;
}
