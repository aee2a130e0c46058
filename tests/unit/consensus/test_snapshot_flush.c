/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots sharing state flushes (consensus/node/snapshot_flush.h), over a
 * real RocksDB: how many flushes a set of tickets costs, the wait for
 * invited shards, and a failed flush reaching every waiter. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "log.h"
#include "rocks.h"
#include "snapshot_flush.h"
#include "test_dirs.h"

static atomic_int flush_calls; /* flushes that reached the hook */
static int flush_errno;        /* what the hook answers a flush */

static int count_flushes(const char *call)
{
    if (strcmp(call, "flush") != 0) {
        return 0;
    }
    atomic_fetch_add(&flush_calls, 1);
    return flush_errno;
}

struct fixture {
    char dir[64];
    struct log_store *log;
    struct cons_snapshot_flush f;
};

static int setup(void **state)
{
    struct fixture *x = calloc(1, sizeof *x);
    test_dir_make(x->dir, sizeof x->dir, "snapflush");
    char err[256];
    struct log_options lo = {.dir = x->dir, .n_shards = 4};
    assert_int_equal(log_store_open(&x->log, &lo, err, sizeof err), 0);
    assert_int_equal(cons_snapshot_flush_init(&x->f), 0);
    atomic_store(&flush_calls, 0);
    flush_errno = 0;
    st__rocks_io_hook = count_flushes;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *x = *state;
    st__rocks_io_hook = NULL;
    cons_snapshot_flush_destroy(&x->f);
    log_store_close(x->log);
    test_dir_remove(x->dir);
    free(x);
    return 0;
}

struct waiter {
    pthread_t thread;
    struct fixture *x;
    uint64_t ticket;
    int rv;
};

static void *wait_main(void *arg)
{
    struct waiter *w = arg;
    w->rv = cons_snapshot_flush_wait(&w->x->f, w->ticket, w->x->log);
    return NULL;
}

static void wait_all(struct fixture *x, uint64_t ticket, struct waiter *w, int n)
{
    for (int i = 0; i < n; i++) {
        w[i] = (struct waiter){.x = x, .ticket = ticket, .rv = -1};
        assert_int_equal(pthread_create(&w[i].thread, NULL, wait_main, &w[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    }
}

/* Eight snapshots that took the same ticket cost one flush; a ticket taken
 * after it needs one more, an old one none. */
static void test_one_flush_serves_a_ticket(void **state)
{
    struct fixture *x = *state;
    uint64_t t1 = cons_snapshot_flush_ticket(&x->f, false);
    struct waiter w[8];
    wait_all(x, t1, w, 8);
    for (int i = 0; i < 8; i++) assert_int_equal(w[i].rv, 0);
    assert_int_equal(atomic_load(&flush_calls), 1);
    assert_int_equal(atomic_load(&x->f.flushes), 1);

    uint64_t t2 = cons_snapshot_flush_ticket(&x->f, false);
    assert_true(t2 > t1);
    assert_int_equal(cons_snapshot_flush_wait(&x->f, t1, x->log), 0);
    assert_int_equal(atomic_load(&flush_calls), 1); /* t1 is served already */
    assert_int_equal(cons_snapshot_flush_wait(&x->f, t2, x->log), 0);
    assert_int_equal(atomic_load(&flush_calls), 2);
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* With an invited shard that never snapshots, the flush waits the gather
 * time, then runs; the invitation does not hold up the next one. */
static void test_flush_waits_for_the_invited(void **state)
{
    struct fixture *x = *state;
    cons_snapshot_flush_invite(&x->f, 1);
    uint64_t t = cons_snapshot_flush_ticket(&x->f, false);
    uint64_t start = now_ms();
    assert_int_equal(cons_snapshot_flush_wait(&x->f, t, x->log), 0);
    assert_true(now_ms() - start >= CONS_SNAPSHOT_FLUSH_GATHER_MS - 1);
    assert_int_equal(atomic_load(&flush_calls), 1);

    /* An invited shard that snapshots takes its ticket and the count with it. */
    cons_snapshot_flush_invite(&x->f, 1);
    uint64_t ti = cons_snapshot_flush_ticket(&x->f, true);
    assert_int_equal(x->f.invited, 0);
    start = now_ms();
    assert_int_equal(cons_snapshot_flush_wait(&x->f, ti, x->log), 0);
    assert_int_equal(atomic_load(&flush_calls), 2);
    /* Nothing left to gather: no wait (generous, for a loaded machine). */
    assert_true(now_ms() - start < 10 * CONS_SNAPSHOT_FLUSH_GATHER_MS);
}

/* A failed flush fails every snapshot waiting for it; none hangs, none
 * reports success. */
static void test_failed_flush_fails_every_waiter(void **state)
{
    struct fixture *x = *state;
    flush_errno = EIO;
    uint64_t t = cons_snapshot_flush_ticket(&x->f, false);
    struct waiter w[6];
    wait_all(x, t, w, 6);
    for (int i = 0; i < 6; i++) assert_int_not_equal(w[i].rv, 0);
    assert_int_equal(atomic_load(&x->f.flushes), 0);
    assert_false(x->f.flushing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_flush_serves_a_ticket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_waits_for_the_invited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_flush_fails_every_waiter, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
