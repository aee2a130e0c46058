/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the decoder of a shard's snapshot file (consensus/raft_io/snapshot_meta.c). */
#include <raft.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "raft_io_internal.h"

/* Bad input must give HD_ECORRUPT and free what it built; a blob that
 * decodes holds exactly the data length it claims. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_snapshot snap;
    memset(&snap, 0, sizeof snap);
    int rv = cons__snapshot_decode(data, size, &snap);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT || rv == HD_ENOMEM);
        return 0;
    }
    HD_ASSERT(snap.n_bufs == 1 && snap.bufs[0].len <= size);
    raft_configuration_close(&snap.configuration);
    raft_free(snap.bufs[0].base);
    raft_free(snap.bufs);
    return 0;
}
