/* SPDX-License-Identifier: Apache-2.0 */
/* --tls-cert and --tls-key: loading the pair at start and on SIGHUP. */
#ifndef API_TLS_H
#define API_TLS_H

#include <stddef.h>

struct api_http_server;
struct api_options;

struct hd_tls_ctx;

/* Loads --tls-cert and --tls-key (both or neither) into *ctx (NULL when
 * neither is given), for api_http_server_set_tls(). HD_EINVAL with errmsg
 * for one without the other or a pair that cannot serve (missing,
 * unreadable, not PEM, a key that does not match): the node must not
 * start. Called before anything else is opened. */
int api_tls_open(const struct api_options *o, struct hd_tls_ctx **ctx, char *errmsg,
                 size_t errmsg_len);

/* SIGHUP: loads the pair again. New connections get the new pair and open
 * ones keep theirs; a pair that cannot serve is logged and the old one
 * stays. Nothing without --tls-cert. */
void api_tls_reload(struct api_http_server *http, const struct api_options *o);

#endif
