/* SPDX-License-Identifier: Apache-2.0 */
/* How heraldd asks glibc's malloc to behave (malloc_policy.c says why). */
#ifndef API_MALLOC_POLICY_H
#define API_MALLOC_POLICY_H

/* Fixes malloc's mmap and trim thresholds; called first thing in main,
 * before anything is allocated. */
void api_malloc_policy(void);

#endif
