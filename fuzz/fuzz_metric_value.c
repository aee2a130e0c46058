/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: reading samples out of Prometheus text (client/metrics.c),
 * what herald bench does with every server's /metrics. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "herald/herald.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Any bytes: the answer is a finite value, not found, or corrupt, and the
 * scan reads nothing past size (the input is not NUL-terminated). A found
 * sample's line is really there: the name at a line start, then a space. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"process_cpu_seconds_total",
                                        "process_resident_memory_bytes", "a", "a_b"};
    const char *text = (const char *)data;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        double v = 0;
        int rv = herald_metric_value(text, size, names[k], &v);
        HD_ASSERT(rv == 0 || rv == HD_ENOTFOUND || rv == HD_ECORRUPT);
        if (rv == 0) {
            HD_ASSERT(isfinite(v));
            size_t n = strlen(names[k]);
            bool seen = false;
            for (size_t i = 0; i + n < size && !seen; i++) {
                seen = (i == 0 || text[i - 1] == '\n') && memcmp(text + i, names[k], n) == 0 &&
                       text[i + n] == ' ';
            }
            HD_ASSERT(seen);
        }
    }
    return 0;
}
