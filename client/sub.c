/* SPDX-License-Identifier: Apache-2.0 */
/* libherald subscriptions: the channels and appends a struct herald_sub
 * keeps, what each server frame does to them, and resuming after a
 * reconnect. The connection itself is in sub_io.c. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_tls.h"
#include "hd_ids.h"
#include "sub_internal.h"

/* A subscribe frame carries at most this many channels, so that resuming
 * 100 000 channels never makes one frame near the server's size limit. */
#define SUB_FRAME_CHANNELS 1000

int herald__sub_fail(struct herald_sub *s, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return rv;
}

int herald__sub_event(struct herald_sub *s, const struct herald_sub_event *ev)
{
    if (s->on_event == NULL) return 0;
    int rv = s->on_event(s->arg, ev);
    if (rv != 0) s->stopped = true;
    return rv;
}

int herald_sub_open(struct herald_sub **out, const struct herald_client *c,
                    herald_message_cb on_message, herald_sub_event_cb on_event, void *arg)
{
    struct herald_sub *s = hd_calloc(1, sizeof *s);
    *out = s;
    if (s == NULL) return HD_ENOMEM;
    s->cfg = *c;
    s->cfg.fd = -1; /* the client's connection stays the client's */
    s->cfg.tls_conn = NULL;
    s->cfg.tls_ctx = NULL; /* loaded on the first connect, the subscription's own */
    s->on_message = on_message;
    s->on_event = on_event;
    s->arg = arg;
    s->fd = -1;
    s->dirty_tail = &s->dirty_head;
    s->held_tail = &s->held_head;
    s->max_frame = HERALD__SUB_FRAME_MAX;
    return 0;
}

static void chan_free_all(struct herald_sub *s)
{
    for (size_t i = 0; i < s->chans.nbuckets; i++) {
        while (s->chans.buckets[i] != NULL) {
            struct herald__snode *n = s->chans.buckets[i];
            herald__smap_del(&s->chans, n);
            if (!((struct herald__chan *)n)->dirty) hd_free(n);
        }
    }
    while (s->dirty_head != NULL) { /* dirty ones are freed from the list */
        struct herald__chan *ch = s->dirty_head;
        s->dirty_head = ch->dirty_next;
        hd_free(ch);
    }
    s->dirty_tail = &s->dirty_head;
    herald__smap_free(&s->chans);
}

void herald__sub_pending_done(struct herald_sub *s, struct herald__pending *p)
{
    herald__smap_del(&s->appends, &p->node);
    if (p->prev != NULL) p->prev->next = p->next; else s->app_head = p->next;
    if (p->next != NULL) p->next->prev = p->prev; else s->app_tail = p->prev;
    hd_free(p->frame);
    hd_free(p);
}

void herald_sub_close(struct herald_sub *s)
{
    if (s == NULL) return;
    herald__sub_reset_conn(s);
    hd_tls_ctx_free(s->cfg.tls_ctx);
    chan_free_all(s);
    while (s->app_head != NULL) herald__sub_pending_done(s, s->app_head);
    herald__smap_free(&s->appends);
    herald__buf_free(&s->io);
    herald__buf_free(&s->rest);
    herald__buf_free(&s->scratch);
    herald__buf_free(&s->out);
    hd_free(s);
}

const char *herald_sub_errmsg(const struct herald_sub *s)
{
    return s->errmsg;
}

/* ------------------------------------------------------------ channels */

static struct herald__chan *chan_get(const struct herald_sub *s, const char *name)
{
    return (struct herald__chan *)herald__smap_get(&s->chans, name, strlen(name));
}

static void chan_mark(struct herald_sub *s, struct herald__chan *ch)
{
    if (ch->dirty) return;
    ch->dirty = true;
    ch->dirty_next = NULL;
    *s->dirty_tail = ch;
    s->dirty_tail = &ch->dirty_next;
}

/* Forgets ch. One still in the to-send list is freed when the list is
 * flushed, so the list never holds freed memory. */
static void chan_delete(struct herald_sub *s, struct herald__chan *ch)
{
    herald__smap_del(&s->chans, &ch->node);
    if (ch->dirty) {
        ch->state = HERALD__CH_REMOVING;
        ch->node.key = NULL; /* marks it dead for the flush */
    } else {
        hd_free(ch);
    }
}

static int sub_add(struct herald_sub *s, const char *channel, uint64_t after_seq,
                   bool epoch_known, uint64_t epoch)
{
    if (channel == NULL || !hd_channel_valid(channel, strlen(channel))) {
        return herald__sub_fail(s, HD_EINVAL, "bad channel id (1-128 bytes of [A-Za-z0-9._:-])");
    }
    struct herald__chan *ch = chan_get(s, channel);
    if (ch != NULL) {
        bool going = ch->state == HERALD__CH_REMOVING || ch->state == HERALD__CH_REMOVE_SENT;
        return herald__sub_fail(s, going ? HD_EBUSY : HD_EEXIST, "channel %s is %s", channel,
                                going ? "being removed" : "already added");
    }
    size_t len = strlen(channel);
    ch = hd_calloc(1, sizeof *ch + len + 1);
    if (ch == NULL) return HD_ENOMEM;
    memcpy(ch->name, channel, len + 1);
    ch->node.key = ch->name;
    ch->node.key_len = len;
    ch->now = after_seq == HERALD_SUB_NOW;
    ch->last_seq = ch->now ? 0 : after_seq;
    ch->epoch_known = epoch_known;
    ch->epoch = epoch;
    ch->state = HERALD__CH_WANTED;
    if (herald__smap_put(&s->chans, &ch->node) != 0) {
        hd_free(ch);
        return HD_ENOMEM;
    }
    if (s->state == HERALD__S_OPEN) chan_mark(s, ch); /* else resume sends it */
    return 0;
}

int herald_sub_add(struct herald_sub *s, const char *channel, uint64_t after_seq)
{
    return sub_add(s, channel, after_seq, false, 0);
}

int herald_sub_add_epoch(struct herald_sub *s, const char *channel, uint64_t after_seq,
                         uint64_t epoch)
{
    if (after_seq == HERALD_SUB_NOW) {
        return herald__sub_fail(s, HD_EINVAL, "a position of an epoch is a seq, not now");
    }
    return sub_add(s, channel, after_seq, true, epoch);
}

int herald_sub_remove(struct herald_sub *s, const char *channel)
{
    struct herald__chan *ch = channel ? chan_get(s, channel) : NULL;
    if (ch == NULL || ch->state == HERALD__CH_REMOVING || ch->state == HERALD__CH_REMOVE_SENT) {
        return herald__sub_fail(s, HD_ENOTFOUND, "channel %s is not subscribed",
                                channel ? channel : "(null)");
    }
    if (s->state != HERALD__S_OPEN || ch->state == HERALD__CH_WANTED) {
        chan_delete(s, ch); /* the server never heard of it on this connection */
        return 0;
    }
    ch->state = HERALD__CH_REMOVING;
    chan_mark(s, ch);
    return 0;
}

int herald_sub_position(const struct herald_sub *s, const char *channel, uint64_t *last_seq)
{
    const struct herald__chan *ch = channel ? chan_get(s, channel) : NULL;
    if (ch == NULL || ch->state == HERALD__CH_REMOVING || ch->state == HERALD__CH_REMOVE_SENT) {
        return HD_ENOTFOUND;
    }
    *last_seq = ch->now ? HERALD_SUB_NOW : ch->last_seq;
    return 0;
}

int herald_sub_epoch(const struct herald_sub *s, const char *channel, uint64_t *epoch)
{
    uint64_t seq;
    int rv = herald_sub_position(s, channel, &seq);
    if (rv != 0) return rv;
    const struct herald__chan *ch = chan_get(s, channel);
    if (!ch->epoch_known) return HD_EBUSY;
    *epoch = ch->epoch;
    return 0;
}

size_t herald_sub_channel_count(const struct herald_sub *s)
{
    return s->chans.count;
}

/* ------------------------------------------------------ sending frames */

int herald__sub_queue(struct herald_sub *s, const char *text, size_t len)
{
    struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text,
                                  .msg_length = len};
    int rv = wslay_event_queue_msg(s->ws, &msg);
    if (rv == WSLAY_ERR_NOMEM) return HD_ENOMEM;
    return rv == 0 ? 0 : HD_EIO; /* closing: the frame goes again after reconnect */
}

/* Sends the frame being built in b (if it holds channels); b starts over. */
static int ops_send(struct herald_sub *s, struct herald__buf *b, int *count, bool sub)
{
    if (*count == 0) return 0;
    int rv = herald__buf_append(b, sub ? "}}" : "]}", 2);
    if (rv == 0) rv = herald__sub_queue(s, b->data, b->len);
    herald__buf_reset(b);
    *count = 0;
    return rv;
}

/* Adds one channel to the subscribe (sub) or unsubscribe frame being built
 * in b. Channel ids need no JSON escaping ([A-Za-z0-9._:-]). */
static int ops_add(struct herald_sub *s, struct herald__buf *b, int *count, bool sub,
                   const struct herald__chan *ch)
{
    int rv = 0;
    if (*count == 0) {
        rv = herald__buf_printf(b, "{\"type\":\"%s\",\"channels\":%s",
                                sub ? "subscribe" : "unsubscribe", sub ? "{" : "[");
    } else {
        rv = herald__buf_append(b, ",", 1);
    }
    if (rv == 0 && sub && ch->now) {
        rv = herald__buf_printf(b, "\"%s\":\"now\"", ch->name);
    } else if (rv == 0 && sub && ch->epoch_known) {
        /* A resume: a delete since then answers gone, not the new epoch
         * from this seq on. */
        rv = herald__buf_printf(b, "\"%s\":{\"after_seq\":%" PRIu64 ",\"epoch\":%" PRIu64 "}",
                                ch->name, ch->last_seq, ch->epoch);
    } else if (rv == 0 && sub) {
        rv = herald__buf_printf(b, "\"%s\":%" PRIu64, ch->name, ch->last_seq);
    } else if (rv == 0) {
        rv = herald__buf_printf(b, "\"%s\"", ch->name);
    }
    if (rv == 0 && ++*count == SUB_FRAME_CHANNELS) rv = ops_send(s, b, count, sub);
    return rv;
}

int herald__sub_flush_ops(struct herald_sub *s)
{
    struct herald__buf unsub = {0};
    int nsub = 0, nunsub = 0, rv = 0;
    herald__buf_reset(&s->out);
    while (rv == 0 && s->dirty_head != NULL) {
        struct herald__chan *ch = s->dirty_head;
        s->dirty_head = ch->dirty_next;
        if (s->dirty_head == NULL) s->dirty_tail = &s->dirty_head;
        ch->dirty = false;
        if (ch->node.key == NULL) { /* deleted while queued */
            hd_free(ch);
        } else if (ch->state == HERALD__CH_WANTED) {
            ch->state = HERALD__CH_SENT;
            rv = ops_add(s, &s->out, &nsub, true, ch);
        } else if (ch->state == HERALD__CH_REMOVING) {
            ch->state = HERALD__CH_REMOVE_SENT;
            rv = ops_add(s, &unsub, &nunsub, false, ch);
        }
    }
    if (rv == 0) rv = ops_send(s, &s->out, &nsub, true);
    if (rv == 0) rv = ops_send(s, &unsub, &nunsub, false);
    herald__buf_free(&unsub);
    return rv;
}

int herald__sub_resume(struct herald_sub *s)
{
    for (size_t i = 0; i < s->chans.nbuckets; i++) {
        struct herald__snode *n = s->chans.buckets[i];
        while (n != NULL) {
            struct herald__chan *ch = (struct herald__chan *)n;
            n = n->next;
            if (ch->state == HERALD__CH_REMOVING || ch->state == HERALD__CH_REMOVE_SENT) {
                chan_delete(s, ch); /* a new connection has nothing to leave */
                continue;
            }
            ch->state = HERALD__CH_WANTED;
            ch->ahead_retry_ms = 0; /* a new connection asks at once */
            chan_mark(s, ch);
        }
    }
    s->ahead_at_ms = 0;
    int rv = herald__sub_flush_ops(s);
    /* Appends follow the subscribes, in the order first sent: the server
     * dedups any that the lost connection had already written. */
    for (struct herald__pending *p = s->app_head; rv == 0 && p != NULL; p = p->next) {
        rv = herald__sub_queue(s, p->frame, p->frame_len);
    }
    return rv;
}

/* The node has not applied the delete that the position's epoch follows
 * (a follower behind the leader): the channel is asked for again after a
 * backoff, as a reconnect would be, until it is subscribed or removed. */
void herald__sub_wait_ahead(struct herald_sub *s, struct herald__chan *ch)
{
    HD_ASSERT(ch->state == HERALD__CH_SENT && !ch->dirty);
    ch->state = HERALD__CH_WANTED;
    ch->ahead_retry_ms = herald__now_ms() + herald__backoff_delay(&s->cfg, ch->ahead_tries);
    if (ch->ahead_tries < UINT8_MAX) ch->ahead_tries++;
    if (s->ahead_at_ms == 0 || ch->ahead_retry_ms < s->ahead_at_ms) {
        s->ahead_at_ms = ch->ahead_retry_ms;
    }
}

void herald__sub_ahead_due(struct herald_sub *s)
{
    int64_t now = herald__now_ms(), next = 0;
    if (s->ahead_at_ms == 0 || now < s->ahead_at_ms) return;
    for (size_t i = 0; i < s->chans.nbuckets; i++) {
        for (struct herald__snode *n = s->chans.buckets[i]; n != NULL; n = n->next) {
            struct herald__chan *ch = (struct herald__chan *)n;
            if (ch->ahead_retry_ms == 0) continue;
            if (ch->ahead_retry_ms <= now) {
                ch->ahead_retry_ms = 0;
                chan_mark(s, ch);
            } else if (next == 0 || ch->ahead_retry_ms < next) {
                next = ch->ahead_retry_ms;
            }
        }
    }
    s->ahead_at_ms = next;
}

/* ------------------------------------------------------------ appends */

int herald_sub_append(struct herald_sub *s, const char *id, const char *channel,
                      const void *payload, size_t len, const char *nonce)
{
    if (channel == NULL || !hd_channel_valid(channel, strlen(channel))) {
        return herald__sub_fail(s, HD_EINVAL, "bad channel id");
    }
    char gen_id[24], gen_nonce[HERALD_NONCE_HEX_LEN + 1];
    if (id == NULL) {
        snprintf(gen_id, sizeof gen_id, "a%" PRIu64, ++s->next_id);
        id = gen_id;
    }
    if (nonce == NULL) {
        int rv = herald_nonce_generate(gen_nonce, sizeof gen_nonce);
        if (rv != 0) return rv;
        nonce = gen_nonce;
    }
    size_t id_len = strlen(id);
    if (herald__smap_get(&s->appends, id, id_len) != NULL) {
        return herald__sub_fail(s, HD_EEXIST, "append id \"%.128s\" is in flight", id);
    }
    struct herald__buf frame = {0};
    int rv = herald__frame_append(&frame, id, channel, nonce, payload, len);
    if (rv != 0) {
        herald__buf_free(&frame);
        return herald__sub_fail(s, rv, "bad append id or nonce (1-128 bytes)");
    }
    struct herald__pending *p = hd_calloc(1, sizeof *p + id_len + 1);
    if (p != NULL) {
        memcpy(p->id, id, id_len + 1);
        p->node.key = p->id;
        p->node.key_len = id_len;
    }
    if (p == NULL || herald__smap_put(&s->appends, &p->node) != 0) {
        hd_free(p);
        herald__buf_free(&frame);
        return HD_ENOMEM;
    }
    snprintf(p->channel, sizeof p->channel, "%s", channel);
    snprintf(p->nonce, sizeof p->nonce, "%s", nonce);
    p->frame = frame.data;
    p->frame_len = frame.len;
    p->prev = s->app_tail;
    if (s->app_tail != NULL) s->app_tail->next = p; else s->app_head = p;
    s->app_tail = p;
    if (s->state == HERALD__S_OPEN) return herald__sub_queue(s, p->frame, p->frame_len);
    return 0;
}

size_t herald_sub_appends_in_flight(const struct herald_sub *s)
{
    return s->appends.count;
}

int herald_sub_ping(struct herald_sub *s, const char *id)
{
    if (s->state != HERALD__S_OPEN) return herald__sub_fail(s, HD_EUNAVAIL, "not connected");
    json_t *o = id ? json_pack("{s:s, s:s}", "type", "ping", "id", id)
                   : json_pack("{s:s}", "type", "ping");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) return HD_EINVAL;
    int rv = herald__sub_queue(s, text, strlen(text));
    free(text);
    return rv;
}
