/* SPDX-License-Identifier: Apache-2.0 */
/* libherald subscriptions: what each server frame does. Every channel's
 * seqs are checked to be consecutive, since the contract promises each
 * message once and in order and a consumer must hear when it is broken. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "sub_internal.h"

static struct herald__chan *chan_of(struct herald_sub *s, const char *name)
{
    return name ? (struct herald__chan *)herald__smap_get(&s->chans, name, strlen(name)) : NULL;
}

static bool chan_leaving(const struct herald__chan *ch)
{
    return ch->state == HERALD__CH_REMOVING || ch->state == HERALD__CH_REMOVE_SENT;
}

static int on_message(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald__chan *ch = chan_of(s, f->channel);
    if (ch == NULL) {
        return herald__sub_fail(s, HD_ECORRUPT, "message of channel %s, not subscribed",
                                f->channel);
    }
    if (chan_leaving(ch)) return 0; /* removed: nothing more of it is delivered */
    uint64_t seq = f->msg.seq;
    /* A "now" start is known once "subscribed" gave the head; a message
     * before that (not expected) sets it. */
    if (!ch->now && seq != ch->last_seq + 1) {
        return herald__sub_fail(s, HD_ECORRUPT,
                                "channel %s: server sent seq %" PRIu64 " after %" PRIu64 " (%s)",
                                ch->name, seq, ch->last_seq,
                                seq > ch->last_seq ? "gap" : "repeat");
    }
    ch->now = false;
    ch->last_seq = seq;
    if (s->on_message(s->arg, &f->msg) != 0) s->stopped = true;
    return 0;
}

static int on_subscribed(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald__chan *ch = chan_of(s, f->channel);
    if (ch == NULL || chan_leaving(ch)) return 0; /* removed meanwhile */
    if (ch->state != HERALD__CH_SENT) {
        return herald__sub_fail(s, HD_ECORRUPT, "subscribed %s, which was not asked for",
                                f->channel);
    }
    ch->state = HERALD__CH_ACTIVE;
    ch->ahead_tries = 0;
    if (ch->now) {
        ch->now = false;
        ch->last_seq = f->seq;
    }
    if (f->has_epoch) { /* else what herald_sub_add_epoch said, if anything */
        ch->epoch_known = true;
        ch->epoch = f->epoch;
    }
    struct herald_sub_event ev = {.type = HERALD_SUB_SUBSCRIBED, .channel = ch->name,
                                  .seq = f->seq, .epoch = ch->epoch};
    herald__sub_event(s, &ev);
    return 0;
}

static int on_unsubscribed(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald__chan *ch = chan_of(s, f->channel);
    if (ch == NULL || ch->state != HERALD__CH_REMOVE_SENT) return 0;
    herald__smap_del(&s->chans, &ch->node);
    hd_free(ch); /* REMOVE_SENT means flushed: not in the to-send list */
    struct herald_sub_event ev = {.type = HERALD_SUB_UNSUBSCRIBED, .channel = f->channel};
    herald__sub_event(s, &ev);
    return 0;
}

/* The server ended a subscription (a trim passed it, or a delete): the
 * channel is forgotten, so a reconnect does not ask for it again, and the
 * user hears where it could go on. */
static int on_gone(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald__chan *ch = chan_of(s, f->channel);
    /* Being removed: the unsubscribe's answer forgets it. Queued to send:
     * this frame is of an earlier subscription. */
    if (ch == NULL || chan_leaving(ch) || ch->dirty) return 0;
    herald__smap_del(&s->chans, &ch->node);
    hd_free(ch);
    struct herald_sub_event ev = {.type = HERALD_SUB_GONE, .channel = f->channel,
                                  .seq = f->seq, .epoch = f->epoch};
    herald__sub_event(s, &ev);
    return 0;
}

static struct herald__pending *pending_of(struct herald_sub *s, const char *id)
{
    return id ? (struct herald__pending *)herald__smap_get(&s->appends, id, strlen(id)) : NULL;
}

static int on_ack(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald__pending *p = pending_of(s, f->id);
    if (p == NULL) return 0; /* not ours, or answered before a reconnect */
    struct herald_sub_event ev = {.type = HERALD_SUB_ACK, .channel = f->channel, .id = p->id,
                                  .nonce = p->nonce, .seq = f->seq, .ts_us = f->ts_us,
                                  .duplicate = f->duplicate};
    herald__sub_event(s, &ev);
    herald__sub_pending_done(s, p);
    return 0;
}

static int on_error(struct herald_sub *s, const struct herald__frame *f)
{
    struct herald_sub_event ev = {.type = HERALD_SUB_ERROR, .channel = f->channel, .id = f->id,
                                  .code = f->code, .message = f->message ? f->message : "",
                                  .rv = herald__frame_error_rv(f->code)};
    struct herald__pending *p = pending_of(s, f->id);
    struct herald__chan *ch = p == NULL ? chan_of(s, f->channel) : NULL;
    if (p != NULL) { /* an append's outcome */
        ev.channel = p->channel;
        ev.nonce = p->nonce;
        herald__sub_event(s, &ev);
        herald__sub_pending_done(s, p);
        return 0;
    }
    if (ch != NULL && ch->state == HERALD__CH_SENT && strcmp(f->code, "epoch_ahead") == 0) {
        /* Asked again after a wait; the user hears of it the first time. */
        if (ch->ahead_tries == 0) herald__sub_event(s, &ev);
        herald__sub_wait_ahead(s, ch);
        return 0;
    }
    herald__sub_event(s, &ev);
    if (ch == NULL) return 0;
    /* A refused subscribe leaves the channel unsubscribed, a refused
     * unsubscribe means it was not subscribed: either way it is gone. An
     * error about a channel that is subscribed (a duplicate subscribe we
     * never send) changes nothing. */
    if (ch->state == HERALD__CH_SENT && strcmp(f->code, "already_subscribed") != 0) {
        herald__smap_del(&s->chans, &ch->node);
        hd_free(ch);
    } else if (ch->state == HERALD__CH_REMOVE_SENT) {
        herald__smap_del(&s->chans, &ch->node);
        hd_free(ch);
    }
    return 0;
}

/* Keeps a frame that arrived after a callback stopped processing, for the
 * next herald_sub_process(). */
static int hold(struct herald_sub *s, const char *text, size_t len)
{
    struct herald__held *h = hd_malloc(sizeof *h + len);
    if (h == NULL) return herald__sub_fail(s, HD_ENOMEM, "out of memory");
    h->next = NULL;
    h->len = len;
    memcpy(h->text, text, len);
    *s->held_tail = h;
    s->held_tail = &h->next;
    return 0;
}

int herald__sub_on_text(struct herald_sub *s, const char *text, size_t len)
{
    if (s->err != 0) return s->err;
    if (s->stopped) return s->err = hold(s, text, len);
    struct herald__frame f;
    char why[256];
    int rv = herald__frame_decode(text, len, &s->scratch, &f, why, sizeof why);
    if (rv != 0) {
        herald__sub_fail(s, rv, "bad frame from the server: %s", why);
    } else {
        switch (f.type) {
        case HERALD__F_MESSAGE: rv = on_message(s, &f); break;
        case HERALD__F_SUBSCRIBED: rv = on_subscribed(s, &f); break;
        case HERALD__F_UNSUBSCRIBED: rv = on_unsubscribed(s, &f); break;
        case HERALD__F_ACK: rv = on_ack(s, &f); break;
        case HERALD__F_ERROR: rv = on_error(s, &f); break;
        case HERALD__F_PONG: {
            struct herald_sub_event ev = {.type = HERALD_SUB_PONG, .id = f.id};
            herald__sub_event(s, &ev);
            break;
        }
        case HERALD__F_CLOSING: {
            struct herald_sub_event ev = {.type = HERALD_SUB_CLOSING, .code = f.code,
                                          .message = f.message ? f.message : ""};
            herald__sub_event(s, &ev);
            break;
        }
        case HERALD__F_GONE: rv = on_gone(s, &f); break;
        case HERALD__F_UNKNOWN: break; /* newer server: not for us */
        }
    }
    herald__frame_free(&f);
    s->err = rv;
    return rv;
}
