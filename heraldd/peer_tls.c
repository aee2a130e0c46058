/* SPDX-License-Identifier: Apache-2.0 */
/* Mutual TLS between nodes: the flags, the start, SIGHUP, and the rule for
 * a peer port off loopback (peer_tls.h). The TLS is common/hd_tls.c, its
 * use on the links consensus/peer/transport_tls.c. */
#include "peer_tls.h"

#include <stdio.h>

#include "exposure.h"
#include "hd_error.h"
#include "hd_tls.h"
#include "hd_util.h"
#include "node.h"
#include "options.h"

static int api__peer_tls_load(const struct api_options *o, struct hd_tls_ctx **ctx,
                              char *errmsg, size_t errmsg_len)
{
    int rv = hd_tls_ctx_mutual(ctx, o->peer_tls_cert, o->peer_tls_key, o->peer_tls_ca, errmsg,
                               errmsg_len);
    if (rv == 0) {
        char about[512];
        hd_tls_ctx_describe(*ctx, about, sizeof about);
        HD_LOG_INFO("peer tls: presenting %s from %s; peers must present a certificate of "
                    "the CA in %s", about, o->peer_tls_cert, o->peer_tls_ca);
    }
    return rv;
}

int api_peer_tls_open(const struct api_options *o, struct hd_tls_ctx **ctx, char *errmsg,
                      size_t errmsg_len)
{
    *ctx = NULL;
    int given = (o->peer_tls_cert != NULL) + (o->peer_tls_key != NULL) +
                (o->peer_tls_ca != NULL);
    if (given == 0) {
        return 0;
    }
    if (given != 3) {
        snprintf(errmsg, errmsg_len, "--peer-tls-cert, --peer-tls-key and --peer-tls-ca go "
                 "together: %s%s%smissing",
                 o->peer_tls_cert == NULL ? "--peer-tls-cert " : "",
                 o->peer_tls_key == NULL ? "--peer-tls-key " : "",
                 o->peer_tls_ca == NULL ? "--peer-tls-ca " : "");
        return HD_EINVAL;
    }
    return api__peer_tls_load(o, ctx, errmsg, errmsg_len);
}

int api_peer_exposure_check(const struct api_options *o, char *errmsg, size_t errmsg_len)
{
    if (o->peer_tls_cert != NULL || o->peer_listen == NULL ||
        api_listen_is_loopback(o->peer_listen)) {
        return 0;
    }
    if (o->auth_file != NULL && !o->insecure) {
        snprintf(errmsg, errmsg_len,
                 "--peer-listen %s is not a loopback address and there is no peer TLS: "
                 "anyone who reaches it and knows the cluster id could forward appends past "
                 "--auth-file's tokens and read the replication stream. Give "
                 "--peer-tls-cert, --peer-tls-key and --peer-tls-ca, or --insecure to run "
                 "it in the clear anyway (only on a network you trust)", o->peer_listen);
        return HD_EINVAL;
    }
    HD_LOG_WARN("PEER PORT IN THE CLEAR: --peer-listen %s is not loopback and has no "
                "--peer-tls-*: replication is unencrypted and any process that reaches it "
                "and knows the cluster id is taken for a node. Keep it on a private network "
                "or give --peer-tls-cert/--peer-tls-key/--peer-tls-ca", o->peer_listen);
    return 0;
}

void api_peer_tls_reload(struct cons_node *node, const struct api_options *o,
                         struct hd_tls_ctx **ctx)
{
    if (*ctx == NULL) {
        return;
    }
    struct hd_tls_ctx *fresh = NULL;
    char errmsg[512] = "";
    if (api__peer_tls_load(o, &fresh, errmsg, sizeof errmsg) != 0) {
        HD_LOG_ERROR("peer tls: reload refused, the old certificate and CA stay: %s", errmsg);
        return;
    }
    cons_node_set_peer_tls(node, fresh);
    hd_tls_ctx_free(*ctx);
    *ctx = fresh;
    HD_LOG_INFO("peer tls: reloaded; new peer connections use the new certificate and CA, "
                "open ones keep theirs");
}
