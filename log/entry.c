/* SPDX-License-Identifier: Apache-2.0 */
/* Entry codec and id validation (format in entry.h). */
#include "entry.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

bool log_channel_valid(const char *id, size_t len)
{
    return hd_channel_valid(id, len);
}

bool log_nonce_valid(const char *nonce, size_t len)
{
    return hd_nonce_valid(nonce, len);
}

size_t log_entry_size(const struct log_append *appends, size_t n)
{
    size_t size = LOG_ENTRY_HEADER_SIZE + 4;
    for (size_t i = 0; i < n; i++) {
        size += 1 + appends[i].channel_len + 1 + appends[i].nonce_len + 4 +
                appends[i].payload_len;
    }
    return size;
}

void log_entry_encode(uint8_t *buf, const struct log_entry_header *h,
                      const struct log_append *appends, size_t n)
{
    HD_ASSERT(n == h->count);
    HD_ASSERT(n > 0 && n <= LOG_ENTRY_APPENDS_MAX);
    buf[0] = LOG_ENTRY_VERSION;
    buf[1] = LOG_ENTRY_KIND_APPENDS;
    hd_put_u16(buf + 2, 0);
    hd_put_u32(buf + 4, h->count);
    hd_put_u64(buf + 8, h->stamp_us);
    hd_put_u64(buf + 16, h->proposer);
    hd_put_u64(buf + 24, h->proposal);
    uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE;
    for (size_t i = 0; i < n; i++) {
        const struct log_append *a = &appends[i];
        HD_ASSERT(log_channel_valid(a->channel, a->channel_len));
        HD_ASSERT(log_nonce_valid(a->nonce, a->nonce_len));
        *p++ = (uint8_t)a->channel_len;
        memcpy(p, a->channel, a->channel_len);
        p += a->channel_len;
        *p++ = (uint8_t)a->nonce_len;
        memcpy(p, a->nonce, a->nonce_len);
        p += a->nonce_len;
        hd_put_u32(p, (uint32_t)a->payload_len);
        p += 4;
        if (a->payload_len > 0) {
            memcpy(p, a->payload, a->payload_len);
        }
        p += a->payload_len;
    }
    hd_put_u32(p, hd_crc32c(0, buf, (size_t)(p - buf)));
}

/* Reads one append at *pos, checking bounds and ids; NULL on a defect. */
static const uint8_t *log__decode_append(const uint8_t *p, const uint8_t *end,
                                         struct log_append *out)
{
    if (end - p < 1) return NULL;
    out->channel_len = *p++;
    if ((size_t)(end - p) < out->channel_len) return NULL;
    out->channel = (const char *)p;
    p += out->channel_len;
    if (!log_channel_valid(out->channel, out->channel_len)) return NULL;
    if (end - p < 1) return NULL;
    out->nonce_len = *p++;
    if ((size_t)(end - p) < out->nonce_len) return NULL;
    out->nonce = (const char *)p;
    p += out->nonce_len;
    if (!log_nonce_valid(out->nonce, out->nonce_len)) return NULL;
    if (end - p < 4) return NULL;
    out->payload_len = hd_get_u32(p);
    p += 4;
    if (out->payload_len > LOG_PAYLOAD_MAX || (size_t)(end - p) < out->payload_len) {
        return NULL;
    }
    out->payload = p;
    return p + out->payload_len;
}

int log_entry_decode(const uint8_t *buf, size_t len, struct log_entry_header *h)
{
    HD_ASSERT(h != NULL);
    if (buf == NULL || len < LOG_ENTRY_HEADER_SIZE + 4) {
        return HD_ECORRUPT;
    }
    if (buf[0] != LOG_ENTRY_VERSION || buf[1] != LOG_ENTRY_KIND_APPENDS ||
        hd_get_u16(buf + 2) != 0) {
        return HD_ECORRUPT;
    }
    const uint8_t *crc_at = buf + len - 4;
    if (hd_crc32c(0, buf, len - 4) != hd_get_u32(crc_at)) {
        return HD_ECORRUPT;
    }
    h->count = hd_get_u32(buf + 4);
    h->stamp_us = hd_get_u64(buf + 8);
    h->proposer = hd_get_u64(buf + 16);
    h->proposal = hd_get_u64(buf + 24);
    if (h->count == 0 || h->count > LOG_ENTRY_APPENDS_MAX) {
        return HD_ECORRUPT;
    }
    const uint8_t *p = buf + LOG_ENTRY_HEADER_SIZE;
    for (uint32_t i = 0; i < h->count; i++) {
        struct log_append a;
        p = log__decode_append(p, crc_at, &a);
        if (p == NULL) {
            return HD_ECORRUPT;
        }
    }
    return p == crc_at ? 0 : HD_ECORRUPT;
}

void log_entry_iter_init(struct log_entry_iter *it, const uint8_t *buf, size_t len)
{
    HD_ASSERT(len >= LOG_ENTRY_HEADER_SIZE + 4);
    it->pos = buf + LOG_ENTRY_HEADER_SIZE;
    it->end = buf + len - 4;
    it->left = hd_get_u32(buf + 4);
}

bool log_entry_iter_next(struct log_entry_iter *it, struct log_append *out)
{
    if (it->left == 0) {
        return false;
    }
    const uint8_t *next = log__decode_append(it->pos, it->end, out);
    /* log_entry_decode() accepted this entry, so decoding cannot fail. */
    HD_ASSERT(next != NULL);
    it->pos = next;
    it->left--;
    return true;
}
