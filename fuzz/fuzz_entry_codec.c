/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the Raft entry payload decoder (log/entry.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "entry.h"
#include "hd_assert.h"
#include "hd_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted entry must iterate to exactly `count` valid appends that lie
 * inside the buffer; a rejected one must be HD_ECORRUPT. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct log_entry_header h;
    int rv = log_entry_decode(data, size, &h);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    struct log_entry_iter it;
    log_entry_iter_init(&it, data, size);
    struct log_append a;
    uint32_t n = 0;
    while (log_entry_iter_next(&it, &a)) {
        HD_ASSERT(hd_channel_valid(a.channel, a.channel_len));
        HD_ASSERT(hd_nonce_valid(a.nonce, a.nonce_len));
        HD_ASSERT(a.payload >= data && a.payload + a.payload_len <= data + size);
        n++;
    }
    HD_ASSERT(n == h.count);
    return 0;
}
