/* SPDX-License-Identifier: Apache-2.0 */
/* Entry codec (format in entry.h). */
#include "entry.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

size_t log_append_size(const struct log_append *a)
{
    /* Each length is one byte on the wire (entry.h). */
    HD_ASSERT(a->channel_len <= LOG_CHANNEL_MAX && a->nonce_len <= LOG_NONCE_MAX);
    return 1 + a->channel_len + 1 + a->nonce_len + 4 + a->payload_len;
}

size_t log_entry_size(const struct log_append *appends, size_t n)
{
    size_t size = LOG_ENTRY_HEADER_SIZE + 4;
    for (size_t i = 0; i < n; i++) {
        size += log_append_size(&appends[i]);
    }
    return size;
}

void log_entry_begin(struct log_entry_writer *w, uint8_t *buf, const struct log_entry_header *h)
{
    HD_ASSERT(w != NULL && buf != NULL && h != NULL);
    HD_ASSERT(h->count > 0 && h->count <= LOG_ENTRY_APPENDS_MAX);
    buf[0] = LOG_ENTRY_VERSION;
    buf[1] = LOG_ENTRY_KIND_APPENDS;
    hd_put_u16(buf + 2, 0);
    hd_put_u32(buf + 4, h->count);
    hd_put_u64(buf + 8, h->stamp_us);
    hd_put_u64(buf + 16, h->proposer);
    hd_put_u64(buf + 24, h->proposal);
    *w = (struct log_entry_writer){buf, buf + LOG_ENTRY_HEADER_SIZE, h->count};
}

void log_entry_add(struct log_entry_writer *w, const struct log_append *a)
{
    HD_ASSERT(w->left > 0);
    HD_ASSERT(hd_channel_valid(a->channel, a->channel_len));
    HD_ASSERT(hd_nonce_valid(a->nonce, a->nonce_len));
    HD_ASSERT(a->payload_len <= LOG_PAYLOAD_MAX);
    uint8_t *p = w->pos;
    uint8_t *start = p;
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
    w->pos = p + a->payload_len;
    HD_ASSERT((size_t)(w->pos - start) == log_append_size(a));
    w->left--;
}

size_t log_entry_finish(struct log_entry_writer *w)
{
    HD_ASSERT(w->left == 0); /* as many appends as the header counts */
    size_t len = (size_t)(w->pos - w->buf);
    HD_ASSERT(len > LOG_ENTRY_HEADER_SIZE); /* at least one append */
    hd_put_u32(w->pos, hd_crc32c(0, w->buf, len));
    return len + 4;
}

void log_entry_encode(uint8_t *buf, const struct log_entry_header *h,
                      const struct log_append *appends, size_t n)
{
    HD_ASSERT(n == h->count);
    struct log_entry_writer w;
    log_entry_begin(&w, buf, h);
    for (size_t i = 0; i < n; i++) {
        log_entry_add(&w, &appends[i]);
    }
    size_t len = log_entry_finish(&w);
    HD_ASSERT(len == log_entry_size(appends, n));
    HD_DASSERT(log_entry_decode(buf, len, &(struct log_entry_header){0}) == 0);
}

/* Reads one append at *pos, checking bounds and ids; NULL on a defect. */
static const uint8_t *log__decode_append(const uint8_t *p, const uint8_t *end,
                                         struct log_append *out)
{
    HD_ASSERT(p <= end);
    if (end - p < 1) return NULL;
    out->channel_len = *p++;
    if ((size_t)(end - p) < out->channel_len) return NULL;
    out->channel = (const char *)p;
    p += out->channel_len;
    if (!hd_channel_valid(out->channel, out->channel_len)) return NULL;
    if (end - p < 1) return NULL;
    out->nonce_len = *p++;
    if ((size_t)(end - p) < out->nonce_len) return NULL;
    out->nonce = (const char *)p;
    p += out->nonce_len;
    if (!hd_nonce_valid(out->nonce, out->nonce_len)) return NULL;
    if (end - p < 4) return NULL;
    out->payload_len = hd_get_u32(p);
    p += 4;
    if (out->payload_len > LOG_PAYLOAD_MAX || (size_t)(end - p) < out->payload_len) {
        return NULL;
    }
    out->payload = p;
    return p + out->payload_len;
}

int log_entry_peek(const uint8_t *buf, size_t len, struct log_entry_header *h)
{
    HD_ASSERT(h != NULL);
    if (buf == NULL || len < LOG_ENTRY_HEADER_SIZE + 4) {
        return HD_ECORRUPT;
    }
    if (buf[0] != LOG_ENTRY_VERSION || buf[1] != LOG_ENTRY_KIND_APPENDS ||
        hd_get_u16(buf + 2) != 0) {
        return HD_ECORRUPT;
    }
    h->count = hd_get_u32(buf + 4);
    h->stamp_us = hd_get_u64(buf + 8);
    h->proposer = hd_get_u64(buf + 16);
    h->proposal = hd_get_u64(buf + 24);
    if (h->count == 0 || h->count > LOG_ENTRY_APPENDS_MAX) {
        return HD_ECORRUPT;
    }
    return 0;
}

int log_entry_decode(const uint8_t *buf, size_t len, struct log_entry_header *h)
{
    int rv = log_entry_peek(buf, len, h);
    if (rv != 0) {
        return rv;
    }
    const uint8_t *crc_at = buf + len - 4;
    if (hd_crc32c(0, buf, len - 4) != hd_get_u32(crc_at)) {
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
    if (p != crc_at) {
        return HD_ECORRUPT;
    }
    HD_ASSERT(h->count > 0 && h->count <= LOG_ENTRY_APPENDS_MAX);
    return 0;
}

void log_entry_iter_init(struct log_entry_iter *it, const uint8_t *buf, size_t len)
{
    HD_ASSERT(len >= LOG_ENTRY_HEADER_SIZE + 4);
    it->pos = buf + LOG_ENTRY_HEADER_SIZE;
    it->end = buf + len - 4;
    it->left = hd_get_u32(buf + 4);
    /* log_entry_decode() accepted the entry, so its count is in range. */
    HD_ASSERT(it->left > 0 && it->left <= LOG_ENTRY_APPENDS_MAX);
}

bool log_entry_iter_next(struct log_entry_iter *it, struct log_append *out)
{
    if (it->left == 0) {
        HD_ASSERT(it->pos == it->end); /* decode checked the appends fill the entry */
        return false;
    }
    const uint8_t *next = log__decode_append(it->pos, it->end, out);
    /* log_entry_decode() accepted this entry, so decoding cannot fail. */
    HD_ASSERT(next != NULL);
    it->pos = next;
    it->left--;
    return true;
}
