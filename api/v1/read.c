/* SPDX-License-Identifier: Apache-2.0 */
/* GET /v1/channels/{channel}/messages: a range of a channel from applied state. */
#include <string.h>

#include "api.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_alloc.h"
#include "log.h"
#include "node.h"

struct api_read_ctx {
    const char *channel;
    size_t channel_len;
    json_t *messages;
    size_t bytes;
    size_t bytes_max;
};

static int api__read_one(void *arg, const struct log_message *m)
{
    struct api_read_ctx *ctx = arg;
    json_t *j = api_message_json(ctx->channel, ctx->channel_len, m->seq, m->ts, m->nonce,
                                 m->nonce_len, m->payload, m->payload_len);
    if (j == NULL) {
        return HD_ENOMEM;
    }
    json_object_del(j, "channel"); /* said once, at the top */
    json_array_append_new(ctx->messages, j);
    ctx->bytes += m->payload_len;
    /* Stop after the byte budget, but always return at least one message. */
    return ctx->bytes >= ctx->bytes_max ? 1 : 0;
}

/* The position to read after: after_seq, or the seq at after_ts. */
int api__read_position(struct api_server *s, const struct api_http_request *req,
                       const char *channel, size_t len, uint64_t *after_seq,
                       const char **bad)
{
    char value[32];
    *after_seq = 0;
    int rv = api_http_query_param(req, "after_seq", value, sizeof value);
    if (rv != 0 && rv != HD_ENOTFOUND) {
        *bad = "after_seq must be a non-negative integer";
        return HD_EINVAL;
    }
    if (rv == 0) {
        if (hd_u64_parse(value, strlen(value), after_seq) != 0) {
            *bad = "after_seq must be a non-negative integer";
            return HD_EINVAL;
        }
        return 0;
    }
    rv = api_http_query_param(req, "after_ts", value, sizeof value);
    if (rv == 0) {
        uint64_t ts;
        if (hd_ts_parse(value, strlen(value), &ts) != 0) {
            *bad = "after_ts must be seconds.microseconds, like 1732234567.000123";
            return HD_EINVAL;
        }
        return log_seq_at_ts(s->log, channel, len, ts, after_seq);
    }
    if (rv != HD_ENOTFOUND) {
        *bad = "after_ts must be seconds.microseconds, like 1732234567.000123";
        return HD_EINVAL;
    }
    return 0;
}

/* Reads the range and answers. */
static void api__read_answer(struct api_server *s, struct api_http_conn *c,
                             const struct api_http_request *req, const char *channel,
                             size_t len)
{
    uint64_t after_seq = 0, limit = 100;
    const char *bad = NULL;
    int rv = api__read_position(s, req, channel, len, &after_seq, &bad);
    char value[32];
    if (rv == 0 && api_http_query_param(req, "limit", value, sizeof value) == 0) {
        if (hd_u64_parse(value, strlen(value), &limit) != 0 || limit == 0 ||
            limit > s->config.read_limit_max) {
            bad = "limit must be 1-1000";
            rv = HD_EINVAL;
        }
    }
    if (rv == HD_EINVAL) {
        api_respond_error(s, c, 400, "bad_query", bad);
        return;
    }
    struct api_read_ctx ctx = {channel, len, json_array(), 0, s->config.read_bytes_max};
    uint64_t next_seq = after_seq + 1;
    if (rv == 0) {
        rv = log_read(s->log, channel, len, after_seq, (size_t)limit, api__read_one, &ctx,
                      &next_seq);
    }
    if (rv == HD_EGONE) {
        json_decref(ctx.messages);
        api_respond_gone(s, c, channel, len);
        return;
    }
    if (rv != 0) {
        json_decref(ctx.messages);
        api_respond_cons_error(s, c, rv);
        return;
    }
    s->metrics.reads++;
    /* The epoch tells this channel from one deleted under the same id. */
    struct log_channel_info info;
    rv = log_channel_info(s->log, channel, len, &info);
    if (rv != 0) {
        json_decref(ctx.messages);
        api_respond_cons_error(s, c, rv);
        return;
    }
    json_t *body = json_pack("{s:s%, s:o, s:I, s:I}", "channel", channel, len, "messages",
                             ctx.messages, "next_seq", (json_int_t)next_seq, "epoch",
                             (json_int_t)info.epoch);
    api_respond_json(s, c, 200, body, NULL);
}

/* A read with consistency=leader, waiting for its barrier. The request
 * stays valid until we answer. */
struct api_leader_read {
    struct api_server *server;
    struct api_http_conn *conn;
    const struct api_http_request *req;
    char channel[LOG_CHANNEL_MAX];
    size_t len;
};

static void api__leader_read_ready(void *arg, int status)
{
    struct api_leader_read *r = arg;
    if (status != 0) {
        api_respond_error(r->server, r->conn, 503, "unavailable",
                          "no leader confirmed that this node's state is current; retry");
    } else {
        api__read_answer(r->server, r->conn, r->req, r->channel, r->len);
    }
    hd_free(r);
}

void api_read(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len)
{
    char value[16];
    int rv = api_http_query_param(req, "consistency", value, sizeof value);
    if (rv == HD_ENOTFOUND || (rv == 0 && strcmp(value, "local") == 0)) {
        api__read_answer(s, c, req, channel, len); /* this node's applied prefix */
        return;
    }
    if (rv != 0 || strcmp(value, "leader") != 0) {
        api_respond_error(s, c, 400, "bad_query", "consistency must be local or leader");
        return;
    }
    struct api_leader_read *r = hd_calloc(1, sizeof *r);
    if (r == NULL) {
        api_respond_error(s, c, 500, "internal", "out of memory");
        return;
    }
    *r = (struct api_leader_read){s, c, req, "", len};
    memcpy(r->channel, channel, len);
    rv = cons_node_read_barrier(s->node, channel, len, api__leader_read_ready, r);
    if (rv != 0) {
        r->conn = c;
        api__leader_read_ready(r, rv);
    }
}
