/* SPDX-License-Identifier: Apache-2.0 */
/* The public TLS session of herald.h (herald_tls_*): common/hd_tls.c's
 * client side, for tools with an event loop of their own. */
#include <sys/uio.h>

#include "client_internal.h"
#include "hd_error.h"
#include "hd_tls.h"
#include "herald/herald.h"

int herald_tls_config_new(struct herald_tls_config **out, const char *ca_file, char *errmsg,
                          size_t errmsg_len)
{
    struct hd_tls_ctx *ctx = NULL;
    int rv = hd_tls_ctx_client(&ctx, ca_file, errmsg, errmsg_len);
    *out = (struct herald_tls_config *)ctx;
    return rv;
}

void herald_tls_config_free(struct herald_tls_config *c)
{
    hd_tls_ctx_free((struct hd_tls_ctx *)c);
}

int herald_tls_new(struct herald_tls **out, struct herald_tls_config *c, const char *host,
                   const struct herald_tls_io *io)
{
    struct hd_tls_io hio = {.out = io->out, .in = io->in, .arg = io->arg};
    struct hd_tls *t = NULL;
    int rv = hd_tls_client_new(&t, (struct hd_tls_ctx *)c, host, &hio);
    *out = (struct herald_tls *)t;
    return rv;
}

int herald_tls_feed(struct herald_tls *t, const void *data, size_t len)
{
    return hd_tls_feed((struct hd_tls *)t, data, len);
}

int herald_tls_write(struct herald_tls *t, const void *data, size_t len)
{
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return hd_tls_writev((struct hd_tls *)t, &iov, 1);
}

bool herald_tls_established(const struct herald_tls *t)
{
    return hd_tls_established((const struct hd_tls *)t);
}

const char *herald_tls_why(const struct herald_tls *t)
{
    return t != NULL ? hd_tls_why((const struct hd_tls *)t) : "out of memory";
}

void herald_tls_free(struct herald_tls *t)
{
    hd_tls_free((struct hd_tls *)t);
}
