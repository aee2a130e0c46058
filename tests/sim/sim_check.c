/* SPDX-License-Identifier: Apache-2.0 */
/* Invariant checkers: consensus agreement (sim_cons_*) and channel logs (sim_log_*). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "sim.h"

/*
 * What is checked, and when:
 *   as each server applies an entry (sim_cons_observe): the entry at that
 *     raft index is the same bytes on every server (agreement), its results
 *     equal the reference model's (seq gapless from 1, ts strictly
 *     increasing, dedup answers), and per server seq/ts move as they must;
 *   after every step (sim_cons_check, sim_log_check): each running
 *     server's store says it applied what its FSM applied, and each
 *     channel's head in the store equals what its results said;
 *   at each acknowledgement (sim_ack_check): the results the proposer
 *     acknowledged are the model's for that entry;
 *   at teardown, after healing and convergence (sim_final_check): every
 *     server's logs read back (log_read) byte-identical and equal to the
 *     model's, and every acknowledged append is there with its seq and ts.
 */

void sim_fail(struct sim *s, const char *fmt, ...)
{
    if (s->violated) {
        return; /* the first one is the one to replay */
    }
    s->violated = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->violation, sizeof s->violation, fmt, ap);
    va_end(ap);
}

static bool sim__result_eq(const struct log_result *a, const struct log_result *b)
{
    return a->seq == b->seq && a->ts == b->ts && a->duplicate == b->duplicate;
}

static struct sim_slot *sim__slot(struct sim *s, uint64_t index)
{
    if (index >= s->slots_cap) {
        size_t cap = s->slots_cap ? s->slots_cap : 256;
        while (cap <= index) {
            cap *= 2;
        }
        struct sim_slot *grown = realloc(s->slots, cap * sizeof *grown);
        HD_ASSERT(grown != NULL);
        memset(grown + s->slots_cap, 0, (cap - s->slots_cap) * sizeof *grown);
        s->slots = grown;
        s->slots_cap = cap;
    }
    return &s->slots[index];
}

/* The first server to apply an index fixes what it holds; the model says
 * what its results must be. */
static struct sim_slot *sim__slot_first(struct sim *s, unsigned server, uint64_t index,
                                        const uint8_t *entry, size_t len)
{
    struct sim_slot *slot = sim__slot(s, index);
    if (slot->set) {
        return slot;
    }
    if (index <= s->model.last_index) {
        /* Another server applied a later index without this one: there it
         * was not a command entry. */
        sim_fail(s, "agreement: server %u applied a command at index %llu where another "
                 "server had none", server, (unsigned long long)index);
        return NULL;
    }
    struct log_entry_header h = {0};
    if (!log_entry_is_command(entry, len)) {
        HD_ASSERT(log_entry_decode(entry, len, &h) == 0);
    }
    slot->set = true;
    slot->hash = sim_entry_hash(entry, len);
    slot->count = h.count;
    sim_model_apply(s, index, entry, len, h.stamp_us, slot);
    return slot;
}

/* Per server and channel: seq gapless, ts strictly increasing; a trim
 * keeps the head, a delete starts it again. */
static void sim__observe_heads(struct sim *s, struct sim_server *v, uint64_t index,
                               const uint8_t *entry, size_t len,
                               const struct log_result *results, const struct sim_slot *slot)
{
    if (slot->cmd_ch >= 0) {
        unsigned c = (unsigned)slot->cmd_ch;
        if (slot->cmd_epoch != v->epoch[c]) {
            v->head_seq[c] = 0;
            v->head_ts[c] = 0;
        }
        v->first_seq[c] = slot->cmd_first;
        v->epoch[c] = slot->cmd_epoch;
        return;
    }
    struct log_entry_iter it;
    log_entry_iter_init(&it, entry, len);
    struct log_append a;
    for (uint32_t k = 0; log_entry_iter_next(&it, &a); k++) {
        int c = sim_channel_id(s, a.channel, a.channel_len);
        const struct log_result *r = &results[k];
        if (c < 0 || r->duplicate) {
            continue;
        }
        if (r->seq != v->head_seq[c] + 1 || r->ts <= v->head_ts[c]) {
            sim_fail(s, "server %u index %llu: channel %d moved from (seq %llu, ts %llu) to "
                     "(seq %llu, ts %llu): seq must be +1, ts strictly greater", v->i,
                     (unsigned long long)index, c, (unsigned long long)v->head_seq[c],
                     (unsigned long long)v->head_ts[c], (unsigned long long)r->seq,
                     (unsigned long long)r->ts);
        }
        v->head_seq[c] = r->seq;
        v->head_ts[c] = r->ts;
    }
}

void sim_cons_observe(struct sim *s, unsigned server, uint64_t index, const uint8_t *entry,
                      size_t len, const struct log_result *results)
{
    struct sim_server *v = &s->servers[server];
    if (index <= v->applied) {
        sim_fail(s, "server %u applied index %llu after %llu (and log_apply did not say "
                 "HD_EEXIST)", server, (unsigned long long)index,
                 (unsigned long long)v->applied);
    }
    v->applied = index;
    struct sim_slot *slot = sim__slot_first(s, server, index, entry, len);
    if (slot == NULL) {
        return;
    }
    if (slot->hash != sim_entry_hash(entry, len)) {
        sim_fail(s, "agreement: server %u applied different bytes at index %llu", server,
                 (unsigned long long)index);
        return;
    }
    for (uint32_t k = 0; k < slot->count; k++) {
        const struct log_result *e = &slot->expect[k], *r = &results[k];
        if (!sim__result_eq(e, r)) {
            sim_fail(s, "server %u index %llu append %u: apply gave (seq %llu, ts %llu%s), the "
                     "rule gives (seq %llu, ts %llu%s)", server, (unsigned long long)index, k,
                     (unsigned long long)r->seq, (unsigned long long)r->ts,
                     r->duplicate ? ", duplicate" : "", (unsigned long long)e->seq,
                     (unsigned long long)e->ts, e->duplicate ? ", duplicate" : "");
            return;
        }
    }
    sim__observe_heads(s, v, index, entry, len, results, slot);
}

/* A server whose store is open and whose FSM runs. */
static bool sim__checkable(const struct sim_server *v)
{
    return v->ls != NULL && !v->fatal && !v->raft_reinit;
}

void sim_cons_check(struct sim *s)
{
    for (unsigned i = 0; i < s->p.n_servers && !s->violated; i++) {
        struct sim_server *v = &s->servers[i];
        if (!sim__checkable(v)) {
            continue;
        }
        /* The store's applied index survives restarts and reopens: it must
         * be what the FSM applied, and never beyond what was committed. */
        uint64_t stored = 0;
        int rv = log_applied_index(v->ls, 0, &stored);
        if (rv != 0 || stored != v->applied) {
            sim_fail(s, "server %u: the store says applied %llu (%s), its FSM applied %llu", i,
                     (unsigned long long)stored, hd_strerror(rv),
                     (unsigned long long)v->applied);
        } else if (stored > s->model.last_index) {
            sim_fail(s, "server %u: the store says applied %llu, beyond anything committed "
                     "(%llu)", i, (unsigned long long)stored,
                     (unsigned long long)s->model.last_index);
        }
    }
}

void sim_log_check(struct sim *s)
{
    for (unsigned i = 0; i < s->p.n_servers && !s->violated; i++) {
        struct sim_server *v = &s->servers[i];
        if (!sim__checkable(v)) {
            continue;
        }
        for (unsigned c = 0; c < s->p.n_channels; c++) {
            uint64_t seq = 0, ts = 0;
            int rv = log_head(v->ls, s->channels[c], s->channel_len[c], &seq, &ts);
            if (rv != 0 || seq != v->head_seq[c] || ts != v->head_ts[c]) {
                sim_fail(s, "server %u channel %u: log_head (seq %llu, ts %llu, %s) but its "
                         "applies ended at (seq %llu, ts %llu)", i, c,
                         (unsigned long long)seq, (unsigned long long)ts, hd_strerror(rv),
                         (unsigned long long)v->head_seq[c], (unsigned long long)v->head_ts[c]);
                return;
            }
            struct log_channel_info info;
            rv = log_channel_info(v->ls, s->channels[c], s->channel_len[c], &info);
            uint64_t first = sim_first_seq(v->first_seq, c);
            if (rv != 0 || info.first_seq != first || info.epoch != v->epoch[c] ||
                info.last_seq != seq || info.last_ts != ts) {
                sim_fail(s, "server %u channel %u: log_channel_info (first %llu, last %llu, "
                         "epoch %llu, %s) but its applies left (first %llu, last %llu, "
                         "epoch %llu)", i, c, (unsigned long long)info.first_seq,
                         (unsigned long long)info.last_seq, (unsigned long long)info.epoch,
                         hd_strerror(rv), (unsigned long long)first, (unsigned long long)seq,
                         (unsigned long long)v->epoch[c]);
                return;
            }
        }
    }
}

void sim_ack_check(struct sim *s, struct sim_prop *p)
{
    const struct sim_slot *slot = p->index < s->slots_cap ? &s->slots[p->index] : NULL;
    if (slot == NULL || !slot->set || slot->hash != p->entry_hash) {
        sim_fail(s, "server %u: proposal %llu acknowledged with the results of another entry "
                 "(index %llu)", p->server, (unsigned long long)p->proposal,
                 (unsigned long long)p->index);
        return;
    }
    for (uint32_t k = 0; k < p->count; k++) {
        if (!sim__result_eq(&p->results[k], &slot->expect[k])) {
            sim_fail(s, "server %u: proposal %llu append %u acknowledged with wrong results",
                     p->server, (unsigned long long)p->proposal, k);
            return;
        }
    }
    memcpy(p->epochs, slot->epoch, p->count * sizeof *slot->epoch);
    s->n_acked += p->count;
    s->n_trims += p->kind == LOG_ENTRY_KIND_TRIM;
    s->n_deletes += p->kind == LOG_ENTRY_KIND_DELETE;
}

/* ------------------------------------------------------------ teardown --- */

struct sim_read {
    struct sim *s;
    unsigned server;
    unsigned c;
    uint64_t expect_seq;
    uint64_t prev_ts;
    uint64_t digest;
};

static uint64_t sim__fold(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    }
    return h;
}

static int sim__read_cb(void *arg, const struct log_message *m)
{
    struct sim_read *rd = arg;
    struct sim *s = rd->s;
    const struct sim_model *md = &s->model;
    const struct sim_model_msg *want =
        m->seq >= 1 && m->seq <= md->head_seq[rd->c] ? &md->log[rd->c][m->seq - 1] : NULL;
    const struct sim_nonce *n = want != NULL ? &s->nonces[want->nonce] : NULL;
    if (m->seq != rd->expect_seq || m->ts <= rd->prev_ts || want == NULL ||
        m->ts != want->ts || m->nonce_len != n->len ||
        memcmp(m->nonce, n->text, n->len) != 0 || m->payload_len != n->payload_len ||
        (m->payload_len > 0 && memcmp(m->payload, n->payload, m->payload_len) != 0)) {
        sim_fail(s, "server %u channel %u: message seq %llu ts %llu nonce %.*s is not the "
                 "model's (expected seq %llu, ts %llu, nonce %s)", rd->server, rd->c,
                 (unsigned long long)m->seq, (unsigned long long)m->ts, (int)m->nonce_len,
                 m->nonce, (unsigned long long)rd->expect_seq,
                 (unsigned long long)(want ? want->ts : 0), n ? n->text : "-");
        return 1;
    }
    rd->expect_seq++;
    rd->prev_ts = m->ts;
    rd->digest = sim__fold(rd->digest, &m->seq, sizeof m->seq);
    rd->digest = sim__fold(rd->digest, &m->ts, sizeof m->ts);
    rd->digest = sim__fold(rd->digest, m->nonce, m->nonce_len);
    rd->digest = sim__fold(rd->digest, m->payload, m->payload_len);
    return 0;
}

/* Reads every channel of every server; all must equal the model and hence
 * each other (compared by digest too, as the plain statement of it). */
static void sim__final_logs(struct sim *s)
{
    uint64_t first[SIM_CHANNELS_MAX] = {0};
    for (unsigned i = 0; i < s->p.n_servers && !s->violated; i++) {
        struct sim_server *v = &s->servers[i];
        uint64_t stored = 0;
        if (log_applied_index(v->ls, 0, &stored) != 0 || stored != s->model.last_index) {
            sim_fail(s, "server %u: after convergence the store applied %llu, the log %llu", i,
                     (unsigned long long)stored, (unsigned long long)s->model.last_index);
            return;
        }
        for (unsigned c = 0; c < s->p.n_channels && !s->violated; c++) {
            uint64_t first_seq = sim_first_seq(s->model.first_seq, c);
            struct log_channel_info info;
            int rv = log_channel_info(v->ls, s->channels[c], s->channel_len[c], &info);
            if (rv != 0 || info.first_seq != first_seq || info.epoch != s->model.epoch[c]) {
                sim_fail(s, "server %u channel %u: first seq %llu, epoch %llu (%s), the model "
                         "has %llu, %llu", i, c, (unsigned long long)info.first_seq,
                         (unsigned long long)info.epoch, hd_strerror(rv),
                         (unsigned long long)first_seq, (unsigned long long)s->model.epoch[c]);
                return;
            }
            uint64_t next = 0;
            struct sim_read gone = {.s = s, .server = i, .c = c, .expect_seq = first_seq - 1};
            if (first_seq > 1 &&
                (rv = log_read(v->ls, s->channels[c], s->channel_len[c], first_seq - 2, 1,
                               sim__read_cb, &gone, &next)) != HD_EGONE) {
                sim_fail(s, "server %u channel %u: a read of trimmed seq %llu gave %s, not "
                         "HD_EGONE", i, c, (unsigned long long)(first_seq - 1),
                         hd_strerror(rv));
                return;
            }
            struct sim_read rd = {.s = s, .server = i, .c = c, .expect_seq = first_seq,
                                  .digest = 0xcbf29ce484222325ull};
            rv = log_read(v->ls, s->channels[c], s->channel_len[c], first_seq - 1, SIZE_MAX,
                          sim__read_cb, &rd, &next);
            if (s->violated) {
                return;
            }
            if (rv != 0 || rd.expect_seq != s->model.head_seq[c] + 1) {
                sim_fail(s, "server %u channel %u: log_read ended before seq %llu (%s), the "
                         "model's last is %llu", i, c, (unsigned long long)rd.expect_seq,
                         hd_strerror(rv), (unsigned long long)s->model.head_seq[c]);
                return;
            }
            if (i == 0) {
                first[c] = rd.digest;
            } else if (first[c] != rd.digest) {
                sim_fail(s, "server %u channel %u: log differs from server 0's", i, c);
            }
        }
    }
}

/* Every acknowledged append is in the final log at the acknowledged seq
 * with the acknowledged ts (a duplicate's answer names its original),
 * unless a trim removed that seq or a delete its epoch. */
static void sim__final_acks(struct sim *s)
{
    for (const struct sim_prop *p = s->props; p != NULL && !s->violated; p = p->next_all) {
        if (!p->done || p->status != 0) {
            continue;
        }
        for (uint32_t k = 0; k < p->count; k++) {
            const struct log_result *r = &p->results[k];
            unsigned id = p->nonces[k], c = s->nonces[id].ch;
            if (p->epochs[k] != s->model.epoch[c] ||
                r->seq < sim_first_seq(s->model.first_seq, c)) {
                continue;
            }
            const struct sim_model_msg *m =
                r->seq >= 1 && r->seq <= s->model.head_seq[c] ? &s->model.log[c][r->seq - 1]
                                                              : NULL;
            if (m == NULL || m->nonce != id || m->ts != r->ts) {
                sim_fail(s, "acknowledged append (channel %u, nonce %s) at seq %llu ts %llu "
                         "is not in the final log", c, s->nonces[id].text,
                         (unsigned long long)r->seq, (unsigned long long)r->ts);
                return;
            }
            s->n_dup_acked += r->duplicate;
        }
    }
}

void sim_final_check(struct sim *s)
{
    sim_cons_check(s);
    sim_log_check(s);
    sim__final_logs(s);
    sim__final_acks(s);
}
