/* SPDX-License-Identifier: Apache-2.0 */
/* A consistent copy of the state, and a restored state's new applied index. */
#include "hd_assert.h"
#include "hd_util.h"
#include "keys.h"
#include "log.h"
#include "log_internal.h"
#include "rocks.h"

int log_checkpoint(struct log_store *ls, const char *dir)
{
    /* Every apply is one write batch holding its applied index (log.h), so
     * any point-in-time copy has each shard's data matching its index. */
    return st_rocks_checkpoint(ls->rocks, dir);
}

int log_state_rebase(struct log_store *ls, uint16_t shard, uint64_t applied)
{
    HD_ASSERT(shard < ls->n_shards && applied > 0);
    uint8_t key[4];
    size_t key_len = log_key_applied(key, shard);
    uint8_t val[8];
    hd_put_u64(val, applied);
    st_batch_clear(ls->batch);
    st_batch_put(ls->batch, key, key_len, val, sizeof val);
    int rv = log__write(ls);
    st_batch_clear(ls->batch);
    return rv;
}
