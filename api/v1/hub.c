/* SPDX-License-Identifier: Apache-2.0 */
/* The delivery hub: the fan-out engine and the list of delivery sessions. */
#include "api.h"
#include "delivery_parse.h"
#include "log.h"
#include "fanout.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"

struct api_hub {
    struct api_server *server;
    struct fan *fan;
    struct api_session *sessions;
    size_t n_sessions;
    uv_timer_t keepalive;
    bool closing;
};

int api_hub_init(struct api_hub **out, struct api_server *s)
{
    struct api_hub *h = hd_calloc(1, sizeof *h);
    if (h == NULL) {
        return HD_ENOMEM;
    }
    struct fan_limits limits = {0}; /* the engine's defaults */
    int rv = fan_init(&h->fan, s->loop, s->log, &limits);
    if (rv != 0) {
        hd_free(h);
        return rv;
    }
    h->server = s;
    uv_timer_init(s->loop, &h->keepalive);
    h->keepalive.data = h;
    *out = h;
    return 0;
}

static void api__hub_keepalive(uv_timer_t *t)
{
    struct api_hub *h = t->data;
    for (struct api_session *sess = h->sessions, *next; sess != NULL; sess = next) {
        next = sess->next;
        if (sess->keepalive != NULL) {
            sess->keepalive(sess);
        }
    }
}

void api_hub_add(struct api_hub *h, struct api_session *sess)
{
    HD_ASSERT(!h->closing && sess->shutdown != NULL);
    sess->hub = h;
    sess->prev = NULL;
    sess->next = h->sessions;
    if (h->sessions != NULL) h->sessions->prev = sess;
    h->sessions = sess;
    if (h->n_sessions++ == 0) {
        uint64_t every = h->server->config.tail_keepalive_ms;
        uv_timer_start(&h->keepalive, api__hub_keepalive, every, every);
    }
}

static void api__hub_free(uv_handle_t *handle)
{
    struct api_hub *h = handle->data;
    fan_close(h->fan);
    hd_free(h);
}

void api_hub_remove(struct api_hub *h, struct api_session *sess)
{
    HD_ASSERT(h->n_sessions > 0);
    if (sess->prev != NULL) sess->prev->next = sess->next;
    else h->sessions = sess->next;
    if (sess->next != NULL) sess->next->prev = sess->prev;
    sess->prev = sess->next = NULL;
    api_limit_stream_closed(h->server, &sess->who);
    if (--h->n_sessions == 0) {
        uv_timer_stop(&h->keepalive);
        if (h->closing) {
            uv_close((uv_handle_t *)&h->keepalive, api__hub_free);
        }
    }
}

void api_hub_commit(struct api_hub *h, const char *channel, size_t len,
                    const struct log_message *m)
{
    fan_on_commit(h->fan, channel, len, m);
}

void api_hub_command(struct api_hub *h, const char *channel, size_t len, bool deleted)
{
    fan_on_command(h->fan, channel, len, deleted);
}

void api_hub_restore(struct api_hub *h)
{
    fan_on_restore(h->fan);
}

struct fan *api_hub_fan(struct api_hub *h)
{
    return h->fan;
}

size_t api_hub_sessions(const struct api_hub *h)
{
    return h != NULL ? h->n_sessions : 0;
}

void api_hub_revoke(struct api_hub *h, struct api_server *s)
{
    struct api_session *sess = h->sessions;
    while (sess != NULL) {
        /* revoke removes only its own session */
        struct api_session *next = sess->next;
        if (sess->who.name[0] != '\0' &&
            hd_token_set_named(s->auth->set, sess->who.name) == NULL) {
            sess->revoke(sess);
        }
        sess = next;
    }
}

void api_hub_close(struct api_hub *h)
{
    h->closing = true;
    if (h->n_sessions == 0) {
        uv_close((uv_handle_t *)&h->keepalive, api__hub_free);
        return;
    }
    /* Each shutdown removes its session; the last removal frees the hub. */
    while (h->sessions != NULL) {
        struct api_session *sess = h->sessions;
        bool last = h->n_sessions == 1;
        sess->shutdown(sess);
        if (last) {
            return; /* h may be gone */
        }
    }
}

int api_position_resolve(struct api_server *s, const char *channel, size_t len,
                         const struct api_position *pos, uint64_t *after)
{
    switch (pos->kind) {
        case API_POS_SEQ:
            *after = pos->value;
            return 0;
        case API_POS_NOW:
            *after = FAN_NOW;
            return 0;
        case API_POS_TS:
            return log_seq_at_ts(s->log, channel, len, pos->value, after);
    }
    HD_ASSERT(false);
    return HD_EINVAL;
}
