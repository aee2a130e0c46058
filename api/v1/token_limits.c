/* SPDX-License-Identifier: Apache-2.0 */
/* Limits per token: debt-allowing buckets for appends and bytes, a count of
 * open streams, the set of channels appended to this second. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "hd_alloc.h"
#include "hd_util.h"
#include "token_limits.h"

struct api_tenant {
    struct api_tenant *next;
    char name[HD_TOKEN_NAME_MAX + 1];
    double appends;       /* bucket level, may be negative (debt) */
    double bytes;
    uint64_t refilled_us; /* when the buckets were last refilled */
    size_t streams;       /* open tails and WebSockets */
    /* limit:channels: the channels appended to in the current second, a
     * set of channel hashes (open addressing, 0 = empty, at most half
     * full), cleared when the second changes. It holds at most the limit's
     * count, and no more than the token's appends in one second. */
    uint64_t *touched;
    size_t touched_n, touched_cap;
    uint64_t touched_second;
    uint64_t limited;     /* requests and streams refused by a limit */
};

static struct api_tenant *api__tenant(struct api_server *s, const char *name,
                                      const struct hd_token *t)
{
    for (struct api_tenant *x = s->auth->tenants; x != NULL; x = x->next) {
        if (strcmp(x->name, name) == 0) {
            return x;
        }
    }
    struct api_tenant *x = hd_calloc(1, sizeof *x);
    if (x == NULL) {
        return NULL;
    }
    snprintf(x->name, sizeof x->name, "%s", name);
    x->appends = (double)t->appends_per_s; /* a full second's worth to start */
    x->bytes = (double)t->bytes_per_s;
    x->refilled_us = hd_now_us();
    x->next = s->auth->tenants;
    s->auth->tenants = x;
    return x;
}

static const struct hd_token *api__limited_token(struct api_server *s,
                                                 const struct api_principal *who)
{
    if (s->auth == NULL || who->name[0] == '\0') {
        return NULL;
    }
    const struct hd_token *t = hd_token_set_named(s->auth->set, who->name);
    if (t == NULL || (t->appends_per_s == 0 && t->bytes_per_s == 0 && t->streams_max == 0 &&
                      t->channels_per_s == 0)) {
        return NULL;
    }
    return t;
}

/* Refills one bucket; returns false with *wait_s if it is empty or in debt. */
static bool api__bucket(double *level, uint64_t rate, double elapsed_s, uint64_t *wait_s)
{
    if (rate == 0) {
        return true;
    }
    *level += elapsed_s * (double)rate;
    if (*level > (double)rate) {
        *level = (double)rate;
    }
    if (*level > 0) {
        return true;
    }
    uint64_t w = (uint64_t)(-*level / (double)rate) + 1; /* whole seconds, rounded up */
    *wait_s = w > *wait_s ? w : *wait_s;
    return false;
}

bool api_limit_appends(struct api_server *s, const struct api_principal *who, size_t n,
                       size_t bytes, uint64_t *retry_after_s)
{
    const struct hd_token *t = api__limited_token(s, who);
    if (t == NULL || (t->appends_per_s == 0 && t->bytes_per_s == 0)) {
        return true;
    }
    struct api_tenant *x = api__tenant(s, who->name, t);
    if (x == NULL) {
        return true; /* no memory for the state: do not refuse for it */
    }
    uint64_t now = hd_now_us();
    double elapsed = now > x->refilled_us ? (double)(now - x->refilled_us) / 1e6 : 0;
    x->refilled_us = now;
    *retry_after_s = 0;
    bool ok_a = api__bucket(&x->appends, t->appends_per_s, elapsed, retry_after_s);
    bool ok_b = api__bucket(&x->bytes, t->bytes_per_s, elapsed, retry_after_s);
    if (!ok_a || !ok_b) {
        x->limited++;
        if (*retry_after_s == 0) {
            *retry_after_s = 1;
        }
        return false;
    }
    if (t->appends_per_s != 0) x->appends -= (double)n;
    if (t->bytes_per_s != 0) x->bytes -= (double)bytes;
    return true;
}

/* The slot of hash in the set: its own, or the empty one to take. */
static uint64_t *api__touched_slot(uint64_t *set, size_t cap, uint64_t hash)
{
    for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (set[i] == 0 || set[i] == hash) {
            return &set[i];
        }
    }
}

/* Doubles the set (or makes its first one); false when out of memory. */
static bool api__touched_grow(struct api_tenant *x)
{
    size_t cap = x->touched_cap ? 2 * x->touched_cap : 16;
    uint64_t *set = hd_calloc(cap, sizeof *set);
    if (set == NULL) {
        return false;
    }
    for (size_t i = 0; i < x->touched_cap; i++) {
        if (x->touched[i] != 0) {
            *api__touched_slot(set, cap, x->touched[i]) = x->touched[i];
        }
    }
    hd_free(x->touched);
    x->touched = set;
    x->touched_cap = cap;
    return true;
}

bool api_limit_channel(struct api_server *s, const struct api_principal *who,
                       const char *channel, size_t len, uint64_t *retry_after_s)
{
    const struct hd_token *t = api__limited_token(s, who);
    if (t == NULL || t->channels_per_s == 0) {
        return true;
    }
    struct api_tenant *x = api__tenant(s, who->name, t);
    if (x == NULL) {
        return true; /* no memory for the state: do not refuse for it */
    }
    uint64_t second = hd_now_us() / 1000000u;
    if (second != x->touched_second && x->touched_n > 0) {
        memset(x->touched, 0, x->touched_cap * sizeof *x->touched);
        x->touched_n = 0;
    }
    x->touched_second = second;
    uint64_t hash = hd_hash64(channel, len) | 1;
    if (x->touched_cap > 0 && *api__touched_slot(x->touched, x->touched_cap, hash) == hash) {
        return true; /* already touched this second */
    }
    if (x->touched_n >= t->channels_per_s) {
        x->limited++;
        *retry_after_s = 1;
        return false;
    }
    if (2 * (x->touched_n + 1) > x->touched_cap && !api__touched_grow(x)) {
        return true;
    }
    *api__touched_slot(x->touched, x->touched_cap, hash) = hash;
    x->touched_n++;
    return true;
}

bool api_limit_stream_open(struct api_server *s, const struct api_principal *who)
{
    const struct hd_token *t = api__limited_token(s, who);
    struct api_tenant *x = t != NULL ? api__tenant(s, who->name, t) : NULL;
    if (x == NULL) {
        return true;
    }
    if (t->streams_max != 0 && x->streams >= t->streams_max) {
        x->limited++;
        return false;
    }
    x->streams++;
    return true;
}

void api_limit_stream_closed(struct api_server *s, const struct api_principal *who)
{
    if (s->auth == NULL || who->name[0] == '\0') {
        return;
    }
    /* by name: the token may be gone or without limits since it opened */
    for (struct api_tenant *x = s->auth->tenants; x != NULL; x = x->next) {
        if (strcmp(x->name, who->name) == 0 && x->streams > 0) {
            x->streams--;
            return;
        }
    }
}

void api_limit_respond(struct api_server *s, struct api_http_conn *c, uint64_t retry_after_s,
                       const char *what)
{
    char headers[64], msg[160];
    snprintf(headers, sizeof headers, "Retry-After: %llu\r\n",
             (unsigned long long)retry_after_s);
    snprintf(msg, sizeof msg, "this token is over its %s limit; nothing was done", what);
    s->metrics.requests++;
    s->metrics.responses_by_class[4]++;
    api_http_respond_error(c, 429, "rate_limited", msg, headers);
}

void api_limit_metrics(struct api_server *s, void (*emit)(void *arg, const char *name,
                                                           uint64_t value),
                       void *arg)
{
    for (struct api_tenant *x = s->auth != NULL ? s->auth->tenants : NULL; x != NULL;
         x = x->next) {
        emit(arg, x->name, x->limited);
    }
}

void api_limit_free_all(struct api_tenant *list)
{
    while (list != NULL) {
        struct api_tenant *next = list->next;
        hd_free(list->touched);
        hd_free(list);
        list = next;
    }
}
