/* SPDX-License-Identifier: Apache-2.0 */
/* Small files replaced durably: the one way herald writes its identity,
 * repair record and marker, member list, and a backup's manifest; and read
 * back. */
#ifndef HD_FILE_H
#define HD_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Replaces dir/name with len bytes of data so that a crash leaves either
 * the old file or the new one, whole: a temp file beside it (name.tmp),
 * fsync, rename, fsync of dir. Plain system calls only, so it is safe on
 * the way to _exit() from any thread. Returns 0 or an HD_E* code. */
int hd_file_replace(const char *dir, const char *name, const void *data, size_t len,
                    mode_t mode);

/* Reads dir/name, a small file, with one read of at most cap bytes into
 * buf; *len gets the bytes read. HD_ENOTFOUND if there is no such file.
 * Plain system calls only, like hd_file_replace. Returns 0 or an HD_E*
 * code. */
int hd_file_read(const char *dir, const char *name, void *buf, size_t cap, size_t *len);

/* fsync of a directory, so that names created, renamed or removed in it
 * last. Returns 0 or an HD_E* code. */
int hd_fsync_dir(const char *dir);

#endif
