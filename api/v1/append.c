/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/channels/{channel}/messages and POST /v1/messages:batch. */
#include <string.h>
#include <strings.h>

#include "api.h"
#include "append_json.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "node.h"

/* One append waiting for consensus. Owns copies of its strings: the request
 * stays valid until we answer, but batch lines are parsed JSON, freed early.
 * The payload lives at its end: one allocation per append, not two. */
struct api_pending {
    struct cons_append_req req;
    struct api_batch *batch;         /* NULL for a single append */
    size_t line;                     /* index of the line in its batch */
    struct api_server *server;
    struct api_http_conn *conn;      /* single appends only */
    api_append_done_cb done;         /* appends of other transports */
    void *done_arg;
    char channel[LOG_CHANNEL_MAX];
    char nonce[LOG_NONCE_MAX];
    uint64_t start_us;               /* hd_mono_us() as its request was taken */
    int status;                      /* result, for batches */
    struct log_result result;
    uint8_t payload[];               /* max_raw bytes (api__pending_new) */
};

/* A batch answers once every line has its result. */
struct api_batch {
    struct api_server *server;
    struct api_http_conn *conn;
    size_t n_lines;
    size_t waiting;                  /* appends not answered yet */
    json_t **results;                /* one per line */
    struct api_pending **pending;    /* one per line, NULL for a bad line */
};

/* Validates and copies one append into a new pending append. */
static int api__pending_new(struct api_server *s, const char *channel, size_t channel_len,
                            const struct api_append_input *in, struct api_pending **out,
                            struct api_input_error *err)
{
    *err = (struct api_input_error){400, "bad_request", NULL};
    if (!hd_nonce_valid(in->nonce, in->nonce_len)) {
        err->code = "bad_nonce";
        err->message = "nonce must be 1-128 printable ASCII characters without spaces";
        return HD_EINVAL;
    }
    size_t max_raw = in->b64 ? hd_base64_decoded_max(in->payload_len) : in->payload_len;
    if (in->b64 && max_raw > s->config.payload_bytes_max + 2) {
        max_raw = s->config.payload_bytes_max + 1; /* clearly too large */
    }
    struct api_pending *p = hd_malloc(sizeof *p + max_raw);
    if (p == NULL) {
        *err = (struct api_input_error){500, "internal", "out of memory"};
        return HD_ENOMEM;
    }
    memset(p, 0, sizeof *p); /* the payload bytes are written below */
    uint8_t *payload = p->payload;
    size_t payload_len = in->payload_len;
    int rv = 0;
    if (in->b64) {
        rv = in->payload_len / 4 * 3 > s->config.payload_bytes_max + 2
                 ? HD_ETOOBIG
                 : hd_base64_decode(in->payload, in->payload_len, payload, &payload_len);
        if (rv == HD_EINVAL) {
            err->code = "bad_payload";
            err->message = "payload_b64 is not valid base64";
        }
    } else if (payload_len > 0) {
        memcpy(payload, in->payload, payload_len);
    }
    if (rv == 0 && payload_len > s->config.payload_bytes_max) {
        rv = HD_ETOOBIG;
    }
    if (rv == HD_ETOOBIG) {
        err->code = "payload_too_large";
        err->message = "payload is over the node's limit (--max-payload)";
    }
    if (rv != 0) {
        hd_free(p);
        return rv;
    }
    memcpy(p->channel, channel, channel_len);
    memcpy(p->nonce, in->nonce, in->nonce_len);
    p->server = s;
    p->req = (struct cons_append_req){.a = {p->channel, channel_len, p->nonce, in->nonce_len,
                                            payload, payload_len},
                                      .data = p};
    *out = p;
    return 0;
}

static void api__pending_free(struct api_pending *p)
{
    hd_free(p);
}

/* An acknowledged append's answer is queued: its latency on this node. */
static void api__observe_ack(struct api_server *s, const struct api_pending *p)
{
    hd_histogram_observe(&s->metrics.append_us, hd_mono_us() - p->start_us);
}

static json_t *api__result_json(const struct api_pending *p)
{
    char ts[HD_TS_STR_MAX];
    hd_ts_format(p->result.ts, ts, sizeof ts);
    return json_pack("{s:s%, s:I, s:s, s:b}", "channel", p->channel, p->req.a.channel_len,
                     "seq", (json_int_t)p->result.seq, "ts", ts, "duplicate",
                     p->result.duplicate);
}

/* Extracts the append's fields from a JSON object. */
static int api__input_from_json(json_t *obj, struct api_append_input *in,
                                struct api_input_error *err)
{
    *err = (struct api_input_error){400, "bad_request", NULL};
    json_t *nonce = json_object_get(obj, "nonce");
    json_t *payload = json_object_get(obj, "payload");
    json_t *payload_b64 = json_object_get(obj, "payload_b64");
    if (!json_is_string(nonce)) {
        err->code = "bad_nonce";
        err->message = "\"nonce\" (a string) is required";
        return HD_EINVAL;
    }
    if ((payload == NULL) == (payload_b64 == NULL)) {
        err->code = "bad_payload";
        err->message = "exactly one of \"payload\" and \"payload_b64\" is required";
        return HD_EINVAL;
    }
    json_t *p = payload != NULL ? payload : payload_b64;
    if (!json_is_string(p)) {
        err->code = "bad_payload";
        err->message = "the payload must be a string";
        return HD_EINVAL;
    }
    *in = (struct api_append_input){json_string_value(nonce), json_string_length(nonce),
                                    json_string_value(p), json_string_length(p),
                                    payload_b64 != NULL};
    return 0;
}

/* ---------------------------------------------------------- single --- */

static void api__single_done(struct cons_append_req *req, int status,
                             const struct log_result *result)
{
    struct api_pending *p = req->data;
    struct api_server *s = p->server;
    if (status != 0) {
        api_respond_cons_error(s, p->conn, status);
    } else {
        p->result = *result;
        if (result->duplicate) {
            s->metrics.appends_duplicate++;
        } else {
            s->metrics.appends_ok++;
        }
        char answer[API_APPEND_ANSWER_MAX];
        size_t len = api_append_json_answer(answer, p->channel, p->req.a.channel_len,
                                            result->seq, result->ts, result->duplicate);
        api_respond_json_text(s, p->conn, result->duplicate ? 200 : 201, answer, len);
        api__observe_ack(s, p);
    }
    api__pending_free(p);
}

/* A body is raw only when it comes with an Idempotency-Key and is not
 * labelled JSON; everything else is read as the JSON form (curl -d labels
 * JSON as a form, so the label alone cannot decide). */
static bool api__is_json(const struct api_http_request *req)
{
    size_t len = 0;
    if (api_http_header(req, "Idempotency-Key", &len) == NULL) {
        return true;
    }
    const char *ct = api_http_header(req, "Content-Type", &len);
    return ct != NULL && len >= 16 && strncasecmp(ct, "application/json", 16) == 0;
}

void api_append(struct api_server *s, struct api_http_conn *c,
                const struct api_http_request *req, const char *channel, size_t len)
{
    uint64_t start_us = hd_mono_us();
    struct api_append_input in;
    struct api_input_error err;
    json_t *obj = NULL;
    int rv;
    bool json = api__is_json(req);
    if (json && api_append_json_scan(req->body, req->body_len, &in)) {
        /* The common shape, read in place: no tree to build and free. */
        rv = 0;
    } else if (json) {
        json_error_t jerr;
        obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!json_is_object(obj)) {
            json_decref(obj);
            api_respond_error(s, c, 400, "bad_json",
                              "the body must be a JSON object with \"nonce\" and \"payload\"");
            return;
        }
        rv = api__input_from_json(obj, &in, &err);
    } else {
        size_t key_len = 0;
        const char *key = api_http_header(req, "Idempotency-Key", &key_len);
        rv = key != NULL ? 0 : HD_EINVAL;
        err = (struct api_input_error){400, "bad_nonce",
                                       "a raw body needs an Idempotency-Key header"};
        in = (struct api_append_input){key, key_len, req->body, req->body_len, false};
    }
    struct api_pending *p = NULL;
    if (rv == 0) {
        rv = api__pending_new(s, channel, len, &in, &p, &err);
    }
    json_decref(obj);
    if (rv != 0) {
        api_respond_error(s, c, err.status, err.code, err.message);
        return;
    }
    p->conn = c;
    p->start_us = start_us;
    rv = cons_node_append(s->node, &p->req, api__single_done);
    if (rv != 0) {
        api_respond_cons_error(s, c, rv);
        api__pending_free(p);
    }
}

/* ------------------------------------------------ other transports --- */

static void api__generic_done(struct cons_append_req *req, int status,
                              const struct log_result *result)
{
    struct api_pending *p = req->data;
    struct api_server *s = p->server;
    if (status == 0) {
        s->metrics.appends_ok += result->duplicate ? 0 : 1;
        s->metrics.appends_duplicate += result->duplicate ? 1 : 0;
    } else if (status == HD_EUNKNOWN) {
        s->metrics.appends_unknown++;
    }
    p->done(p->done_arg, status, result);
    if (status == 0) {
        api__observe_ack(s, p);
    }
    api__pending_free(p);
}

int api_append_fields(struct api_server *s, const char *channel, size_t len,
                      const struct api_append_input *in, api_append_done_cb done, void *arg,
                      struct api_input_error *err)
{
    uint64_t start_us = hd_mono_us();
    struct api_pending *p = NULL;
    int rv = api__pending_new(s, channel, len, in, &p, err);
    if (rv != 0) {
        return rv;
    }
    p->done = done;
    p->done_arg = arg;
    p->start_us = start_us;
    rv = cons_node_append(s->node, &p->req, api__generic_done);
    if (rv != 0) {
        api__pending_free(p);
        const char *message = NULL;
        *err = (struct api_input_error){api_cons_error_status(rv),
                                        api_cons_error_code(rv, &message), message};
    }
    return rv;
}

int api_append_object(struct api_server *s, const char *channel, size_t len, json_t *obj,
                      api_append_done_cb done, void *arg, struct api_input_error *err)
{
    struct api_append_input in;
    int rv = api__input_from_json(obj, &in, err);
    return rv != 0 ? rv : api_append_fields(s, channel, len, &in, done, arg, err);
}

/* ----------------------------------------------------------- batch --- */

static json_t *api__error_json(const char *code, const char *message)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
}

static void api__batch_finish(struct api_batch *b)
{
    struct api_server *s = b->server;
    size_t total = 0;
    char **lines = hd_calloc(b->n_lines, sizeof *lines);
    for (size_t i = 0; lines != NULL && i < b->n_lines; i++) {
        lines[i] = json_dumps(b->results[i], JSON_COMPACT);
        total += lines[i] != NULL ? strlen(lines[i]) + 1 : 3;
    }
    char *body = lines != NULL ? hd_malloc(total + 1) : NULL;
    size_t off = 0;
    for (size_t i = 0; body != NULL && i < b->n_lines; i++) {
        const char *line = lines[i] != NULL ? lines[i] : "{}";
        size_t n = strlen(line);
        memcpy(body + off, line, n);
        off += n;
        body[off++] = '\n';
    }
    if (body != NULL) {
        s->metrics.requests++;
        s->metrics.responses_by_class[2]++;
        api_http_respond(b->conn, 200, "application/x-ndjson", NULL, body, off);
    } else {
        api_respond_error(s, b->conn, 500, "internal", "out of memory");
    }
    for (size_t i = 0; i < b->n_lines; i++) {
        if (lines != NULL) free(lines[i]);
        json_decref(b->results[i]);
    }
    hd_free(lines);
    hd_free(body);
    hd_free(b->results);
    hd_free(b->pending);
    hd_free(b);
}

static void api__batch_done(struct cons_append_req *req, int status,
                            const struct log_result *result)
{
    struct api_pending *p = req->data;
    struct api_batch *b = p->batch;
    size_t line = p->line;
    HD_ASSERT(b->pending[line] == p);
    if (status == 0) {
        p->result = *result;
        b->results[line] = api__result_json(p);
        b->server->metrics.appends_ok += result->duplicate ? 0 : 1;
        b->server->metrics.appends_duplicate += result->duplicate ? 1 : 0;
        api__observe_ack(b->server, p);
    } else if (status == HD_EUNKNOWN) {
        b->server->metrics.appends_unknown++;
        b->results[line] = api__error_json("outcome_unknown",
                                           "may or may not have been written; retry with the same nonce");
    } else {
        const char *message = NULL;
        const char *code = api_cons_error_code(status, &message);
        b->results[line] = api__error_json(code, message);
    }
    b->pending[line] = NULL;
    api__pending_free(p);
    if (--b->waiting == 0) {
        api__batch_finish(b);
    }
}

/* The first line of a batch whose channel the token may not append to. */
struct api_batch_refusal {
    bool any;
    char channel[HD_CHANNEL_MAX];
    size_t len;
};

/* Parses one NDJSON line into a pending append, or an error result. */
static json_t *api__batch_line(struct api_server *s, const char *line, size_t len,
                               struct api_pending **out, const struct api_principal *who,
                               struct api_batch_refusal *refusal)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return api__error_json("bad_json", "each line must be a JSON object");
    }
    json_t *ch = json_object_get(obj, "channel");
    struct api_append_input in;
    struct api_input_error err = {400, "bad_channel",
                                  "\"channel\" must be 1-128 characters of [A-Za-z0-9._:-]"};
    int rv = json_is_string(ch) && hd_channel_valid(json_string_value(ch), json_string_length(ch))
                 ? 0
                 : HD_EINVAL;
    if (rv == 0 && !refusal->any &&
        !api_auth_allows(s, who, HD_SCOPE_APPEND, json_string_value(ch), json_string_length(ch))) {
        refusal->any = true; /* the first one is logged; nothing of the batch is appended */
        refusal->len = json_string_length(ch);
        memcpy(refusal->channel, json_string_value(ch), refusal->len);
    }
    if (rv == 0) rv = api__input_from_json(obj, &in, &err);
    if (rv == 0) {
        rv = api__pending_new(s, json_string_value(ch), json_string_length(ch), &in, out, &err);
    }
    json_decref(obj);
    return rv == 0 ? NULL : api__error_json(err.code, err.message);
}

static size_t api__count_lines(const char *body, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - body) : len;
        if (end > i) n++;
        i = end + 1;
    }
    return n;
}

void api_append_batch(struct api_server *s, struct api_http_conn *c,
                      const struct api_http_request *req, const struct api_principal *who)
{
    uint64_t start_us = hd_mono_us();
    size_t n = api__count_lines(req->body, req->body_len);
    if (n == 0 || n > s->config.batch_lines_max) {
        api_respond_error(s, c, 400, "bad_batch", "the body must hold 1-10000 NDJSON lines");
        return;
    }
    struct api_batch *b = hd_calloc(1, sizeof *b);
    json_t **results = hd_calloc(n, sizeof *results);
    struct api_pending **pending = hd_calloc(n, sizeof *pending);
    if (b == NULL || results == NULL || pending == NULL) {
        hd_free(b);
        hd_free(results);
        hd_free(pending);
        api_respond_error(s, c, 500, "internal", "out of memory");
        return;
    }
    *b = (struct api_batch){s, c, n, 1, results, pending};
    struct api_batch_refusal refusal = {0};
    size_t line = 0;
    for (size_t i = 0; i < req->body_len;) {
        const char *nl = memchr(req->body + i, '\n', req->body_len - i);
        size_t end = nl != NULL ? (size_t)(nl - req->body) : req->body_len;
        if (end > i) {
            b->results[line] = api__batch_line(s, req->body + i, end - i, &b->pending[line],
                                              who, &refusal);
            line++;
        }
        i = end + 1;
    }
    uint64_t retry = 0;
    bool limited = !refusal.any && !api_limit_appends(s, who, n, req->body_len, &retry);
    bool spread = false; /* over limit:channels (lines before it count as touched) */
    for (line = 0; line < n && !refusal.any && !limited && !spread; line++) {
        const struct cons_append_req *r = b->pending[line] ? &b->pending[line]->req : NULL;
        spread = r != NULL && !api_limit_channel(s, who, r->a.channel, r->a.channel_len, &retry);
    }
    limited |= spread;
    if (refusal.any || limited) {
        /* one line outside the token's scope refuses the whole batch */
        if (refusal.any) {
            api_auth_note_forbidden(s, c, "POST /v1/messages:batch", who, HD_SCOPE_APPEND,
                                    refusal.channel, refusal.len);
        }
        for (line = 0; line < n; line++) {
            json_decref(b->results[line]);
            if (b->pending[line] != NULL) api__pending_free(b->pending[line]);
        }
        hd_free(b->results);
        hd_free(b->pending);
        hd_free(b);
        if (refusal.any) {
            api_auth_respond_forbidden(s, c, HD_SCOPE_APPEND);
        } else {
            api_limit_respond(s, c, retry, spread ? "channels per second" : "append rate");
        }
        return;
    }
    for (line = 0; line < n; line++) {
        struct api_pending *p = b->pending[line];
        if (p == NULL) continue;
        p->batch = b;
        p->line = line;
        p->start_us = start_us;
        b->waiting++;
        int rv = cons_node_append(s->node, &p->req, api__batch_done);
        if (rv != 0) {
            b->waiting--;
            const char *message = NULL;
            const char *code = api_cons_error_code(rv, &message);
            b->results[line] = api__error_json(code, message);
            b->pending[line] = NULL;
            api__pending_free(p);
        }
    }
    if (--b->waiting == 0) {
        api__batch_finish(b);
    }
}
