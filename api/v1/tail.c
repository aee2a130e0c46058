/* SPDX-License-Identifier: Apache-2.0 */
/* SSE tails: history then live messages of a channel, resumable by seq. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "log.h"

/*
 * A tail never holds messages of its own: it remembers the last seq it sent
 * and reads everything after it from applied state. A commit only wakes it.
 * So the switch from history to live can neither skip nor repeat: both are
 * the same read from the same position. A tail whose client reads slowly
 * stops reading state above tail_queue_bytes_max unsent bytes and resumes on
 * DRAINED, so a slow consumer costs a bounded amount of memory.
 */

#define API_HUB_BUCKETS 4096u
#define API_TAIL_READ_MAX 256u   /* messages per pump */

struct api_tail {
    struct api_hub *hub;
    struct api_http_conn *conn;
    char channel[LOG_CHANNEL_MAX];
    size_t channel_len;
    uint64_t last_sent;          /* seq of the last event written */
    uint64_t bucket;
    bool closed;                 /* the client is gone */
    bool ready;                  /* on the ready list */
    struct api_tail *next;       /* in its bucket */
    struct api_tail *next_ready;
    uint64_t last_write_ms;      /* for keep-alive comments */
};

struct api_hub {
    struct api_server *server;
    struct api_tail *buckets[API_HUB_BUCKETS];
    struct api_tail *ready;      /* tails to pump at the end of this turn */
    uv_check_t pumper;
    uv_timer_t keepalive;
    size_t n_tails;
    unsigned open_handles;       /* while closing */
};

static void api__tail_mark_ready(struct api_tail *t)
{
    if (!t->ready) {
        t->ready = true;
        t->next_ready = t->hub->ready;
        t->hub->ready = t;
    }
}

void api_hub_notify(struct api_hub *h, const char *channel, size_t len, uint64_t seq)
{
    (void)seq;
    uint64_t hash = hd_hash64(channel, len);
    for (struct api_tail *t = h->buckets[hash % API_HUB_BUCKETS]; t != NULL; t = t->next) {
        if (t->bucket == hash && t->channel_len == len && memcmp(t->channel, channel, len) == 0) {
            api__tail_mark_ready(t);
        }
    }
}

size_t api_hub_tails(const struct api_hub *h) { return h != NULL ? h->n_tails : 0; }

static void api__tail_unlink(struct api_tail *t)
{
    struct api_hub *h = t->hub;
    struct api_tail **pp = &h->buckets[t->bucket % API_HUB_BUCKETS];
    while (*pp != t) {
        pp = &(*pp)->next;
    }
    *pp = t->next;
    for (pp = &h->ready; *pp != NULL; pp = &(*pp)->next_ready) {
        if (*pp == t) {
            *pp = t->next_ready;
            break;
        }
    }
    h->n_tails--;
}

static void api__tail_end(struct api_tail *t)
{
    api__tail_unlink(t);
    api_http_stream_end(t->conn);
    hd_free(t);
}

struct api_pump {
    struct api_tail *tail;
    int rv;
};

static int api__tail_event(void *arg, const struct log_message *m)
{
    struct api_pump *p = arg;
    struct api_tail *t = p->tail;
    json_t *j = api_message_json(t->channel, t->channel_len, m->seq, m->ts, m->nonce,
                                 m->nonce_len, m->payload, m->payload_len);
    char *data = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (data == NULL) {
        p->rv = HD_ENOMEM;
        return 1;
    }
    char head[64];
    int n = snprintf(head, sizeof head, "id: %llu\nevent: message\ndata: ",
                     (unsigned long long)m->seq);
    int rv = api_http_stream_write(t->conn, head, (size_t)n);
    if (rv == 0) rv = api_http_stream_write(t->conn, data, strlen(data));
    if (rv == 0) rv = api_http_stream_write(t->conn, "\n\n", 2);
    free(data);
    if (rv != 0) {
        p->rv = rv;
        return 1;
    }
    t->last_sent = m->seq;
    t->hub->server->metrics.tail_events++;
    /* Stop reading state while the socket has enough to chew on. */
    return api_http_stream_queued(t->conn) > t->hub->server->config.tail_queue_bytes_max;
}

/* Sends what the tail has not sent yet, within the queue budget. */
static void api__tail_pump(struct api_tail *t)
{
    struct api_server *s = t->hub->server;
    while (!t->closed && api_http_stream_queued(t->conn) <= s->config.tail_queue_bytes_max) {
        struct api_pump p = {t, 0};
        uint64_t before = t->last_sent, next;
        int rv = log_read(s->log, t->channel, t->channel_len, t->last_sent, API_TAIL_READ_MAX,
                          api__tail_event, &p, &next);
        if (rv == 0) rv = p.rv;
        if (rv != 0) {
            HD_LOG_WARN("tail of %.*s: %s; closing it", (int)t->channel_len, t->channel,
                        hd_strerror(rv));
            t->closed = true;
            break;
        }
        if (t->last_sent == before) {
            break; /* caught up: wait for a commit */
        }
        t->last_write_ms = uv_now(s->loop);
    }
}

static void api__hub_pump(uv_check_t *h)
{
    struct api_hub *hub = h->data;
    while (hub->ready != NULL) {
        struct api_tail *t = hub->ready;
        hub->ready = t->next_ready;
        t->ready = false;
        api__tail_pump(t);
        if (t->closed) {
            api__tail_end(t);
        }
    }
}

static void api__tail_stream_event(struct api_http_conn *c, int event, void *arg)
{
    struct api_tail *t = arg;
    (void)c;
    if (event == API_HTTP_STREAM_CLOSED) {
        t->closed = true;
    }
    api__tail_mark_ready(t); /* DRAINED: read on; CLOSED: end it */
}

static void api__hub_keepalive(uv_timer_t *timer)
{
    struct api_hub *h = timer->data;
    uint64_t now = uv_now(h->server->loop);
    for (unsigned i = 0; i < API_HUB_BUCKETS; i++) {
        for (struct api_tail *t = h->buckets[i]; t != NULL; t = t->next) {
            if (!t->closed && now - t->last_write_ms >= h->server->config.tail_keepalive_ms) {
                /* A comment line: keeps proxies from timing the stream out
                 * and lets us notice a vanished client. */
                if (api_http_stream_write(t->conn, ": keep-alive\n\n", 14) != 0) {
                    t->closed = true;
                    api__tail_mark_ready(t);
                }
                t->last_write_ms = now;
            }
        }
    }
}

/* Where the tail starts: Last-Event-ID (a reconnect) wins over the query. */
static int api__tail_start(struct api_server *s, const struct api_http_request *req,
                           const char *channel, size_t len, uint64_t *after, const char **bad)
{
    size_t id_len = 0;
    const char *id = api_http_header(req, "Last-Event-ID", &id_len);
    if (id != NULL) {
        *bad = "Last-Event-ID must be the seq of the last event received";
        return hd_u64_parse(id, id_len, after);
    }
    return api__read_position(s, req, channel, len, after, bad);
}

void api_tail(struct api_server *s, struct api_http_conn *c,
              const struct api_http_request *req, const char *channel, size_t len)
{
    uint64_t after = 0;
    const char *bad = NULL;
    int rv = api__tail_start(s, req, channel, len, &after, &bad);
    if (rv != 0) {
        api_respond_error(s, c, 400, "bad_query", bad);
        return;
    }
    struct api_tail *t = s->hub != NULL ? hd_calloc(1, sizeof *t) : NULL;
    if (t == NULL) {
        hd_free(t);
        api_respond_error(s, c, 503, "unavailable", "cannot start a tail now");
        return;
    }
    struct api_hub *h = s->hub;
    *t = (struct api_tail){.hub = h, .conn = c, .channel_len = len, .last_sent = after};
    memcpy(t->channel, channel, len);
    t->bucket = hd_hash64(channel, len);
    t->next = h->buckets[t->bucket % API_HUB_BUCKETS];
    h->buckets[t->bucket % API_HUB_BUCKETS] = t;
    h->n_tails++;
    t->last_write_ms = uv_now(s->loop);
    s->metrics.requests++;
    s->metrics.responses_by_class[2]++;
    rv = api_http_stream_begin(c, 200, "text/event-stream",
                               "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n",
                               api__tail_stream_event, t);
    if (rv != 0) {
        t->closed = true;
    }
    api__tail_mark_ready(t); /* history first, then whatever commits */
}

int api_hub_init(struct api_hub **out, struct api_server *s)
{
    struct api_hub *h = hd_calloc(1, sizeof *h);
    if (h == NULL) {
        return HD_ENOMEM;
    }
    h->server = s;
    uv_check_init(s->loop, &h->pumper);
    h->pumper.data = h;
    uv_check_start(&h->pumper, api__hub_pump);
    uv_timer_init(s->loop, &h->keepalive);
    h->keepalive.data = h;
    uint64_t every = s->config.tail_keepalive_ms / 3 + 1;
    uv_timer_start(&h->keepalive, api__hub_keepalive, every, every);
    *out = h;
    return 0;
}

static void api__hub_handle_closed(uv_handle_t *handle)
{
    struct api_hub *h = handle->data;
    if (--h->open_handles == 0) {
        hd_free(h);
    }
}

void api_hub_close(struct api_hub *h)
{
    for (unsigned i = 0; i < API_HUB_BUCKETS; i++) {
        while (h->buckets[i] != NULL) {
            api__tail_end(h->buckets[i]);
        }
    }
    h->open_handles = 2;
    uv_close((uv_handle_t *)&h->pumper, api__hub_handle_closed);
    uv_close((uv_handle_t *)&h->keepalive, api__hub_handle_closed);
}
