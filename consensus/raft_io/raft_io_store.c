/* SPDX-License-Identifier: Apache-2.0 */
/* The store: opening the WAL and snapshot files for every shard, and closing them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "meta_file.h"
#include "raft_io.h"
#include "raft_io_internal.h"
#include "wal.h"
#include "wal_record.h"

/* ----------------------------------------------------------- the store --- */

static int cons__mkdir(const char *dir, char *errmsg, size_t errmsg_len)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errmsg_len, "create %s: %s", dir, strerror(errno));
        return hd_from_errno(errno);
    }
    return 0;
}

static int cons__open_shards(struct cons_store *s, const struct cons_store_options *o,
                             char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(s->n_shards > 0 && s->n_shards <= 65536); /* shard ids are u16 */
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        HD_ASSERT(sl->store == NULL && !sl->started);
        sl->store = s;
        sl->shard = (uint16_t)i;
        char name[32];
        snprintf(name, sizeof name, "shard-%u", i);
        int rv = st_meta_file_init(&sl->snap, o->snap_dir, name);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "open %s/%s: %s", o->snap_dir, name, hd_strerror(rv));
            return rv;
        }
        cons__io_setup(sl);
    }
    return 0;
}

int cons_store_open(struct cons_store **out, const struct cons_store_options *o,
                    char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(o->n_shards > 0 && o->n_shards <= 65536);
    int rv = cons__mkdir(o->snap_dir, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    struct cons_store *s = hd_calloc(1, sizeof *s);
    if (s == NULL) {
        return HD_ENOMEM;
    }
    s->loop = o->loop;
    s->n_shards = o->n_shards;
    s->shards = hd_calloc(o->n_shards, sizeof *s->shards);
    if (s->shards == NULL) {
        hd_free(s);
        return HD_ENOMEM;
    }
    uv_idle_init(o->loop, &s->sends_idle);
    s->sends_idle.data = s;
    for (unsigned i = 0; i < s->n_shards; i++) {
        s->shards[i].snap.dir_fd = -1;
    }
    s->votes.dir_fd = -1;
    rv = st_meta_file_init(&s->votes, o->snap_dir, "vote");
    if (rv == 0) {
        rv = cons__open_shards(s, o, errmsg, errmsg_len);
    }
    if (rv == 0) {
        rv = cons__load_votes(s, errmsg, errmsg_len);
    }
    if (rv == 0) {
        struct st_wal_options wo = {.loop = o->loop, .dir = o->wal_dir,
                                    .segment_size = o->segment_size,
                                    .no_uring = o->no_uring};
        rv = st_wal_open(&s->wal, &wo, errmsg, errmsg_len);
    }
    if (rv == 0) {
        rv = cons__replay(s, errmsg, errmsg_len);
    }
    if (rv != 0) {
        cons_store_close(s, NULL, NULL);
        return rv;
    }
    HD_ASSERT(s->wal != NULL && s->closing == NULL);
    *out = s;
    return 0;
}

struct raft_io *cons_store_io(struct cons_store *s, unsigned shard)
{
    HD_ASSERT(shard < s->n_shards);
    return &s->shards[shard].io;
}

bool cons_store_has_state(const struct cons_store *s)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        const struct cons_shard_log *sl = &s->shards[i];
        if (sl->term != 0 || sl->n_entries > 0 || sl->snap.generation != 0 ||
            sl->next_index > 1) {
            return true;
        }
    }
    return false;
}

bool cons_store_uses_uring(const struct cons_store *s) { return st_wal_uses_uring(s->wal); }

void cons_store_wal_stats(const struct cons_store *s, struct st_wal_stats *out)
{
    st_wal_stats(s->wal, out);
}

int cons_store_pinning_shard(const struct cons_store *s, unsigned segments_max)
{
    struct st_wal_stats st;
    st_wal_stats(s->wal, &st);
    if (st.segments <= segments_max) {
        return -1;
    }
    int oldest = -1;
    uint64_t oldest_lsn = UINT64_MAX;
    for (unsigned i = 0; i < s->n_shards; i++) {
        const struct cons_shard_log *sl = &s->shards[i];
        if (sl->span_head < sl->span_n && sl->spans[sl->span_head].lsn < oldest_lsn) {
            oldest_lsn = sl->spans[sl->span_head].lsn;
            oldest = (int)i;
        }
    }
    HD_ASSERT(oldest < (int)s->n_shards);
    return oldest;
}

struct cons_close {
    struct cons_store *s;
    void (*cb)(void *arg);
    void *arg;
    unsigned handles;
};

static void cons__store_free(struct cons_store *s)
{
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        HD_ASSERT(sl->pending == 0); /* raft closed: no request outstanding */
        st_meta_file_close(&sl->snap);
        cons__replay_free(sl);
        hd_free(sl->spans);
    }
    st_meta_file_close(&s->votes);
    hd_free(s->shards);
    hd_free(s);
}

static void cons__wal_closed(void *arg)
{
    struct cons_close *c = arg;
    cons__store_free(c->s);
    if (c->cb != NULL) {
        c->cb(c->arg);
    }
    hd_free(c);
}

static void cons__close_step(struct cons_close *c)
{
    HD_ASSERT(c->handles > 0 && c->s->closing == c);
    if (--c->handles == 0) {
        if (c->s->wal != NULL) {
            st_wal_close(c->s->wal, cons__wal_closed, c);
        } else {
            cons__wal_closed(c);
        }
    }
}

static void cons__sends_idle_closed(uv_handle_t *h)
{
    struct cons_store *s = h->data;
    cons__close_step(s->closing);
}

static void cons__unstarted_timer_closed(uv_handle_t *h)
{
    struct cons_shard_log *sl = h->data;
    HD_ASSERT(sl->store->closing != NULL && h == (uv_handle_t *)&sl->tick_timer);
    cons__close_step(sl->store->closing);
}

void cons_store_close(struct cons_store *s, void (*cb)(void *arg), void *arg)
{
    struct cons_close *c = hd_calloc(1, sizeof *c);
    HD_ASSERT(c != NULL);
    *c = (struct cons_close){s, cb, arg, 2};
    HD_ASSERT(s->closing == NULL); /* closed once */
    s->closing = c;
    HD_ASSERT(s->sends_head == NULL); /* raft closed: every send completed */
    uv_close((uv_handle_t *)&s->sends_idle, cons__sends_idle_closed);
    /* Shards whose raft instance never closed the io (never started, or
     * store opening failed) still own an open timer handle. */
    for (unsigned i = 0; i < s->n_shards; i++) {
        struct cons_shard_log *sl = &s->shards[i];
        if (sl->tick_timer.loop != NULL && !uv_is_closing((uv_handle_t *)&sl->tick_timer)) {
            c->handles++;
            uv_close((uv_handle_t *)&sl->tick_timer, cons__unstarted_timer_closed);
        }
    }
    cons__close_step(c); /* drops the count taken above */
}
