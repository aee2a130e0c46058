/* SPDX-License-Identifier: Apache-2.0 */
/* A channel as a whole: GET its info, POST .../trim, DELETE it; and the 410 of reads below a trim. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "command.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_util.h"
#include "log.h"
#include "node.h"

/*
 * Trim and delete go through Raft (log/command.h) so every replica drops
 * the same messages. Only the channel's shard leader proposes them; any
 * other node forwards them to it, like an append (consensus/node/forward.c).
 * The answer comes once the command is applied on this node, with the
 * channel's info after it; with no leader known it is 503 with Retry-After.
 */

static json_t *api__info_json(const char *channel, size_t len,
                              const struct log_channel_info *i)
{
    return json_pack("{s:s%, s:I, s:I, s:I}", "channel", channel, len, "first_seq",
                     (json_int_t)i->first_seq, "last_seq", (json_int_t)i->last_seq, "epoch",
                     (json_int_t)i->epoch);
}

json_t *api_gone_json(const char *channel, size_t len, const struct log_channel_info *info)
{
    return json_pack("{s:s%, s:I, s:I}", "channel", channel, len, "first_seq",
                     (json_int_t)info->first_seq, "epoch", (json_int_t)info->epoch);
}

int api_respond_gone(struct api_server *s, struct api_http_conn *c, const char *channel,
                     size_t len)
{
    struct log_channel_info i;
    int rv = log_channel_info(s->log, channel, len, &i);
    if (rv != 0) {
        return api_respond_cons_error(s, c, rv);
    }
    json_t *body = api__info_json(channel, len, &i);
    json_object_set_new(body, "error",
                        json_pack("{s:s, s:s}", "code", "gone", "message",
                                  "a trim or retention removed messages from this position,"
                                  " or it is of an earlier epoch (the channel was deleted);"
                                  " resume from first_seq"));
    return api_respond_json(s, c, 410, body, NULL);
}

static void api__info(struct api_server *s, struct api_http_conn *c, const char *channel,
                      size_t len)
{
    struct log_channel_info i;
    int rv = log_channel_info(s->log, channel, len, &i);
    if (rv != 0) {
        api_respond_cons_error(s, c, rv);
        return;
    }
    json_t *body = api__info_json(channel, len, &i);
    /* The rule of the effective policy that applies (null: none). */
    const struct hd_retention_rule *r =
        hd_retention_match(log_retention_effective(s->log, NULL), channel, len);
    char rule[512];
    if (r != NULL) {
        hd_retention_rule_format(r, rule, sizeof rule);
    }
    json_object_set_new(body, "retention", r != NULL ? json_string(rule) : json_null());
    api_respond_json(s, c, 200, body, NULL);
}

/* A command waiting for its entry to apply; the request stays valid. */
struct api_command {
    struct api_server *server;
    struct api_http_conn *conn;
    char channel[LOG_CHANNEL_MAX];
    size_t len;
};

static void api__command_done(void *arg, int status)
{
    struct api_command *cmd = arg;
    if (status == HD_ENOTLEADER) {
        /* The leader it went to had lost leadership: nothing was proposed. */
        api_respond_cons_error(cmd->server, cmd->conn, status);
    } else if (status != 0) {
        api_respond_error(cmd->server, cmd->conn, 503, "outcome_unknown",
                          "leadership changed before the command was confirmed; it may"
                          " still apply: check the channel's info");
    } else {
        api__info(cmd->server, cmd->conn, cmd->channel, cmd->len);
    }
    hd_free(cmd);
}

static void api__propose(struct api_server *s, struct api_http_conn *c, uint8_t kind,
                         const char *channel, size_t len, uint64_t before_seq)
{
    struct api_command *cmd = hd_calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        api_respond_error(s, c, 503, "unavailable", "out of memory");
        return;
    }
    *cmd = (struct api_command){.server = s, .conn = c, .len = len};
    memcpy(cmd->channel, channel, len);
    struct log_command lc = {.kind = kind, .channel = cmd->channel, .channel_len = len,
                             .before_seq = before_seq};
    int rv = cons_node_command(s->node, &lc, api__command_done, cmd);
    if (rv == 0) {
        return;
    }
    hd_free(cmd);
    api_respond_cons_error(s, c, rv); /* HD_ENOTLEADER: no leader known, 503 */
}

static void api__trim(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req, const char *channel, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *before = json_object_get(obj, "before_seq");
    json_int_t n = json_is_integer(before) ? json_integer_value(before) : 0;
    bool ok = json_is_object(obj) && json_object_size(obj) == 1 && n >= 1;
    json_decref(obj);
    if (!ok) {
        api_respond_error(s, c, 400, "bad_json",
                          "the body must be {\"before_seq\": N} with N >= 1");
        return;
    }
    api__propose(s, c, LOG_ENTRY_KIND_TRIM, channel, len, (uint64_t)n);
}

void api_channel_admin(struct api_server *s, struct api_http_conn *c,
                       const struct api_http_request *req, const char *channel, size_t len,
                       const char *rest, size_t rest_len)
{
    if (rest_len == 0) {
        if (req->method == HTTP_GET || req->method == HTTP_HEAD) {
            api__info(s, c, channel, len);
        } else if (req->method == HTTP_DELETE) {
            api__propose(s, c, LOG_ENTRY_KIND_DELETE, channel, len, 0);
        } else {
            api_respond_error(s, c, 405, "method_not_allowed",
                              "this route does not take that method");
        }
    } else if (rest_len == 5 && memcmp(rest, "/trim", 5) == 0) {
        if (req->method == HTTP_POST) {
            api__trim(s, c, req, channel, len);
        } else {
            api_respond_error(s, c, 405, "method_not_allowed",
                              "this route does not take that method");
        }
    } else {
        api_respond_error(s, c, 404, "not_found", "no such route");
    }
}
