/* SPDX-License-Identifier: Apache-2.0 */
/* The log_store struct, shared by the files of log/. */
#ifndef LOG_INTERNAL_H
#define LOG_INTERNAL_H

#include <stdint.h>

struct st_rocks;
struct st_batch;

struct log_store {
    struct st_rocks *rocks;     /* all channel state */
    struct st_batch *batch;     /* reused by every apply (loop thread only) */
    uint64_t dedup_window_us;   /* retries within this answer the original */
};

#endif
