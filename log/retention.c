/* SPDX-License-Identifier: Apache-2.0 */
/* Retention: the trim a channel's rule asks for (rules in retention.h), and walking a shard's channels. */
#include "retention.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "keys.h"
#include "log_internal.h"
#include "rocks.h"

const char *log_retention_reason_name(enum log_retention_reason r)
{
    switch (r) {
    case LOG_RETENTION_AGE: return "age";
    case LOG_RETENTION_MESSAGES: return "messages";
    case LOG_RETENTION_BYTES: return "bytes";
    default: return "none";
    }
}

int log_channel_walk(struct log_store *ls, uint16_t shard, const char *after, size_t after_len,
                     log_channel_cb cb, void *arg)
{
    HD_ASSERT(shard < ls->n_shards && after_len <= LOG_CHANNEL_MAX && cb != NULL);
    /* Shards are fewer than 4097 (heraldd --shards), so shard + 1 fits. */
    HD_ASSERT(shard < UINT16_MAX);
    uint8_t lower[LOG_KEY_MAX], upper[3], next[LOG_KEY_MAX];
    size_t lower_len = log_key_applied(lower, shard); /* kind, be16 shard */
    lower[0] = LOG_KEY_MESSAGE;
    log_key_applied(upper, (uint16_t)(shard + 1));
    upper[0] = LOG_KEY_MESSAGE;
    struct st_iter *it;
    int rv = st_iter_open(&it, ls->rocks, lower, lower_len, upper, sizeof upper);
    if (rv != 0) {
        return rv;
    }
    if (after_len > 0) {
        /* Past every message key of `after`. */
        st_iter_seek(it, next, log_key_channel_end(next, LOG_KEY_MESSAGE, shard, after, after_len));
    }
    while (rv == 0 && st_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = st_iter_key(it, &klen);
        if (klen < 4 || k[3] == 0 || k[3] > LOG_CHANNEL_MAX || klen != 4u + k[3] + 8) {
            rv = HD_ECORRUPT;
            break;
        }
        char ch[LOG_CHANNEL_MAX];
        size_t len = k[3];
        memcpy(ch, k + 4, len);
        if (cb(arg, ch, len) != 0) {
            break;
        }
        /* The next channel: past this one's message keys. */
        st_iter_seek(it, next, log_key_channel_end(next, LOG_KEY_MESSAGE, shard, ch, len));
    }
    if (rv == 0) {
        rv = st_iter_status(it);
    }
    st_iter_close(it);
    return rv;
}

/* ------------------------------------------------------------ bytes --- */

struct log__sum {
    struct log_bytes_window *w;
    uint64_t max;                 /* shrinking: the byte limit */
    uint64_t last;                /* shrinking: the channel's last seq */
    size_t n;                     /* messages read */
};

static int log__sum_add(void *arg, const struct log_message *m)
{
    struct log__sum *s = arg;
    s->w->bytes += m->payload_len;
    s->w->hi = m->seq;
    s->n++;
    return 0;
}

static int log__sum_drop(void *arg, const struct log_message *m)
{
    struct log__sum *s = arg;
    /* The last message stays unless the limit is 0. */
    if (s->w->bytes <= s->max || (s->max > 0 && m->seq >= s->last)) {
        return 1;
    }
    HD_ASSERT(m->seq == s->w->lo && s->w->bytes >= m->payload_len);
    s->w->bytes -= m->payload_len;
    s->w->lo = m->seq + 1;
    s->n++;
    return 0;
}

/* The first seq the bytes limit keeps, or 0 if not known yet (budget). */
static int log__bytes_keep(struct log_store *ls, const char *ch, size_t len,
                           const struct log_channel_info *info, uint64_t max,
                           struct log_bytes_window *w, size_t *budget, uint64_t *keep)
{
    *keep = 0;
    if (!w->valid || w->epoch != info->epoch || w->lo < info->first_seq ||
        w->hi > info->last_seq || w->lo > w->hi + 1) {
        *w = (struct log_bytes_window){.valid = true, .epoch = info->epoch,
                                       .lo = info->first_seq, .hi = info->first_seq - 1};
    }
    struct log__sum s = {.w = w, .max = max, .last = info->last_seq};
    uint64_t next;
    int rv = 0;
    while (rv == 0 && w->hi < info->last_seq && *budget > 0) {
        s.n = 0;
        rv = log_read(ls, ch, len, w->hi, *budget < 1000 ? *budget : 1000, log__sum_add, &s,
                      &next);
        *budget -= s.n < *budget ? s.n : *budget;
        if (rv == 0 && s.n == 0) {
            rv = HD_ECORRUPT; /* messages up to last_seq must be there */
        }
    }
    if (rv != 0 || w->hi < info->last_seq) {
        return rv;
    }
    uint64_t lo_before;
    do {
        lo_before = w->lo;
        s.n = 0;
        if (w->bytes > max && w->lo <= info->last_seq && *budget > 0) {
            rv = log_read(ls, ch, len, w->lo - 1, *budget < 1000 ? *budget : 1000,
                          log__sum_drop, &s, &next);
            *budget -= s.n < *budget ? s.n : *budget;
        }
    } while (rv == 0 && w->lo != lo_before && w->bytes > max && *budget > 0);
    *keep = w->lo;
    return rv;
}

/* ------------------------------------------------------------ plan --- */

static void log__consider(struct log_retention_plan *p, uint64_t before,
                          enum log_retention_reason why)
{
    if (before > p->before_seq && before > p->first_seq) {
        p->before_seq = before;
        p->reason = why;
    }
}

int log_retention_plan(struct log_store *ls, const char *ch, size_t len,
                       const struct hd_retention_rule *rule, uint64_t now_us,
                       struct log_bytes_window *w, size_t *budget,
                       struct log_retention_plan *out)
{
    HD_ASSERT(rule != NULL && budget != NULL && (w != NULL || !rule->has_bytes));
    struct log_channel_info info;
    memset(out, 0, sizeof *out);
    int rv = log_channel_info(ls, ch, len, &info);
    if (rv != 0) {
        return rv;
    }
    out->first_seq = info.first_seq;
    out->last_seq = info.last_seq;
    if (info.last_seq < info.first_seq) {
        return 0; /* no message left */
    }
    if (rule->has_messages && info.last_seq - info.first_seq + 1 > rule->max_messages) {
        log__consider(out, info.last_seq - rule->max_messages + 1, LOG_RETENTION_MESSAGES);
    }
    if (rule->max_age_us != 0 && now_us > rule->max_age_us) {
        /* Older than the age: ts < now - age, i.e. ts <= now - age - 1. */
        uint64_t seq;
        rv = log_seq_at_ts(ls, ch, len, now_us - rule->max_age_us - 1, &seq);
        if (rv != 0) {
            return rv;
        }
        *budget -= *budget < 64 ? *budget : 64; /* a binary search of point reads */
        log__consider(out, seq + 1, LOG_RETENTION_AGE);
    }
    if (rule->has_bytes) {
        uint64_t keep;
        rv = log__bytes_keep(ls, ch, len, &info, rule->max_bytes, w, budget, &keep);
        if (rv != 0) {
            return rv;
        }
        log__consider(out, keep, LOG_RETENTION_BYTES);
    }
    out->may_empty = out->before_seq > info.last_seq;
    HD_ASSERT(out->before_seq == 0 ||
              (out->before_seq > info.first_seq && out->before_seq <= info.last_seq + 1));
    return 0;
}
