/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the WAL record and segment decoders on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hd_error.h"

#include "wal_format.h"

/*
 * The first input byte picks what the rest is:
 *   0: records back to back, decoded with FUZZ_SALT;
 *   1: the data area of a segment (from offset 4096) behind a valid header
 *      with FUZZ_SALT and first LSN 1, scanned like recovery does; the next
 *      byte's low bit says whether the image is zero-padded to a block;
 *   2: a whole segment image, header included.
 * Every decoder must answer with HD_ECORRUPT or a size inside the buffer,
 * never assert, never read outside it (ASan checks that).
 */

#define FUZZ_SALT 0x5EED5A17u

static volatile uint32_t fuzz_sink; /* keeps payload reads from being optimized out */

static int fuzz_touch(void *arg, const struct st__wal_rec *rec)
{
    (void)arg;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < rec->len; i++) {
        sum += rec->payload[i];
    }
    fuzz_sink += sum;
    return 0;
}

static void fuzz_records(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        struct st__wal_rec rec;
        int n = st__wal_decode_record(data + pos, size - pos, FUZZ_SALT, &rec);
        if (n == HD_ECORRUPT) {
            return;
        }
        if (n <= 0 || (size_t)n > size - pos || rec.payload + rec.len > data + size) {
            abort(); /* a decoder answer outside the buffer is the bug */
        }
        fuzz_touch(NULL, &rec);
        pos += (size_t)n;
    }
}

static void fuzz_check_scan(const struct st__wal_scan *s, size_t len)
{
    if (s->end > len || s->dirty_end > len || s->end > s->dirty_end ||
        (s->stop == ST__WAL_STOP_CORRUPT && s->later_off >= len)) {
        abort();
    }
}

static void fuzz_segment_body(const uint8_t *data, size_t size, int padded)
{
    size_t len = ST_WAL_BLOCK + (padded ? (size_t)st__wal_align_up(size) : size);
    uint8_t *img = calloc(1, len);
    if (img == NULL) {
        return;
    }
    struct st__wal_seg_hdr hdr = {.index = 1, .first_lsn = 1,
                                  .size = st__wal_align_up(len), .salt = FUZZ_SALT};
    if (hdr.size <= ST_WAL_BLOCK) {
        hdr.size = 2 * ST_WAL_BLOCK;
    }
    st__wal_encode_seg_hdr(img, &hdr);
    memcpy(img + ST_WAL_BLOCK, data, size);
    struct st__wal_scan s;
    st__wal_scan(img, len, hdr.salt, hdr.first_lsn, fuzz_touch, NULL, &s);
    fuzz_check_scan(&s, len);
    free(img);
}

static void fuzz_segment_image(const uint8_t *data, size_t size)
{
    struct st__wal_seg_hdr hdr;
    if (st__wal_decode_seg_hdr(data, size, &hdr) != 0) {
        return;
    }
    struct st__wal_scan s;
    st__wal_scan(data, size, hdr.salt, hdr.first_lsn, fuzz_touch, NULL, &s);
    fuzz_check_scan(&s, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    switch (data[0] % 3) {
        case 0:
            fuzz_records(data + 1, size - 1);
            break;
        case 1:
            if (size >= 2) {
                fuzz_segment_body(data + 2, size - 2, data[1] & 1);
            }
            break;
        default:
            fuzz_segment_image(data + 1, size - 1);
            break;
    }
    return 0;
}
