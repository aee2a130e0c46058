/* SPDX-License-Identifier: Apache-2.0 */
/* C++ only: the file system and the logger storage/rocks.cc gives RocksDB. */
#ifndef ST_ROCKS_FS_H
#define ST_ROCKS_FS_H

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <memory>
#include <string>

namespace herald {

/*
 * Why herald does not leave RocksDB to handle a failed file write itself:
 * Debian builds RocksDB with its assertions on, and RocksDB 7.8 asserts
 * (SIGABRT) when a file whose write already failed is written, synced or
 * closed again. Its own info LOG did exactly that after one EIO on a table
 * during a background flush (jepsen `disk-eio:state`). So the state
 * directory's file system stops the process at the first failed write,
 * sync or close of one of its files, before the error returns into
 * RocksDB: logged, exit HD_EXIT_APPLY_FAILED (5), which a supervisor
 * restarts. Nothing is lost: RocksDB's own WAL is off, only flushes are
 * durable, and herald's WAL keeps every entry applied since the last
 * flush that succeeded (snapshots, and so WAL truncation, wait for one).
 *
 * Files outside `dir` (a checkpoint's copies in a backup directory) keep
 * RocksDB's normal error handling: a failed backup says nothing about the
 * node's own state.
 */
std::shared_ptr<rocksdb::FileSystem> NewStopOnWriteErrorFs(const std::string &dir);

/* RocksDB's info log, at WARN and above, as lines of herald's own log
 * ("rocksdb: ..."), instead of a LOG file in the state directory: one
 * writer less on the data disk, and RocksDB's warnings where the
 * operator reads herald's. */
std::shared_ptr<rocksdb::Logger> NewLogToHerald();

} // namespace herald

#endif
