/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/cluster/nodes and DELETE /v1/cluster/nodes/{id}: membership changes. */
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "node.h"

struct api_member_req {
    struct api_server *server;
    struct api_http_conn *conn;
    uint64_t id;
    int op;
};

/* Where the change stands in every shard: made, or not (shards are changed
 * in order, so the first `done` made it). */
static json_t *api__member_shards(unsigned n_shards, unsigned done)
{
    json_t *shards = json_array();
    for (unsigned i = 0; i < n_shards; i++) {
        json_array_append_new(shards, json_pack("{s:i, s:s}", "shard", (int)i, "result",
                                                i < done ? "done" : "unfinished"));
    }
    return shards;
}

static void api__member_done(void *arg, int status, const char *message, unsigned done)
{
    struct api_member_req *m = arg;
    struct api_server *s = m->server;
    json_t *shards = api__member_shards(cons_node_n_shards(s->node), done);
    if (status == 0) {
        json_t *body = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)m->id, "result",
                                 m->op == CONS_MEMBER_ADD ? "added" : "removed", "shards",
                                 shards);
        api_respond_json(s, m->conn, 200, body, NULL);
    } else {
        /* The v1 error body, with where every shard stands beside it. */
        int http = status == HD_EEXIST ? 409 : 503;
        json_t *body = json_pack("{s:{s:s, s:s}, s:o}", "error", "code",
                                 status == HD_EEXIST ? "address_in_use"
                                                     : "membership_incomplete",
                                 "message", message, "shards", shards);
        api_respond_json(s, m->conn, http, body, http == 503 ? "Retry-After: 1\r\n" : NULL);
    }
    hd_free(m);
}

/* ?timeout_s=N (or the body's "timeout_s"): the caller's deadline for the
 * whole change, 1 s to 1 day; 0 when not given (the node's default). */
static int api__member_timeout(json_int_t v, uint64_t *out_ms)
{
    if (v < 1 || v > 86400) return -1;
    *out_ms = (uint64_t)v * 1000u;
    return 0;
}

static void api__member_start(struct api_server *s, struct api_http_conn *c, int op,
                              uint64_t id, const char *address, uint64_t timeout_ms)
{
    struct api_member_req *m = hd_calloc(1, sizeof *m);
    if (m == NULL) {
        api_respond_error(s, c, 500, "internal", "out of memory");
        return;
    }
    *m = (struct api_member_req){s, c, id, op};
    int rv = cons_node_change_member(s->node, op, id, address, timeout_ms, api__member_done, m);
    if (rv == 0) {
        return;
    }
    hd_free(m);
    if (rv == HD_EBUSY) {
        api_respond_error(s, c, 409, "busy", "another membership change is running on this node");
    } else if (rv == HD_ERANGE) {
        api_respond_error(s, c, 400, "bad_node_id",
                          "a new node's id must be higher than every member's id");
    } else {
        api_respond_error(s, c, 400, "bad_request", "bad node id or address");
    }
}

void api_cluster_add(struct api_server *s, struct api_http_conn *c,
                     const struct api_http_request *req)
{
    json_error_t jerr;
    json_t *obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *id = json_object_get(obj, "id");
    json_t *address = json_object_get(obj, "address");
    json_t *timeout = json_object_get(obj, "timeout_s");
    uint64_t timeout_ms = 0;
    if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_string(address) ||
        strchr(json_string_value(address), ':') == NULL ||
        (timeout != NULL && (!json_is_integer(timeout) ||
                             api__member_timeout(json_integer_value(timeout), &timeout_ms) != 0))) {
        json_decref(obj);
        api_respond_error(s, c, 400, "bad_request",
                          "the body must be {\"id\": N, \"address\": \"HOST:PORT\"} (peer "
                          "address), with an optional \"timeout_s\" of 1-86400");
        return;
    }
    api__member_start(s, c, CONS_MEMBER_ADD, (uint64_t)json_integer_value(id),
                      json_string_value(address), timeout_ms);
    json_decref(obj);
}

void api_cluster_remove(struct api_server *s, struct api_http_conn *c,
                        const struct api_http_request *req, const char *id_text, size_t len)
{
    uint64_t id;
    if (hd_u64_parse(id_text, len, &id) != 0 || id == 0) {
        api_respond_error(s, c, 400, "bad_request", "the node id must be a positive integer");
        return;
    }
    uint64_t timeout_ms = 0;
    char value[24];
    int rv = api_http_query_param(req, "timeout_s", value, sizeof value);
    uint64_t v = 0;
    if (rv != HD_ENOTFOUND &&
        (rv != 0 || hd_u64_parse(value, strlen(value), &v) != 0 || v > INT64_MAX ||
         api__member_timeout((json_int_t)v, &timeout_ms) != 0)) {
        api_respond_error(s, c, 400, "bad_query", "timeout_s must be 1-86400 (seconds)");
        return;
    }
    api__member_start(s, c, CONS_MEMBER_REMOVE, id, NULL, timeout_ms);
}
