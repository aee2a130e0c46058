/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the snapshot manifest decoder (consensus/node/manifest.h). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "manifest.h"

/* A manifest that decodes must encode back to the same bytes. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cons_manifest m;
    int rv = cons_manifest_decode(data, size, &m);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    uint8_t again[CONS_MANIFEST_SIZE];
    cons_manifest_encode(again, &m);
    HD_ASSERT(size == sizeof again && memcmp(again, data, size) == 0);
    return 0;
}
