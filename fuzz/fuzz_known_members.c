/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: DATA/herald.members (heraldd/known_members.h). */
#include <stddef.h>
#include <stdint.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "known_members.h"

/*
 * Any bytes: a member list is accepted only if it is exactly what the
 * writer produces (its checksum included) for a valid list; everything
 * else is HD_ECORRUPT, never an assert or an out-of-bounds read. What is
 * accepted is a list the writer takes again.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct api_known_members m, again;
    int rv = api_known_members_parse((const char *)data, size, &m);
    HD_ASSERT(rv == 0 || rv == HD_ECORRUPT);
    if (rv == 0) {
        HD_ASSERT(api_known_members_valid(&m) == 0);
        HD_ASSERT(m.n >= 1 && m.list[0].id >= 1);
        /* Parsing is exact, so the same bytes parse to the same list. */
        HD_ASSERT(api_known_members_parse((const char *)data, size, &again) == 0);
        HD_ASSERT(api_known_members_equal(&m, &again));
    }
    return 0;
}
