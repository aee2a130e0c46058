/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots share state flushes: see snapshot_flush.h. */
#include "snapshot_flush.h"

#include <errno.h>
#include <time.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "log.h"

int cons_snapshot_flush_init(struct cons_snapshot_flush *f)
{
    *f = (struct cons_snapshot_flush){0};
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return HD_ENOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rv = pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rv != 0) {
        return HD_ENOMEM;
    }
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        pthread_cond_destroy(&f->cv);
        return HD_ENOMEM;
    }
    return 0;
}

void cons_snapshot_flush_destroy(struct cons_snapshot_flush *f)
{
    HD_ASSERT(!f->flushing);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

void cons_snapshot_flush_invite(struct cons_snapshot_flush *f, unsigned count)
{
    pthread_mutex_lock(&f->mu);
    f->invited += count;
    pthread_mutex_unlock(&f->mu);
}

uint64_t cons_snapshot_flush_ticket(struct cons_snapshot_flush *f, bool invited)
{
    pthread_mutex_lock(&f->mu);
    /* A flush takes its ticket (begun + 1) under mu just before it asks
     * RocksDB to flush, so one with this ticket or a later one began after
     * the state written before this call, and RocksDB flushes all that the
     * memtable held when a flush began. */
    uint64_t ticket = f->begun + 1;
    if (invited && f->invited > 0) {
        f->invited--;
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return ticket;
}

static struct timespec cons__gather_deadline(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_nsec += (long)CONS_SNAPSHOT_FLUSH_GATHER_MS * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    return t;
}

int cons_snapshot_flush_wait(struct cons_snapshot_flush *f, uint64_t ticket,
                             struct log_store *log)
{
    HD_ASSERT(ticket > 0);
    struct timespec deadline = cons__gather_deadline();
    bool gathered = false;
    int rv = 0;
    pthread_mutex_lock(&f->mu);
    while (f->done < ticket) {
        if (f->flushing) {
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        if (f->invited > 0 && !gathered) {
            gathered = pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT;
            continue;
        }
        /* Shards invited and not yet snapshotted wait for a later flush. */
        f->invited = 0;
        f->flushing = true;
        uint64_t mine = ++f->begun;
        HD_ASSERT(mine >= ticket); /* tickets are handed out before a flush begins */
        pthread_mutex_unlock(&f->mu);
        rv = log_flush(log);
        pthread_mutex_lock(&f->mu);
        f->flushing = false;
        if (rv == 0) {
            f->done = mine;
            atomic_fetch_add(&f->flushes, 1);
        }
        pthread_cond_broadcast(&f->cv);
        if (rv != 0) {
            break; /* each waiter then tries, and fails, on its own */
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rv;
}
