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
           (buf[1] == LOG_ENTRY_KIND_TRIM || buf[1] == LOG_ENTRY_KIND_DELETE ||
            buf[1] == LOG_ENTRY_KIND_POLICY);
}

size_t log_command_size(const struct log_command *c)
{
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        return LOG_ENTRY_HEADER_SIZE + 4 + c->text_len + 4;
    }
    return LOG_ENTRY_HEADER_SIZE + 1 + c->channel_len + 8 + 4;
}

size_t log_command_encode(uint8_t *buf, const struct log_command *c)
{
    HD_ASSERT(log_command_valid(c)); /* callers validate user input first */
    buf[0] = LOG_ENTRY_VERSION;
    buf[1] = c->kind;
    hd_put_u16(buf + 2, c->flags);
    hd_put_u32(buf + 4, 1);
    hd_put_u64(buf + 8, c->stamp_us);
    hd_put_u64(buf + 16, c->proposer);
    hd_put_u64(buf + 24, c->proposal);
    uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE;
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        hd_put_u32(p, (uint32_t)c->text_len);
        p += 4;
        if (c->text_len > 0) {
            memcpy(p, c->text, c->text_len);
        }
        p += c->text_len;
    } else {
        *p++ = (uint8_t)c->channel_len;
        memcpy(p, c->channel, c->channel_len);
        p += c->channel_len;
        hd_put_u64(p, c->before_seq);
        p += 8;
    }
    size_t len = (size_t)(p - buf);
    hd_put_u32(p, hd_crc32c(0, buf, len));
    HD_ASSERT(len + 4 == log_command_size(c));
    return len + 4;
}

int log_command_decode(const uint8_t *buf, size_t len, struct log_command *c)
{
    HD_ASSERT(c != NULL);
    if (buf == NULL || len < LOG_ENTRY_HEADER_SIZE + 4 + 4 || !log_entry_is_command(buf, len) ||
        buf[0] != LOG_ENTRY_VERSION || hd_get_u32(buf + 4) != 1) {
        return HD_ECORRUPT;
    }
    if (hd_crc32c(0, buf, len - 4) != hd_get_u32(buf + len - 4)) {
        return HD_ECORRUPT;
    }
    *c = (struct log_command){
        .kind = buf[1],
        .flags = hd_get_u16(buf + 2),
        .stamp_us = hd_get_u64(buf + 8),
        .proposer = hd_get_u64(buf + 16),
        .proposal = hd_get_u64(buf + 24),
    };
    const uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE;
    if (c->kind == LOG_ENTRY_KIND_POLICY) {
        c->text_len = hd_get_u32(p);
        c->text = (const char *)p + 4;
        if (c->text_len > LOG_POLICY_TEXT_MAX || len != log_command_size(c)) {
            return HD_ECORRUPT;
        }
    } else {
        c->channel_len = *p;
        c->channel = (const char *)p + 1;
        if (c->channel_len == 0 || len != log_command_size(c)) {
            return HD_ECORRUPT;
        }
        c->before_seq = hd_get_u64(p + 1 + c->channel_len);
    }
    return log_command_valid(c) ? 0 : HD_ECORRUPT;
}
