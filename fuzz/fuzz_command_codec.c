/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the command decoder (log/command.c: trim, delete, policy) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An accepted command names a valid channel (trim, delete) or holds a
 * policy text of printable ASCII (policy) inside the buffer, and encodes
 * back to exactly the same bytes; a rejected one is HD_ECORRUPT. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct log_command c;
    int rv = log_command_decode(data, size, &c);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    if (c.kind == LOG_ENTRY_KIND_POLICY) {
        HD_ASSERT(c.text_len <= LOG_POLICY_TEXT_MAX);
        HD_ASSERT((const uint8_t *)c.text > data &&
                  (const uint8_t *)c.text + c.text_len < data + size);
        for (size_t i = 0; i < c.text_len; i++) {
            HD_ASSERT(c.text[i] >= 0x20 && c.text[i] <= 0x7e);
        }
        HD_ASSERT(c.flags == 0 || (c.flags == LOG_POLICY_CLEAR && c.text_len == 0));
    } else {
        HD_ASSERT(hd_channel_valid(c.channel, c.channel_len));
        HD_ASSERT((const uint8_t *)c.channel > data &&
                  (const uint8_t *)c.channel + c.channel_len < data + size);
    }
    HD_ASSERT(log_command_valid(&c) && log_command_size(&c) == size);
    uint8_t *buf = malloc(size);
    HD_ASSERT(buf != NULL);
    HD_ASSERT(log_command_encode(buf, &c) == size && memcmp(buf, data, size) == 0);
    free(buf);
    return 0;
}
