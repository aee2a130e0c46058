/* SPDX-License-Identifier: Apache-2.0 */
/* Codec of the Raft records kept in the WAL (layouts in wal_record.h). */
#include "wal_record.h"

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

static void cons__rec_head(uint8_t *buf, uint8_t kind, uint16_t shard)
{
    HD_ASSERT(kind == CONS_REC_ENTRIES || kind == CONS_REC_TRUNCATE || kind == CONS_REC_RESET);
    buf[0] = kind;
    buf[1] = CONS_REC_VERSION;
    hd_put_u16(buf + 2, shard);
}

size_t cons_rec_encode_entries_head(uint8_t *head, uint16_t shard,
                                    uint64_t first_index, uint32_t n)
{
    HD_ASSERT(first_index > 0);
    HD_ASSERT(n > 0);
    cons__rec_head(head, CONS_REC_ENTRIES, shard);
    hd_put_u64(head + 4, first_index);
    hd_put_u32(head + 12, n);
    return 16;
}

void cons_rec_encode_entry_head(uint8_t *head, const struct raft_entry *e)
{
    HD_ASSERT(e->buf.len <= UINT32_MAX);
    /* The decoder accepts only these types: never write another. */
    HD_ASSERT(e->type == RAFT_COMMAND || e->type == RAFT_BARRIER || e->type == RAFT_CHANGE);
    hd_put_u64(head, e->term);
    head[8] = (uint8_t)e->type;
    hd_put_u32(head + 9, (uint32_t)e->buf.len);
}

size_t cons_rec_encode_truncate(uint8_t *buf, uint16_t shard, uint64_t index)
{
    HD_ASSERT(index > 0); /* the decoder rejects a truncation at 0 */
    cons__rec_head(buf, CONS_REC_TRUNCATE, shard);
    hd_put_u64(buf + 4, index);
    return 12;
}

size_t cons_rec_encode_reset(uint8_t *buf, uint16_t shard, uint64_t index,
                             uint64_t term)
{
    cons__rec_head(buf, CONS_REC_RESET, shard);
    hd_put_u64(buf + 4, index);
    hd_put_u64(buf + 12, term);
    return 20;
}

static int cons__decode_entries(const uint8_t *p, const uint8_t *end, struct cons_rec *out)
{
    if (end - p < 12) return HD_ECORRUPT;
    out->index = hd_get_u64(p);
    out->n = hd_get_u32(p + 8);
    p += 12;
    if (out->index == 0 || out->n == 0) return HD_ECORRUPT;
    out->entries = p;
    out->entries_len = (size_t)(end - p);
    for (uint32_t i = 0; i < out->n; i++) {
        if (end - p < (ptrdiff_t)CONS_REC_ENTRY_HEADER_SIZE) return HD_ECORRUPT;
        uint8_t type = p[8];
        uint32_t len = hd_get_u32(p + 9);
        p += CONS_REC_ENTRY_HEADER_SIZE;
        if (type != RAFT_COMMAND && type != RAFT_BARRIER && type != RAFT_CHANGE) {
            return HD_ECORRUPT;
        }
        if ((size_t)(end - p) < len) return HD_ECORRUPT;
        p += len;
    }
    return p == end ? 0 : HD_ECORRUPT;
}

int cons_rec_decode(const uint8_t *buf, size_t len, struct cons_rec *out)
{
    HD_ASSERT(out != NULL);
    if (buf == NULL || len < CONS_REC_HEADER_SIZE || buf[1] != CONS_REC_VERSION) {
        return HD_ECORRUPT;
    }
    *out = (struct cons_rec){.kind = buf[0], .shard = hd_get_u16(buf + 2)};
    const uint8_t *p = buf + CONS_REC_HEADER_SIZE;
    const uint8_t *end = buf + len;
    switch (out->kind) {
        case CONS_REC_ENTRIES:
            return cons__decode_entries(p, end, out);
        case CONS_REC_TRUNCATE:
            if (end - p != 8) return HD_ECORRUPT;
            out->index = hd_get_u64(p);
            return out->index > 0 ? 0 : HD_ECORRUPT;
        case CONS_REC_RESET:
            if (end - p != 16) return HD_ECORRUPT;
            out->index = hd_get_u64(p);
            out->term = hd_get_u64(p + 8);
            return 0;
        default:
            return HD_ECORRUPT;
    }
}

void cons_rec_iter_init(struct cons_rec_iter *it, const struct cons_rec *r)
{
    HD_ASSERT(r->kind == CONS_REC_ENTRIES);
    HD_ASSERT(r->index > 0 && r->n > 0); /* cons_rec_decode() checked both */
    it->pos = r->entries;
    it->end = r->entries + r->entries_len;
    it->left = r->n;
}

int cons_rec_iter_next(struct cons_rec_iter *it, struct raft_entry *out)
{
    if (it->left == 0) {
        HD_ASSERT(it->pos == it->end); /* decode checked the entries fill the record */
        return 0;
    }
    /* cons_rec_decode() validated the bounds of every entry. */
    HD_ASSERT(it->end - it->pos >= (ptrdiff_t)CONS_REC_ENTRY_HEADER_SIZE);
    out->term = hd_get_u64(it->pos);
    out->type = it->pos[8];
    out->buf.len = hd_get_u32(it->pos + 9);
    out->buf.base = (void *)(uintptr_t)(it->pos + CONS_REC_ENTRY_HEADER_SIZE);
    out->batch = NULL;
    it->pos += CONS_REC_ENTRY_HEADER_SIZE + out->buf.len;
    it->left--;
    return 1;
}
