/* SPDX-License-Identifier: Apache-2.0 */
/* glibc's malloc tuned for a process whose largest buffers are Raft
 * entries and message payloads of up to a few MiB. */
#include "hd_malloc_policy.h"

#include <malloc.h>

/* Blocks at or above this get a mapping of their own (freed: unmapped). */
#define HD_MMAP_THRESHOLD (256 * 1024)
/* Free heap above this at the top of the heap goes back to the system. */
#define HD_TRIM_THRESHOLD (4 * 1024 * 1024)

/*
 * By default glibc's mmap threshold is dynamic: each time a block served by
 * mmap is freed, the threshold rises to that block's size (up to 32 MiB).
 * After the first large Raft entry or payload is freed, every later one of
 * that size is carved from the heap instead, and freed heap memory below
 * the top is rarely returned: RSS climbs to the peak of entries ever held
 * and never falls, whatever --raft-log-memory bounds. Setting either
 * threshold turns the dynamic adjustment off, so every large buffer stays
 * a mapping of its own, returned to the system when freed. (Sanitizer
 * builds replace malloc and ignore this; the answer is not checked.)
 */
void hd_malloc_policy(void)
{
    (void)mallopt(M_MMAP_THRESHOLD, HD_MMAP_THRESHOLD);
    (void)mallopt(M_TRIM_THRESHOLD, HD_TRIM_THRESHOLD);
}
