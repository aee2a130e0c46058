/* SPDX-License-Identifier: Apache-2.0 */
/* How heraldd asks glibc's malloc to behave (hd_malloc_policy.c says why).
 * Benchmarks of parts of the node (herald-apply-bench) ask the same, so
 * that they allocate as the node does. */
#ifndef HD_MALLOC_POLICY_H
#define HD_MALLOC_POLICY_H

/* Fixes malloc's mmap and trim thresholds; called first thing in main,
 * before anything is allocated. */
void hd_malloc_policy(void);

#endif
