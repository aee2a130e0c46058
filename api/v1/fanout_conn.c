/* SPDX-License-Identifier: Apache-2.0 */
/* Delivery connections of the fan-out engine: subscribers, catch-up, batched writes. */
#include <stdio.h>
#include <string.h>

#include "fanout_internal.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

#define FAN__CATCHUP_PAGE 64u     /* messages per subscriber per round */
#define FAN__IOV_STACK 64u
/* A write round stops after this long (checked every 32 connections), so
 * that a loop turn with many connections to write still gets back to
 * appends soon; what is left is written first in the next turn, with
 * whatever committed in between. */
#define FAN__ROUND_NS 1000000u
#define FAN__KEEP_SLOTS 256u      /* frame slots kept between turns */
#define FAN__KEEP_ID_BYTES 65536u /* id-line bytes kept between turns */

/* One queued frame: a shared message (a reference) or the owner's bytes. */
struct fan_out {
    struct fan_msg *msg;
    uint8_t *own;
    const uint8_t *base;
    size_t len;
    uint32_t id_off, id_len;      /* multi-SSE: its id line in conn->ids */
};

struct fan_conn {
    struct fan *f;
    struct api_http_conn *http;
    struct fan_conn_ops ops;
    void *arg;
    struct fan_conn *dirty_next;
    struct fan_conn *linger_next;
    bool dirty;                   /* in f->dirty */
    bool lingering;               /* in f->lingering */
    bool urgent;                  /* holds a frame of the owner's: no linger */
    uint64_t written_ns;          /* its last write (uv_hrtime) */
    uint64_t gap_ns;              /* between its last two writes */
    size_t last_frames;           /* frames its last write carried */
    bool overflowed;              /* over the hard bound: tell the owner */
    int error;                    /* catch-up failed: tell the owner */
    struct fan_out *out;          /* this turn's frames, in order */
    size_t n_out, cap_out, out_bytes;
    char *ids;                    /* multi-SSE id lines of this turn */
    size_t ids_len, ids_cap;
    struct fan_sub *behind, *behind_tail;
    struct fan_sub **moved;       /* multi-SSE: subscribers whose last != start */
    size_t n_moved, cap_moved;
    struct fan_sub **table;       /* subscribers by channel, chained */
    size_t n_subs, table_cap;
};

static size_t fan__pending(const struct fan_conn *fc)
{
    return fc->out_bytes + api_http_stream_queued(fc->http);
}

void fan__mark_dirty(struct fan_conn *fc)
{
    struct fan *f = fc->f;
    if (!fc->dirty) {
        fc->dirty = true;
        fc->dirty_next = NULL;
        if (f->dirty_tail != NULL) f->dirty_tail->dirty_next = fc;
        else f->dirty = fc;
        f->dirty_tail = fc;
    }
}

/* ---- The queue of frames ------------------------------------------ */

static struct fan_out *fan__out_slot(struct fan_conn *fc)
{
    if (fc->n_out == fc->cap_out) {
        size_t cap = fc->cap_out ? fc->cap_out * 2 : 16;
        struct fan_out *o = hd_realloc(fc->out, cap * sizeof *o);
        if (o == NULL) {
            return NULL;
        }
        fc->out = o;
        fc->cap_out = cap;
    }
    struct fan_out *o = &fc->out[fc->n_out];
    *o = (struct fan_out){0};
    return o;
}

/* "id: 0:12,3:57@1\n": the position of every subscriber that moved. */
static int fan__id_line(struct fan_conn *fc, struct fan_out *o)
{
    size_t need = 8 + fc->n_moved * (12 + FAN_SSE_POSITION_MAX);
    if (fc->ids_len + need > fc->ids_cap) {
        size_t cap = (fc->ids_len + need) * 2;
        char *p = hd_realloc(fc->ids, cap);
        if (p == NULL) {
            return HD_ENOMEM;
        }
        fc->ids = p;
        fc->ids_cap = cap;
    }
    char *w = fc->ids + fc->ids_len;
    size_t n = 0;
    memcpy(w, "id: ", 4);
    n = 4;
    for (size_t i = 0; i < fc->n_moved; i++) {
        const struct fan_sub *s = fc->moved[i];
        char pos[FAN_SSE_POSITION_MAX];
        fan_sse_position(pos, sizeof pos, s->last, s->epoch);
        n += (size_t)snprintf(w + n, 12 + FAN_SSE_POSITION_MAX, "%s%u:%s", i > 0 ? "," : "",
                              s->index, pos);
    }
    w[n++] = '\n';
    HD_ASSERT(n <= need);
    o->id_off = (uint32_t)fc->ids_len;
    o->id_len = (uint32_t)n;
    fc->ids_len += n;
    fc->out_bytes += n;
    return 0;
}

static int fan__note_moved(struct fan_conn *fc, struct fan_sub *s)
{
    if (s->moved) {
        return 0;
    }
    if (fc->n_moved == fc->cap_moved) {
        size_t cap = fc->cap_moved ? fc->cap_moved * 2 : 8;
        struct fan_sub **m = hd_realloc(fc->moved, cap * sizeof *m);
        if (m == NULL) {
            return HD_ENOMEM;
        }
        fc->moved = m;
        fc->cap_moved = cap;
    }
    fc->moved[fc->n_moved++] = s;
    s->moved = true;
    return 0;
}

/* Queues msg for s and advances s. */
static int fan__enqueue(struct fan_sub *s, struct fan_msg *msg)
{
    struct fan_conn *fc = s->conn;
    HD_ASSERT(msg->seq == s->last + 1);
    size_t len = 0;
    const uint8_t *bytes = fan__msg_enc(msg, fc->ops.enc, &len);
    struct fan_out *o = bytes != NULL ? fan__out_slot(fc) : NULL;
    if (o == NULL) {
        return HD_ENOMEM;
    }
    uint64_t before = s->last;
    s->last = msg->seq;
    if (fc->ops.sse_ids &&
        ((s->last != s->start && fan__note_moved(fc, s) != 0) || fan__id_line(fc, o) != 0)) {
        s->last = before;
        return HD_ENOMEM;
    }
    o->msg = msg;
    o->base = bytes;
    o->len = len;
    msg->refs++;
    fc->n_out++;
    fc->out_bytes += len;
    fan__mark_dirty(fc);
    return 0;
}

int fan_conn_write(struct fan_conn *fc, uint8_t *buf, size_t len)
{
    struct fan_out *o = fan__out_slot(fc);
    if (o == NULL) {
        hd_free(buf);
        return HD_ENOMEM;
    }
    *o = (struct fan_out){.own = buf, .base = buf, .len = len};
    fc->n_out++;
    fc->out_bytes += len;
    fc->urgent = true;
    if (fan__pending(fc) > fc->f->limits.conn_hard_bytes) {
        fc->overflowed = true;
    }
    fan__mark_dirty(fc);
    return 0;
}

int fan_conn_write_ids(struct fan_conn *fc)
{
    HD_ASSERT(fc->ops.sse_ids);
    struct fan_out *o = fan__out_slot(fc);
    uint8_t *nl = o != NULL ? hd_malloc(1) : NULL;
    if (nl == NULL || fan__id_line(fc, o) != 0) {
        hd_free(nl);
        return HD_ENOMEM;
    }
    nl[0] = '\n';
    o->own = nl;
    o->base = nl;
    o->len = 1;
    fc->n_out++;
    fc->out_bytes += 1;
    fc->urgent = true;
    fan__mark_dirty(fc);
    return 0;
}

static void fan__out_unref(struct fan_out *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i].msg != NULL) {
            fan__msg_unref(out[i].msg);
        }
        hd_free(out[i].own);
    }
}

/* Empties the queue; what it held was released or handed on. */
static void fan__out_reset(struct fan_conn *fc)
{
    fc->n_out = 0;
    fc->out_bytes = 0;
    fc->ids_len = 0;
    /* A burst (thousands of "subscribed" frames) must not pin its arrays:
     * an idle connection should cost little. */
    if (fc->cap_out > FAN__KEEP_SLOTS) {
        hd_free(fc->out);
        fc->out = NULL;
        fc->cap_out = 0;
    }
    if (fc->ids_cap > FAN__KEEP_ID_BYTES) {
        hd_free(fc->ids);
        fc->ids = NULL;
        fc->ids_cap = 0;
    }
}

/* One write's frames, held (references, the owner's buffers, the id
 * lines) until the socket has them: the server's writer thread may write
 * them after this turn. */
struct fan_write {
    size_t n_out;
    char *ids;
    struct fan_out out[];
};

static void fan__write_release(void *arg)
{
    struct fan_write *w = arg;
    fan__out_unref(w->out, w->n_out);
    hd_free(w);
}

/* The write of this turn's frames, taking them over; NULL on allocation
 * failure. */
static struct fan_write *fan__write_new(struct fan_conn *fc)
{
    size_t out_bytes = fc->n_out * sizeof(struct fan_out);
    struct fan_write *w = hd_malloc(sizeof *w + out_bytes + fc->ids_len);
    if (w == NULL) {
        return NULL;
    }
    w->n_out = fc->n_out;
    memcpy(w->out, fc->out, out_bytes);
    w->ids = (char *)w->out + out_bytes;
    if (fc->ids_len > 0) {
        memcpy(w->ids, fc->ids, fc->ids_len);
    }
    return w;
}

void fan_conn_flush(struct fan_conn *fc)
{
    if (fc->n_out == 0) {
        return;
    }
    size_t n_bufs = fc->n_out * (fc->ops.sse_ids ? 2 : 1);
    uv_buf_t stack[FAN__IOV_STACK];
    uv_buf_t *bufs = n_bufs <= FAN__IOV_STACK ? stack : hd_malloc(n_bufs * sizeof *bufs);
    /* The frames are handed over (held until written) only to a writer
     * thread; otherwise the socket takes them now, or the server copies
     * the rest, and they are released at once. */
    bool lend = api_http_stream_lends(fc->http);
    struct fan_write *w = bufs != NULL && lend ? fan__write_new(fc) : NULL;
    if (bufs == NULL || (lend && w == NULL)) {
        fan__out_unref(fc->out, fc->n_out);
        fc->overflowed = true; /* cannot write: let the owner close */
    } else {
        const struct fan_out *out = w != NULL ? w->out : fc->out;
        const char *ids = w != NULL ? w->ids : fc->ids;
        size_t k = 0;
        for (size_t i = 0; i < fc->n_out; i++) {
            if (out[i].id_len > 0) {
                bufs[k++] = uv_buf_init((char *)(uintptr_t)ids + out[i].id_off, out[i].id_len);
            }
            bufs[k++] = uv_buf_init((char *)(uintptr_t)out[i].base, (unsigned)out[i].len);
        }
        /* A failure means the connection is gone: its owner hears CLOSED. */
        if (w != NULL) {
            (void)api_http_stream_writev_lent(fc->http, bufs, (unsigned)k, fan__write_release, w);
        } else {
            (void)api_http_stream_writev(fc->http, bufs, (unsigned)k);
            fan__out_unref(fc->out, fc->n_out);
        }
    }
    if (bufs != stack) {
        hd_free(bufs);
    }
    uint64_t now = uv_hrtime();
    fc->f->stats.writes++;
    fc->gap_ns = now - fc->written_ns;
    fc->written_ns = now;
    fc->last_frames = fc->n_out;
    fc->urgent = false;
    fan__out_reset(fc);
}

/* ---- Subscribers --------------------------------------------------- */

static void fan__behind_push(struct fan_conn *fc, struct fan_sub *s)
{
    s->live = false;
    s->next = NULL;
    s->prev = fc->behind_tail;
    if (fc->behind_tail != NULL) fc->behind_tail->next = s;
    else fc->behind = s;
    fc->behind_tail = s;
}

static void fan__behind_unlink(struct fan_conn *fc, struct fan_sub *s)
{
    if (s->prev != NULL) s->prev->next = s->next;
    else fc->behind = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    else fc->behind_tail = s->prev;
    s->prev = s->next = NULL;
}

static void fan__live_unlink(struct fan_sub *s)
{
    struct fan_channel *ch = s->ch;
    if (s->prev != NULL) s->prev->next = s->next;
    else ch->live = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void fan__join_live(struct fan_sub *s)
{
    fan__behind_unlink(s->conn, s);
    s->live = true;
    s->prev = NULL;
    s->next = s->ch->live;
    if (s->ch->live != NULL) s->ch->live->prev = s;
    s->ch->live = s;
}

void fan__fall_behind(struct fan_sub *s)
{
    HD_ASSERT(s->live);
    fan__live_unlink(s);
    fan__behind_push(s->conn, s);
    s->conn->f->stats.fell_behind++;
    fan__mark_dirty(s->conn);
}

void fan__deliver_live(struct fan_sub *s, struct fan_msg *msg)
{
    struct fan_conn *fc = s->conn;
    if (msg->seq <= s->last) {
        return; /* the client has it already (it subscribed ahead of this node) */
    }
    if (msg->seq != s->last + 1 || fan__pending(fc) > fc->f->limits.conn_soft_bytes ||
        fan__enqueue(s, msg) != 0) {
        fan__fall_behind(s);
        return;
    }
    fc->f->stats.deliveries_live++;
}

static struct fan_sub **fan__slot(struct fan_conn *fc, const struct fan_channel *ch)
{
    uintptr_t h = (uintptr_t)ch->hash;
    struct fan_sub **pp = &fc->table[h & (fc->table_cap - 1)];
    while (*pp != NULL && (*pp)->ch != ch) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

static int fan__table_grow(struct fan_conn *fc)
{
    size_t cap = fc->table_cap ? fc->table_cap * 2 : 8;
    struct fan_sub **t = hd_calloc(cap, sizeof *t);
    if (t == NULL) {
        return HD_ENOMEM;
    }
    for (size_t i = 0; i < fc->table_cap; i++) {
        for (struct fan_sub *s = fc->table[i], *next; s != NULL; s = next) {
            next = s->hnext;
            s->hnext = t[s->ch->hash & (cap - 1)];
            t[s->ch->hash & (cap - 1)] = s;
        }
    }
    hd_free(fc->table);
    fc->table = t;
    fc->table_cap = cap;
    return 0;
}

int fan_conn_subscribe(struct fan_conn *fc, const char *channel, size_t len, uint64_t after,
                       uint64_t epoch, uint64_t listed, uint32_t index, uint64_t *head)
{
    struct fan *f = fc->f;
    if (fc->n_subs >= f->limits.conn_subs_max || f->stats.subs >= f->limits.subs_max) {
        f->stats.subs_refused++;
        return HD_ERANGE;
    }
    if (fc->n_subs >= fc->table_cap && fan__table_grow(fc) != 0) {
        return HD_ENOMEM;
    }
    struct fan_channel *ch = fan__channel_get(f, channel, len, true);
    if (ch == NULL) {
        return HD_ENOMEM;
    }
    struct fan_sub **slot = fan__slot(fc, ch);
    if (*slot != NULL) {
        return HD_EEXIST;
    }
    struct fan_sub *s = hd_calloc(1, sizeof *s);
    if (s == NULL) {
        fan__channel_maybe_free(f, ch);
        return HD_ENOMEM;
    }
    s->conn = fc;
    s->ch = ch;
    s->epoch = epoch == FAN_NOW ? ch->epoch : epoch;
    s->last = after == FAN_NOW ? ch->head : after;
    s->start = listed;
    s->index = index;
    if (fc->ops.sse_ids && s->last != s->start && fan__note_moved(fc, s) != 0) {
        hd_free(s);
        fan__channel_maybe_free(f, ch);
        return HD_ENOMEM;
    }
    *slot = s;
    fc->n_subs++;
    ch->n_subs++;
    f->stats.subs++;
    fan__behind_push(fc, s); /* the next turn catches it up, then it goes live */
    fan__mark_dirty(fc);
    *head = ch->head;
    return 0;
}

static void fan__sub_drop(struct fan_conn *fc, struct fan_sub *s)
{
    struct fan_channel *ch = s->ch;
    if (s->live) {
        fan__live_unlink(s);
    } else if (!s->gone) {
        fan__behind_unlink(fc, s);
    }
    HD_ASSERT(ch->n_subs > 0 && fc->n_subs > 0);
    if (--ch->n_subs == 0) {
        ch->idle_since_ms = uv_now(fc->f->loop);
    }
    fc->n_subs--;
    fc->f->stats.subs--;
    fan__channel_maybe_free(fc->f, ch);
    hd_free(s);
}

int fan_conn_unsubscribe(struct fan_conn *fc, const char *channel, size_t len)
{
    struct fan_channel *ch = fan__channel_get(fc->f, channel, len, false);
    struct fan_sub **slot = ch != NULL && fc->table_cap > 0 ? fan__slot(fc, ch) : NULL;
    if (slot == NULL || *slot == NULL) {
        return HD_ENOTFOUND;
    }
    struct fan_sub *s = *slot;
    *slot = s->hnext;
    HD_ASSERT(!s->moved); /* multi-SSE streams never unsubscribe */
    fan__sub_drop(fc, s);
    return 0;
}

size_t fan_conn_subs(const struct fan_conn *fc)
{
    return fc->n_subs;
}

/* ---- Catch-up ------------------------------------------------------ */

struct fan__read {
    struct fan_sub *s;
    int rv;
};

static int fan__on_read(void *arg, const struct log_message *m)
{
    struct fan__read *r = arg;
    struct fan_sub *s = r->s;
    if (m->seq != s->last + 1) {
        r->rv = HD_ECORRUPT;
        return 1;
    }
    struct fan_msg *msg = fan__msg_new(s->ch, m);
    if (msg == NULL || fan__enqueue(s, msg) != 0) {
        r->rv = HD_ENOMEM;
    }
    if (msg != NULL) {
        fan__msg_unref(msg);
    }
    if (m->seq > s->ch->head) {
        s->ch->head = m->seq; /* state moved without commits (a snapshot) */
    }
    /* A page is counted in messages, and messages can be megabytes: the
     * connection's soft bound ends the page too. */
    return r->rv != 0 || fan__pending(s->conn) > s->conn->f->limits.conn_soft_bytes;
}

/* Moves s forward by up to a page; 1 if it joined the live group. */
static int fan__catch_up(struct fan_sub *s)
{
    struct fan_conn *fc = s->conn;
    struct fan *f = fc->f;
    if (s->epoch != s->ch->epoch) {
        return HD_EGONE; /* its positions are of another epoch */
    }
    for (unsigned k = 0; k < FAN__CATCHUP_PAGE; k++) {
        if (s->last >= s->ch->head) {
            fan__join_live(s);
            return 1;
        }
        struct fan_msg *m = fan__window_get(s->ch, s->last + 1);
        if (m == NULL) {
            break;
        }
        if (fan__enqueue(s, m) != 0) {
            return HD_ENOMEM;
        }
        f->stats.deliveries_catchup++;
        f->stats.catchup_window++;
        if (fan__pending(fc) > f->limits.conn_soft_bytes) {
            return 0; /* the rest of the page next round */
        }
    }
    if (s->last >= s->ch->head) {
        fan__join_live(s);
        return 1;
    }
    if (fan__window_get(s->ch, s->last + 1) != NULL) {
        return 0; /* a page from the window; more next round */
    }
    struct fan__read r = {s, 0};
    uint64_t before = s->last, next = 0;
    int rv = log_read(f->log, s->ch->id, s->ch->len, s->last, FAN__CATCHUP_PAGE, fan__on_read,
                      &r, &next);
    rv = rv != 0 ? rv : r.rv;
    if (rv != 0) {
        return rv;
    }
    f->stats.deliveries_catchup += s->last - before;
    f->stats.catchup_state += s->last - before;
    if (s->last == before) {
        /* State has nothing after last although the head says otherwise:
         * the head came from a commit this node has not ... */
        HD_LOG_WARN("fanout: %.*s: nothing after seq %llu in state, head %llu",
                    (int)s->ch->len, s->ch->id, (unsigned long long)s->last,
                    (unsigned long long)s->ch->head);
        fan__join_live(s);
        return 1;
    }
    return 0;
}

/* Ends s, whose catch-up found its next message trimmed or its channel
 * deleted: the owner hears of it, and it leaves the connection (a
 * multi-SSE stream keeps it, ended, for its ids). 0, or the owner's error. */
static int fan__sub_gone(struct fan_conn *fc, struct fan_sub *s)
{
    fan__behind_unlink(fc, s);
    s->gone = true;
    fc->f->stats.gone++;
    int rv = fc->ops.on_gone(fc, s->ch->id, s->ch->len, fc->arg);
    if (!fc->ops.sse_ids) {
        struct fan_sub **slot = fan__slot(fc, s->ch);
        HD_ASSERT(*slot == s);
        *slot = s->hnext;
        fan__sub_drop(fc, s);
    }
    return rv;
}

/* Round-robin over the subscribers behind while the connection has room. */
static void fan__pump(struct fan_conn *fc)
{
    size_t soft = fc->f->limits.conn_soft_bytes;
    while (fc->behind != NULL && fan__pending(fc) <= soft) {
        struct fan_sub *s = fc->behind;
        int rv = fan__catch_up(s);
        if (rv == HD_EGONE) {
            rv = fan__sub_gone(fc, s); /* s may be freed */
            if (rv == 0) {
                continue;
            }
            fc->error = rv;
            return;
        }
        if (rv < 0) {
            HD_LOG_WARN("fanout: catch-up of %.*s: %s", (int)s->ch->len, s->ch->id,
                        hd_strerror(rv));
            fc->error = rv;
            return;
        }
        if (rv == 0 && fc->behind == s && s->next != NULL) {
            fan__behind_unlink(fc, s); /* to the back of the line */
            fan__behind_push(fc, s);
        }
    }
}

static struct fan_conn *fan__dirty_pop(struct fan *f)
{
    struct fan_conn *fc = f->dirty;
    f->dirty = fc->dirty_next;
    if (f->dirty == NULL) {
        f->dirty_tail = NULL;
    }
    fc->dirty_next = NULL;
    fc->dirty = false;
    return fc;
}

/* One connection's turn: catch up, write, tell the owner what went wrong. */
static void fan__run_one(struct fan *f, struct fan_conn *fc)
{
    fan__pump(fc);
    fan_conn_flush(fc);
    if (fc->overflowed) {
        f->stats.slow_closed++;
        fc->overflowed = false;
        fc->ops.on_overflow(fc, fc->arg); /* the owner may free fc */
        return;
    }
    if (fc->error != 0) {
        int rv = fc->error;
        fc->error = 0;
        fc->ops.on_error(fc, rv, fc->arg); /* the owner may free fc */
        return;
    }
    if (fc->behind != NULL && api_http_stream_queued(fc->http) == 0) {
        fan__mark_dirty(fc); /* the socket took it all: go on next turn */
    }
}

/* ---- Linger -------------------------------------------------------- */

static void fan__linger_push(struct fan *f, struct fan_conn *fc)
{
    fc->lingering = true;
    fc->linger_next = NULL;
    if (f->lingering_tail != NULL) f->lingering_tail->linger_next = fc;
    else f->lingering = fc;
    f->lingering_tail = fc;
}

static void fan__linger_unlink(struct fan *f, struct fan_conn *fc)
{
    struct fan_conn *prev = NULL;
    for (struct fan_conn *it = f->lingering; it != NULL; prev = it, it = it->linger_next) {
        if (it == fc) {
            if (prev != NULL) prev->linger_next = fc->linger_next;
            else f->lingering = fc->linger_next;
            if (f->lingering_tail == fc) f->lingering_tail = prev;
            break;
        }
    }
    fc->lingering = false;
}

static void fan__on_linger_timer(uv_timer_t *t)
{
    fan__linger_release(t->data); /* the check phase of this turn writes them */
}

void fan__linger_release(struct fan *f)
{
    uint64_t now = uv_hrtime();
    /* In the order they were written, so the first not due ends the walk. */
    while (f->lingering != NULL && now - f->lingering->written_ns >= f->linger_ns) {
        struct fan_conn *fc = f->lingering;
        f->lingering = fc->linger_next;
        if (f->lingering == NULL) f->lingering_tail = NULL;
        fc->lingering = false;
        if (fc->n_out > 0 || fc->behind != NULL) {
            fan__mark_dirty(fc);
        }
    }
    if (f->lingering != NULL) {
        uint64_t wait_ns = f->lingering->written_ns + f->linger_ns - now;
        uv_timer_start(&f->linger_timer, fan__on_linger_timer, (wait_ns + 999999) / 1000000, 0);
    }
}

/* A connection written less than the linger ago waits for its time, unless
 * the owner has a frame for it, or its messages come too seldom for a wait
 * to gather another (its last write's frames over the gap before it: fewer
 * than one per linger). Its time is kept by the linger list. */
static bool fan__should_linger(struct fan *f, struct fan_conn *fc, uint64_t now)
{
    if (f->linger_ns == 0 || fc->urgent || now - fc->written_ns >= f->linger_ns ||
        (double)fc->last_frames * (double)f->linger_ns < (double)fc->gap_ns) {
        return false;
    }
    if (!fc->lingering) {
        fan__linger_push(f, fc);
        if (!uv_is_active((uv_handle_t *)&f->linger_timer)) {
            fan__linger_release(f); /* starts the timer */
        }
    }
    return true;
}

void fan__run_dirty(struct fan *f)
{
    /* One round: the connections dirty now, in the order they became so,
     * for at most FAN__ROUND_NS; the rest go first next turn. Connections
     * marked during the round (catch-up going on) wait for the next. */
    struct fan_conn *last = f->dirty_tail;
    uint64_t start = uv_hrtime();
    unsigned done = 0;
    while (f->dirty != NULL) {
        struct fan_conn *fc = fan__dirty_pop(f);
        bool end = fc == last;
        if (!fan__should_linger(f, fc, start)) {
            fan__run_one(f, fc); /* may free fc */
        }
        if (end || (++done % 32 == 0 && uv_hrtime() - start > FAN__ROUND_NS)) {
            break;
        }
    }
}

void fan_conn_drained(struct fan_conn *fc)
{
    if (fc->behind != NULL) {
        fan__mark_dirty(fc);
    }
}

/* ---- Lifetime ------------------------------------------------------ */

struct fan_conn *fan_conn_new(struct fan *f, struct api_http_conn *http,
                              const struct fan_conn_ops *ops, void *arg)
{
    HD_ASSERT(ops->on_overflow != NULL && ops->on_error != NULL && ops->enc < FAN_ENC_N);
    struct fan_conn *fc = hd_calloc(1, sizeof *fc);
    if (fc == NULL) {
        return NULL;
    }
    fc->f = f;
    fc->http = http;
    fc->ops = *ops;
    fc->arg = arg;
    f->stats.conns++;
    return fc;
}

void fan_conn_free(struct fan_conn *fc)
{
    struct fan *f = fc->f;
    struct fan_conn *prev = NULL;
    for (struct fan_conn *it = f->dirty; fc->dirty && it != NULL; prev = it, it = it->dirty_next) {
        if (it == fc) {
            if (prev != NULL) prev->dirty_next = fc->dirty_next;
            else f->dirty = fc->dirty_next;
            if (f->dirty_tail == fc) f->dirty_tail = prev;
            break;
        }
    }
    if (fc->lingering) {
        fan__linger_unlink(f, fc);
    }
    for (size_t i = 0; i < fc->table_cap; i++) {
        while (fc->table[i] != NULL) {
            struct fan_sub *s = fc->table[i];
            fc->table[i] = s->hnext;
            fan__sub_drop(fc, s);
        }
    }
    HD_ASSERT(fc->n_subs == 0 && fc->behind == NULL);
    fan__out_unref(fc->out, fc->n_out);
    fan__out_reset(fc);
    hd_free(fc->out);
    hd_free(fc->ids);
    hd_free(fc->moved);
    hd_free(fc->table);
    f->stats.conns--;
    hd_free(fc);
}
