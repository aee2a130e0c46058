/* SPDX-License-Identifier: Apache-2.0 */
/* libherald requests: init/close, append with retries, read, status; errors. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_tls.h"

int herald__fail(struct herald_client *c, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

int herald__channel_check(struct herald_client *c, const char *channel)
{
    if (channel == NULL || !hd_channel_valid(channel, strlen(channel))) {
        return herald__fail(c, HD_EINVAL, "bad channel id (1-128 bytes of [A-Za-z0-9._:-])");
    }
    return 0;
}

const char *herald_errmsg(const struct herald_client *c)
{
    return c->errmsg;
}

const char *herald_strerror(int rv)
{
    return hd_strerror(rv);
}

void herald_free(void *p)
{
    hd_free(p);
}

int herald_client_init(struct herald_client *c, const char *url)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->connect_timeout_ms = 2000;
    c->request_timeout_ms = 5000;
    c->retry_deadline_ms = 10000;
    c->backoff_initial_ms = 50;
    c->backoff_max_ms = 1000;
    c->tail_idle_timeout_ms = 60000;
    if (url == NULL) url = HERALD_URL_DEFAULT;
    if (herald_url_parse(url, c->host, sizeof c->host, c->port, sizeof c->port,
                         c->base_path, sizeof c->base_path) != 0) {
        return herald__fail(c, HD_EINVAL,
                            "bad server URL \"%.200s\" (want http://host:port or https://host:port)",
                            url);
    }
    c->tls = herald_url_tls(url);
    if (herald__random_bytes((uint8_t *)&c->rng, sizeof c->rng) != 0) c->rng = 0;
    c->rng |= 1; /* xorshift must not start at 0 */
    return 0;
}

void herald_client_close(struct herald_client *c)
{
    herald__disconnect(c);
    hd_tls_ctx_free(c->tls_ctx);
    c->tls_ctx = NULL;
}

/* Runs one request with retries until a final answer or the deadline. On 0,
 * r holds a response whose status is not retryable. *attempts counts tries. */
static int call_with_retry(struct herald_client *c, const char *method, const char *target,
                           const char *headers, const char *body, size_t body_len,
                           struct herald__resp *r, int *attempts)
{
    int64_t start = herald__now_ms();
    int64_t deadline = start + c->retry_deadline_ms;
    bool any_sent = false;
    char last_answer[sizeof c->errmsg] = ""; /* the last retryable answer, for the report */
    int rv;
    for (int attempt = 1;; attempt++) {
        *attempts = attempt;
        herald__resp_init(r, NULL, NULL);
        int64_t req_deadline = herald__now_ms() + c->request_timeout_ms;
        if (req_deadline > deadline) req_deadline = deadline;
        bool sent = false;
        rv = herald__exchange(c, method, target, headers, body, body_len, req_deadline, r, &sent);
        any_sent |= sent;
        int retry_after = -1;
        if (rv == 0 && !herald__status_retryable(r->status)) return 0;
        if (rv == 0) {
            retry_after = r->retry_after_s;
            herald__http_error(c, r, target);
            snprintf(last_answer, sizeof last_answer, "%s", c->errmsg);
        } else if (rv != HD_EIO && rv != HD_EUNAVAIL && rv != HD_EUNKNOWN) {
            break; /* malformed answer or out of memory: retrying won't help */
        }
        herald__resp_close(r);
        if (!herald__backoff(c, attempt, retry_after, deadline)) {
            /* Only an attempt that may have reached the server leaves the
             * outcome in doubt; never reaching it is plain unavailability. */
            rv = any_sent ? HD_EUNKNOWN : HD_EUNAVAIL;
            char last[sizeof c->errmsg];
            snprintf(last, sizeof last, "%s", c->errmsg);
            bool both = last_answer[0] && strcmp(last_answer, last) != 0;
            return herald__fail(c, rv, "gave up after %d attempts in %" PRId64 " ms: %s%s%s%s",
                                attempt, herald__now_ms() - start, last,
                                both ? " (last answer: " : "", both ? last_answer : "",
                                both ? ")" : "");
        }
    }
    herald__resp_close(r);
    return rv;
}

static int append_body(const void *payload, size_t len, const char *nonce, char **out)
{
    json_t *o = json_object();
    json_t *text = json_stringn(payload, len); /* NULL unless valid UTF-8 */
    int rv = 0;
    if (o == NULL) return HD_ENOMEM;
    rv |= json_object_set_new(o, "nonce", json_string(nonce));
    if (text != NULL) {
        rv |= json_object_set_new(o, "payload", text);
    } else {
        struct herald__buf b64 = {0};
        rv |= herald__buf_append_base64(&b64, payload, len);
        rv |= json_object_set_new(o, "payload_b64", json_stringn(b64.data, b64.len));
        herald__buf_free(&b64);
    }
    *out = rv == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return *out != NULL ? 0 : HD_ENOMEM;
}

static int append_answer(struct herald_client *c, const struct herald__resp *r,
                         const char *channel, struct herald_append_result *res)
{
    json_t *root = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    json_t *seq = json_object_get(root, "seq");
    json_t *ts = json_object_get(root, "ts");
    json_t *ch = json_object_get(root, "channel");
    json_t *dup = json_object_get(root, "duplicate");
    int rv = 0;
    if (!json_is_integer(seq) || json_integer_value(seq) <= 0 || !json_is_string(ts) ||
        herald_ts_parse(json_string_value(ts), json_string_length(ts), &res->ts_us) != 0 ||
        (ch != NULL && (!json_is_string(ch) || strcmp(json_string_value(ch), channel) != 0))) {
        rv = herald__fail(c, HD_ECORRUPT, "append to %s: HTTP %d with malformed answer: %.200s",
                          channel, r->status, r->body.data ? r->body.data : "");
    } else {
        res->seq = (uint64_t)json_integer_value(seq);
        res->duplicate = json_is_boolean(dup) ? json_is_true(dup) : r->status == 200;
    }
    json_decref(root);
    return rv;
}

int herald_append(struct herald_client *c, const char *channel, const void *payload,
                  size_t len, const char *nonce, struct herald_append_result *result)
{
    memset(result, 0, sizeof *result);
    if (herald__channel_check(c, channel) != 0) return HD_EINVAL;
    if (nonce == NULL) {
        int rv = herald_nonce_generate(result->nonce, sizeof result->nonce);
        if (rv != 0) return herald__fail(c, rv, "generate nonce: %s", hd_strerror(rv));
    } else if (nonce[0] == '\0' || strlen(nonce) > HERALD_NONCE_MAX) {
        return herald__fail(c, HD_EINVAL, "nonce must be 1-%d bytes", HERALD_NONCE_MAX);
    } else {
        snprintf(result->nonce, sizeof result->nonce, "%s", nonce);
    }
    char *body = NULL;
    int rv = append_body(payload, len, result->nonce, &body);
    if (rv != 0) return herald__fail(c, rv, "append: encode request: %s", hd_strerror(rv));
    char target[HERALD_CHANNEL_MAX + 32];
    snprintf(target, sizeof target, "/v1/channels/%s/messages", channel);
    /* Every attempt carries the same body, hence the same nonce: a retry of
     * an append that did land is answered with its original seq. */
    struct herald__resp r;
    rv = call_with_retry(c, "POST", target,
                         "Content-Type: application/json\r\nAccept: application/json\r\n", body,
                         strlen(body), &r, &result->attempts);
    free(body);
    if (rv != 0) return rv;
    if (r.status == 201 || r.status == 200) {
        rv = append_answer(c, &r, channel, result);
    } else {
        rv = herald__http_error(c, &r, target);
    }
    herald__resp_close(&r);
    return rv;
}

/* Delivers the messages of one read answer, checking that seqs run on
 * without gaps (the contract promises a gapless prefix). */
static int read_deliver(struct herald_client *c, json_t *root, const char *channel,
                        uint64_t after_seq, bool first_known, herald_message_cb cb,
                        void *arg)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!json_is_array(msgs)) return herald__fail(c, HD_ECORRUPT, "read: no messages array");
    struct herald__buf scratch = {0};
    uint64_t expect = after_seq + 1; /* after a ts read, learnt from the first */
    int count = 0;
    int rv = 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        struct herald_message m;
        char why[128];
        rv = herald__message_from_json(json_array_get(msgs, i), &scratch, &m, why, sizeof why);
        if (rv != 0) {
            herald__fail(c, rv, "read %s: message %zu: %s", channel, i, why);
            break;
        }
        if ((first_known || i > 0) && m.seq != expect) {
            rv = herald__fail(c, HD_ECORRUPT, "read %s: expected seq %" PRIu64 ", got %" PRIu64,
                              channel, expect, m.seq);
            break;
        }
        if (m.channel == NULL) m.channel = channel;
        expect = m.seq + 1;
        count++;
        if (cb(arg, &m) != 0) break;
    }
    herald__buf_free(&scratch);
    return rv != 0 ? rv : count;
}

/* Shared body of the two reads; query is "after_seq=N" or "after_ts=T". */
static int read_common(struct herald_client *c, const char *channel, const char *query,
                       uint64_t after_seq, bool by_seq, unsigned limit, uint64_t *next_seq,
                       herald_message_cb cb, void *arg)
{
    if (next_seq != NULL) *next_seq = 0;
    if (herald__channel_check(c, channel) != 0) return HD_EINVAL;
    char target[HERALD_CHANNEL_MAX + 96];
    int n = snprintf(target, sizeof target, "/v1/channels/%s/messages?%s", channel, query);
    if (limit > 0) snprintf(target + n, sizeof target - (size_t)n, "&limit=%u", limit);
    struct herald__resp r;
    int attempts;
    int rv = call_with_retry(c, "GET", target, "Accept: application/json\r\n", NULL, 0, &r,
                             &attempts);
    if (rv == HD_EUNKNOWN) rv = HD_EUNAVAIL; /* a read has no outcome to doubt */
    if (rv != 0) return rv;
    if (r.status != 200) {
        rv = herald__http_error(c, &r, target);
        herald__resp_close(&r);
        return rv;
    }
    json_error_t jerr;
    json_t *root = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &jerr);
    if (root == NULL) {
        rv = herald__fail(c, HD_ECORRUPT, "read %s: bad JSON: %s", channel, jerr.text);
    } else {
        json_t *ns = json_object_get(root, "next_seq");
        if (next_seq != NULL && json_is_integer(ns) && json_integer_value(ns) >= 0) {
            *next_seq = (uint64_t)json_integer_value(ns);
        }
        rv = read_deliver(c, root, channel, after_seq, by_seq, cb, arg);
        json_decref(root);
    }
    herald__resp_close(&r);
    return rv;
}

int herald_read(struct herald_client *c, const char *channel, uint64_t after_seq,
                unsigned limit, uint64_t *next_seq, herald_message_cb cb, void *arg)
{
    char query[48];
    snprintf(query, sizeof query, "after_seq=%" PRIu64, after_seq);
    return read_common(c, channel, query, after_seq, true, limit, next_seq, cb, arg);
}

int herald_read_after_ts(struct herald_client *c, const char *channel, uint64_t after_ts_us,
                         unsigned limit, uint64_t *next_seq, herald_message_cb cb, void *arg)
{
    char query[48] = "after_ts=";
    herald_ts_format(after_ts_us, query + 9, sizeof query - 9);
    return read_common(c, channel, query, 0, false, limit, next_seq, cb, arg);
}

int herald_status(struct herald_client *c, char **json_text)
{
    *json_text = NULL;
    struct herald__resp r;
    int attempts;
    int rv = call_with_retry(c, "GET", "/v1/status", "Accept: application/json\r\n", NULL, 0,
                             &r, &attempts);
    if (rv == HD_EUNKNOWN) rv = HD_EUNAVAIL;
    if (rv != 0) return rv;
    if (r.status != 200) {
        rv = herald__http_error(c, &r, "/v1/status");
    } else {
        *json_text = hd_strndup(r.body.data ? r.body.data : "", r.body.len);
        if (*json_text == NULL) rv = herald__fail(c, HD_ENOMEM, "status: out of memory");
    }
    herald__resp_close(&r);
    return rv;
}

int herald_cluster_change(struct herald_client *c, bool add, uint64_t id, const char *address,
                          unsigned timeout_s, char **json_text)
{
    *json_text = NULL;
    char target[96], body[192], timeout[32] = "";
    if (timeout_s != 0) {
        snprintf(timeout, sizeof timeout, add ? ",\"timeout_s\":%u" : "?timeout_s=%u", timeout_s);
    }
    if (add) {
        snprintf(target, sizeof target, "/v1/cluster/nodes");
        int n = snprintf(body, sizeof body, "{\"id\":%llu,\"address\":\"%s\"%s}",
                         (unsigned long long)id, address, timeout);
        if (n < 0 || (size_t)n >= sizeof body || strchr(address, '"') != NULL) {
            return herald__fail(c, HD_EINVAL, "bad address");
        }
    } else {
        snprintf(target, sizeof target, "/v1/cluster/nodes/%llu%s", (unsigned long long)id,
                 timeout);
    }
    /* A change waits for every shard (and a new node's catch-up): minutes;
     * the server answers by its deadline, so wait a little longer. */
    return herald__json_call(c, add ? "POST" : "DELETE", target, add ? body : NULL,
                             herald__now_ms() + (timeout_s != 0 ? (int64_t)timeout_s * 1000 + 60000
                                                                 : 30 * 60 * 1000),
                             json_text);
}

int herald__json_call(struct herald_client *c, const char *method, const char *target,
                      const char *body, int64_t deadline_ms, char **json_text)
{
    *json_text = NULL;
    struct herald__resp r;
    bool sent = false;
    herald__resp_init(&r, NULL, NULL);
    int rv = herald__exchange(c, method, target,
                              body != NULL ? "Content-Type: application/json\r\n" : NULL, body,
                              body != NULL ? strlen(body) : 0, deadline_ms, &r, &sent);
    if (rv != 0) {
        herald__resp_close(&r);
        return rv;
    }
    if (r.status != 200) {
        rv = herald__http_error(c, &r, target);
    } else {
        *json_text = hd_strndup(r.body.data ? r.body.data : "", r.body.len);
        if (*json_text == NULL) rv = herald__fail(c, HD_ENOMEM, "out of memory");
    }
    herald__resp_close(&r);
    return rv;
}
