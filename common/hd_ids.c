/* SPDX-License-Identifier: Apache-2.0 */
/* Channel id and nonce rules, and the shard rule (hd_ids.h). */
#include "hd_ids.h"

#include <stdint.h>

#include "hd_assert.h"
#include "hd_util.h"

HD_STATIC_ASSERT(HD_CHANNEL_MAX <= UINT8_MAX, "a channel id's length is one byte on disk");
HD_STATIC_ASSERT(HD_NONCE_MAX <= UINT8_MAX, "a nonce's length is one byte on disk");

bool hd_channel_valid(const char *id, size_t len)
{
    if (len == 0 || len > HD_CHANNEL_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool hd_nonce_valid(const char *nonce, size_t len)
{
    if (len == 0 || len > HD_NONCE_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)nonce[i];
        if (c < 0x21 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

unsigned hd_shard_of(unsigned n_shards, const char *channel, size_t len)
{
    HD_ASSERT(n_shards > 0 && n_shards <= 65536); /* shards are u16 in keys */
    HD_ASSERT(len > 0 && len <= HD_CHANNEL_MAX);
    return (unsigned)(hd_hash64(channel, len) % n_shards);
}
