/* SPDX-License-Identifier: Apache-2.0 */
/* libherald's value formats: ts text (over common/hd_ts.h) and nonces. */
#include <errno.h>
#include <sys/random.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_ts.h"
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

int herald_nonce_generate(char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[HERALD_NONCE_HEX_LEN / 2];
    if (size < HERALD_NONCE_HEX_LEN + 1) return HD_EINVAL;
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return hd_from_errno(errno);
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[HERALD_NONCE_HEX_LEN] = '\0';
    return 0;
}
