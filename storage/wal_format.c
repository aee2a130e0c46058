/* SPDX-License-Identifier: Apache-2.0 */
/* Encoding, decoding and scanning of WAL segments in memory (no I/O). */
#include "wal_format.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "wal.h"

/* Segment header, little-endian, at offset 0 of a ST_WAL_BLOCK-byte block:
 *   0 u32 magic   4 u32 crc32c of bytes [8,48)   8 u32 version
 *  12 u32 block size   16 u64 index   24 u64 first LSN   32 u64 size
 *  40 u32 salt   44 u32 reserved (0); the rest of the block is zero. */
HD_STATIC_ASSERT(ST_WAL_SEG_HDR_SIZE == 48, "segment header layout");
HD_STATIC_ASSERT(ST_WAL_SEG_HDR_SIZE <= ST_WAL_BLOCK, "header fits a block");

/* Record header, little-endian, followed by the payload:
 *   0 u32 magic   4 u32 crc32c of salt (4 bytes LE) + bytes [8,32)
 *   8 u64 LSN    16 u32 payload length   20 u32 crc32c of the payload
 *  24 u32 flags  28 u32 reserved (0) */
HD_STATIC_ASSERT(ST_WAL_REC_HDR_SIZE == 32, "record header layout");
HD_STATIC_ASSERT(ST_WAL_RECORD_MAX <= (uint64_t)INT32_MAX - ST_WAL_REC_HDR_SIZE,
                 "record sizes fit the int decode result");

/* ---------------------------------------------------------------- */
/* Segment header                                                   */
/* ---------------------------------------------------------------- */

void st__wal_encode_seg_hdr(uint8_t *block, const struct st__wal_seg_hdr *h)
{
    HD_ASSERT(h->first_lsn > 0);
    HD_ASSERT(h->size % ST_WAL_BLOCK == 0 && h->size > ST_WAL_BLOCK);
    memset(block, 0, ST_WAL_BLOCK);
    hd_put_u32(block + 0, ST_WAL_SEG_MAGIC);
    hd_put_u32(block + 8, ST_WAL_VERSION);
    hd_put_u32(block + 12, ST_WAL_BLOCK);
    hd_put_u64(block + 16, h->index);
    hd_put_u64(block + 24, h->first_lsn);
    hd_put_u64(block + 32, h->size);
    hd_put_u32(block + 40, h->salt);
    hd_put_u32(block + 4, hd_crc32c(0, block + 8, ST_WAL_SEG_HDR_SIZE - 8));
}

int st__wal_decode_seg_hdr(const uint8_t *buf, size_t len,
                           struct st__wal_seg_hdr *out)
{
    HD_ASSERT(out != NULL);
    if (len < ST_WAL_SEG_HDR_SIZE || hd_get_u32(buf) != ST_WAL_SEG_MAGIC) {
        return HD_ECORRUPT;
    }
    if (hd_get_u32(buf + 4) != hd_crc32c(0, buf + 8, ST_WAL_SEG_HDR_SIZE - 8)) {
        return HD_ECORRUPT;
    }
    if (hd_get_u32(buf + 8) != ST_WAL_VERSION ||
        hd_get_u32(buf + 12) != ST_WAL_BLOCK || hd_get_u32(buf + 44) != 0) {
        return HD_ECORRUPT;
    }
    out->index = hd_get_u64(buf + 16);
    out->first_lsn = hd_get_u64(buf + 24);
    out->size = hd_get_u64(buf + 32);
    out->salt = hd_get_u32(buf + 40);
    if (out->first_lsn == 0 || out->size % ST_WAL_BLOCK != 0 ||
        out->size <= ST_WAL_BLOCK) {
        return HD_ECORRUPT;
    }
    return 0;
}

/* ---------------------------------------------------------------- */
/* Records                                                          */
/* ---------------------------------------------------------------- */

static uint32_t st__wal_rec_hdr_crc(const uint8_t *hdr, uint32_t salt)
{
    uint8_t salt_le[4];
    hd_put_u32(salt_le, salt);
    return hd_crc32c(hd_crc32c(0, salt_le, 4), hdr + 8, ST_WAL_REC_HDR_SIZE - 8);
}

void st__wal_rec_begin(uint8_t *hdr, uint64_t lsn, uint32_t len,
                       uint32_t payload_crc)
{
    HD_ASSERT(lsn > 0);
    HD_ASSERT(len <= ST_WAL_RECORD_MAX);
    hd_put_u32(hdr + 0, ST_WAL_REC_MAGIC);
    hd_put_u32(hdr + 4, 0);
    hd_put_u64(hdr + 8, lsn);
    hd_put_u32(hdr + 16, len);
    hd_put_u32(hdr + 20, payload_crc);
    hd_put_u32(hdr + 24, 0);
    hd_put_u32(hdr + 28, 0);
}

void st__wal_rec_seal(uint8_t *hdr, uint32_t salt, uint32_t flags)
{
    HD_ASSERT(hd_get_u32(hdr) == ST_WAL_REC_MAGIC);
    HD_ASSERT((flags & ~ST_WAL_REC_BATCH_START) == 0);
    hd_put_u32(hdr + 24, flags);
    hd_put_u32(hdr + 4, st__wal_rec_hdr_crc(hdr, salt));
}

int st__wal_decode_record(const uint8_t *buf, size_t avail, uint32_t salt,
                          struct st__wal_rec *out)
{
    HD_ASSERT(out != NULL);
    if (avail < ST_WAL_REC_HDR_SIZE || hd_get_u32(buf) != ST_WAL_REC_MAGIC) {
        return HD_ECORRUPT;
    }
    /* The header CRC comes first: it is cheap, and it vouches for the
     * length before the length decides how much payload to read. */
    if (hd_get_u32(buf + 4) != st__wal_rec_hdr_crc(buf, salt)) {
        return HD_ECORRUPT;
    }
    uint64_t lsn = hd_get_u64(buf + 8);
    uint32_t len = hd_get_u32(buf + 16);
    uint32_t flags = hd_get_u32(buf + 24);
    if (lsn == 0 || len > ST_WAL_RECORD_MAX ||
        (flags & ~ST_WAL_REC_BATCH_START) != 0 || hd_get_u32(buf + 28) != 0) {
        return HD_ECORRUPT;
    }
    if (st__wal_rec_size(len) > avail) {
        return HD_ECORRUPT;
    }
    const uint8_t *payload = buf + ST_WAL_REC_HDR_SIZE;
    if (hd_get_u32(buf + 20) != hd_crc32c(0, payload, len)) {
        return HD_ECORRUPT;
    }
    out->lsn = lsn;
    out->len = len;
    out->flags = flags;
    out->payload = payload;
    return (int)st__wal_rec_size(len);
}

int st__wal_is_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zeros[256];
    while (n >= sizeof zeros) {
        if (memcmp(p, zeros, sizeof zeros) != 0) {
            return 0;
        }
        p += sizeof zeros;
        n -= sizeof zeros;
    }
    return n == 0 || memcmp(p, zeros, n) == 0;
}

/* ---------------------------------------------------------------- */
/* Scanning a segment                                               */
/* ---------------------------------------------------------------- */

static size_t st__wal_min(size_t a, size_t b) { return a < b ? a : b; }

/* True if a group commit with first LSN `lsn` (0: any) starts at `off`. */
static int st__wal_batch_at(const uint8_t *seg, size_t len, size_t off,
                            uint32_t salt, uint64_t lsn)
{
    struct st__wal_rec rec;
    if (off >= len || st__wal_decode_record(seg + off, len - off, salt, &rec) < 0) {
        return 0;
    }
    return (rec.flags & ST_WAL_REC_BATCH_START) != 0 && (lsn == 0 || rec.lsn == lsn);
}

/* Offset past the last non-zero byte in [from, len), or `from` if none. */
static size_t st__wal_dirty_end(const uint8_t *seg, size_t len, size_t from)
{
    size_t end = len;
    while (end > from) {
        size_t chunk = st__wal_min(end - from, ST_WAL_BLOCK);
        if (!st__wal_is_zero(seg + end - chunk, chunk)) {
            while (seg[end - 1] == 0) {
                end--;
            }
            return end;
        }
        end -= chunk;
    }
    return from;
}

/* Decides what the bytes from `stop` on mean (see wal.c, "Recovery"). */
static void st__wal_classify(const uint8_t *seg, size_t len, uint32_t salt,
                             size_t stop, struct st__wal_scan *out)
{
    HD_ASSERT(stop <= len);
    out->end = stop;
    out->dirty_end = st__wal_dirty_end(seg, len, stop);
    out->stop = out->dirty_end == stop ? ST__WAL_STOP_CLEAN : ST__WAL_STOP_TORN;
    /* A group commit that starts after the damage was written after the
     * damaged one completed, so the damage is not a torn final write. */
    size_t q = (size_t)st__wal_align_up(stop + 1);
    for (; q < out->dirty_end; q += ST_WAL_BLOCK) {
        if (st__wal_batch_at(seg, len, q, salt, 0)) {
            out->stop = ST__WAL_STOP_CORRUPT;
            out->later_off = q;
            return;
        }
    }
    HD_ASSERT(out->stop != ST__WAL_STOP_CLEAN || out->dirty_end == stop);
}

void st__wal_scan(const uint8_t *seg, size_t len, uint32_t salt,
                  uint64_t first_lsn, st__wal_rec_cb cb, void *arg,
                  struct st__wal_scan *out)
{
    HD_ASSERT(seg != NULL || len == 0);
    HD_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    uint64_t expect = first_lsn;
    size_t pos = st__wal_min(ST_WAL_BLOCK, len);
    while (pos < len) {
        size_t boundary = st__wal_min((size_t)st__wal_align_up(pos), len);
        if (boundary != pos && st__wal_is_zero(seg + pos, boundary - pos)) {
            pos = boundary; /* padding after a group commit */
            continue;
        }
        struct st__wal_rec rec;
        int n = st__wal_decode_record(seg + pos, len - pos, salt, &rec);
        if (n > 0 && rec.lsn == expect) {
            int rv = cb != NULL ? cb(arg, &rec) : 0;
            if (rv != 0) {
                out->stop = ST__WAL_STOP_CALLBACK;
                out->cb_rv = rv;
                out->next_lsn = expect;
                out->end = pos;
                out->dirty_end = pos; /* not looked at */
                return;
            }
            expect++;
            pos += (size_t)n;
            continue;
        }
        /* A remnant: the unused rest of a block whose tail an earlier
         * recovery cut, followed by the group commit written after it. */
        if (boundary != pos && st__wal_batch_at(seg, len, boundary, salt, expect)) {
            out->remnants++;
            pos = boundary;
            continue;
        }
        break;
    }
    out->next_lsn = expect;
    st__wal_classify(seg, len, salt, st__wal_min(pos, len), out);
}
