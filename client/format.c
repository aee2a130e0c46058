/* SPDX-License-Identifier: Apache-2.0 */
/* libherald's value formats: ts text (over common/hd_ts.h) and nonces. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_ts.h"
#include "client_internal.h"
#include "herald/herald.h"

/* herald.h cannot include common/, so it repeats the limits; keep them one. */
HD_STATIC_ASSERT(HERALD_CHANNEL_MAX == HD_CHANNEL_MAX, "channel id limit differs from hd_ids.h");
HD_STATIC_ASSERT(HERALD_NONCE_MAX == HD_NONCE_MAX, "nonce limit differs from hd_ids.h");
HD_STATIC_ASSERT(HERALD_TS_STR_MAX >= HD_TS_STR_MAX, "HERALD_TS_STR_MAX too small for hd_ts.h");
HD_STATIC_ASSERT(HERALD_NONCE_HEX_LEN <= HD_NONCE_MAX, "generated nonces must be valid nonces");

int herald_ts_format(uint64_t ts_us, char *buf, size_t size)
{
    return hd_ts_format(ts_us, buf, size);
}

int herald_ts_parse(const char *s, size_t len, uint64_t *ts_us)
{
    return hd_ts_parse(s, len, ts_us);
}

int herald__random_bytes(uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return hd_from_errno(errno);
        }
        got += (size_t)n;
    }
    return 0;
}

/*
 * The milliseconds first, as UUIDv7 and ULID put them: the node keeps each
 * channel's nonces in key order (log/keys.h), so nonces that grow with time
 * are stored where the channel's last ones went, where random ones each
 * land somewhere else in the memtable (README: "Nonces"). The 80 random
 * bits keep two clients' nonces of one millisecond apart.
 */
int herald_nonce_generate(char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    enum { TIME_HEX = 12 };
    uint8_t raw[(HERALD_NONCE_HEX_LEN - TIME_HEX) / 2];
    if (size < HERALD_NONCE_HEX_LEN + 1) return HD_EINVAL;
    int rv = herald__random_bytes(raw, sizeof raw);
    if (rv != 0) return rv;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    for (int i = TIME_HEX - 1; i >= 0; i--, ms >>= 4) {
        out[i] = hex[ms & 15];
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[TIME_HEX + 2 * i] = hex[raw[i] >> 4];
        out[TIME_HEX + 2 * i + 1] = hex[raw[i] & 15];
    }
    out[HERALD_NONCE_HEX_LEN] = '\0';
    return 0;
}
