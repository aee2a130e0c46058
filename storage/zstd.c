/* SPDX-License-Identifier: Apache-2.0 */
/* zstd pack/unpack with a length prefix (see zstd.h). */
#include "zstd.h"

#include <zstd.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_util.h"

int st_zstd_pack(const void *src, size_t len, uint8_t **out, size_t *out_len)
{
    if (len > UINT32_MAX) {
        return HD_ETOOBIG;
    }
    size_t cap = 4 + ZSTD_compressBound(len);
    uint8_t *buf = hd_malloc(cap);
    if (buf == NULL) {
        return HD_ENOMEM;
    }
    hd_put_u32(buf, (uint32_t)len);
    /* Level 1: the stream is produced while the loop waits; speed wins. */
    size_t n = ZSTD_compress(buf + 4, cap - 4, src, len, 1);
    if (ZSTD_isError(n)) {
        hd_free(buf);
        return HD_EIO;
    }
    *out = buf;
    *out_len = 4 + n;
    return 0;
}

int st_zstd_unpack(const uint8_t *src, size_t len, size_t max, uint8_t **out,
                   size_t *out_len)
{
    if (len < 4) {
        return HD_ECORRUPT;
    }
    size_t raw = hd_get_u32(src);
    if (raw > max) {
        return HD_ETOOBIG;
    }
    uint8_t *buf = hd_malloc(raw > 0 ? raw : 1);
    if (buf == NULL) {
        return HD_ENOMEM;
    }
    size_t n = ZSTD_decompress(buf, raw, src + 4, len - 4);
    if (ZSTD_isError(n) || n != raw) {
        hd_free(buf);
        return HD_ECORRUPT;
    }
    *out = buf;
    *out_len = raw;
    return 0;
}
