/* SPDX-License-Identifier: Apache-2.0 */
/* Decimal texts of the HTTP API: unsigned numbers and "SECONDS.MICROS"
 * timestamps. One implementation for heraldd (api/) and libherald (client/),
 * so what one side prints the other always parses. */
#ifndef HD_TS_H
#define HD_TS_H

#include <stddef.h>
#include <stdint.h>

/* Buffer size that fits any formatted ts: 14 digits of seconds (UINT64_MAX
 * microseconds), '.', 6 digits and the NUL make 22. */
#define HD_TS_STR_MAX 32

/* Parses len bytes of a whole decimal u64: 1-20 ASCII digits, no sign, no
 * spaces, no overflow. Leading zeros count towards the 20. Reads no byte at
 * or past s + len (s need not be NUL-terminated). HD_EINVAL otherwise, with
 * *out untouched. */
int hd_u64_parse(const char *s, size_t len, uint64_t *out);

/* Formats ts_us (microseconds since the epoch) as "SECONDS.MICROS", always
 * six fraction digits ("1732234567.000123", "0.000000"), NUL-terminated,
 * into buf of size bytes (HD_TS_STR_MAX always fits). Returns the length
 * written without the NUL, or HD_EINVAL when size is too small (buf then
 * holds an empty string, if size > 0). */
int hd_ts_format(uint64_t ts_us, char *buf, size_t size);

/* Parses len bytes of "SECONDS[.FRACTION]" exactly, without floating point:
 * SECONDS as hd_u64_parse(), FRACTION 1-6 digits scaled to microseconds
 * (".5" is 500000), no sign, no spaces, no exponent. The result must fit in
 * 64 bits with room for any fraction: SECONDS <= (UINT64_MAX - 999999) /
 * 1000000, so every hd_ts_format() output parses back to its value.
 * HD_EINVAL on anything else, with *ts_us untouched. */
int hd_ts_parse(const char *s, size_t len, uint64_t *ts_us);

#endif
