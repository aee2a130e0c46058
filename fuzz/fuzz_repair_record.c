/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: DATA/herald.repair (heraldd/repair_record.h). */
#include <stddef.h>
#include <stdint.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "repair_record.h"

/*
 * Any bytes: a record is accepted only if it is exactly what the writer
 * produces (its checksum included), with ids of at least 1; everything
 * else is HD_ECORRUPT, never an assert or an out-of-bounds read.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_repair_record r;
    int rv = api_repair_record_parse((const char *)data, size, &r);
    HD_ASSERT(rv == 0 || rv == HD_ECORRUPT);
    if (rv == 0) {
        HD_ASSERT(r.origin_id >= 1 && r.node_id >= 1);
    }
    return 0;
}
