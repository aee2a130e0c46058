/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation through a replaceable hook, so tests can inject failures. */
#ifndef HD_ALLOC_H
#define HD_ALLOC_H

#include <stddef.h>

struct hd_allocator {
    void *(*malloc)(size_t size);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t size);
    void (*free)(void *p);
};

/* Replaces the allocator; NULL restores the libc one. Not thread-safe:
 * call before anything else runs. */
void hd_replace_allocator(const struct hd_allocator *a);

void *hd_malloc(size_t size);
void *hd_calloc(size_t n, size_t size);
void *hd_realloc(void *p, size_t size);
void hd_free(void *p);
char *hd_strndup(const char *s, size_t n);

/* Makes room for at least `need` elements of `elem` bytes in *arr, whose
 * capacity is *cap: doubles (from `initial`) as needed. HD_ENOMEM leaves
 * the array as it was. */
int hd_reserve(void **arr, size_t *cap, size_t need, size_t elem, size_t initial);

#endif
