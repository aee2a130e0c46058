/* SPDX-License-Identifier: Apache-2.0 */
/* Writing state, and the applied index each write leaves (log_internal.h). */
#include "hd_assert.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

/*
 * Every apply first checks its raft index against the shard's applied index
 * (an entry applied before a restart is skipped). Read from RocksDB, that
 * was one memtable lookup per Raft entry, about as costly as a put; at 1.5
 * appends per entry it was a third of the node's RocksDB reads. The store
 * knows the answer: it wrote it. So it keeps each shard's applied index as
 * its last apply wrote it, and forgets all of them whenever anything else
 * writes state (trims and deletes, snapshot installs, the policy, a restore
 * rebase): those may set an index, and the next check reads state again.
 * A remembered index is only ever the value RocksDB holds for the key.
 */

int log__write(struct log_store *ls)
{
    for (unsigned i = 0; i < ls->n_shards; i++) {
        ls->applied_known[i] = 0;
    }
    return st_rocks_write(ls->rocks, ls->batch);
}

int log__write_applied(struct log_store *ls, uint16_t shard, uint64_t index)
{
    HD_ASSERT(index > 0);
    int rv = st_rocks_write(ls->rocks, ls->batch);
    /* A failed write leaves the store failed (rocks.h rule 3): nothing is
     * remembered, so nothing outlives it. A shard beyond the store's count
     * (only an entry of no appends gets this far with one) is not kept. */
    if (shard < ls->n_shards) {
        ls->applied_known[shard] = rv == 0 ? index : 0;
    }
    return rv;
}

bool log__applied_known(const struct log_store *ls, uint16_t shard, uint64_t *index)
{
    *index = shard < ls->n_shards ? ls->applied_known[shard] : 0;
    return *index != 0;
}
