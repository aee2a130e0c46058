/* SPDX-License-Identifier: Apache-2.0 */
/* The shard map (GET /v1/shards) and leader-aware appends over several
 * nodes: each append goes to the node that leads its channel's shard, so no
 * follower has to forward it. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "hd_error.h"
#include "hd_ids.h"

int herald_shard_of(unsigned shards, const char *channel, unsigned *shard)
{
    size_t len = channel != NULL ? strlen(channel) : 0;
    if (shards == 0 || shards > 65536 || !hd_channel_valid(channel, len)) {
        return HD_EINVAL;
    }
    *shard = hd_shard_of(shards, channel, len);
    return 0;
}

void herald_shard_map_free(struct herald_shard_map *map)
{
    free(map->leaders);
    memset(map, 0, sizeof *map);
}

int herald__shards_parse(struct herald_client *c, const char *body, size_t len,
                         struct herald_shard_map *map)
{
    json_error_t err;
    json_t *root = json_loadb(body, len, 0, &err);
    json_t *node = json_object_get(root, "node_id");
    json_t *shards = json_object_get(root, "shards");
    json_t *leaders = json_object_get(root, "leaders");
    int rv = HD_ECORRUPT;
    if (!json_is_integer(node) || json_integer_value(node) <= 0 || !json_is_integer(shards) ||
        json_integer_value(shards) <= 0 || json_integer_value(shards) > 65536 ||
        !json_is_array(leaders) ||
        json_array_size(leaders) != (size_t)json_integer_value(shards)) {
        rv = herald__fail(c, HD_ECORRUPT, "/v1/shards: malformed answer");
        goto out;
    }
    map->leaders = calloc((size_t)json_integer_value(shards), sizeof *map->leaders);
    if (map->leaders == NULL) {
        rv = herald__fail(c, HD_ENOMEM, "/v1/shards: out of memory");
        goto out;
    }
    map->node_id = (uint64_t)json_integer_value(node);
    map->shards = (unsigned)json_integer_value(shards);
    for (unsigned i = 0; i < map->shards; i++) {
        json_t *l = json_array_get(leaders, i);
        if (json_is_integer(l) && json_integer_value(l) > 0) {
            map->leaders[i] = (uint64_t)json_integer_value(l);
        } else if (!json_is_null(l)) {
            herald_shard_map_free(map);
            rv = herald__fail(c, HD_ECORRUPT, "/v1/shards: malformed leader of shard %u", i);
            goto out;
        }
    }
    rv = 0;
out:
    json_decref(root);
    return rv;
}

int herald_shards(struct herald_client *c, struct herald_shard_map *map)
{
    memset(map, 0, sizeof *map);
    struct herald__resp r;
    bool sent = false;
    herald__resp_init(&r, NULL, NULL);
    int rv = herald__exchange(c, "GET", "/v1/shards", "Accept: application/json\r\n", NULL, 0,
                              herald__now_ms() + c->request_timeout_ms, &r, &sent);
    if (rv == 0 && r.status != 200) {
        rv = herald__http_error(c, &r, "/v1/shards");
    } else if (rv == 0) {
        rv = herald__shards_parse(c, r.body.data ? r.body.data : "", r.body.len, map);
    }
    herald__resp_close(&r);
    return rv;
}

/* ------------------------------------------------------------ router --- */

int herald_router_init(struct herald_router *r, const char *const *urls, int n)
{
    memset(r, 0, sizeof *r);
    r->map_ttl_ms = 1000;
    if (n <= 0 || n > HERALD_ROUTER_MAX) {
        snprintf(r->errmsg, sizeof r->errmsg, "a router takes 1-%d node URLs", HERALD_ROUTER_MAX);
        return HD_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        int rv = herald_client_init(&r->nodes[i], urls[i]);
        if (rv != 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "%s", herald_errmsg(&r->nodes[i]));
            herald_router_close(r);
            return rv;
        }
        /* A node that cannot be reached is given up quickly: the next one
         * takes the append (a follower forwards it) and the map is re-read. */
        r->nodes[i].retry_deadline_ms = 2000;
        r->n++;
    }
    return 0;
}

void herald_router_close(struct herald_router *r)
{
    for (int i = 0; i < r->n; i++) {
        herald_client_close(&r->nodes[i]);
    }
    herald_shard_map_free(&r->map);
    r->n = 0;
}

const char *herald_router_errmsg(const struct herald_router *r)
{
    return r->errmsg;
}

/* Asks every node for its id, and keeps the first map that comes back. A
 * node that does not answer keeps its old id (0 if never known). */
static void router_refresh(struct herald_router *r)
{
    bool have_map = false;
    for (int i = 0; i < r->n; i++) {
        struct herald_shard_map m;
        if (herald_shards(&r->nodes[i], &m) != 0) {
            continue;
        }
        r->node_ids[i] = m.node_id;
        if (!have_map) {
            herald_shard_map_free(&r->map);
            r->map = m;
            have_map = true;
        } else {
            herald_shard_map_free(&m);
        }
    }
    r->map_ms = herald__now_ms();
}

/* The node that leads channel's shard, or the next in turn when unknown. */
static int router_pick(struct herald_router *r, const char *channel)
{
    unsigned shard;
    if (r->map.shards > 0 && herald_shard_of(r->map.shards, channel, &shard) == 0 &&
        r->map.leaders[shard] != 0) {
        for (int i = 0; i < r->n; i++) {
            if (r->node_ids[i] == r->map.leaders[shard]) {
                return i;
            }
        }
    }
    r->next = (r->next + 1) % r->n;
    return r->next;
}

int herald_router_append(struct herald_router *r, const char *channel, const void *payload,
                         size_t len, const char *nonce, struct herald_append_result *result)
{
    memset(result, 0, sizeof *result);
    r->last = -1;
    if (channel == NULL || !hd_channel_valid(channel, strlen(channel))) {
        snprintf(r->errmsg, sizeof r->errmsg, "bad channel id (1-%d bytes of [A-Za-z0-9._:-])",
                 HERALD_CHANNEL_MAX);
        return HD_EINVAL;
    }
    if (herald__now_ms() - r->map_ms >= r->map_ttl_ms) {
        router_refresh(r);
    }
    /* One nonce for every node tried: an append that did land on one is
     * answered with its original seq by any other. */
    char own[HERALD_NONCE_MAX + 1];
    if (nonce == NULL) {
        int rv = herald_nonce_generate(own, sizeof own);
        if (rv != 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "generate nonce: %s", hd_strerror(rv));
            return rv;
        }
        nonce = own;
    }
    int first = router_pick(r, channel), rv = HD_EUNAVAIL;
    for (int k = 0; k < r->n; k++) {
        r->last = (first + k) % r->n;
        struct herald_client *c = &r->nodes[r->last];
        c->token = r->token;
        c->ca_file = r->ca_file;
        rv = herald_append(c, channel, payload, len, nonce, result);
        snprintf(r->errmsg, sizeof r->errmsg, "%s", rv != 0 ? herald_errmsg(c) : "");
        if (rv != HD_EUNAVAIL) {
            return rv; /* answered, or it may have landed: retry with the nonce */
        }
        r->map_ms = 0; /* that node is down: learn the leaders again next time */
    }
    return rv;
}
