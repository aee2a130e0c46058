/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the trim/delete command decoder (log/command.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted command names a valid channel inside the buffer and encodes
 * back to exactly the same bytes; a rejected one is HD_ECORRUPT. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct log_command c;
    int rv = log_command_decode(data, size, &c);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    HD_ASSERT(hd_channel_valid(c.channel, c.channel_len));
    HD_ASSERT((const uint8_t *)c.channel > data &&
              (const uint8_t *)c.channel + c.channel_len < data + size);
    uint8_t buf[LOG_ENTRY_HEADER_SIZE + 1 + HD_CHANNEL_MAX + 8 + 4];
    HD_ASSERT(log_command_size(c.channel_len) == size && size <= sizeof buf);
    HD_ASSERT(log_command_encode(buf, &c) == size && memcmp(buf, data, size) == 0);
    return 0;
}
