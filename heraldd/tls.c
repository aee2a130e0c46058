/* SPDX-License-Identifier: Apache-2.0 */
/* --tls-cert and --tls-key: the client port's certificate, loaded at start
 * and again on SIGHUP (the TLS itself is common/hd_tls.c, its use on the
 * port api/http/http_server.c). */
#include "tls.h"

#include <stdio.h>

#include "hd_error.h"
#include "hd_tls.h"
#include "hd_util.h"
#include "http_server.h"
#include "options.h"

static int api__tls_load(const struct api_options *o, struct hd_tls_ctx **ctx, char *errmsg,
                         size_t errmsg_len)
{
    int rv = hd_tls_ctx_server(ctx, o->tls_cert, o->tls_key, errmsg, errmsg_len);
    if (rv == 0) {
        char about[512];
        hd_tls_ctx_describe(*ctx, about, sizeof about);
        HD_LOG_INFO("tls: serving %s from %s", about, o->tls_cert);
    }
    return rv;
}

int api_tls_open(const struct api_options *o, struct hd_tls_ctx **ctx, char *errmsg,
                 size_t errmsg_len)
{
    *ctx = NULL;
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        snprintf(errmsg, errmsg_len, "--tls-cert and --tls-key go together: %s is missing",
                 o->tls_cert == NULL ? "--tls-cert" : "--tls-key");
        return HD_EINVAL;
    }
    if (o->tls_cert == NULL) {
        return 0;
    }
    return api__tls_load(o, ctx, errmsg, errmsg_len);
}

void api_tls_reload(struct api_http_server *http, const struct api_options *o)
{
    if (o->tls_cert == NULL) {
        return;
    }
    struct hd_tls_ctx *ctx = NULL;
    char errmsg[512] = "";
    if (api__tls_load(o, &ctx, errmsg, sizeof errmsg) != 0) {
        HD_LOG_ERROR("tls: reload refused, the old certificate stays: %s", errmsg);
        return;
    }
    api_http_server_set_tls(http, ctx);
    HD_LOG_INFO("tls: reloaded; new connections get the new certificate, open ones keep theirs");
}
