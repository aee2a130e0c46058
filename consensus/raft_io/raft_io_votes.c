/* SPDX-License-Identifier: Apache-2.0 */
/* Terms and votes of every shard: one two-slot file, durable before raft goes on. */
#include <string.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_exit.h"
#include "hd_util.h"
#include "meta_file.h"
#include "raft_io_internal.h"

/* -------------------------------------------------------- term and vote --- */

int cons__store_votes(struct cons_store *s)
{
    HD_ASSERT(s->n_shards > 0 && s->n_shards <= 65536);
    uint8_t *blob = hd_malloc((size_t)s->n_shards * 16);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    for (unsigned i = 0; i < s->n_shards; i++) {
        hd_put_u64(blob + i * 16, s->shards[i].term);
        hd_put_u64(blob + i * 16 + 8, s->shards[i].voted_for);
    }
    int rv = st_meta_file_store(&s->votes, blob, (size_t)s->n_shards * 16);
    hd_free(blob);
    if (rv != 0) {
        HD_LOG_ERROR("store term/vote: %s", hd_strerror(rv));
    }
    return rv;
}

int cons__load_votes(struct cons_store *s, char *errmsg, size_t errmsg_len)
{
    size_t cap = (size_t)s->n_shards * 16, len = 0;
    uint8_t *blob = hd_malloc(cap);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    int rv = st_meta_file_load(&s->votes, blob, cap, &len);
    if (rv == HD_ENOTFOUND) {
        rv = 0;
    } else if (rv == 0 && len != cap) {
        snprintf(errmsg, errmsg_len, "term/vote file holds %zu shards, expected %u",
                 len / 16, s->n_shards);
        rv = HD_ECORRUPT;
    } else if (rv == 0) {
        for (unsigned i = 0; i < s->n_shards; i++) {
            s->shards[i].term = hd_get_u64(blob + i * 16);
            s->shards[i].voted_for = hd_get_u64(blob + i * 16 + 8);
        }
    } else {
        snprintf(errmsg, errmsg_len, "load term/vote: %s", hd_strerror(rv));
    }
    hd_free(blob);
    return rv;
}

/* Term and vote while running. A failed write stops the node, like a
 * failed WAL write: canonical/raft turns a set_term or set_vote error into
 * a shard that stays unavailable until a restart, and the term in memory
 * is already ahead of the one on disk. Nothing was promised on it (no vote
 * went out). */
static int cons__store_votes_or_stop(struct cons_store *s)
{
    int rv = cons__store_votes(s);
    if (rv != 0 && rv != HD_ENOMEM) {
        HD_LOG_ERROR("term/vote write failed: %s; stopping the node (exit %d): a "
                     "restart reads the last term and vote on disk",
                     hd_strerror(rv), HD_EXIT_WAL_FAILED);
        _exit(HD_EXIT_WAL_FAILED);
    }
    return rv;
}

int cons__set_term(struct raft_io *io, raft_term term)
{
    struct cons_shard_log *sl = cons__sl(io);
    HD_ASSERT(term >= sl->term);
    HD_ASSERT(term > 0);
    sl->term = term;
    sl->voted_for = 0;
    return cons__raft_err(cons__store_votes_or_stop(sl->store));
}

int cons__set_vote(struct raft_io *io, raft_id server_id)
{
    struct cons_shard_log *sl = cons__sl(io);
    /* Usually one vote per term, but not always: a leader handing its
     * shard over (raft_transfer) grants the transferee its vote even when
     * it voted for another server earlier in the term (canonical/raft's
     * recvRequestVote, is_transferee). So no assert on the earlier vote;
     * the jepsen network scenario (seed 101) hit one. */
    HD_ASSERT(server_id != 0 && sl->term > 0);
    sl->voted_for = server_id;
    return cons__raft_err(cons__store_votes_or_stop(sl->store));
}
