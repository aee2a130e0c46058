/* SPDX-License-Identifier: Apache-2.0 */
/* The snapshot manifest codec (layout in manifest.h). */
#include "manifest.h"

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

void cons_manifest_encode(uint8_t out[CONS_MANIFEST_SIZE], const struct cons_manifest *m)
{
    HD_ASSERT(out != NULL && m != NULL);
    hd_put_u32(out, CONS_MANIFEST_MAGIC);
    hd_put_u32(out + 4, m->shard);
    hd_put_u64(out + 8, m->applied);
}

int cons_manifest_decode(const uint8_t *buf, size_t len, struct cons_manifest *out)
{
    HD_ASSERT(out != NULL);
    if (buf == NULL || len != CONS_MANIFEST_SIZE || hd_get_u32(buf) != CONS_MANIFEST_MAGIC) {
        return HD_ECORRUPT;
    }
    out->shard = hd_get_u32(buf + 4);
    out->applied = hd_get_u64(buf + 8);
    return 0;
}
