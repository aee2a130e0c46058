/* SPDX-License-Identifier: Apache-2.0 */
/* Parsing --bootstrap member lists and deriving a cluster's id from them. */
#ifndef API_MEMBERS_H
#define API_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "node.h"

#define API_MEMBERS_MAX 64

struct api_members {
    struct cons_member list[API_MEMBERS_MAX];
    char addresses[API_MEMBERS_MAX][64];
    unsigned n;
};

/* Parses "1=host:port,2=host:port,..." (ids 1.., distinct, addresses
 * host:port). HD_EINVAL with a message on anything else. */
int api_members_parse(const char *spec, struct api_members *out, char *errmsg,
                      size_t errmsg_len);

/* The address of member `id`, or NULL. */
const char *api_members_address(const struct api_members *m, uint64_t id);

/* The cluster id every member derives alike: 28 hex digits of a hash of
 * the sorted list (and salt, if not NULL: a restored cluster's backup id,
 * so that it never shares an id with a cluster of the same members that did
 * not restore it), then the shard count in 4 (out holds 33 bytes). */
void api_members_cluster_id(const struct api_members *m, unsigned shards, const char *salt,
                            char out[33]);

/* The shard count a cluster id carries; HD_EINVAL if it is not an id. */
int api_cluster_id_shards(const char *id, unsigned *shards);

/* "host:port" with the port plus one: the default peer address. */
int api_peer_address_default(const char *listen, char *out, size_t out_len);

#endif
