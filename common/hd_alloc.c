/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation hook and the assertion failure handler. */
#include "hd_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"

static struct hd_allocator hd__libc = {malloc, calloc, realloc, free};
static struct hd_allocator hd__current = {malloc, calloc, realloc, free};

void hd_replace_allocator(const struct hd_allocator *a)
{
    hd__current = a != NULL ? *a : hd__libc;
}

void *hd_malloc(size_t size) { return hd__current.malloc(size); }
void *hd_calloc(size_t n, size_t size) { return hd__current.calloc(n, size); }
void *hd_realloc(void *p, size_t size) { return hd__current.realloc(p, size); }
void hd_free(void *p) { hd__current.free(p); }

char *hd_strndup(const char *s, size_t n)
{
    char *copy = hd_malloc(n + 1);
    if (copy == NULL) {
        return NULL;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

int hd_reserve(void **arr, size_t *cap, size_t need, size_t elem, size_t initial)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap > 0 ? *cap : initial;
    while (n < need) {
        n *= 2;
    }
    void *grown = hd_realloc(*arr, n * elem);
    if (grown == NULL) {
        return HD_ENOMEM;
    }
    *arr = grown;
    *cap = n;
    return 0;
}

void hd__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "herald: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}
