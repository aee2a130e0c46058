/* SPDX-License-Identifier: Apache-2.0 */
/* The reference model: log.h's seq/ts/dedup rule over the committed entries. */
#include <stdlib.h>
#include <string.h>

#include "hd_assert.h"
#include "command.h"
#include "hd_util.h"
#include "sim.h"

/*
 * Written from the rule in log.h, not from apply.c, so that a defect in
 * apply.c is not also a defect here. For each append, in log order:
 *   a (channel, nonce) whose dedup record is live (the entry's stamp minus
 *   the record's first stamp is below the window, or the stamp is behind
 *   it) answers the record, duplicate; otherwise seq = last seq + 1,
 *   ts = max(stamp, last ts + 1), and the record becomes (seq, ts, stamp).
 * Nonce ids are global in the sim and each belongs to one channel, so the
 * record is keyed by nonce id alone.
 *
 * Commands (command.h): a trim to before_seq removes the messages below
 * min(before_seq, last seq), or below min(before_seq, last seq + 1) if it
 * may empty the channel; the head (last seq and ts) and the dedup records
 * stay, so the next append continues the seq and a retry of a removed
 * message still answers it. A delete forgets the channel: its messages, its
 * head and its dedup records; the epoch counts up and seqs start at 1.
 */

int sim_channel_id(const struct sim *s, const char *id, size_t len)
{
    for (unsigned c = 0; c < s->p.n_channels; c++) {
        if (s->channel_len[c] == len && memcmp(s->channels[c], id, len) == 0) {
            return (int)c;
        }
    }
    return -1;
}

int sim_nonce_id(const struct sim *s, const char *text, size_t len)
{
    unsigned id = 0;
    size_t i = 0;
    for (; i < len && text[i] >= '0' && text[i] <= '9' && i < 6; i++) {
        id = id * 10 + (unsigned)(text[i] - '0');
    }
    if (i == 0 || i == len || text[i] != '.' || id >= s->n_nonces) {
        return -1;
    }
    const struct sim_nonce *n = &s->nonces[id];
    return n->len == len && memcmp(n->text, text, len) == 0 ? (int)id : -1;
}

uint64_t sim_first_seq(const uint64_t *first, unsigned c)
{
    return first[c] > 0 ? first[c] : 1;
}

static bool sim__record_live(const struct sim_model *m, unsigned id, uint64_t stamp,
                             uint64_t window)
{
    if (!m->dedup_set[id]) {
        return false;
    }
    uint64_t first = m->dedup_stamp[id];
    return stamp < first || stamp - first < window;
}

static void sim__model_push(struct sim_model *m, unsigned c, uint16_t nonce, uint64_t ts)
{
    size_t n = (size_t)m->head_seq[c];
    if (n == m->log_cap[c]) {
        size_t cap = m->log_cap[c] ? 2 * m->log_cap[c] : 64;
        struct sim_model_msg *grown = realloc(m->log[c], cap * sizeof *grown);
        HD_ASSERT(grown != NULL);
        m->log[c] = grown;
        m->log_cap[c] = cap;
    }
    m->log[c][n] = (struct sim_model_msg){nonce, ts};
}

/* One append; false if the client never made it. */
static bool sim__model_one(struct sim *s, const struct log_append *a, uint64_t stamp,
                           struct log_result *r)
{
    struct sim_model *m = &s->model;
    int c = sim_channel_id(s, a->channel, a->channel_len);
    int id = sim_nonce_id(s, a->nonce, a->nonce_len);
    if (c < 0 || id < 0 || s->nonces[id].ch != c ||
        a->payload_len != s->nonces[id].payload_len ||
        (a->payload_len > 0 && memcmp(a->payload, s->nonces[id].payload, a->payload_len) != 0)) {
        return false;
    }
    if (sim__record_live(m, (unsigned)id, stamp, s->p.dedup_window_us)) {
        *r = (struct log_result){m->dedup_seq[id], m->dedup_ts[id], true};
        return true;
    }
    uint64_t ts = stamp > m->head_ts[c] ? stamp : m->head_ts[c] + 1;
    sim__model_push(m, (unsigned)c, (uint16_t)id, ts);
    m->head_seq[c]++;
    m->head_ts[c] = ts;
    m->dedup_set[id] = true;
    m->dedup_seq[id] = m->head_seq[c];
    m->dedup_ts[id] = ts;
    m->dedup_stamp[id] = stamp;
    *r = (struct log_result){m->head_seq[c], ts, false};
    return true;
}

static void sim__model_trim(struct sim_model *m, unsigned c, const struct log_command *cmd)
{
    uint64_t last = m->head_seq[c];
    uint64_t keep_from = (cmd->flags & LOG_COMMAND_MAY_EMPTY) != 0 ? last + 1 : last;
    if (cmd->before_seq < keep_from) {
        keep_from = cmd->before_seq;
    }
    if (last > 0 && keep_from > sim_first_seq(m->first_seq, c)) {
        m->first_seq[c] = keep_from;
    }
}

static void sim__model_delete(struct sim *s, unsigned c)
{
    struct sim_model *m = &s->model;
    m->head_seq[c] = 0;
    m->head_ts[c] = 0;
    m->first_seq[c] = 1;
    m->epoch[c]++;
    for (unsigned id = 0; id < s->n_nonces; id++) {
        if (s->nonces[id].ch == c) {
            m->dedup_set[id] = false;
        }
    }
}

static void sim__model_command(struct sim *s, uint64_t index, const uint8_t *entry,
                               size_t len, struct sim_slot *slot)
{
    struct log_command cmd;
    int c = -1;
    if (log_command_decode(entry, len, &cmd) == 0 && cmd.kind != LOG_ENTRY_KIND_POLICY) {
        c = sim_channel_id(s, cmd.channel, cmd.channel_len);
    }
    if (c < 0) {
        sim_fail(s, "entry %llu: not a command the client made", (unsigned long long)index);
        return;
    }
    if (cmd.kind == LOG_ENTRY_KIND_TRIM) {
        sim__model_trim(&s->model, (unsigned)c, &cmd);
    } else {
        sim__model_delete(s, (unsigned)c);
    }
    slot->cmd_ch = c;
    slot->cmd_first = sim_first_seq(s->model.first_seq, (unsigned)c);
    slot->cmd_epoch = s->model.epoch[c];
}

void sim_model_apply(struct sim *s, uint64_t index, const uint8_t *entry, size_t len,
                     uint64_t stamp_us, struct sim_slot *slot)
{
    HD_ASSERT(index > s->model.last_index);
    s->model.last_index = index;
    slot->cmd_ch = -1;
    if (log_entry_is_command(entry, len)) {
        sim__model_command(s, index, entry, len, slot);
        return;
    }
    struct log_entry_iter it;
    log_entry_iter_init(&it, entry, len);
    struct log_append a;
    for (uint32_t k = 0; log_entry_iter_next(&it, &a); k++) {
        HD_ASSERT(k < SIM_BATCH_MAX);
        if (!sim__model_one(s, &a, stamp_us, &slot->expect[k])) {
            sim_fail(s, "entry %llu append %u: not an append the client made",
                     (unsigned long long)index, k);
            return;
        }
        slot->epoch[k] = s->model.epoch[sim_channel_id(s, a.channel, a.channel_len)];
    }
}

void sim_model_close(struct sim_model *m)
{
    for (unsigned c = 0; c < SIM_CHANNELS_MAX; c++) {
        free(m->log[c]);
        m->log[c] = NULL;
    }
}
