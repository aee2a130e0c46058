/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/cluster/nodes and DELETE /v1/cluster/nodes/{id}: membership changes. */
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

static void api__member_done(void *arg, int status, const char *message)
{
    struct api_member_req *m = arg;
    if (status == 0) {
        json_t *body = json_pack("{s:I, s:s}", "id", (json_int_t)m->id, "result",
                                 m->op == CONS_MEMBER_ADD ? "added" : "removed");
        api_respond_json(m->server, m->conn, 200, body, NULL);
    } else {
        api_respond_error(m->server, m->conn, 503, "membership_incomplete", message);
    }
    hd_free(m);
}

static void api__member_start(struct api_server *s, struct api_http_conn *c, int op,
                              uint64_t id, const char *address)
{
    struct api_member_req *m = hd_calloc(1, sizeof *m);
    if (m == NULL) {
        api_respond_error(s, c, 500, "internal", "out of memory");
        return;
    }
    *m = (struct api_member_req){s, c, id, op};
    int rv = cons_node_change_member(s->node, op, id, address, api__member_done, m);
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
    if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_string(address) ||
        strchr(json_string_value(address), ':') == NULL) {
        json_decref(obj);
        api_respond_error(s, c, 400, "bad_request",
                          "the body must be {\"id\": N, \"address\": \"HOST:PORT\"} (peer address)");
        return;
    }
    api__member_start(s, c, CONS_MEMBER_ADD, (uint64_t)json_integer_value(id),
                      json_string_value(address));
    json_decref(obj);
}

void api_cluster_remove(struct api_server *s, struct api_http_conn *c, const char *id_text,
                        size_t len)
{
    uint64_t id;
    if (hd_u64_parse(id_text, len, &id) != 0 || id == 0) {
        api_respond_error(s, c, 400, "bad_request", "the node id must be a positive integer");
        return;
    }
    api__member_start(s, c, CONS_MEMBER_REMOVE, id, NULL);
}
