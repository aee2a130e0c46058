/* SPDX-License-Identifier: Apache-2.0 */
/* Checksums, hashes, clocks and logging. */
#include "hd_util.h"

#include "hd_alloc.h"

#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
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
hd_log_sink_fn hd_log_sink;

const char *hd_log_level_name(int level)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    return names[level & 3];
}

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
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    if (hd_log_sink != NULL) {
        /* The sink takes the whole message: formatted here, on the heap
         * when it is long. */
        char small[1024];
        va_list again;
        va_copy(again, ap);
        int len = vsnprintf(small, sizeof small, fmt, ap);
        char *big = len >= (int)sizeof small ? hd_malloc((size_t)len + 1) : NULL;
        if (big != NULL) {
            vsnprintf(big, (size_t)len + 1, fmt, again);
        }
        va_end(again);
        hd_log_sink(level, when, big != NULL ? big : small);
        hd_free(big);
    } else {
        fprintf(stderr, "%s %-5s ", when, names[level & 3]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}
