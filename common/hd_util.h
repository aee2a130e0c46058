/* SPDX-License-Identifier: Apache-2.0 */
/* Small shared helpers: checksums, byte order, clocks, logging. */
#ifndef HD_UTIL_H
#define HD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli), from ISA-L's crc32_iscsi; seed 0 starts a new sum. */
uint32_t hd_crc32c(uint32_t seed, const void *data, size_t len);

/* 64-bit hash of bytes (xxHash XXH3), stable across runs and machines. */
uint64_t hd_hash64(const void *data, size_t len);

/* Little-endian encoding helpers for on-disk and on-wire formats. */
static inline void hd_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void hd_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void hd_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t hd_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t hd_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t hd_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
/* Big-endian u64, for keys that must sort numerically. */
static inline void hd_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint64_t hd_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* Wall clock in microseconds since the epoch (CLOCK_REALTIME). */
uint64_t hd_now_us(void);
/* Monotonic clock in microseconds, for durations. */
uint64_t hd_mono_us(void);

/* Logging to stderr with a timestamp and level. Levels: 0 error, 1 warn,
 * 2 info, 3 debug. hd_log_level is the highest level printed. */
extern int hd_log_level;
void hd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "error", "warn", "info" or "debug". */
const char *hd_log_level_name(int level);
/* Where a line goes instead of the text line on stderr (NULL, the default:
 * text). when is the UTC time as 2006-01-02T15:04:05.000Z. heraldd
 * --log-format json sets one. */
typedef void (*hd_log_sink_fn)(int level, const char *when, const char *message);
extern hd_log_sink_fn hd_log_sink;
#define HD_LOG_ERROR(...) hd_log(0, __VA_ARGS__)
#define HD_LOG_WARN(...) hd_log(1, __VA_ARGS__)
#define HD_LOG_INFO(...) hd_log(2, __VA_ARGS__)
#define HD_LOG_DEBUG(...) hd_log(3, __VA_ARGS__)

#endif
