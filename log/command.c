/* SPDX-License-Identifier: Apache-2.0 */
/* Command entry codec (format in command.h). */
#include "command.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_util.h"

bool log_entry_is_command(const uint8_t *buf, size_t len)
{
    return buf != NULL && len >= 2 &&
           (buf[1] == LOG_ENTRY_KIND_TRIM || buf[1] == LOG_ENTRY_KIND_DELETE);
}

size_t log_command_size(size_t channel_len)
{
    return LOG_ENTRY_HEADER_SIZE + 1 + channel_len + 8 + 4;
}

static bool log__command_valid(const struct log_command *c)
{
    if (!hd_channel_valid(c->channel, c->channel_len)) {
        return false;
    }
    if (c->kind == LOG_ENTRY_KIND_TRIM) {
        return c->before_seq >= 1 &&
               (c->flags & ~(LOG_COMMAND_MAY_EMPTY | LOG_COMMAND_LAZY)) == 0;
    }
    return c->kind == LOG_ENTRY_KIND_DELETE && c->before_seq == 0 && c->flags == 0;
}

size_t log_command_encode(uint8_t *buf, const struct log_command *c)
{
    HD_ASSERT(log__command_valid(c)); /* callers validate user input first */
    buf[0] = LOG_ENTRY_VERSION;
    buf[1] = c->kind;
    hd_put_u16(buf + 2, c->flags);
    hd_put_u32(buf + 4, 1);
    hd_put_u64(buf + 8, c->stamp_us);
    hd_put_u64(buf + 16, c->proposer);
    hd_put_u64(buf + 24, c->proposal);
    uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE;
    *p++ = (uint8_t)c->channel_len;
    memcpy(p, c->channel, c->channel_len);
    p += c->channel_len;
    hd_put_u64(p, c->before_seq);
    p += 8;
    size_t len = (size_t)(p - buf);
    hd_put_u32(p, hd_crc32c(0, buf, len));
    HD_ASSERT(len + 4 == log_command_size(c->channel_len));
    return len + 4;
}

int log_command_decode(const uint8_t *buf, size_t len, struct log_command *c)
{
    HD_ASSERT(c != NULL);
    if (buf == NULL || len < log_command_size(1) || !log_entry_is_command(buf, len) ||
        buf[0] != LOG_ENTRY_VERSION || hd_get_u32(buf + 4) != 1) {
        return HD_ECORRUPT;
    }
    size_t channel_len = buf[LOG_ENTRY_HEADER_SIZE];
    if (channel_len == 0 || len != log_command_size(channel_len)) {
        return HD_ECORRUPT;
    }
    if (hd_crc32c(0, buf, len - 4) != hd_get_u32(buf + len - 4)) {
        return HD_ECORRUPT;
    }
    const uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE + 1;
    *c = (struct log_command){
        .kind = buf[1],
        .channel = (const char *)p,
        .channel_len = channel_len,
        .before_seq = hd_get_u64(p + channel_len),
        .flags = hd_get_u16(buf + 2),
        .stamp_us = hd_get_u64(buf + 8),
        .proposer = hd_get_u64(buf + 16),
        .proposal = hd_get_u64(buf + 24),
    };
    return log__command_valid(c) ? 0 : HD_ECORRUPT;
}
