/* SPDX-License-Identifier: Apache-2.0 */
/* --peer-tls-cert, --peer-tls-key and --peer-tls-ca: mutual TLS between
 * nodes, loaded at start and again on SIGHUP, and the rule for a peer port
 * reachable beyond this host without it. */
#ifndef HERALDD_PEER_TLS_H
#define HERALDD_PEER_TLS_H

#include <stddef.h>

struct api_options;
struct cons_node;
struct hd_tls_ctx;

/* Loads the three files (all or none) into *ctx (NULL when none is
 * given). HD_EINVAL with errmsg for a partial set, or files that cannot
 * serve (unreadable, not PEM, a key that does not match, a certificate
 * the CA does not vouch for): the node must not start. */
int api_peer_tls_open(const struct api_options *o, struct hd_tls_ctx **ctx, char *errmsg,
                      size_t errmsg_len);

/* A --peer-listen address beyond loopback without peer TLS: refused
 * (HD_EINVAL, errmsg says what to do) when --auth-file is on, unless
 * --insecure; otherwise allowed with a loud warning (clusters that
 * predate peer TLS keep starting). Call once --peer-listen is known. */
int api_peer_exposure_check(const struct api_options *o, char *errmsg, size_t errmsg_len);

/* SIGHUP: loads the files again; new peer connections use them, open
 * ones keep theirs. A set that cannot serve is logged and the old one
 * stays. *ctx is the daemon's reference, replaced on success. */
void api_peer_tls_reload(struct cons_node *node, const struct api_options *o,
                         struct hd_tls_ctx **ctx);

#endif
