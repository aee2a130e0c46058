/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/shards: the shard map a client needs to send each append straight
 * to its shard's leader, skipping the follower's forwarding hop. A client
 * that knows every node's URL asks each for its node_id once, and any of
 * them for the leaders; a stale map costs one forward, never a wrong answer. */
#include "api.h"
#include "node.h"

void api_shards(struct api_server *s, struct api_http_conn *c)
{
    unsigned n = cons_node_n_shards(s->node);
    json_t *leaders = json_array();
    for (unsigned i = 0; i < n; i++) {
        struct cons_shard_status ss;
        cons_node_shard_status(s->node, i, &ss);
        json_array_append_new(leaders, ss.leader_id != 0 ? json_integer((json_int_t)ss.leader_id)
                                                         : json_null());
    }
    json_t *body = json_pack("{s:I, s:i, s:s, s:o}", "node_id", (json_int_t)s->node_id,
                             "shards", (int)n, "shard_of", "xxh3_64(channel) % shards",
                             "leaders", leaders);
    api_respond_json(s, c, 200, body, NULL);
}
