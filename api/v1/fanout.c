/* SPDX-License-Identifier: Apache-2.0 */
/* The fan-out engine: channels, shared messages and their wire forms, windows. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "fanout_internal.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "ws.h"

#define FAN__BUCKETS_MIN 1024u
/* How long a channel nobody subscribes to any more keeps its window up to
 * date, for subscribers that reconnect after a short break. */
#define FAN__IDLE_WINDOW_MS 30000u

/* ---- Messages ------------------------------------------------------ */

char *fan_message_json(const char *channel, size_t channel_len, const struct log_message *m,
                       size_t *out_len)
{
    json_t *j = api_message_json(channel, channel_len, m->seq, m->ts, m->nonce, m->nonce_len,
                                 m->payload, m->payload_len);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        return NULL;
    }
    /* jansson allocates with malloc; hand out hd_malloc memory. */
    size_t len = strlen(text);
    char *out = hd_malloc(len + 1);
    if (out != NULL) {
        memcpy(out, text, len + 1);
        *out_len = len;
    }
    free(text);
    return out;
}

struct fan_msg *fan__msg_new(const struct fan_channel *ch, const struct log_message *m)
{
    struct fan_msg *msg = hd_calloc(1, sizeof *msg);
    if (msg == NULL) {
        return NULL;
    }
    msg->json = fan_message_json(ch->id, ch->len, m, &msg->json_len);
    if (msg->json == NULL) {
        hd_free(msg);
        return NULL;
    }
    msg->refs = 1;
    msg->seq = m->seq;
    msg->epoch = ch->epoch;
    return msg;
}

void fan__msg_unref(struct fan_msg *msg)
{
    HD_ASSERT(msg->refs > 0);
    if (--msg->refs > 0) {
        return;
    }
    for (int e = 0; e < FAN_ENC_N; e++) {
        hd_free(msg->enc[e]);
    }
    hd_free(msg->json);
    hd_free(msg);
}

/* Concatenates head, the JSON from skip on, and tail. */
static uint8_t *fan__wrap(const struct fan_msg *msg, const char *head, size_t skip,
                          const char *tail, size_t *len)
{
    size_t hl = strlen(head), tl = strlen(tail), jl = msg->json_len - skip;
    uint8_t *out = hd_malloc(hl + jl + tl);
    if (out != NULL) {
        memcpy(out, head, hl);
        memcpy(out + hl, msg->json + skip, jl);
        memcpy(out + hl + jl, tail, tl);
        *len = hl + jl + tl;
    }
    return out;
}

static uint8_t *fan__build(const struct fan_msg *msg, enum fan_enc enc, size_t *len)
{
    char head[96];
    switch (enc) {
        case FAN_ENC_SSE_EVENT: {
            char id[FAN_SSE_POSITION_MAX];
            fan_sse_position(id, sizeof id, msg->seq, msg->epoch);
            snprintf(head, sizeof head, "id: %s\nevent: message\ndata: ", id);
            return fan__wrap(msg, head, 0, "\n\n", len);
        }
        case FAN_ENC_SSE_DATA:
            return fan__wrap(msg, "event: message\ndata: ", 0, "\n\n", len);
        case FAN_ENC_WS:
        case FAN_ENC_WS_BINARY: {
            /* {"channel":...} becomes {"type":"message","channel":...}. */
            HD_ASSERT(msg->json_len > 2 && msg->json[0] == '{');
            size_t plen = 0;
            uint8_t *payload = fan__wrap(msg, "{\"type\":\"message\",", 1, "", &plen);
            uint8_t *frame = NULL;
            if (payload != NULL && api_ws_encode(payload, plen, enc == FAN_ENC_WS_BINARY, &frame,
                                                   len) != 0) {
                frame = NULL;
            }
            hd_free(payload);
            return frame;
        }
        case FAN_ENC_N:
            break;
    }
    HD_ASSERT(false);
    return NULL;
}

const uint8_t *fan__msg_enc(struct fan_msg *msg, enum fan_enc enc, size_t *len)
{
    HD_ASSERT(enc < FAN_ENC_N);
    if (msg->enc[enc] == NULL) {
        msg->enc[enc] = fan__build(msg, enc, &msg->enc_len[enc]);
    }
    *len = msg->enc_len[enc];
    return msg->enc[enc];
}

/* ---- Channels ------------------------------------------------------ */

static void fan__lru_unlink(struct fan *f, struct fan_channel *ch)
{
    if (ch->lru_prev != NULL) ch->lru_prev->lru_next = ch->lru_next;
    else if (f->lru_head == ch) f->lru_head = ch->lru_next;
    if (ch->lru_next != NULL) ch->lru_next->lru_prev = ch->lru_prev;
    else if (f->lru_tail == ch) f->lru_tail = ch->lru_prev;
    ch->lru_prev = ch->lru_next = NULL;
}

static void fan__lru_touch(struct fan *f, struct fan_channel *ch)
{
    fan__lru_unlink(f, ch);
    ch->lru_next = f->lru_head;
    if (f->lru_head != NULL) f->lru_head->lru_prev = ch;
    f->lru_head = ch;
    if (f->lru_tail == NULL) f->lru_tail = ch;
}

static void fan__grow(struct fan *f)
{
    size_t n = f->n_buckets * 2;
    struct fan_channel **b = hd_calloc(n, sizeof *b);
    if (b == NULL) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < f->n_buckets; i++) {
        struct fan_channel *ch = f->buckets[i], *next;
        for (; ch != NULL; ch = next) {
            next = ch->hnext;
            ch->hnext = b[ch->hash & (n - 1)];
            b[ch->hash & (n - 1)] = ch;
        }
    }
    hd_free(f->buckets);
    f->buckets = b;
    f->n_buckets = n;
}

static struct fan_channel *fan__channel_new(struct fan *f, const char *id, size_t len,
                                            uint64_t hash)
{
    struct log_channel_info info;
    if (log_channel_info(f->log, id, len, &info) != 0) {
        return NULL;
    }
    struct fan_channel *ch = hd_calloc(1, sizeof *ch);
    if (ch == NULL) {
        return NULL;
    }
    memcpy(ch->id, id, len);
    ch->len = len;
    ch->hash = hash;
    ch->head = info.last_seq;
    ch->epoch = info.epoch;
    ch->hnext = f->buckets[hash & (f->n_buckets - 1)];
    f->buckets[hash & (f->n_buckets - 1)] = ch;
    if (++f->stats.channels > f->n_buckets) {
        fan__grow(f);
    }
    return ch;
}

struct fan_channel *fan__channel_get(struct fan *f, const char *id, size_t len, bool create)
{
    HD_ASSERT(len > 0 && len <= HD_CHANNEL_MAX);
    uint64_t hash = hd_hash64(id, len);
    for (struct fan_channel *ch = f->buckets[hash & (f->n_buckets - 1)]; ch != NULL;
         ch = ch->hnext) {
        if (ch->hash == hash && ch->len == len && memcmp(ch->id, id, len) == 0) {
            return ch;
        }
    }
    return create ? fan__channel_new(f, id, len, hash) : NULL;
}

static void fan__window_drop_oldest(struct fan *f, struct fan_channel *ch)
{
    HD_ASSERT(ch->win_n > 0);
    struct fan_msg *m = ch->win[ch->win_start];
    ch->win_bytes -= m->json_len;
    f->stats.window_bytes -= m->json_len;
    fan__msg_unref(m);
    ch->win[ch->win_start] = NULL;
    ch->win_start = (ch->win_start + 1) % ch->win_cap;
    ch->win_first++;
    ch->win_n--;
}

void fan__channel_maybe_free(struct fan *f, struct fan_channel *ch)
{
    if (ch->n_subs > 0 || ch->win_n > 0) {
        return;
    }
    HD_ASSERT(ch->live == NULL && ch->win_bytes == 0);
    fan__lru_unlink(f, ch);
    struct fan_channel **pp = &f->buckets[ch->hash & (f->n_buckets - 1)];
    while (*pp != ch) {
        pp = &(*pp)->hnext;
    }
    *pp = ch->hnext;
    f->stats.channels--;
    hd_free(ch->win);
    hd_free(ch);
}

/* ---- Windows ------------------------------------------------------- */

struct fan_msg *fan__window_get(const struct fan_channel *ch, uint64_t seq)
{
    if (ch->win_n == 0 || seq < ch->win_first || seq - ch->win_first >= ch->win_n) {
        return NULL;
    }
    return ch->win[(ch->win_start + (uint32_t)(seq - ch->win_first)) % ch->win_cap];
}

static void fan__window_clear(struct fan *f, struct fan_channel *ch)
{
    while (ch->win_n > 0) {
        fan__window_drop_oldest(f, ch);
    }
}

/* Keeps the windows within their byte budget, oldest channels first. */
static void fan__window_evict(struct fan *f, struct fan_channel *keep)
{
    while (f->stats.window_bytes > f->limits.window_bytes_max && f->lru_tail != NULL) {
        struct fan_channel *ch = f->lru_tail;
        if (ch == keep && ch->win_n <= 1) {
            break;
        }
        fan__window_drop_oldest(f, ch);
        if (ch->win_n == 0) {
            fan__lru_unlink(f, ch);
            fan__channel_maybe_free(f, ch);
        }
    }
}

/* Appends a committed message; the window holds consecutive seqs only, so
 * a gap (a snapshot installed) starts it anew. */
static void fan__window_push(struct fan *f, struct fan_channel *ch, struct fan_msg *msg)
{
    if (ch->win == NULL) {
        ch->win = hd_calloc(f->limits.window_msgs_max, sizeof *ch->win);
        if (ch->win == NULL) {
            return; /* no window: catch-up reads state */
        }
        ch->win_cap = f->limits.window_msgs_max;
    }
    if (ch->win_n > 0 && msg->seq != ch->win_first + ch->win_n) {
        fan__window_clear(f, ch);
    }
    if (ch->win_n == ch->win_cap) {
        fan__window_drop_oldest(f, ch);
    }
    if (ch->win_n == 0) {
        ch->win_first = msg->seq;
        ch->win_start = 0;
    }
    msg->refs++;
    ch->win[(ch->win_start + ch->win_n) % ch->win_cap] = msg;
    ch->win_n++;
    ch->win_bytes += msg->json_len;
    f->stats.window_bytes += msg->json_len;
    fan__lru_touch(f, ch);
    fan__window_evict(f, ch);
}

void fan_sse_position(char *buf, size_t size, uint64_t seq, uint64_t epoch)
{
    HD_ASSERT(size >= FAN_SSE_POSITION_MAX);
    if (epoch == 0) {
        snprintf(buf, size, "%llu", (unsigned long long)seq);
    } else {
        snprintf(buf, size, "%llu@%llu", (unsigned long long)seq, (unsigned long long)epoch);
    }
}

/* ---- Commits ------------------------------------------------------- */

void fan_on_commit(struct fan *f, const char *channel, size_t len, const struct log_message *m)
{
    struct fan_channel *ch = fan__channel_get(f, channel, len, false);
    if (ch == NULL) {
        return; /* nobody listens: a commit costs one lookup */
    }
    HD_ASSERT(m->seq > 0);
    if (m->seq <= ch->head) {
        return; /* known already (read by a catch-up) */
    }
    ch->head = m->seq;
    if (ch->n_subs == 0 && uv_now(f->loop) - ch->idle_since_ms > FAN__IDLE_WINDOW_MS) {
        /* Nobody came back for it: stop paying for its encoding. */
        fan__window_clear(f, ch);
        fan__channel_maybe_free(f, ch);
        return;
    }
    struct fan_msg *msg = fan__msg_new(ch, m);
    if (msg == NULL) {
        /* Live subscribers will see a gap and read it from state. */
        HD_LOG_WARN("fanout: out of memory encoding %.*s seq %llu", (int)len, channel,
                    (unsigned long long)m->seq);
        return;
    }
    f->stats.encoded++;
    fan__window_push(f, ch, msg);
    for (struct fan_sub *s = ch->live, *next; s != NULL; s = next) {
        next = s->next;
        fan__deliver_live(s, msg);
    }
    fan__msg_unref(msg);
}

/* State moved under the channel's live subscribers: they catch up from it
 * (and end there if its epoch is no longer theirs). */
static void fan__all_behind(struct fan_channel *ch)
{
    for (struct fan_sub *s = ch->live, *next; s != NULL; s = next) {
        next = s->next;
        fan__fall_behind(s);
    }
}

void fan_on_command(struct fan *f, const char *channel, size_t len, bool deleted)
{
    struct fan_channel *ch = fan__channel_get(f, channel, len, false);
    if (ch == NULL) {
        return;
    }
    /* Catch-up reads state from now on: below a trim it is HD_EGONE, and the
     * connection ends with it instead of skipping silently. */
    fan__window_clear(f, ch);
    if (!deleted) {
        return;
    }
    /* Seqs start again at 1: every subscriber's position is of the old
     * epoch, so each one's catch-up answers HD_EGONE. */
    ch->head = 0;
    ch->epoch++;
    fan__all_behind(ch);
}

void fan_on_restore(struct fan *f)
{
    for (size_t i = 0; i < f->n_buckets; i++) {
        for (struct fan_channel *ch = f->buckets[i]; ch != NULL; ch = ch->hnext) {
            struct log_channel_info info;
            if (log_channel_info(f->log, ch->id, ch->len, &info) != 0) {
                continue;
            }
            if (info.epoch == ch->epoch && info.last_seq <= ch->head) {
                continue;
            }
            if (info.epoch != ch->epoch) {
                /* The snapshot holds a delete this node had not applied. */
                fan__window_clear(f, ch);
                ch->epoch = info.epoch;
            }
            ch->head = info.last_seq;
            fan__all_behind(ch);
        }
    }
}

/* ---- The engine ---------------------------------------------------- */

static void fan__on_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the loop polling without blocking */
}

/* The linger follows the share of the loop thread that write rounds take,
 * measured over FAN__BUSY_WINDOW_NS: above FAN__BUSY_HIGH it doubles (from
 * FAN__LINGER_MIN_NS up to FAN__LINGER_MAX_NS), below FAN__BUSY_LOW it
 * halves, down to none. Under light load nothing waits; under heavy load
 * each write carries several messages, and the rounds leave the loop to
 * appends. (A fixed 2 ms wait for every connection was measured before:
 * at light load it cost more CPU per delivery, not less.)
 *
 * When the loop thread has no idle time left at all (less than
 * FAN__SATURATED_IDLE of the window in epoll), everything already waits on
 * it, so the linger may go on doubling up to FAN__LINGER_SATURATED_NS: with
 * 1 000 subscribers over 16 channels that let 1.34-1.41x the appends and
 * 1.28-1.41x the deliveries through, at 0.7x the CPU per delivery (README:
 * Delivery). Below saturation it stays within FAN__LINGER_MAX_NS, which
 * keeps the commit -> subscriber p99 at 1 000 appends/s under 10 ms (with
 * a 16 ms cap there it was 40 ms; at that rate, with the 4 ms cap, the loop
 * was 35-50% idle). */
#define FAN__BUSY_WINDOW_NS 50000000u
#define FAN__BUSY_HIGH 0.20
#define FAN__BUSY_LOW 0.05
#define FAN__SATURATED_IDLE 0.02
#define FAN__LINGER_MIN_NS 1000000u
#define FAN__LINGER_MAX_NS 4000000u
#define FAN__LINGER_SATURATED_NS 16000000u

uint64_t fan__linger_next(uint64_t linger_ns, double busy, double idle)
{
    uint64_t cap = idle < FAN__SATURATED_IDLE ? FAN__LINGER_SATURATED_NS : FAN__LINGER_MAX_NS;
    if (linger_ns > cap) {
        return linger_ns / 2; /* idle again: back down, one step a window */
    }
    if (busy > FAN__BUSY_HIGH && linger_ns < cap) {
        return linger_ns == 0 ? FAN__LINGER_MIN_NS : linger_ns * 2;
    }
    if (busy < FAN__BUSY_LOW && linger_ns > 0) {
        return linger_ns > FAN__LINGER_MIN_NS ? linger_ns / 2 : 0;
    }
    return linger_ns;
}

static void fan__adapt_linger(struct fan *f, uint64_t now)
{
    uint64_t span = now - f->busy_since;
    if (span < FAN__BUSY_WINDOW_NS) {
        return;
    }
    uint64_t idle_ns = uv_metrics_idle_time(f->loop);
    f->linger_ns = fan__linger_next(f->linger_ns, (double)f->busy_ns / (double)span,
                                    (double)(idle_ns - f->idle_at) / (double)span);
    f->busy_ns = 0;
    f->busy_since = now;
    f->idle_at = idle_ns;
}

/* After the poll phase: every message committed in this turn goes out in
 * one write per connection (or after its linger). */
static void fan__on_check(uv_check_t *h)
{
    struct fan *f = h->data;
    uint64_t start = uv_hrtime();
    fan__adapt_linger(f, start);
    if (f->dirty == NULL) {
        uv_idle_stop(&f->spinner);
        return;
    }
    fan__run_dirty(f);
    f->busy_ns += uv_hrtime() - start;
    if (f->dirty != NULL) {
        uv_idle_start(&f->spinner, fan__on_idle);
    } else {
        uv_idle_stop(&f->spinner);
    }
}

int fan_init(struct fan **out, uv_loop_t *loop, struct log_store *log,
             const struct fan_limits *limits)
{
    struct fan *f = hd_calloc(1, sizeof *f);
    struct fan_channel **b = hd_calloc(FAN__BUCKETS_MIN, sizeof *b);
    if (f == NULL || b == NULL) {
        hd_free(f);
        hd_free(b);
        return HD_ENOMEM;
    }
    f->loop = loop;
    f->log = log;
    f->buckets = b;
    f->n_buckets = FAN__BUCKETS_MIN;
    f->limits = *limits;
    struct fan_limits *l = &f->limits;
    if (l->window_bytes_max == 0) l->window_bytes_max = 64u << 20;
    if (l->window_msgs_max == 0) l->window_msgs_max = 1024;
    if (l->conn_soft_bytes == 0) l->conn_soft_bytes = 256u << 10;
    if (l->conn_hard_bytes == 0) l->conn_hard_bytes = 16u << 20;
    if (l->subs_max == 0) l->subs_max = 4000000;
    if (l->conn_subs_max == 0) l->conn_subs_max = 100000;
    /* The loop's time in epoll, for the linger (fan__adapt_linger). */
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_check_init(loop, &f->flusher);
    f->flusher.data = f;
    uv_check_start(&f->flusher, fan__on_check);
    uv_idle_init(loop, &f->spinner);
    f->spinner.data = f;
    uv_timer_init(loop, &f->linger_timer);
    f->linger_timer.data = f;
    f->busy_since = uv_hrtime();
    f->idle_at = uv_metrics_idle_time(loop);
    *out = f;
    return 0;
}

void fan_get_stats(const struct fan *f, struct fan_stats *out)
{
    *out = f->stats;
    out->linger_ns = f->linger_ns;
}

static void fan__on_handle_closed(uv_handle_t *h)
{
    struct fan *f = h->data;
    if (--f->open_handles == 0) {
        hd_free(f->buckets);
        hd_free(f);
    }
}

void fan_close(struct fan *f)
{
    HD_ASSERT(f->stats.conns == 0 && f->stats.subs == 0);
    for (size_t i = 0; i < f->n_buckets; i++) {
        while (f->buckets[i] != NULL) {
            struct fan_channel *ch = f->buckets[i];
            fan__window_clear(f, ch);
            fan__channel_maybe_free(f, ch);
        }
    }
    f->open_handles = 3;
    uv_close((uv_handle_t *)&f->flusher, fan__on_handle_closed);
    uv_close((uv_handle_t *)&f->spinner, fan__on_handle_closed);
    uv_close((uv_handle_t *)&f->linger_timer, fan__on_handle_closed);
}
