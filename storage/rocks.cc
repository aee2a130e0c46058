/* SPDX-License-Identifier: Apache-2.0 */
/* RocksDB wrapper: open/close, batches with read-your-writes, flush, iterators. */
#include "rocks.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_damage.h"
#include "hd_error.h"
#include "hd_util.h"

struct st_rocks {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *cache;
    rocksdb_compactionfilter_t *filter;
    rocksdb_filterpolicy_t *bloom;  /* owned by table_options once set */
    rocksdb_writeoptions_t *write_options; /* WAL disabled */
    rocksdb_readoptions_t *read_options;
    st_rocks_filter_fn filter_fn;
    void *filter_arg;
    bool failed; /* sticky: a write failed */
    bool flush_failed; /* sticky: a flush failed, never try again */
};

struct st_batch {
    rocksdb_writebatch_t *wb;
};

struct st_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *read_options; /* holds the bounds */
    char *lower;
    char *upper;
};

/* ---------------------------------------------------------------- open --- */

static unsigned char st__filter_cb(void *state, int level, const char *key,
                                   size_t key_len, const char *value,
                                   size_t value_len, char **new_value,
                                   size_t *new_value_len,
                                   unsigned char *value_changed)
{
    struct st_rocks *r = state;
    (void)level;
    (void)new_value;
    (void)new_value_len;
    *value_changed = 0;
    return r->filter_fn(r->filter_arg, key, key_len, value, value_len) ? 1 : 0;
}

static void st__filter_destroy(void *state)
{
    (void)state; /* the filter's state is the st_rocks itself */
}

static const char *st__filter_name(void *state)
{
    (void)state;
    return "herald.filter";
}

static void st__set_options(struct st_rocks *r, const struct st_rocks_options *o)
{
    r->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->options, 1);
    rocksdb_options_increase_parallelism(r->options, 2);
    /* Upper levels are rewritten soon by compaction: LZ4 is cheap there.
     * The bottom level holds most of the data for long: zstd. */
    rocksdb_options_set_compression(r->options, rocksdb_lz4_compression);
    rocksdb_options_set_bottommost_compression(r->options, rocksdb_zstd_compression);
    rocksdb_options_set_write_buffer_size(
        r->options, o->write_buffer_bytes ? o->write_buffer_bytes : 64u << 20);
    rocksdb_options_set_max_open_files(r->options, 512);
    /* Most nonce lookups miss: a memtable bloom filter answers those
     * without walking the skip list. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(r->options, 0.1);
    rocksdb_options_set_memtable_whole_key_filtering(r->options, 1);

    r->cache = rocksdb_cache_create_lru(o->block_cache_bytes ? o->block_cache_bytes
                                                             : 64u << 20);
    r->table_options = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(r->table_options, r->cache);
    rocksdb_block_based_options_set_block_size(r->table_options, 16u << 10);
    /* Every append looks its nonce up, and a new nonce is in no file: a
     * bloom filter answers that without reading blocks. */
    r->bloom = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(r->table_options, r->bloom);
    rocksdb_options_set_block_based_table_factory(r->options, r->table_options);

    if (o->filter != NULL) {
        r->filter_fn = o->filter;
        r->filter_arg = o->filter_arg;
        r->filter = rocksdb_compactionfilter_create(r, st__filter_destroy, st__filter_cb,
                                                    st__filter_name);
        rocksdb_options_set_compaction_filter(r->options, r->filter);
    }
    r->write_options = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(r->write_options, 1);
    r->read_options = rocksdb_readoptions_create();
}

int st_rocks_open(struct st_rocks **out, const struct st_rocks_options *opts,
                  char *errmsg, size_t errmsg_len)
{
    HD_ASSERT(out != NULL);
    HD_ASSERT(opts != NULL && opts->dir != NULL);
    struct st_rocks *r = hd_calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(errmsg, errmsg_len, "open state: out of memory");
        return HD_ENOMEM;
    }
    st__set_options(r, opts);
    char *err = NULL;
    r->db = rocksdb_open(r->options, opts->dir, &err);
    if (err != NULL) {
        /* A table the MANIFEST names cut short or failing its checksum is
         * damaged data (exit 3, or a repair), not a failed start. */
        int rv = strncmp(err, "Corruption:", 11) == 0 ? HD_ECORRUPT : HD_EIO;
        snprintf(errmsg, errmsg_len, "open state %s: %s", opts->dir, err);
        rocksdb_free(err);
        r->db = NULL;
        st_rocks_close(r);
        return rv;
    }
    *out = r;
    return 0;
}

void st_rocks_close(struct st_rocks *r)
{
    if (r == NULL) {
        return;
    }
    if (r->db != NULL) {
        rocksdb_close(r->db);
    }
    rocksdb_writeoptions_destroy(r->write_options);
    rocksdb_readoptions_destroy(r->read_options);
    rocksdb_options_destroy(r->options);
    rocksdb_block_based_options_destroy(r->table_options);
    rocksdb_cache_destroy(r->cache);
    if (r->filter != NULL) {
        rocksdb_compactionfilter_destroy(r->filter);
    }
    hd_free(r);
}

/* Logs and frees a RocksDB error message; HD_EIO if there was one. */
static int st__err(char *err, const char *what)
{
    if (err == NULL) {
        return 0;
    }
    HD_LOG_ERROR("state %s: %s", what, err);
    if (strncmp(err, "Corruption:", 11) == 0) {
        /* A damaged table (a checksum mismatch in a block read now, not at
         * open) means this replica's state can no longer be trusted, for
         * reads or for the dedup lookups of apply. Stop at once, as a crash
         * would, rather than answer errors or act on a partial state; the
         * other replicas hold the data, and the disk must be replaced. */
        char reason[HD_DAMAGE_REASON_MAX];
        snprintf(reason, sizeof reason, "state (RocksDB) %s: %s", what, err);
        if (hd_damage_mark(reason) == 0) {
            HD_LOG_ERROR("state is corrupt: stopping (exit %d); marked for repair (%s): the "
                         "next start rejoins the cluster under a new id",
                         HD_EXIT_REPAIR, HD_DAMAGE_MARKER);
            hd_damage_stop(HD_EXIT_REPAIR); /* at start-up, with repair on: starts again */
        }
        HD_LOG_ERROR("state is corrupt: stopping (exit %d); replace this node's disk "
                     "(remove the node, wipe its data directory, add it back)",
                     ST_EXIT_CORRUPT);
        _exit(ST_EXIT_CORRUPT);
    }
    rocksdb_free(err);
    return HD_EIO;
}

/* --------------------------------------------------------------- reads --- */

static int st__into(char *val, size_t len, char *err, void *buf, size_t cap,
                    size_t *value_len)
{
    if (st__err(err, "read") != 0) {
        return HD_EIO;
    }
    if (val == NULL) {
        return HD_ENOTFOUND;
    }
    *value_len = len;
    int rv = len > cap ? HD_ETOOBIG : 0;
    memcpy(buf, val, len > cap ? cap : len);
    rocksdb_free(val);
    return rv;
}

int st_rocks_get_into(struct st_rocks *r, const void *key, size_t key_len,
                      void *buf, size_t cap, size_t *value_len)
{
    HD_ASSERT(r != NULL && r->db != NULL);
    char *err = NULL;
    size_t len = 0;
    char *val = rocksdb_get(r->db, r->read_options, key, key_len, &len, &err);
    return st__into(val, len, err, buf, cap, value_len);
}

/* ------------------------------------------------------------- batches --- */

int st_batch_init(struct st_batch **out)
{
    struct st_batch *b = hd_calloc(1, sizeof *b);
    if (b == NULL) {
        return HD_ENOMEM;
    }
    b->wb = rocksdb_writebatch_create();
    *out = b;
    return 0;
}

void st_batch_close(struct st_batch *b)
{
    if (b == NULL) {
        return;
    }
    rocksdb_writebatch_destroy(b->wb);
    hd_free(b);
}

void st_batch_clear(struct st_batch *b) { rocksdb_writebatch_clear(b->wb); }

void st_batch_put(struct st_batch *b, const void *key, size_t key_len,
                  const void *value, size_t value_len)
{
    rocksdb_writebatch_put(b->wb, key, key_len, value, value_len);
}

void st_batch_delete(struct st_batch *b, const void *key, size_t key_len)
{
    rocksdb_writebatch_delete(b->wb, key, key_len);
}

void st_batch_delete_range(struct st_batch *b, const void *lower, size_t lower_len,
                           const void *upper, size_t upper_len)
{
    rocksdb_writebatch_delete_range(b->wb, lower, lower_len, upper, upper_len);
}

int (*st__rocks_io_hook)(const char *call);

/* An error the hook injects, in RocksDB's words and allocation. */
static bool st__injected(const char *call, char **err)
{
    int e = st__rocks_io_hook != NULL ? st__rocks_io_hook(call) : 0;
    if (e == 0) {
        return false;
    }
    char text[128];
    snprintf(text, sizeof text, "IO error: injected: %s", strerror(e));
    *err = strdup(text); /* rocksdb_free is free */
    return true;
}

int st_rocks_write(struct st_rocks *r, struct st_batch *b)
{
    HD_ASSERT(r != NULL && b != NULL);
    if (r->failed) {
        return HD_EFAILED;
    }
    char *err = NULL;
    if (!st__injected("write", &err)) {
        rocksdb_write(r->db, r->write_options, b->wb, &err);
    }
    if (st__err(err, "write failed, refusing further writes") != 0) {
        r->failed = true;
        return HD_EFAILED;
    }
    return 0;
}

/* True once RocksDB recorded a background error (a failed flush or
 * compaction). The counter only grows until the database is reopened. */
static bool st__background_error(struct st_rocks *r)
{
    uint64_t n = 0;
    return rocksdb_property_int(r->db, "rocksdb.background-errors", &n) == 0 && n > 0;
}

int st_rocks_flush(struct st_rocks *r)
{
    HD_ASSERT(r != NULL && r->db != NULL);
    /* Never flush again after a flush failed: RocksDB (Debian's build keeps
     * its assertions) aborts the process when a file whose write already
     * failed is synced again. A file system shut down under a running node
     * did that at the final flush of a graceful stop. The WAL holds what
     * the memtable held, so not flushing loses nothing. */
    if (r->flush_failed || st__background_error(r)) {
        r->flush_failed = true;
        return HD_EFAILED;
    }
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    char *err = NULL;
    if (!st__injected("flush", &err)) {
        rocksdb_flush(r->db, fo, &err);
    }
    rocksdb_flushoptions_destroy(fo);
    int rv = st__err(err, "flush");
    r->flush_failed = rv != 0;
    return rv;
}

int st_rocks_checkpoint(struct st_rocks *r, const char *dir)
{
    HD_ASSERT(r != NULL && r->db != NULL && dir != NULL);
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(r->db, &err);
    if (cp != NULL) {
        /* 0: always flush first. The RocksDB WAL is off (rule 1): without a
         * flush the checkpoint would hold only what was flushed before. */
        rocksdb_checkpoint_create(cp, dir, 0, &err);
        rocksdb_checkpoint_object_destroy(cp);
    }
    if (err == NULL) {
        return 0;
    }
    /* Not st__err: a refused checkpoint (the directory exists, no space)
     * says nothing about the state itself. */
    HD_LOG_WARN("state checkpoint into %s: %s", dir, err);
    int rv = strstr(err, "exists") != NULL ? HD_EEXIST : HD_EIO;
    rocksdb_free(err);
    return rv;
}

void st_rocks_compact_range(struct st_rocks *r, const void *lower, size_t lower_len,
                            const void *upper, size_t upper_len)
{
    HD_ASSERT(r != NULL && r->db != NULL);
    rocksdb_compact_range(r->db, lower, lower_len, upper, upper_len);
}

/* ----------------------------------------------------------- iterators --- */

struct st_view {
    const rocksdb_snapshot_t *snapshot;
};

int st_rocks_view_acquire(struct st_rocks *r, struct st_view **out)
{
    struct st_view *v = hd_calloc(1, sizeof *v);
    if (v == NULL) {
        return HD_ENOMEM;
    }
    v->snapshot = rocksdb_create_snapshot(r->db);
    *out = v;
    return 0;
}

void st_rocks_view_release(struct st_rocks *r, struct st_view *v)
{
    if (v != NULL) {
        rocksdb_release_snapshot(r->db, v->snapshot);
        hd_free(v);
    }
}

int st_iter_open(struct st_iter **out, struct st_rocks *r, const void *lower,
                 size_t lower_len, const void *upper, size_t upper_len)
{
    return st_iter_open_at(out, r, NULL, lower, lower_len, upper, upper_len);
}

int st_iter_open_at(struct st_iter **out, struct st_rocks *r, struct st_view *v,
                    const void *lower, size_t lower_len, const void *upper,
                    size_t upper_len)
{
    HD_ASSERT(r != NULL && out != NULL);
    struct st_iter *it = hd_calloc(1, sizeof *it);
    if (it == NULL) {
        return HD_ENOMEM;
    }
    it->lower = hd_malloc(lower_len + 1);
    it->upper = hd_malloc(upper_len + 1);
    if (it->lower == NULL || it->upper == NULL) {
        hd_free(it->lower);
        hd_free(it->upper);
        hd_free(it);
        return HD_ENOMEM;
    }
    memcpy(it->lower, lower, lower_len);
    memcpy(it->upper, upper, upper_len);
    it->read_options = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(it->read_options, it->lower, lower_len);
    rocksdb_readoptions_set_iterate_upper_bound(it->read_options, it->upper, upper_len);
    if (v != NULL) {
        rocksdb_readoptions_set_snapshot(it->read_options, v->snapshot);
    }
    it->it = rocksdb_create_iterator(r->db, it->read_options);
    rocksdb_iter_seek(it->it, it->lower, lower_len);
    *out = it;
    return 0;
}

void st_iter_seek_last(struct st_iter *it) { rocksdb_iter_seek_to_last(it->it); }

void st_iter_seek(struct st_iter *it, const void *key, size_t len)
{
    rocksdb_iter_seek(it->it, key, len);
}

bool st_iter_valid(const struct st_iter *it) { return rocksdb_iter_valid(it->it) != 0; }

void st_iter_next(struct st_iter *it) { rocksdb_iter_next(it->it); }

const void *st_iter_key(const struct st_iter *it, size_t *len)
{
    return rocksdb_iter_key(it->it, len);
}

const void *st_iter_value(const struct st_iter *it, size_t *len)
{
    return rocksdb_iter_value(it->it, len);
}

int st_iter_status(const struct st_iter *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    return st__err(err, "iteration");
}

void st_iter_close(struct st_iter *it)
{
    if (it == NULL) {
        return;
    }
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->read_options);
    hd_free(it->lower);
    hd_free(it->upper);
    hd_free(it);
}
