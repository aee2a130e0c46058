/* SPDX-License-Identifier: Apache-2.0 */
/* Checksums, hashes, clocks and logging. */
#include "hd_util.h"

#include <isa-l/crc.h>
#include <stdio.h>
#include <time.h>
#include <xxhash.h>

uint32_t hd_crc32c(uint32_t seed, const void *data, size_t len)
{
    /* ISA-L's crc32_iscsi takes and returns the raw register; the standard
     * CRC32C inverts before and after. */
    return ~crc32_iscsi((unsigned char *)(uintptr_t)data, (int)len, ~seed);
}

uint64_t hd_hash64(const void *data, size_t len)
{
    return (uint64_t)XXH3_64bits(data, len);
}

uint64_t hd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t hd_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int hd_log_level = 2;

void hd_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (level > hd_log_level) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s.%03ldZ %-5s ", when, ts.tv_nsec / 1000000, names[level & 3]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
