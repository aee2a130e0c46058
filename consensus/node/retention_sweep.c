/* SPDX-License-Identifier: Apache-2.0 */
/* The retention sweep: every interval, a shard's leader trims what the effective policy limits. */
#include "retention_sweep.h"

#include <string.h>

#include "command.h"
#include "command_propose.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_util.h"
#include "log.h"
#include "node_internal.h"
#include "retention.h" /* log/: what a rule drops */

/*
 * Only a shard's leader sweeps it, by its node's effective policy and its
 * clock; what it decides is an ordinary trim entry (log/command.h), so
 * every replica drops the same messages whatever its own configuration
 * says. The effective policy is the cluster's, set through Raft (log/
 * policy.c), the same on every node once applied; without one each node's
 * own --retention, which is why those must then be the same: a new leader
 * applies its own. The policy is looked up once per tick (a pointer), so a
 * change applies from the next tick; the timer runs with no policy too, as
 * one may be set at any time.
 *
 * A tick walks channels from where the last one stopped (shard, channel),
 * at most CONS_RETENTION_CHANNELS_PER_TICK channels,
 * CONS_RETENTION_MESSAGES_PER_TICK messages read and
 * CONS_RETENTION_TRIMS_PER_TICK trims, then carries on at the next tick.
 * No tick starts while the last one's trims are unanswered. Its trims are
 * lazy (log/command.h): RocksDB's own compactions reclaim their space, as
 * compacting each channel's range at once, on the loop, would stall
 * appends when a tick trims hundreds of channels.
 * Byte windows (log/retention.h) live here, by channel, and are freed when
 * a full pass over every shard did not touch them.
 */

#define CONS__WINDOW_BUCKETS 4096u

struct cons__bytes_entry {
    struct cons__bytes_entry *next;
    uint64_t hash;
    uint64_t pass;               /* last pass that used it */
    struct log_bytes_window w;
    uint8_t len;
    char channel[];
};

static struct log_bytes_window *cons__window(struct cons_retention *rs, const char *ch,
                                             size_t len)
{
    if (rs->windows == NULL) {
        rs->windows = hd_calloc(CONS__WINDOW_BUCKETS, sizeof *rs->windows);
        if (rs->windows == NULL) {
            return NULL;
        }
    }
    uint64_t h = hd_hash64(ch, len);
    struct cons__bytes_entry **b = &rs->windows[h % CONS__WINDOW_BUCKETS];
    for (struct cons__bytes_entry *e = *b; e != NULL; e = e->next) {
        if (e->hash == h && e->len == len && memcmp(e->channel, ch, len) == 0) {
            e->pass = rs->pass;
            return &e->w;
        }
    }
    struct cons__bytes_entry *e = hd_calloc(1, sizeof *e + len);
    if (e == NULL) {
        return NULL;
    }
    *e = (struct cons__bytes_entry){.next = *b, .hash = h, .pass = rs->pass, .len = (uint8_t)len};
    memcpy(e->channel, ch, len);
    *b = e;
    rs->n_windows++;
    return &e->w;
}

/* Frees the windows no pass used since `before` (all if UINT64_MAX). */
static void cons__windows_gc(struct cons_retention *rs, uint64_t before)
{
    for (size_t i = 0; rs->windows != NULL && i < CONS__WINDOW_BUCKETS; i++) {
        struct cons__bytes_entry **pp = &rs->windows[i];
        while (*pp != NULL) {
            struct cons__bytes_entry *e = *pp;
            if (e->pass < before || before == UINT64_MAX) {
                *pp = e->next;
                hd_free(e);
                rs->n_windows--;
            } else {
                pp = &e->next;
            }
        }
    }
}

struct cons__retention_trim {
    struct cons_node *node;
};

static void cons__trim_done(void *arg, int status)
{
    struct cons__retention_trim *t = arg;
    struct cons_retention *rs = &t->node->retention;
    (void)status; /* a trim not confirmed is computed again next tick */
    HD_ASSERT(rs->in_flight > 0);
    rs->in_flight--;
    hd_free(t);
}

/* Proposes the plan's trim; false if it could not. */
static bool cons__retention_trim(struct cons_node *n, const char *ch, size_t len,
                                 const struct log_retention_plan *p)
{
    struct cons__retention_trim *t = hd_calloc(1, sizeof *t);
    if (t == NULL) {
        return false;
    }
    t->node = n;
    struct log_command c = {.kind = LOG_ENTRY_KIND_TRIM, .channel = ch, .channel_len = len,
                            .before_seq = p->before_seq,
                            .flags = LOG_COMMAND_LAZY |
                                     (p->may_empty ? LOG_COMMAND_MAY_EMPTY : 0)};
    int rv = cons__command_propose(n, &c, 0, 0, cons__trim_done, t);
    if (rv != 0) {
        hd_free(t);
        return false;
    }
    n->retention.in_flight++;
    n->stats.retention_trims[p->reason]++;
    HD_LOG_INFO("retention: trim of channel %.*s before_seq %llu (%s; it held %llu..%llu)",
                (int)len, ch, (unsigned long long)p->before_seq,
                log_retention_reason_name(p->reason), (unsigned long long)p->first_seq,
                (unsigned long long)p->last_seq);
    return true;
}

/* One tick's walk: what it may still do, and where it is. */
struct cons__walk {
    struct cons_node *n;
    const struct hd_retention *policy; /* the effective one, for this tick */
    uint64_t now_us;
    size_t budget;                /* messages it may still read */
    unsigned channels;            /* looked at */
    unsigned trims;               /* proposed */
    bool out;                     /* a limit ran out: stop here */
};

/* Sweeps one channel (log_channel_walk's callback); non-zero stops the walk
 * before the channel's cursor moves past it, so the next tick starts with
 * it again. */
static int cons__retention_channel(void *arg, const char *ch, size_t len)
{
    struct cons__walk *wk = arg;
    struct cons_node *n = wk->n;
    if (wk->channels >= CONS_RETENTION_CHANNELS_PER_TICK || wk->budget == 0 ||
        wk->trims >= CONS_RETENTION_TRIMS_PER_TICK) {
        wk->out = true;
        return 1;
    }
    wk->channels++;
    const struct hd_retention_rule *rule = hd_retention_match(wk->policy, ch, len);
    if (hd_retention_rule_limits(rule)) {
        struct log_bytes_window *w =
            rule->has_bytes ? cons__window(&n->retention, ch, len) : NULL;
        if (rule->has_bytes && w == NULL) {
            wk->out = true; /* out of memory: this channel again next tick */
            return 1;
        }
        struct log_retention_plan p;
        int rv = log_retention_plan(n->opts.log, ch, len, rule, wk->now_us, w, &wk->budget, &p);
        if (rv != 0) {
            HD_LOG_WARN("retention: channel %.*s: %s", (int)len, ch, hd_strerror(rv));
        } else if (p.before_seq != 0) {
            wk->trims += cons__retention_trim(n, ch, len, &p) ? 1 : 0;
        }
    }
    HD_ASSERT(len <= sizeof n->retention.cursor);
    memcpy(n->retention.cursor, ch, len);
    n->retention.cursor_len = len;
    return 0;
}

/* One tick's walk, from where the last stopped, until a per-tick limit or
 * the end of a full pass over every shard. */
static void cons__retention_walk(struct cons_node *n, struct cons__walk *wk)
{
    struct cons_retention *rs = &n->retention;
    for (unsigned visited = 0; visited < n->opts.n_shards; visited++) {
        unsigned shard = rs->next_shard;
        if (raft_state(&n->shards[shard].raft) == RAFT_LEADER) {
            int rv = log_channel_walk(n->opts.log, (uint16_t)shard, rs->cursor, rs->cursor_len,
                                      cons__retention_channel, wk);
            if (rv != 0) {
                HD_LOG_WARN("retention: shard %u: %s", shard, hd_strerror(rv));
            }
            if (wk->out) {
                return; /* the rest of this shard next tick */
            }
        }
        /* The shard is done (or not ours): the next one. */
        rs->cursor_len = 0;
        rs->next_shard = (shard + 1) % n->opts.n_shards;
        if (rs->next_shard == 0) {
            rs->pass++;
            cons__windows_gc(rs, rs->pass - 1);
            return; /* one pass per tick at most */
        }
    }
}

static void cons__retention_tick(uv_timer_t *t)
{
    struct cons_node *n = t->data;
    if (n->stopping || n->retention.in_flight > 0) {
        return; /* the last tick's trims first */
    }
    const struct hd_retention *policy = log_retention_effective(n->opts.log, NULL);
    if (policy == NULL || policy->n == 0) {
        cons__windows_gc(&n->retention, UINT64_MAX); /* no byte limit left to keep them for */
        return;
    }
    uint64_t t0 = hd_now_us();
    struct cons__walk wk = {.n = n, .policy = policy, .now_us = t0,
                            .budget = CONS_RETENTION_MESSAGES_PER_TICK};
    cons__retention_walk(n, &wk);
    HD_LOG_DEBUG("retention: a tick looked at %u channels, read about %zu messages and"
                 " proposed %u trims in %.1f ms", wk.channels,
                 (size_t)CONS_RETENTION_MESSAGES_PER_TICK - wk.budget, wk.trims,
                 (double)(hd_now_us() - t0) / 1000.0);
}

static void cons__retention_arm(struct cons_node *n)
{
    /* ±10% jitter, so that nodes' sweeps drift apart. */
    uint64_t every = n->opts.retention_interval_ms;
    uint64_t jitter = every / 10;
    uint64_t seed = n->opts.node_id ^ hd_now_us();
    uint64_t due = every - jitter + hd_hash64(&seed, sizeof seed) % (2 * jitter + 1);
    uv_timer_start(&n->retention.timer, cons__retention_tick, due, every);
}

void cons__retention_start(struct cons_node *n)
{
    struct cons_retention *rs = &n->retention;
    HD_ASSERT(!rs->started);
    uv_timer_init(n->opts.loop, &rs->timer);
    rs->timer.data = n;
    rs->started = true;
    if (n->opts.retention_interval_ms == 0) {
        n->opts.retention_interval_ms = 60000;
    }
    cons__retention_arm(n);
}

void cons__retention_stop(struct cons_node *n, uv_close_cb cb)
{
    struct cons_retention *rs = &n->retention;
    HD_ASSERT(rs->started);
    uv_timer_stop(&rs->timer);
    cons__windows_gc(rs, UINT64_MAX);
    hd_free(rs->windows);
    rs->windows = NULL;
    uv_close((uv_handle_t *)&rs->timer, cb);
}
