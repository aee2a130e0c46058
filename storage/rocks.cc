/* SPDX-License-Identifier: Apache-2.0 */
/* RocksDB wrapper: open/close, batches with read-your-writes, flush, iterators.
 *
 * C++ behind the C interface of rocks.h: RocksDB's C API (Debian's 7.8)
 * cannot give RocksDB a file system or a logger of the caller's, and both
 * are needed to keep a disk error from aborting the process (rocks_fs.h). */
extern "C" {
#include "rocks.h"

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_damage.h"
#include "hd_error.h"
#include "hd_util.h"
}

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <utility>

#include "rocks_fs.h"

namespace {

/* Asks herald's filter, during compaction, whether a key may be dropped. */
class HeraldFilter : public rocksdb::CompactionFilter {
  public:
    HeraldFilter(st_rocks_filter_fn fn, void *arg) : fn_(fn), arg_(arg) {}

    bool Filter(int, const rocksdb::Slice &key, const rocksdb::Slice &value, std::string *,
                bool *) const override
    {
        return fn_(arg_, key.data(), key.size(), value.data(), value.size());
    }

    const char *Name() const override { return "herald.filter"; }

  private:
    st_rocks_filter_fn fn_;
    void *arg_;
};

/* The caller's key prefix (st_rocks_prefix_fn) as RocksDB's extractor. */
class HeraldPrefix : public rocksdb::SliceTransform {
  public:
    HeraldPrefix(st_rocks_prefix_fn fn, const char *name) : fn_(fn), name_(name) {}

    const char *Name() const override { return name_.c_str(); }

    rocksdb::Slice Transform(const rocksdb::Slice &key) const override
    {
        return rocksdb::Slice(key.data(), fn_(key.data(), key.size()));
    }

    bool InDomain(const rocksdb::Slice &key) const override
    {
        return fn_(key.data(), key.size()) > 0;
    }

  private:
    st_rocks_prefix_fn fn_;
    std::string name_;
};

} // namespace

/* The thread of st_rocks_compact_range_later and the ranges it has to do. */
struct st_compactor {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<std::string, std::string>> ranges; /* [lower, upper) */
    bool stop = false; /* set by close: finish the queue, then end */
    pthread_t thread;
};

struct st_rocks {
    rocksdb::DB *db = nullptr;
    std::unique_ptr<st_compactor> compactor; /* NULL until first used */
    std::unique_ptr<rocksdb::Env> env; /* the state directory's file system */
    std::unique_ptr<HeraldFilter> filter;
    st_rocks_prefix_fn prefix = nullptr; /* st_rocks_options.prefix */
    st_rocks_prefix_fn insert_hint = nullptr; /* st_rocks_options.insert_hint */
    rocksdb::WriteOptions write_options; /* WAL disabled */
    rocksdb::ReadOptions read_options;
    bool failed = false;       /* sticky: a write failed */
    bool flush_failed = false; /* sticky: a flush failed, never try again */
};

struct st_batch {
    rocksdb::WriteBatch wb;
};

struct st_iter {
    std::string lower; /* the bounds the read options point at */
    std::string upper;
    rocksdb::Slice lower_slice;
    rocksdb::Slice upper_slice;
    rocksdb::ReadOptions read_options;
    std::unique_ptr<rocksdb::Iterator> it; /* last: destroyed first */
};

struct st_view {
    const rocksdb::Snapshot *snapshot;
};

/* The structs are allocated through hd_alloc (its failure hook reaches
 * them, as it did when this wrapper was C) and built in place. */
template <typename T> static T *st__new()
{
    void *p = hd_calloc(1, sizeof(T));
    return p != nullptr ? new (p) T() : nullptr;
}

template <typename T> static void st__delete(T *p)
{
    if (p != nullptr) {
        p->~T();
        hd_free(p);
    }
}

/* ---------------------------------------------------------------- open --- */

static rocksdb::Options st__options(struct st_rocks *r, const struct st_rocks_options *o)
{
    rocksdb::Options opt;
    r->env = rocksdb::NewCompositeEnv(herald::NewStopOnWriteErrorFs(o->dir));
    opt.env = r->env.get();
    opt.info_log = herald::NewLogToHerald();
    opt.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
    opt.create_if_missing = true;
    opt.IncreaseParallelism(2);
    /* Upper levels are rewritten soon by compaction: LZ4 is cheap there.
     * The bottom level holds most of the data for long: zstd. */
    opt.compression = rocksdb::kLZ4Compression;
    opt.bottommost_compression = rocksdb::kZSTD;
    opt.write_buffer_size = o->write_buffer_bytes ? o->write_buffer_bytes : 64u << 20;
    /* Every flush holds keys of every shard and channel, so each L0
     * compaction rewrites the whole of L1: at RocksDB's 256 MiB base, L1
     * grew to that before anything moved down, and at 10 000 appends/s
     * compaction took 50 us of CPU per append in the tenth minute, more
     * than the loop thread's own. A 32 MiB L1 bounds that rewrite (README: Snapshots,
     * flushes and compaction); smaller files keep L1's compactions into L2
     * small, and doubling by level keeps the count of files of a big
     * store within max_open_files. */
    opt.max_bytes_for_level_base = 32u << 20;
    opt.target_file_size_base = 8u << 20;
    opt.target_file_size_multiplier = 2;
    opt.max_open_files = 512;
    /* Most nonce lookups miss, and so does the head lookup of a channel
     * never written: a memtable bloom filter answers those without walking
     * the skip list. Its size is a share of the write buffer: 2% (1.3 MiB
     * of 64) leaves the keys of a full memtable of 200-byte messages about
     * 15 bits each by arithmetic (fewer with tiny payloads), and at
     * 10 000 appends/s the node spent 0.87x the CPU per append with it
     * than with 10% (README: Server CPU per append). */
    opt.memtable_prefix_bloom_size_ratio = 0.02;
    opt.memtable_whole_key_filtering = true;
    /* A memtable's memory comes in blocks of this size. RocksDB's default,
     * 1 MiB, is above heraldd's mmap threshold (hd_malloc_policy.c): every
     * block was a mapping of its own, unmapped with its memtable, so every
     * memtable began on fresh pages, and a first touch costs about 10 us
     * here. From the heap, a flushed memtable's blocks serve the next one:
     * at 256 in flight 0.38x the page faults and 0.83x the CPU per append
     * (README: Server CPU per append). */
    opt.arena_block_size = 64u << 10;

    rocksdb::BlockBasedTableOptions table;
    table.block_cache =
        rocksdb::NewLRUCache(o->block_cache_bytes ? o->block_cache_bytes : 64u << 20);
    table.block_size = 16u << 10;
    /* Every append looks its nonce up, and a new nonce is in no file: a
     * bloom filter answers that without reading blocks. */
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    opt.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

    if (o->filter != nullptr) {
        r->filter = std::make_unique<HeraldFilter>(o->filter, o->filter_arg);
        opt.compaction_filter = r->filter.get();
    }
    if (o->prefix != nullptr) {
        /* Both filters then hold prefixes beside whole keys. A table file
         * written under another extractor (or none) records that, and
         * RocksDB then ignores its prefix filter rather than trusting it. */
        HD_ASSERT(o->prefix_name != nullptr);
        r->prefix = o->prefix;
        opt.prefix_extractor = std::make_shared<HeraldPrefix>(o->prefix, o->prefix_name);
    }
    if (o->insert_hint != nullptr) {
        r->insert_hint = o->insert_hint;
        opt.memtable_insert_with_hint_prefix_extractor =
            std::make_shared<HeraldPrefix>(o->insert_hint, "herald.insert-hint");
    }
    r->write_options.disableWAL = true;
    return opt;
}

int st_rocks_open(struct st_rocks **out, const struct st_rocks_options *opts,
                  char *errmsg, size_t errmsg_len)
{
    /* RocksDB counts into a thread-local perf context on every read and
     * write unless told not to; herald reads none of it. Off on the
     * thread that opens the state, the loop thread that applies and reads:
     * 0.95x the CPU per append at 256 in flight (six alternating pairs). */
    rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
    HD_ASSERT(out != nullptr);
    HD_ASSERT(opts != nullptr && opts->dir != nullptr);
    struct st_rocks *r = st__new<st_rocks>();
    if (r == nullptr) {
        snprintf(errmsg, errmsg_len, "open state: out of memory");
        return HD_ENOMEM;
    }
    /* Made here, not by create_if_missing: RocksDB logs a missing
     * directory as an ERROR before it creates it. */
    if (mkdir(opts->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errmsg_len, "open state %s: mkdir: %s", opts->dir, strerror(errno));
        st_rocks_close(r);
        return HD_EIO;
    }
    rocksdb::Status s = rocksdb::DB::Open(st__options(r, opts), opts->dir, &r->db);
    if (!s.ok()) {
        /* A table the MANIFEST names cut short or failing its checksum is
         * damaged data (exit 3, or a repair), not a failed start. */
        snprintf(errmsg, errmsg_len, "open state %s: %s", opts->dir, s.ToString().c_str());
        r->db = nullptr;
        st_rocks_close(r);
        return s.IsCorruption() ? HD_ECORRUPT : HD_EIO;
    }
    *out = r;
    return 0;
}

void st_rocks_close(struct st_rocks *r)
{
    if (r == nullptr) {
        return;
    }
    if (r->compactor != nullptr) {
        {
            std::lock_guard<std::mutex> lock(r->compactor->mu);
            r->compactor->stop = true;
        }
        r->compactor->cv.notify_one();
        pthread_join(r->compactor->thread, nullptr); /* after the ranges queued */
    }
    delete r->db; /* before the env and the filter it uses */
    r->db = nullptr;
    st__delete(r);
}

/* Logs a RocksDB error; HD_EIO if there was one. */
static int st__err(const rocksdb::Status &s, const char *what)
{
    if (s.ok()) {
        return 0;
    }
    HD_LOG_ERROR("state %s: %s", what, s.ToString().c_str());
    if (s.IsCorruption()) {
        /* A damaged table (a checksum mismatch in a block read now, not at
         * open) means this replica's state can no longer be trusted, for
         * reads or for the dedup lookups of apply. Stop at once, as a crash
         * would, rather than answer errors or act on a partial state; the
         * other replicas hold the data, and the disk must be replaced. */
        char reason[HD_DAMAGE_REASON_MAX];
        snprintf(reason, sizeof reason, "state (RocksDB) %s: %s", what, s.ToString().c_str());
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
    return HD_EIO;
}

/* --------------------------------------------------------------- reads --- */

int st_rocks_get_into(struct st_rocks *r, const void *key, size_t key_len, void *buf,
                      size_t cap, size_t *value_len)
{
    HD_ASSERT(r != nullptr && r->db != nullptr);
    rocksdb::PinnableSlice val;
    rocksdb::Status s = r->db->Get(r->read_options, r->db->DefaultColumnFamily(),
                                   rocksdb::Slice((const char *)key, key_len), &val);
    if (s.IsNotFound()) {
        return HD_ENOTFOUND;
    }
    if (st__err(s, "read") != 0) {
        return HD_EIO;
    }
    *value_len = val.size();
    memcpy(buf, val.data(), val.size() > cap ? cap : val.size());
    return val.size() > cap ? HD_ETOOBIG : 0;
}

bool st_rocks_may_exist(struct st_rocks *r, const void *key, size_t key_len)
{
    HD_ASSERT(r != nullptr && r->db != nullptr);
    std::string value; /* RocksDB copies a memtable hit here; unused */
    return r->db->KeyMayExist(r->read_options, r->db->DefaultColumnFamily(),
                              rocksdb::Slice((const char *)key, key_len), &value);
}

/* ------------------------------------------------------------- batches --- */

int st_batch_init(struct st_batch **out)
{
    struct st_batch *b = st__new<st_batch>();
    if (b == nullptr) {
        return HD_ENOMEM;
    }
    *out = b;
    return 0;
}

void st_batch_close(struct st_batch *b) { st__delete(b); }

void st_batch_clear(struct st_batch *b) { b->wb.Clear(); }

static rocksdb::Slice st__slice(const void *p, size_t len)
{
    return rocksdb::Slice((const char *)p, len);
}

void st_batch_put(struct st_batch *b, const void *key, size_t key_len, const void *value,
                  size_t value_len)
{
    (void)b->wb.Put(st__slice(key, key_len), st__slice(value, value_len));
}

void st_batch_delete(struct st_batch *b, const void *key, size_t key_len)
{
    (void)b->wb.Delete(st__slice(key, key_len));
}

void st_batch_delete_range(struct st_batch *b, const void *lower, size_t lower_len,
                           const void *upper, size_t upper_len)
{
    (void)b->wb.DeleteRange(st__slice(lower, lower_len), st__slice(upper, upper_len));
}

int (*st__rocks_io_hook)(const char *call);

/* An error the hook injects, as RocksDB would report it. */
static bool st__injected(const char *call, rocksdb::Status *s)
{
    int e = st__rocks_io_hook != nullptr ? st__rocks_io_hook(call) : 0;
    if (e == 0) {
        return false;
    }
    *s = e == ENOSPC ? rocksdb::Status::NoSpace("injected", strerror(e))
                     : rocksdb::Status::IOError("injected", strerror(e));
    return true;
}

/* Checks that no range deletion of a batch begins at a key with an insert
 * hint: RocksDB 7.8 (Debian 12's) keeps one hint map for a memtable's point
 * keys and its range deletions, so such a range deletion would splice one
 * skip list's nodes into the other (fixed in RocksDB 9.2). */
class HintlessRanges : public rocksdb::WriteBatch::Handler {
  public:
    explicit HintlessRanges(st_rocks_prefix_fn hint) : hint_(hint) {}

    rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice &begin,
                                  const rocksdb::Slice &) override
    {
        HD_ASSERT(hint_(begin.data(), begin.size()) == 0);
        return rocksdb::Status::OK();
    }
    /* Puts and deletes: the Handler's defaults, which accept them. */

  private:
    st_rocks_prefix_fn hint_;
};

int st_rocks_write(struct st_rocks *r, struct st_batch *b)
{
    HD_ASSERT(r != nullptr && b != nullptr);
    if (r->insert_hint != nullptr && b->wb.HasDeleteRange()) {
        HintlessRanges check(r->insert_hint);
        rocksdb::Status checked = b->wb.Iterate(&check);
        HD_ASSERT(checked.ok());
    }
    if (r->failed) {
        return HD_EFAILED;
    }
    rocksdb::Status s;
    if (!st__injected("write", &s)) {
        s = r->db->Write(r->write_options, &b->wb);
    }
    if (st__err(s, "write failed, refusing further writes") != 0) {
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
    return r->db->GetIntProperty("rocksdb.background-errors", &n) && n > 0;
}

int st_rocks_flush(struct st_rocks *r)
{
    HD_ASSERT(r != nullptr && r->db != nullptr);
    /* Never flush again after a flush failed (a failed file write stops the
     * process before RocksDB sees it, rocks_fs.h, so what is left is a flush
     * RocksDB itself refused): the WAL holds what the memtable held, so not
     * flushing loses nothing. */
    if (r->flush_failed || st__background_error(r)) {
        r->flush_failed = true;
        return HD_EFAILED;
    }
    rocksdb::FlushOptions fo;
    fo.wait = true;
    rocksdb::Status s;
    if (!st__injected("flush", &s)) {
        s = r->db->Flush(fo);
    }
    int rv = st__err(s, "flush");
    r->flush_failed = rv != 0;
    return rv;
}

int st_rocks_checkpoint(struct st_rocks *r, const char *dir)
{
    HD_ASSERT(r != nullptr && r->db != nullptr && dir != nullptr);
    rocksdb::Checkpoint *cp = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(r->db, &cp);
    if (s.ok()) {
        /* 0: always flush first. The RocksDB WAL is off (rule 1): without a
         * flush the checkpoint would hold only what was flushed before. */
        s = cp->CreateCheckpoint(dir, 0);
        delete cp;
    }
    if (s.ok()) {
        return 0;
    }
    /* Not st__err: a refused checkpoint (the directory exists, no space)
     * says nothing about the state itself. */
    std::string text = s.ToString();
    HD_LOG_WARN("state checkpoint into %s: %s", dir, text.c_str());
    return text.find("exists") != std::string::npos ? HD_EEXIST : HD_EIO;
}

void st_rocks_compact_range(struct st_rocks *r, const void *lower, size_t lower_len,
                            const void *upper, size_t upper_len)
{
    HD_ASSERT(r != nullptr && r->db != nullptr);
    rocksdb::Slice begin = st__slice(lower, lower_len);
    rocksdb::Slice end = st__slice(upper, upper_len);
    rocksdb::Status s = r->db->CompactRange(rocksdb::CompactRangeOptions(),
                                            lower != nullptr ? &begin : nullptr,
                                            upper != nullptr ? &end : nullptr);
    if (!s.ok()) {
        /* Space is given back later by RocksDB's own compactions. */
        HD_LOG_WARN("state compaction: %s", s.ToString().c_str());
    }
}

static void *st__compactor_main(void *arg)
{
    struct st_rocks *r = static_cast<struct st_rocks *>(arg);
    st_compactor *c = r->compactor.get();
    std::unique_lock<std::mutex> lock(c->mu);
    for (;;) {
        c->cv.wait(lock, [c] { return c->stop || !c->ranges.empty(); });
        if (c->ranges.empty()) {
            return nullptr; /* stopping, nothing left */
        }
        std::pair<std::string, std::string> range = std::move(c->ranges.front());
        c->ranges.pop_front();
        lock.unlock();
        st_rocks_compact_range(r, range.first.data(), range.first.size(), range.second.data(),
                               range.second.size());
        lock.lock();
    }
}

void st_rocks_compact_range_later(struct st_rocks *r, const void *lower, size_t lower_len,
                                  const void *upper, size_t upper_len)
{
    HD_ASSERT(r != nullptr && r->db != nullptr && lower != nullptr && upper != nullptr);
    if (r->compactor == nullptr) {
        r->compactor = std::make_unique<st_compactor>();
        int e = pthread_create(&r->compactor->thread, nullptr, st__compactor_main, r);
        if (e != 0) {
            r->compactor.reset();
            HD_LOG_WARN("state compaction thread: %s; compacting on this one", strerror(e));
            st_rocks_compact_range(r, lower, lower_len, upper, upper_len);
            return;
        }
        pthread_setname_np(r->compactor->thread, "herald-compact");
    }
    std::pair<std::string, std::string> range(std::string((const char *)lower, lower_len),
                                              std::string((const char *)upper, upper_len));
    {
        std::lock_guard<std::mutex> lock(r->compactor->mu);
        for (const auto &queued : r->compactor->ranges) {
            if (queued == range) {
                return; /* one compaction, not yet begun, does for both */
            }
        }
        r->compactor->ranges.push_back(std::move(range));
    }
    r->compactor->cv.notify_one();
}

/* ----------------------------------------------------------- iterators --- */

int st_rocks_view_acquire(struct st_rocks *r, struct st_view **out)
{
    struct st_view *v = st__new<st_view>();
    if (v == nullptr) {
        return HD_ENOMEM;
    }
    v->snapshot = r->db->GetSnapshot();
    *out = v;
    return 0;
}

void st_rocks_view_release(struct st_rocks *r, struct st_view *v)
{
    if (v != nullptr) {
        r->db->ReleaseSnapshot(v->snapshot);
        st__delete(v);
    }
}

int st_iter_open(struct st_iter **out, struct st_rocks *r, const void *lower, size_t lower_len,
                 const void *upper, size_t upper_len)
{
    return st_iter_open_at(out, r, nullptr, lower, lower_len, upper, upper_len);
}

/* Opens an iterator over [lower, upper) at view v, not yet positioned;
 * in_prefix: the range is within one prefix, so prefix filters may skip
 * memtables and files. */
static int st__iter_new(struct st_iter **out, struct st_rocks *r, struct st_view *v,
                        const void *lower, size_t lower_len, const void *upper,
                        size_t upper_len, bool in_prefix)
{
    HD_ASSERT(r != nullptr && out != nullptr);
    struct st_iter *it = st__new<st_iter>();
    if (it == nullptr) {
        return HD_ENOMEM;
    }
    it->lower.assign((const char *)lower, lower_len);
    it->upper.assign((const char *)upper, upper_len);
    it->lower_slice = it->lower;
    it->upper_slice = it->upper;
    it->read_options.iterate_lower_bound = &it->lower_slice;
    it->read_options.iterate_upper_bound = &it->upper_slice;
    /* With a prefix extractor RocksDB seeks within the target's prefix
     * unless told otherwise, and a range may span many prefixes. */
    it->read_options.total_order_seek = !in_prefix;
    it->read_options.prefix_same_as_start = in_prefix;
    if (v != nullptr) {
        it->read_options.snapshot = v->snapshot;
    }
    it->it.reset(r->db->NewIterator(it->read_options));
    *out = it;
    return 0;
}

int st_iter_open_at(struct st_iter **out, struct st_rocks *r, struct st_view *v,
                    const void *lower, size_t lower_len, const void *upper, size_t upper_len)
{
    int rv = st__iter_new(out, r, v, lower, lower_len, upper, upper_len, false);
    if (rv == 0) {
        (*out)->it->Seek((*out)->lower_slice);
    }
    return rv;
}

int st_iter_open_last(struct st_iter **out, struct st_rocks *r, const void *lower,
                      size_t lower_len, const void *upper, size_t upper_len)
{
    size_t n = r->prefix != nullptr ? r->prefix(lower, lower_len) : 0;
    HD_ASSERT(r->prefix == nullptr ||
              (n > 0 && r->prefix(upper, upper_len) == n && memcmp(lower, upper, n) == 0));
    int rv = st__iter_new(out, r, nullptr, lower, lower_len, upper, upper_len, n > 0);
    if (rv == 0) {
        (*out)->it->SeekToLast();
    }
    return rv;
}

void st_iter_seek(struct st_iter *it, const void *key, size_t len)
{
    it->it->Seek(st__slice(key, len));
}

bool st_iter_valid(const struct st_iter *it) { return it->it->Valid(); }

void st_iter_next(struct st_iter *it) { it->it->Next(); }

const void *st_iter_key(const struct st_iter *it, size_t *len)
{
    rocksdb::Slice k = it->it->key();
    *len = k.size();
    return k.data();
}

const void *st_iter_value(const struct st_iter *it, size_t *len)
{
    rocksdb::Slice v = it->it->value();
    *len = v.size();
    return v.data();
}

int st_iter_status(const struct st_iter *it) { return st__err(it->it->status(), "iteration"); }

void st_iter_close(struct st_iter *it) { st__delete(it); }
