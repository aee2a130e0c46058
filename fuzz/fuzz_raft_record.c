/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the decoder of Raft records kept in the WAL (consensus/wal_record.c). */
#include <stddef.h>
#include <stdint.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "wal_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cons_rec r;
    int rv = cons_rec_decode(data, size, &r);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    if (r.kind != CONS_REC_ENTRIES) {
        return 0;
    }
    struct cons_rec_iter it;
    cons_rec_iter_init(&it, &r);
    struct raft_entry e;
    uint32_t n = 0;
    while (cons_rec_iter_next(&it, &e)) {
        const uint8_t *base = e.buf.base;
        HD_ASSERT(base >= data && base + e.buf.len <= data + size);
        n++;
    }
    HD_ASSERT(n == r.n);
    return 0;
}
