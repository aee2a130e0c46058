/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the /v1/shards answer as libherald reads it (client/shards.c),
 * what a router trusts to pick the node for each append. */
#include <stddef.h>
#include <stdint.h>

#include "client_internal.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "herald/herald.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Any bytes: a map of 1-65536 shards whose every entry is readable, or
 * corrupt with nothing allocated. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct herald_client c;
    if (herald_client_init(&c, "http://127.0.0.1:7400") != 0) {
        return 0;
    }
    struct herald_shard_map map = {0};
    int rv = herald__shards_parse(&c, (const char *)data, size, &map);
    HD_ASSERT(rv == 0 || rv == HD_ECORRUPT || rv == HD_ENOMEM);
    if (rv == 0) {
        HD_ASSERT(map.node_id > 0 && map.shards >= 1 && map.shards <= 65536);
        uint64_t sum = 0;
        for (unsigned i = 0; i < map.shards; i++) {
            sum += map.leaders[i];
        }
        (void)sum;
        unsigned shard = 0;
        HD_ASSERT(herald_shard_of(map.shards, "a-channel", &shard) == 0 && shard < map.shards);
    } else {
        HD_ASSERT(map.leaders == NULL);
    }
    herald_shard_map_free(&map);
    herald_client_close(&c);
    return 0;
}
