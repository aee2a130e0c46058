/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench over https: one connection's TLS session (libherald's
 * herald_tls_*) between its libuv stream and the request/answer code. */
#ifndef HERALD_BENCH_TLS_H
#define HERALD_BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct herald_tls_config;
struct bench_tls;

/* Starts TLS on a connected stream to host; the ClientHello is written at
 * once. plain(arg, ...) receives decrypted answers (non-zero stops the
 * feed). 0, or -1 with bench_tls_why() (*out is set either way: free it
 * with bench_tls_free once the stream is closed). */
int bench_tls_open(struct bench_tls **out, struct herald_tls_config *c, const char *host,
                   uv_stream_t *stream, int (*plain)(void *arg, const void *data, size_t len),
                   void *arg);

/* Bytes read: advances the handshake (its answers are written), decrypts.
 * 0, or -1 (failed: bench_tls_why; or plain's non-zero return). */
int bench_tls_feed(struct bench_tls *t, const void *data, size_t len);

/* Encrypts data and writes it; cb(req, status) runs once it left, as after
 * uv_write(req, ...) (req->data is left as the caller set it). 0 or -1. */
int bench_tls_write(struct bench_tls *t, const void *data, size_t len, uv_write_t *req,
                    uv_write_cb cb);

bool bench_tls_established(const struct bench_tls *t);
const char *bench_tls_why(const struct bench_tls *t);

/* Only after the stream closed (pending writes were cancelled). */
void bench_tls_free(struct bench_tls *t);

#endif
