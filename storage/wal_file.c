/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking file operations of the WAL; they run on worker threads, or at replay. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_fault.h"
#include "hd_util.h"
#include "wal_internal.h"

#define ST__WAL_ZERO_CHUNK (1024u * 1024u) /* bytes per zero-fill write */

/* Nothing here touches struct st_wal: these functions run on libuv worker
 * threads while the loop owns the WAL, so they get plain values in and
 * return an HD_E* code. Each logs the failing call with its errno. */

void st__wal_name(char *buf, uint64_t index, bool prepared)
{
    HD_ASSERT(buf != NULL);
    int n = snprintf(buf, ST__WAL_NAME_MAX, "wal-%016" PRIx64 ".%s", index,
                     prepared ? "prep" : "seg");
    HD_ASSERT(n > 0 && n < ST__WAL_NAME_MAX);
}

int (*st__wal_io_hook)(enum st__wal_io_site site);

bool st__wal_io_fails(enum st__wal_io_site site)
{
    int err = st__wal_io_hook != NULL ? st__wal_io_hook(site) : 0;
    if (err != 0) {
        errno = err;
        return true;
    }
    return false;
}

static int st__wal_errno(const char *what, const char *name)
{
    int err = errno;
    HD_LOG_ERROR("wal: %s %s: %s", what, name, strerror(err));
    return hd_from_errno(err);
}

int st__wal_open_file(int dirfd, const char *name, int flags)
{
    HD_ASSERT(dirfd >= 0);
    /* O_DIRECT keeps group commits out of the page cache and lets
     * RWF_DSYNC finish with one device flush. A file system without it
     * (old tmpfs) still gets durable writes from RWF_DSYNC/fdatasync. */
    int direct = HD_FAULT_ACK_BEFORE_FSYNC ? 0 : O_DIRECT;
    int fd = openat(dirfd, name, flags | O_CLOEXEC | direct, 0644);
    if (fd < 0 && errno == EINVAL) {
        HD_LOG_WARN("wal: %s: O_DIRECT not supported, using buffered I/O", name);
        fd = openat(dirfd, name, flags | O_CLOEXEC, 0644);
    }
    return fd;
}

int st__wal_fsync_dir(int dirfd)
{
    HD_ASSERT(dirfd >= 0);
    if (st__wal_io_fails(ST__WAL_IO_FSYNC_DIR) || fsync(dirfd) != 0) {
        return st__wal_errno("fsync", "directory");
    }
    return 0;
}

/* Writes all of [off, off+len) from buf, retrying short writes. */
static int st__wal_pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
    HD_ASSERT(fd >= 0);
    while (len > 0) {
        ssize_t n = st__wal_io_fails(ST__WAL_IO_PWRITE) ? -1 : pwrite(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return st__wal_errno("pwrite", "segment");
        }
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int st__wal_zero(int fd, uint64_t from, uint64_t to)
{
    HD_ASSERT(from % ST_WAL_BLOCK == 0 && to % ST_WAL_BLOCK == 0);
    HD_ASSERT(from <= to);
    void *zeros = NULL;
    /* posix_memalign, not hd_malloc: O_DIRECT needs aligned memory and the
     * allocator hook has no aligned variant. */
    if (posix_memalign(&zeros, ST_WAL_BLOCK, ST__WAL_ZERO_CHUNK) != 0) {
        return HD_ENOMEM;
    }
    memset(zeros, 0, ST__WAL_ZERO_CHUNK);
    int rv = 0;
    while (from < to && rv == 0) {
        uint64_t n = to - from < ST__WAL_ZERO_CHUNK ? to - from : ST__WAL_ZERO_CHUNK;
        rv = st__wal_pwrite_all(fd, zeros, (size_t)n, from);
        from += n;
    }
    free(zeros);
    return rv;
}

int st__wal_prepare(int dirfd, uint64_t index, uint64_t size, int *fd_out)
{
    HD_ASSERT(size % ST_WAL_BLOCK == 0 && size > ST_WAL_BLOCK);
    HD_ASSERT(fd_out != NULL);
    char name[ST__WAL_NAME_MAX];
    st__wal_name(name, index, true);
    int rv;
    int fd = st__wal_io_fails(ST__WAL_IO_CREATE)
                 ? -1
                 : st__wal_open_file(dirfd, name, O_RDWR | O_CREAT | O_TRUNC);
    if (fd < 0) {
        return st__wal_errno("create", name);
    }
    /* fallocate first so that running out of space shows up here, not in
     * the middle of a group commit; then write real zeros, because a
     * write into an unwritten extent makes O_DIRECT+DSYNC update extent
     * metadata (a journal commit) on every group commit. */
    if ((st__wal_io_fails(ST__WAL_IO_FALLOCATE) || fallocate(fd, 0, 0, (off_t)size) != 0) &&
        errno != EOPNOTSUPP) {
        rv = st__wal_errno("fallocate", name);
        goto err_after_open;
    }
    rv = st__wal_zero(fd, 0, size);
    if (rv != 0) {
        goto err_after_open;
    }
    if (st__wal_io_fails(ST__WAL_IO_FDATASYNC) || fdatasync(fd) != 0) {
        rv = st__wal_errno("fdatasync", name);
        goto err_after_open;
    }
    *fd_out = fd;
    return 0;

err_after_open:
    close(fd);
    unlinkat(dirfd, name, 0);
    HD_ASSERT(rv != 0);
    return rv;
}

int st__wal_activate(int dirfd, int fd, const struct st__wal_seg_hdr *hdr,
                     uint8_t *block)
{
    HD_ASSERT(fd >= 0);
    HD_ASSERT(((uintptr_t)block % ST_WAL_BLOCK) == 0);
    char prep[ST__WAL_NAME_MAX];
    char seg[ST__WAL_NAME_MAX];
    st__wal_name(prep, hdr->index, true);
    st__wal_name(seg, hdr->index, false);
    /* Rule 2 (wal.c): the header is durable before the file gets its
     * final name, and the name is durable before any record is written. */
    st__wal_encode_seg_hdr(block, hdr);
    int rv = st__wal_pwrite_all(fd, block, ST_WAL_BLOCK, 0);
    if (rv != 0) {
        return rv;
    }
    if (st__wal_io_fails(ST__WAL_IO_FDATASYNC) || fdatasync(fd) != 0) {
        return st__wal_errno("fdatasync", prep);
    }
    if (st__wal_io_fails(ST__WAL_IO_RENAME) || renameat(dirfd, prep, dirfd, seg) != 0) {
        return st__wal_errno("rename", prep);
    }
    return st__wal_fsync_dir(dirfd);
}

int st__wal_pwrite_sync(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
    HD_ASSERT(len % ST_WAL_BLOCK == 0 && off % ST_WAL_BLOCK == 0);
    HD_ASSERT(len > 0);
    int rv = st__wal_pwrite_all(fd, buf, len, off);
    if (rv != 0) {
        return rv;
    }
    if (!HD_FAULT_ACK_BEFORE_FSYNC &&
        (st__wal_io_fails(ST__WAL_IO_FDATASYNC) || fdatasync(fd) != 0)) {
        return st__wal_errno("fdatasync", "segment");
    }
    return 0;
}

int st__wal_remove(int dirfd, uint64_t index)
{
    HD_ASSERT(dirfd >= 0);
    HD_ASSERT(index > 0);
    char name[ST__WAL_NAME_MAX];
    st__wal_name(name, index, false);
    if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) {
        return st__wal_errno("unlink", name);
    }
    /* Rule 5: one directory fsync per deletion keeps the surviving
     * segments a contiguous run even if the crash reorders unlinks. */
    return st__wal_fsync_dir(dirfd);
}

uint32_t st__wal_random_salt(void)
{
    uint32_t salt = 0;
    if (getrandom(&salt, sizeof salt, GRND_NONBLOCK) != (ssize_t)sizeof salt) {
        /* Early boot without entropy: the clock still differs per segment,
         * which is all the salt must do. */
        salt = (uint32_t)(hd_now_us() ^ (hd_mono_us() << 20));
    }
    return salt;
}
