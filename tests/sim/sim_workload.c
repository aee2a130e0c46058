/* SPDX-License-Identifier: Apache-2.0 */
/* What happens to the cluster each step: client appends and faults, from the seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_util.h"
#include "sim.h"

#define SIM_SHORT_WINDOW_US 3000000u
#define SIM_DAY_US (24ull * 3600 * 1000000)

uint64_t sim_entry_hash(const void *buf, size_t len)
{
    return hd_hash64(buf, len);
}

void sim_params_draw(struct sim *s, bool small)
{
    struct sim_rng *g = &s->rng;
    struct sim_params *p = &s->p;
    p->n_servers = sim_chance(g, 70) ? 3 : 5;
    p->n_channels = 2 + sim_below(g, SIM_CHANNELS_MAX - 2);
    p->steps = 25 + sim_below(g, 40);
    p->short_window = sim_chance(g, 50);
    p->dedup_window_us = p->short_window ? SIM_SHORT_WINDOW_US : SIM_DAY_US;
    /* Snapshots or restarts, not both: raft 0.15's fixture loads a
     * restarted server's entries from index 1 even when it holds a snapshot
     * that kept trailing entries, so its log would come back garbled. */
    p->snapshot_threshold = sim_chance(g, 25) ? 16 + sim_below(g, 48) : 0;
    p->p_fault = 10 + sim_below(g, 50);
    p->p_heal = 20 + sim_below(g, 40);
    p->p_retry = 10 + sim_below(g, 35);
    p->max_batches = 1 + sim_below(g, 4);
    /* From the commands' own stream: half the scenarios trim and delete. */
    p->p_command = s->no_commands || sim_chance(&s->cmd_rng, 50) ? 0
                                                               : 5 + sim_below(&s->cmd_rng, 20);
    if (small) {
        /* The allocation sweep runs this once per allocation: keep it short,
         * but with restarts, big payloads and snapshots in it. */
        p->n_servers = 3;
        p->n_channels = 2;
        p->steps = 20;
        p->snapshot_threshold = 0;
    }
}

/* Fills `len` bytes with characters valid in a channel id (entry.h). */
static void sim__channel_chars(struct sim_rng *g, char *out, size_t len)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-";
    for (size_t i = 0; i < len; i++) {
        out[i] = set[sim_below(g, sizeof set - 1)];
    }
}

void sim_names_draw(struct sim *s)
{
    for (unsigned c = 0; c < s->p.n_channels; c++) {
        char *ch = s->channels[c];
        int n = snprintf(ch, sizeof s->channels[c], "c%u.", c);
        /* One channel id at the 128-byte limit; the others short. */
        size_t len = c == 1 ? LOG_CHANNEL_MAX : (size_t)n + sim_below(&s->rng, 16);
        sim__channel_chars(&s->rng, ch + n, len - (size_t)n);
        ch[len] = '\0';
        s->channel_len[c] = (uint8_t)len;
        HD_ASSERT(hd_channel_valid(ch, len));
    }
}

/* A new nonce on a random channel: "<id>." then printable filler, and a
 * payload of its own (a retry sends the same bytes again). */
static int sim__new_nonce(struct sim *s)
{
    if (s->n_nonces == SIM_NONCES_MAX) {
        return -1;
    }
    struct sim_rng *g = &s->rng;
    unsigned id = s->n_nonces++;
    struct sim_nonce *n = &s->nonces[id];
    n->ch = (uint8_t)sim_below(g, s->p.n_channels);
    int len = snprintf(n->text, sizeof n->text, "%u.", id);
    unsigned filler = sim_below(g, 20);
    for (unsigned i = 0; i < filler; i++) {
        n->text[len++] = (char)(0x21 + sim_below(g, 0x7e - 0x21 + 1));
    }
    n->len = (uint8_t)len;
    unsigned kind = sim_below(g, 10);
    /* Mostly small; some over apply.c's 1 KiB stack buffer (hd_malloc). */
    n->payload_len = kind < 7 ? sim_below(g, 65) : kind < 9 ? 100 + sim_below(g, 800)
                                                             : 1000 + sim_below(g, 2000);
    n->payload = malloc(n->payload_len + 1);
    HD_ASSERT(n->payload != NULL);
    for (uint32_t i = 0; i < n->payload_len; i++) {
        n->payload[i] = (uint8_t)sim_rand(g);
    }
    return (int)id;
}

/* ----------------------------------------------------------- proposing --- */

static void sim__flight_remove(struct sim_prop *p)
{
    struct sim_prop **pp = &p->sim->servers[p->server].flight;
    while (*pp != p) {
        HD_ASSERT(*pp != NULL);
        pp = &(*pp)->next_flight;
    }
    *pp = p->next_flight;
    p->in_flight = false;
}

static void sim__apply_cb(struct raft_apply *req, int status, void *result)
{
    struct sim_prop *p = req->data;
    struct sim *s = p->sim;
    (void)result;
    sim__flight_remove(p);
    p->done = true;
    p->status = status;
    if (status != 0) {
        s->n_unknown++; /* it may still commit: the client cannot know */
        return;
    }
    if (!p->applied) {
        sim_fail(s, "server %u: proposal %llu acknowledged but never applied there",
                 p->server, (unsigned long long)p->proposal);
        return;
    }
    sim_ack_check(s, p);
}

static struct sim_prop *sim__prop_new(struct sim *s, unsigned i, uint8_t kind)
{
    struct sim_prop *p = calloc(1, sizeof *p);
    HD_ASSERT(p != NULL);
    *p = (struct sim_prop){.sim = s, .server = i, .kind = kind,
                           .proposal = ++s->servers[i].next_proposal};
    return p;
}

/* Hands the encoded entry of p to raft at its server. */
static void sim__submit(struct sim *s, struct sim_prop *p, struct raft_buffer buf)
{
    struct sim_server *v = &s->servers[p->server];
    p->entry_hash = sim_entry_hash(buf.base, buf.len);
    p->next_all = s->props;
    s->props = p;
    p->next_flight = v->flight;
    v->flight = p;
    p->in_flight = true;
    p->req.data = p;
    int rv = raft_apply(raft_fixture_get(&s->f, p->server), &p->req, &buf, 1, sim__apply_cb);
    if (rv != 0) {
        raft_free(buf.base); /* nothing was appended: a known failure */
        sim__flight_remove(p);
        p->done = true;
        p->status = rv;
    }
}

/* Encodes and proposes one batch the way proposer.c does: one entry,
 * stamped with the proposing leader's wall clock. */
static void sim__propose(struct sim *s, unsigned i, const uint16_t *ids, uint32_t n)
{
    struct log_append a[SIM_BATCH_MAX];
    for (uint32_t k = 0; k < n; k++) {
        const struct sim_nonce *nc = &s->nonces[ids[k]];
        a[k] = (struct log_append){s->channels[nc->ch], s->channel_len[nc->ch], nc->text,
                                   nc->len, nc->payload, nc->payload_len};
    }
    struct sim_prop *p = sim__prop_new(s, i, LOG_ENTRY_KIND_APPENDS);
    p->count = n;
    memcpy(p->nonces, ids, n * sizeof *ids);
    struct log_entry_header h = {.stamp_us = sim_clock_us(s, i), .proposer = i + 1u,
                                 .proposal = p->proposal, .count = n};
    struct raft_buffer buf = {.len = log_entry_size(a, n)};
    buf.base = raft_malloc(buf.len);
    HD_ASSERT(buf.base != NULL);
    log_entry_encode(buf.base, &h, a, n);
    sim__submit(s, p, buf);
}

/* A trim or delete of a random channel, the way api/ proposes one: a trim
 * to somewhere around the channel's head as the client last saw it (the
 * model's), sometimes allowed to empty it, sometimes lazy. */
static void sim__propose_command(struct sim *s, unsigned i)
{
    struct sim_rng *g = &s->cmd_rng;
    unsigned c = sim_below(g, s->p.n_channels);
    struct log_command cmd = {.kind = LOG_ENTRY_KIND_TRIM, .channel = s->channels[c],
                              .channel_len = s->channel_len[c]};
    if (sim_chance(g, 25)) {
        cmd.kind = LOG_ENTRY_KIND_DELETE;
    } else {
        cmd.before_seq = 1 + sim_below(g, (uint32_t)s->model.head_seq[c] + 3);
        cmd.flags = (uint16_t)((sim_chance(g, 30) ? LOG_COMMAND_MAY_EMPTY : 0) |
                               (sim_chance(g, 50) ? LOG_COMMAND_LAZY : 0));
    }
    struct sim_prop *p = sim__prop_new(s, i, cmd.kind);
    cmd.stamp_us = sim_clock_us(s, i);
    cmd.proposer = i + 1u;
    cmd.proposal = p->proposal;
    HD_ASSERT(log_command_valid(&cmd));
    struct raft_buffer buf = {.len = log_command_size(&cmd)};
    buf.base = raft_malloc(buf.len);
    HD_ASSERT(buf.base != NULL);
    log_command_encode(buf.base, &cmd);
    sim__submit(s, p, buf);
}

/* The server a client reaches: a leader (maybe a stale one, cut off in a
 * minority), sometimes any server at all (raft_apply says NOTLEADER). */
static int sim__pick_server(struct sim *s, struct sim_rng *g)
{
    unsigned up[SIM_SERVERS_MAX], leaders[SIM_SERVERS_MAX], n_up = 0, n_leaders = 0;
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        if (s->servers[i].state != SIM_UP || s->servers[i].fatal) {
            continue;
        }
        up[n_up++] = i;
        if (raft_state(raft_fixture_get(&s->f, i)) == RAFT_LEADER) {
            leaders[n_leaders++] = i;
        }
    }
    if (n_leaders > 0 && !sim_chance(g, 5)) {
        return (int)leaders[sim_below(g, n_leaders)];
    }
    return n_up > 0 ? (int)up[sim_below(g, n_up)] : -1;
}

/* One batch: new nonces, retries of earlier ones (dedup), and now and then
 * the same nonce twice in one entry. */
static uint32_t sim__draw_batch(struct sim *s, uint16_t *ids)
{
    struct sim_rng *g = &s->rng;
    uint32_t n = 1 + sim_below(g, sim_chance(g, 80) ? 3 : SIM_BATCH_MAX);
    for (uint32_t k = 0; k < n; k++) {
        int id;
        if (k > 0 && sim_chance(g, 5)) {
            id = ids[sim_below(g, k)];
        } else if (s->n_nonces > 0 && sim_chance(g, s->p.p_retry)) {
            /* Recent nonces mostly: a client retries what it just sent. */
            unsigned back = 1 + sim_below(g, s->n_nonces < 12 ? s->n_nonces : 12);
            id = sim_chance(g, 75) ? (int)(s->n_nonces - back) : (int)sim_below(g, s->n_nonces);
        } else {
            id = sim__new_nonce(s);
            if (id < 0) {
                id = (int)sim_below(g, s->n_nonces);
            }
        }
        ids[k] = (uint16_t)id;
    }
    return n;
}

void sim_client_step(struct sim *s)
{
    unsigned batches = sim_below(&s->rng, s->p.max_batches + 1);
    for (unsigned b = 0; b < batches; b++) {
        int i = sim__pick_server(s, &s->rng);
        if (i < 0) {
            return;
        }
        uint16_t ids[SIM_BATCH_MAX];
        uint32_t n = sim__draw_batch(s, ids);
        sim__propose(s, (unsigned)i, ids, n);
    }
    if (s->p.p_command > 0 && sim_chance(&s->cmd_rng, s->p.p_command)) {
        int i = sim__pick_server(s, &s->cmd_rng);
        if (i >= 0) {
            sim__propose_command(s, (unsigned)i);
        }
    }
}

/* -------------------------------------------------------------- faults --- */

static bool sim__up(struct sim *s, unsigned i)
{
    return s->servers[i].state == SIM_UP;
}

/* Drops every message between i and the other running servers. */
static void sim__isolate(struct sim *s, unsigned i)
{
    for (unsigned j = 0; j < s->p.n_servers; j++) {
        if (j != i && sim__up(s, j)) {
            raft_fixture_saturate(&s->f, i, j);
            raft_fixture_saturate(&s->f, j, i);
        }
    }
    s->n_partitions++;
}

/* Only links between running servers are restored: a paused or crashed
 * server's links stay cut until it comes back (the fixture delivers to a
 * killed server whose links are open). */
static void sim__heal_links(struct sim *s)
{
    sim_cluster_clear_faults(s);
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        for (unsigned j = 0; j < s->p.n_servers; j++) {
            if (i != j && sim__up(s, i) && sim__up(s, j)) {
                raft_fixture_desaturate(&s->f, i, j);
            }
        }
    }
}

static void sim__clock_step(struct sim *s, unsigned i, bool back)
{
    /* Backward steps up to 4 s (NTP corrections, a VM resumed): ts must
     * still increase per channel, and dedup must still answer retries. */
    int64_t d = 1000 + (int64_t)sim_below(&s->rng, back ? 4000000 : 2000000);
    s->servers[i].skew_us += back ? -d : d;
    s->n_clock_steps++;
}

static void sim__inject(struct sim *s)
{
    struct sim_rng *g = &s->rng;
    unsigned n = s->p.n_servers, i = sim_below(g, n), j = sim_below(g, n);
    switch (sim_below(g, 10)) {
    case 0:
    case 1:
        sim__clock_step(s, i, true);
        break;
    case 2:
        sim__clock_step(s, i, false);
        break;
    case 3: /* one direction of one link loses everything */
        if (i != j && sim__up(s, i) && sim__up(s, j)) {
            raft_fixture_saturate(&s->f, i, j);
        }
        break;
    case 4:
        if (sim__up(s, i)) {
            sim__isolate(s, i);
        }
        break;
    case 5:
        if (sim__up(s, i)) {
            sim_cluster_pause(s, i);
        }
        break;
    case 6:
        if (s->p.snapshot_threshold > 0 && sim__up(s, i)) {
            sim_cluster_pause(s, i); /* no restarts with snapshots (above) */
        } else if (s->p.snapshot_threshold == 0 && s->servers[i].state != SIM_DOWN) {
            sim_cluster_crash(s, i);
        }
        break;
    case 7: /* the next few I/O requests of server i fail: raft may give up
             * (RAFT_UNAVAILABLE) and need a restart, so not with snapshots;
             * and only while i is cut off (sim_cluster_clear_faults) */
        if (s->p.snapshot_threshold > 0 || !sim__up(s, i)) {
            break;
        }
        sim__isolate(s, i);
        raft_fixture_io_fault(&s->f, i, (int)sim_below(g, 6), 1 + (int)sim_below(g, 3));
        s->servers[i].io_fault = true;
        s->n_io_faults++;
        break;
    case 8: /* a slow disk or a slow network */
        raft_fixture_set_disk_latency(&s->f, i, 1 + sim_below(g, 40));
        raft_fixture_set_network_latency(&s->f, i, 1 + sim_below(g, 120));
        break;
    default:
        raft_fixture_set_randomized_election_timeout(&s->f, i, 1000 + sim_below(g, 1000));
        break;
    }
}

static void sim__heal_one(struct sim *s)
{
    struct sim_rng *g = &s->rng;
    unsigned i = sim_below(g, s->p.n_servers);
    switch (sim_below(g, 4)) {
    case 0:
        sim__heal_links(s);
        break;
    case 1:
        if (s->servers[i].state == SIM_PAUSED) {
            sim_cluster_resume(s, i);
        }
        break;
    case 2:
        raft_fixture_io_fault(&s->f, i, -1, 0);
        s->servers[i].io_fault = false;
        break;
    default: /* a running server crashes: only when it is stuck */
        if (sim__up(s, i) && s->p.snapshot_threshold == 0 &&
            raft_state(raft_fixture_get(&s->f, i)) == RAFT_UNAVAILABLE) {
            sim_cluster_crash(s, i);
        }
        break;
    }
}

void sim_fault_step(struct sim *s)
{
    if (sim_chance(&s->rng, s->p.p_fault)) {
        sim__inject(s);
    }
    if (sim_chance(&s->rng, s->p.p_heal)) {
        sim__heal_one(s);
    }
}

void sim_heal_all(struct sim *s)
{
    sim_cluster_clear_faults(s);
    for (unsigned i = 0; i < s->p.n_servers; i++) {
        if (s->servers[i].state == SIM_PAUSED) {
            sim_cluster_resume(s, i);
        }
    }
    sim__heal_links(s);
}
