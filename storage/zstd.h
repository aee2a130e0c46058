/* SPDX-License-Identifier: Apache-2.0 */
/* zstd compression of buffers that cross the network (state transfer chunks). */
#ifndef ST_ZSTD_H
#define ST_ZSTD_H

#include <stddef.h>
#include <stdint.h>

/* Compresses src into a new hd_malloc'ed buffer: u32 raw length, then one
 * zstd frame. */
int st_zstd_pack(const void *src, size_t len, uint8_t **out, size_t *out_len);

/* Reverses st_zstd_pack into a new hd_malloc'ed buffer. HD_ECORRUPT if the
 * input is not such a buffer, HD_ETOOBIG if the raw length exceeds max. */
int st_zstd_unpack(const uint8_t *src, size_t len, size_t max, uint8_t **out,
                   size_t *out_len);

#endif
