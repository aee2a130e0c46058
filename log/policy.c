/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster's retention policy: its state key, applying its command, and its parsed cache. */
#include <string.h>

#include "command.h"
#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_retention.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

/*
 * A policy set through Raft (command.h kind 4) lives in shard 0's state as
 * its canonical text ('p' key, keys.h), so snapshots, catch-up transfers and
 * backups carry it like any channel's data. Every replica applies it at the
 * same index, and flushes it at once, so that a restart starts with it.
 * The parsed form is kept here and replaced only when the key changes, so
 * the retention sweep and the status answers read a pointer.
 *
 * A text this build's parser refuses (a newer build's limit, say) cannot be
 * refused at apply: the entry is committed and every replica must reach the
 * same state. It is stored as it is, and this node keeps everything under
 * it (an empty policy) with a warning: trimming by a rule it cannot read
 * could drop what the cluster meant to keep.
 */

/* Parses text into a new policy; an unreadable one becomes the empty one. */
static struct hd_retention *log__policy_parse(const char *text, size_t len)
{
    struct hd_retention *p = hd_calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL;
    }
    char err[256];
    if (len > 0 && hd_retention_parse(p, text, len, err, sizeof err) != 0) {
        HD_LOG_WARN("retention: the cluster's policy \"%.*s\" does not parse here (%s):"
                    " this node keeps every message until it is set again",
                    (int)len, text, err);
        memset(p, 0, sizeof *p);
    }
    return p;
}

const struct hd_retention *log_retention_effective(struct log_store *ls, bool *from_cluster)
{
    HD_ASSERT(ls != NULL);
    if (from_cluster != NULL) {
        *from_cluster = ls->cluster_policy != NULL;
    }
    return ls->cluster_policy != NULL ? ls->cluster_policy : ls->config_policy;
}

/* Installs the new cluster policy (NULL: none), frees the old one, and
 * logs the effective policy if it changed and `announce`. */
static void log__policy_swap(struct log_store *ls, struct hd_retention *next, bool announce)
{
    char before[HD_RETENTION_TEXT_MAX], after[HD_RETENTION_TEXT_MAX];
    bool was_cluster, is_cluster;
    hd_retention_format(log_retention_effective(ls, &was_cluster), before, sizeof before);
    hd_free(ls->cluster_policy);
    ls->cluster_policy = next;
    const struct hd_retention *now = log_retention_effective(ls, &is_cluster);
    hd_retention_format(now, after, sizeof after);
    if (announce && (was_cluster != is_cluster || strcmp(before, after) != 0)) {
        char hash[9];
        hd_retention_hash(now, hash);
        HD_LOG_INFO("retention: policy now \"%s\" (%s; hash %s)", after,
                    is_cluster ? "cluster" : "config", hash);
    }
}

int log__apply_policy(struct log_store *ls, uint16_t shard, uint64_t index,
                      const struct log_command *c)
{
    HD_ASSERT(c->kind == LOG_ENTRY_KIND_POLICY);
    if (shard != LOG_POLICY_SHARD) {
        return HD_ECORRUPT; /* only shard 0 carries the policy */
    }
    bool clear = (c->flags & LOG_POLICY_CLEAR) != 0;
    struct hd_retention *next = clear ? NULL : log__policy_parse(c->text, c->text_len);
    if (!clear && next == NULL) {
        return HD_ENOMEM;
    }
    uint8_t key[4], val[8];
    size_t key_len = log_key_policy(key, shard);
    st_batch_clear(ls->batch);
    if (clear) {
        st_batch_delete(ls->batch, key, key_len);
    } else {
        st_batch_put(ls->batch, key, key_len, c->text, c->text_len);
    }
    hd_put_u64(val, index);
    st_batch_put(ls->batch, key, log_key_applied(key, shard), val, sizeof val);
    int rv = log__write(ls);
    st_batch_clear(ls->batch);
    if (rv == 0) {
        /* RocksDB's WAL is off (log.h): without a flush a node restarted
         * now would run on its config policy until Raft re-applied this
         * entry. Policy changes are rare; the pause is worth it. */
        rv = st_rocks_flush(ls->rocks);
    }
    if (rv != 0) {
        hd_free(next);
        return rv;
    }
    log__policy_swap(ls, next, true);
    return 0;
}

int log__policy_load(struct log_store *ls, bool announce)
{
    char text[LOG_POLICY_TEXT_MAX + 1];
    uint8_t key[4];
    size_t len = 0;
    int rv = st_rocks_get_into(ls->rocks, key, log_key_policy(key, LOG_POLICY_SHARD), text,
                               sizeof text - 1, &len);
    if (rv == HD_ENOTFOUND) {
        if (ls->cluster_policy != NULL) {
            log__policy_swap(ls, NULL, announce);
        }
        return 0;
    }
    if (rv != 0) {
        return rv == HD_ETOOBIG ? HD_ECORRUPT : rv;
    }
    struct hd_retention *next = log__policy_parse(text, len);
    if (next == NULL) {
        return HD_ENOMEM;
    }
    log__policy_swap(ls, next, announce);
    return 0;
}

void log__policy_free(struct log_store *ls)
{
    hd_free(ls->cluster_policy);
    ls->cluster_policy = NULL;
}
