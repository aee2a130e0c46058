/* SPDX-License-Identifier: Apache-2.0 */
/* Reporting the members of the shards' configurations when they change. */
#include "member_watch.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_util.h"
#include "node_internal.h"

/*
 * Why a watch and not a hook on the change: a configuration changes on a
 * follower when raft appends (or a snapshot installs) a configuration
 * entry, inside canonical/raft, which calls nothing of ours for it. So the
 * ticker compares the union of every shard's configuration with what was
 * last reported: a few dozen servers, four times a second, and a report
 * only when something differs. The union, not one shard's, because during
 * a change (or one left unfinished) shards differ, and every member any
 * shard names is one a damaged node may ask.
 */

/* Inserts (id, address) into w, kept sorted by id; an id already there
 * keeps its first address. False if w is full or the address too long. */
static bool cons__watch_insert(struct cons_member_watch *w, uint64_t id, const char *address)
{
    unsigned k = 0;
    while (k < w->n && w->ids[k] < id) k++;
    if (k < w->n && w->ids[k] == id) {
        return true;
    }
    if (w->n == CONS_MEMBER_WATCH_MAX || strlen(address) > CONS_FRAME_ADDRESS_MAX) {
        return false;
    }
    memmove(&w->ids[k + 1], &w->ids[k], (w->n - k) * sizeof w->ids[0]);
    memmove(&w->addresses[k + 1], &w->addresses[k], (w->n - k) * sizeof w->addresses[0]);
    w->ids[k] = id;
    memcpy(w->addresses[k], address, strlen(address) + 1);
    w->n++;
    return true;
}

static bool cons__watch_same(const struct cons_member_watch *a, const struct cons_member_watch *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (unsigned k = 0; k < a->n; k++) {
        if (a->ids[k] != b->ids[k] || strcmp(a->addresses[k], b->addresses[k]) != 0) {
            return false;
        }
    }
    return true;
}

void cons__member_watch(struct cons_node *n)
{
    if (n->opts.on_members == NULL) {
        return;
    }
    struct cons_member_watch *seen = &n->members_seen;
    uint64_t now = uv_now(n->opts.loop);
    if (seen->retry_at_ms != 0 && now < seen->retry_at_ms) {
        return;
    }
    static struct cons_member_watch cur; /* 4.7 KB; the loop thread only */
    cur.n = 0;
    for (unsigned s = 0; s < n->opts.n_shards; s++) {
        const struct raft_configuration *c = &n->shards[s].raft.configuration;
        for (unsigned k = 0; k < c->n; k++) {
            if (!cons__watch_insert(&cur, c->servers[k].id, c->servers[k].address)) {
                HD_LOG_DEBUG("member list: node %llu left out (more than %u members, or "
                             "an address too long)", (unsigned long long)c->servers[k].id,
                             CONS_MEMBER_WATCH_MAX);
            }
        }
    }
    /* A joining node not added yet names nobody: what it knew stays. */
    if (cur.n == 0 || (seen->reported && seen->retry_at_ms == 0 && cons__watch_same(&cur, seen))) {
        return;
    }
    struct cons_member list[CONS_MEMBER_WATCH_MAX];
    for (unsigned k = 0; k < cur.n; k++) {
        list[k] = (struct cons_member){cur.ids[k], cur.addresses[k]};
    }
    if (n->opts.on_members(n->opts.on_members_arg, list, cur.n) != 0) {
        seen->retry_at_ms = now + CONS_MEMBER_WATCH_RETRY_MS;
        return;
    }
    HD_ASSERT(cur.n <= CONS_MEMBER_WATCH_MAX);
    seen->n = cur.n;
    memcpy(seen->ids, cur.ids, cur.n * sizeof cur.ids[0]);
    memcpy(seen->addresses, cur.addresses, cur.n * sizeof cur.addresses[0]);
    seen->reported = true;
    seen->retry_at_ms = 0;
}
