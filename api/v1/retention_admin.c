/* SPDX-License-Identifier: Apache-2.0 */
/* GET, PUT and DELETE /v1/retention: the cluster's retention policy, set through Raft. */
#include <string.h>

#include "api.h"
#include "command.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "node.h"

/*
 * PUT sets the cluster's policy, DELETE clears it (every node goes back to
 * its own --retention); both are one Raft command on shard 0
 * (log/command.h kind 4), proposed by its leader (a follower forwards it,
 * like a trim), and answer once it applied on this node, with the
 * effective policy then (the same object as GET and /v1/status). The rules
 * are checked by the one parser (common/hd_retention.h) before anything is
 * proposed, and what is proposed is their canonical text, so every node
 * parses exactly what this one did.
 */

struct api_policy_change {
    struct api_server *server;
    struct api_http_conn *conn;
};

static void api__policy_done(void *arg, int status)
{
    struct api_policy_change *pc = arg;
    if (status == HD_ENOTLEADER) {
        /* The leader it went to had lost leadership: nothing was proposed. */
        api_respond_cons_error(pc->server, pc->conn, status);
    } else if (status != 0) {
        api_respond_error(pc->server, pc->conn, 503, "outcome_unknown",
                          "leadership changed before the change was confirmed; it may"
                          " still apply: check GET /v1/retention");
    } else {
        api_respond_json(pc->server, pc->conn, 200, api_status_retention(pc->server), NULL);
    }
    hd_free(pc);
}

static void api__policy_propose(struct api_server *s, struct api_http_conn *c,
                                const struct log_command *lc)
{
    struct api_policy_change *pc = hd_calloc(1, sizeof *pc);
    if (pc == NULL) {
        api_respond_error(s, c, 503, "unavailable", "out of memory");
        return;
    }
    *pc = (struct api_policy_change){.server = s, .conn = c};
    int rv = cons_node_command(s->node, lc, api__policy_done, pc);
    if (rv != 0) {
        hd_free(pc);
        api_respond_cons_error(s, c, rv); /* HD_ENOTLEADER: no leader known, 503 */
    }
}

static void api__policy_set(struct api_server *s, struct api_http_conn *c,
                            const struct api_http_request *req)
{
    json_error_t jerr;
    json_t *obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *rules = json_object_get(obj, "rules");
    if (!json_is_object(obj) || json_object_size(obj) != 1 || !json_is_string(rules)) {
        json_decref(obj);
        api_respond_error(s, c, 400, "bad_json",
                          "the body must be {\"rules\": \"PATTERN=LIMIT[,LIMIT...][;...]\"}");
        return;
    }
    struct hd_retention *set = hd_calloc(1, sizeof *set);
    char *text = hd_malloc(HD_RETENTION_TEXT_MAX);
    char err[400];
    int rv = set == NULL || text == NULL
                 ? HD_ENOMEM
                 : hd_retention_parse(set, json_string_value(rules), json_string_length(rules),
                                      err, sizeof err);
    json_decref(obj);
    size_t len = rv == 0 ? hd_retention_format(set, text, HD_RETENTION_TEXT_MAX) : 0;
    struct log_command lc = {.kind = LOG_ENTRY_KIND_POLICY, .text = text, .text_len = len};
    if (rv == 0 && (len + 1 >= HD_RETENTION_TEXT_MAX || !log_command_valid(&lc))) {
        /* 64 rules of the longest patterns fit (a full buffer may be cut):
         * this is a guard, not a rule */
        api_respond_error(s, c, 400, "bad_retention", "the policy's text is too long");
    } else if (rv == 0) {
        api__policy_propose(s, c, &lc); /* the text is copied into the entry or frame */
    } else if (rv == HD_ENOMEM) {
        api_respond_error(s, c, 503, "unavailable", "out of memory");
    } else {
        api_respond_error(s, c, 400, "bad_retention", err);
    }
    hd_free(set);
    hd_free(text);
}

void api_retention_admin(struct api_server *s, struct api_http_conn *c,
                         const struct api_http_request *req)
{
    if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
        api_respond_json(s, c, 200, api_status_retention(s), NULL);
    } else if (req->method == HTTP_PUT) {
        api__policy_set(s, c, req);
    } else if (req->method == HTTP_DELETE) {
        struct log_command lc = {.kind = LOG_ENTRY_KIND_POLICY, .flags = LOG_POLICY_CLEAR};
        api__policy_propose(s, c, &lc);
    } else {
        api_respond_error(s, c, 405, "method_not_allowed", "this route does not take that method");
    }
}
