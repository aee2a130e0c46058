/* SPDX-License-Identifier: Apache-2.0 */
/* TLS (OpenSSL 3) over memory buffers, for code that does its own socket I/O. */
#ifndef HD_TLS_H
#define HD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/*
 * A session never touches a socket: the caller feeds it the bytes it read
 * (hd_tls_feed) and sends the bytes it produces (the `out` callback). So
 * the same session works under libuv (heraldd's HTTP and peer ports), a blocking client and a non-blocking one alike, and a fuzzer can
 * drive it with plain buffers. It knows nothing of HTTP.
 *
 * The rules every herald TLS endpoint keeps are here and nowhere else:
 * TLS 1.2 or 1.3 only, no renegotiation, no compression; servers may
 * resume sessions with tickets; clients verify the server's certificate
 * chain (a CA file, or the system's store) and its host name or address.
 *
 * Memory: ciphertext is fed and drained one record at a time, and the
 * library's own record buffers are released while idle
 * (SSL_MODE_RELEASE_BUFFERS), so an idle session holds little more than
 * its OpenSSL state.
 */

/* A configuration (an SSL_CTX): a server's certificate and key, a
 * client's trust store, or both for a node's peer links. Sessions take a reference of their own, so the
 * context may be freed (replaced, e.g. on a reload) while they run. */
struct hd_tls_ctx;

/* Loads a server context from PEM files: cert_file holds the certificate
 * (then any intermediates), key_file its private key. Refuses a missing or
 * unreadable file, a file with no certificate or key, and a key that does
 * not match the certificate, each with a message naming the file (HD_EINVAL
 * or HD_ENOMEM, errmsg set). */
int hd_tls_ctx_server(struct hd_tls_ctx **out, const char *cert_file, const char *key_file,
                      char *errmsg, size_t errmsg_len);

/* A mutual context, for links between nodes: it presents cert_file (with
 * key_file) in either role, and demands from the other end a certificate
 * that chains to ca_file (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
 * in both roles), TLS 1.3 only. No name is checked: the CA is the cluster's
 * own, and a certificate it signed is a member. Refuses what
 * hd_tls_ctx_server refuses, a CA file without a certificate, and a
 * certificate the CA does not vouch for (dates aside), naming the
 * --peer-tls-* flags. HD_EINVAL or HD_ENOMEM, errmsg set. */
int hd_tls_ctx_mutual(struct hd_tls_ctx **out, const char *cert_file, const char *key_file,
                      const char *ca_file, char *errmsg, size_t errmsg_len);

/* A client context that trusts the certificates of ca_file (PEM), or the
 * system's store when ca_file is NULL. HD_EINVAL with errmsg for a file
 * that cannot be read or holds no certificate. */
int hd_tls_ctx_client(struct hd_tls_ctx **out, const char *ca_file, char *errmsg,
                      size_t errmsg_len);

/* One line about the certificate a server context presents (subject and
 * validity), for logs. */
void hd_tls_ctx_describe(const struct hd_tls_ctx *ctx, char *out, size_t out_len);

/* Takes another reference (for a holder that outlives the caller's);
 * returns ctx. */
struct hd_tls_ctx *hd_tls_ctx_ref(struct hd_tls_ctx *ctx);

/* Drops the caller's reference (NULL is ignored). */
void hd_tls_ctx_free(struct hd_tls_ctx *ctx);

struct hd_tls;

/* Where a session's bytes go. out receives ciphertext to send, in order,
 * and returns 0 (it must take all of it; non-zero fails the call that
 * produced it). in receives plaintext as it is decrypted; a non-zero
 * return stops hd_tls_feed, which returns that value. */
struct hd_tls_io {
    int (*out)(void *arg, const void *data, size_t len);
    int (*in)(void *arg, const void *data, size_t len);
    void *arg;
};

/* A server side session. HD_ENOMEM. With a mutual context it also
 * verifies the client's certificate. */
int hd_tls_server_new(struct hd_tls **out, struct hd_tls_ctx *ctx, const struct hd_tls_io *io);

/* A client side session that will accept only a certificate for host (a
 * DNS name, sent as SNI too, or an IPv4/IPv6 address; NULL: any name, for
 * a mutual context whose CA is the identity); its first flight
 * (the ClientHello) goes to io->out at once. HD_ENOMEM, or HD_ECORRUPT if
 * the first flight cannot be made (hd_tls_why). */
int hd_tls_client_new(struct hd_tls **out, struct hd_tls_ctx *ctx, const char *host,
                      const struct hd_tls_io *io);

void hd_tls_free(struct hd_tls *t);

/* Bytes read from the peer. Advances the handshake (its answers go to
 * out), hands decrypted bytes to in. Returns 0 (all consumed; more may be
 * needed), HD_ESHUTDOWN once the peer closed the session (close_notify),
 * HD_ECORRUPT when the session failed (a bad record, a failed handshake, a
 * certificate refused: hd_tls_why says which; an alert was sent to out),
 * in's or out's non-zero return, or HD_ENOMEM. After a failure, every call
 * but hd_tls_why and hd_tls_free fails. */
int hd_tls_feed(struct hd_tls *t, const void *data, size_t len);

/* True once the handshake is complete (and, for a client, the certificate
 * verified). */
bool hd_tls_established(const struct hd_tls *t);

/* Encrypts the n buffers, in order, into records of up to 16 KiB, each
 * handed to out. Only after the handshake. 0, out's non-zero return,
 * HD_ECORRUPT (failed session) or HD_ENOMEM. */
int hd_tls_writev(struct hd_tls *t, const struct iovec *iov, size_t n);

/* Sends close_notify (once; nothing after a failure). 0 or out's return. */
int hd_tls_close(struct hd_tls *t);

/* Why the session failed, or "" (never NULL). */
const char *hd_tls_why(const struct hd_tls *t);

/* The negotiated protocol ("TLSv1.3"), for logs and tests. */
const char *hd_tls_version(const struct hd_tls *t);

#endif
