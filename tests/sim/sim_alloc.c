/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation-failure injection through hd_replace_allocator (common/hd_alloc.h). */
#include <stdlib.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "sim.h"

/*
 * Only herald's own allocations go through hd_malloc: the sim, raft and
 * RocksDB use libc, so a sweep fails exactly the allocations whose failure
 * herald must handle. Counting is paused during setup and while the
 * checkers read state, so the N-th counted call is always in the code under
 * test (apply, head reads, store open at restart).
 */

static long sim__count;
static long sim__fail_at;
static bool sim__paused = true;
static bool sim__injected;
static bool sim__reported;

static bool sim__fail_now(void)
{
    if (sim__paused) {
        return false;
    }
    sim__count++;
    if (sim__count == sim__fail_at) {
        sim__injected = true;
        return true;
    }
    return false;
}

static void *sim__malloc(size_t size)
{
    return sim__fail_now() ? NULL : malloc(size);
}

static void *sim__calloc(size_t n, size_t size)
{
    return sim__fail_now() ? NULL : calloc(n, size);
}

static void *sim__realloc(void *p, size_t size)
{
    return sim__fail_now() ? NULL : realloc(p, size);
}

static void sim__free(void *p)
{
    free(p);
}

void sim_alloc_install(void)
{
    static const struct hd_allocator a = {sim__malloc, sim__calloc, sim__realloc, sim__free};
    hd_replace_allocator(&a);
}

void sim_alloc_arm(long fail_at)
{
    sim__count = 0;
    sim__fail_at = fail_at;
    sim__injected = false;
    sim__reported = false;
}

void sim_alloc_pause(bool paused)
{
    sim__paused = paused;
}

long sim_alloc_count(void)
{
    return sim__count;
}

bool sim_alloc_injected(void)
{
    return sim__injected;
}

void sim_alloc_note_error(int rv)
{
    if (rv == HD_ENOMEM) {
        sim__reported = true;
    }
}

bool sim_alloc_reported(void)
{
    return sim__reported;
}
