/* SPDX-License-Identifier: Apache-2.0 */
/* The state directory's file system (stop at the first failed write) and
 * RocksDB's info log into herald's: see rocks_fs.h for why. */
#include "rocks_fs.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <utility>

extern "C" {
#include "hd_exit.h"
#include "hd_util.h"
}

namespace herald {
namespace {

using rocksdb::DataVerificationInfo;
using rocksdb::FileOptions;
using rocksdb::FSDirectory;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

/* NotSupported (a RangeSync the file system lacks, say) is no failure of
 * the disk; every other error of a write-side call is. */
IOStatus StopIfFailed(const IOStatus &s, const char *what, const std::string &file)
{
    if (s.ok() || s.IsNotSupported()) {
        return s;
    }
    HD_LOG_ERROR("state: %s of %s failed: %s: stopping (exit %d): RocksDB cannot go on "
                 "past a failed file write; herald's WAL holds every entry applied since "
                 "the last flush, and a restart applies them again",
                 what, file.c_str(), s.ToString().c_str(), HD_EXIT_APPLY_FAILED);
    _exit(HD_EXIT_APPLY_FAILED);
}

class StopOnErrorFile : public rocksdb::FSWritableFileOwnerWrapper {
  public:
    StopOnErrorFile(std::unique_ptr<FSWritableFile> &&file, std::string name)
        : FSWritableFileOwnerWrapper(std::move(file)), name_(std::move(name))
    {
    }

    IOStatus Append(const Slice &data, const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Append(data, o, dbg), "a write", name_);
    }
    IOStatus Append(const Slice &data, const IOOptions &o, const DataVerificationInfo &v,
                    IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Append(data, o, v, dbg), "a write", name_);
    }
    IOStatus PositionedAppend(const Slice &data, uint64_t offset, const IOOptions &o,
                              IODebugContext *dbg) override
    {
        return StopIfFailed(target()->PositionedAppend(data, offset, o, dbg), "a write",
                            name_);
    }
    IOStatus PositionedAppend(const Slice &data, uint64_t offset, const IOOptions &o,
                              const DataVerificationInfo &v, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->PositionedAppend(data, offset, o, v, dbg), "a write",
                            name_);
    }
    IOStatus Truncate(uint64_t size, const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Truncate(size, o, dbg), "a truncate", name_);
    }
    IOStatus Close(const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Close(o, dbg), "the close", name_);
    }
    IOStatus Flush(const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Flush(o, dbg), "a write", name_);
    }
    IOStatus Sync(const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Sync(o, dbg), "a sync", name_);
    }
    IOStatus Fsync(const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(target()->Fsync(o, dbg), "a sync", name_);
    }
    IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions &o,
                       IODebugContext *dbg) override
    {
        return StopIfFailed(target()->RangeSync(offset, nbytes, o, dbg), "a sync", name_);
    }

  private:
    std::string name_;
};

class StopOnErrorDirectory : public rocksdb::FSDirectoryWrapper {
  public:
    StopOnErrorDirectory(std::unique_ptr<FSDirectory> &&dir, std::string name)
        : FSDirectoryWrapper(std::move(dir)), name_(std::move(name))
    {
    }

    IOStatus Fsync(const IOOptions &o, IODebugContext *dbg) override
    {
        return StopIfFailed(FSDirectoryWrapper::Fsync(o, dbg), "a sync", name_);
    }
    IOStatus FsyncWithDirOptions(const IOOptions &o, IODebugContext *dbg,
                                 const rocksdb::DirFsyncOptions &d) override
    {
        return StopIfFailed(FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d), "a sync", name_);
    }

  private:
    std::string name_;
};

class StopOnWriteErrorFs : public rocksdb::FileSystemWrapper {
  public:
    explicit StopOnWriteErrorFs(std::string dir)
        : FileSystemWrapper(rocksdb::FileSystem::Default())
    {
        while (dir.size() > 1 && dir.back() == '/') {
            dir.pop_back(); /* RocksDB names its files dir + "/" + name */
        }
        prefix_ = dir + "/";
    }

    const char *Name() const override { return "HeraldStopOnWriteError"; }

    IOStatus NewWritableFile(const std::string &f, const FileOptions &o,
                             std::unique_ptr<FSWritableFile> *r,
                             IODebugContext *dbg) override
    {
        return Wrap(target()->NewWritableFile(f, o, r, dbg), f, r);
    }
    IOStatus ReopenWritableFile(const std::string &f, const FileOptions &o,
                                std::unique_ptr<FSWritableFile> *r,
                                IODebugContext *dbg) override
    {
        return Wrap(target()->ReopenWritableFile(f, o, r, dbg), f, r);
    }
    IOStatus ReuseWritableFile(const std::string &f, const std::string &old,
                               const FileOptions &o, std::unique_ptr<FSWritableFile> *r,
                               IODebugContext *dbg) override
    {
        return Wrap(target()->ReuseWritableFile(f, old, o, r, dbg), f, r);
    }
    IOStatus NewDirectory(const std::string &name, const IOOptions &o,
                          std::unique_ptr<FSDirectory> *r, IODebugContext *dbg) override
    {
        IOStatus s = target()->NewDirectory(name, o, r, dbg);
        if (s.ok() && Ours(name + "/")) {
            r->reset(new StopOnErrorDirectory(std::move(*r), name));
        }
        return s;
    }

  private:
    bool Ours(const std::string &f) const { return f.compare(0, prefix_.size(), prefix_) == 0; }

    IOStatus Wrap(IOStatus s, const std::string &f, std::unique_ptr<FSWritableFile> *r)
    {
        if (s.ok() && Ours(f)) {
            r->reset(new StopOnErrorFile(std::move(*r), f));
        }
        return s;
    }

    std::string prefix_;
};

class LogToHerald : public rocksdb::Logger {
  public:
    LogToHerald() : Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

    /* The old entry point, without a level: RocksDB means INFO by it. */
    void Logv(const char *format, va_list ap) override
    {
        Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
    }

    void Logv(const rocksdb::InfoLogLevel level, const char *format, va_list ap) override
    {
        /* HEADER_LEVEL is the options dump at open: not for the node's log. */
        if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) {
            return;
        }
        char line[1024];
        /* The format is RocksDB's own, which the override cannot declare. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vsnprintf(line, sizeof line, format, ap);
#pragma GCC diagnostic pop
        hd_log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? 0 : 1, "rocksdb: %s", line);
    }
};

} // namespace

std::shared_ptr<rocksdb::FileSystem> NewStopOnWriteErrorFs(const std::string &dir)
{
    return std::make_shared<StopOnWriteErrorFs>(dir);
}

std::shared_ptr<rocksdb::Logger> NewLogToHerald() { return std::make_shared<LogToHerald>(); }

} // namespace herald
