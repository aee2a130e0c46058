/* SPDX-License-Identifier: Apache-2.0 */
/* Durable small-file replacement (hd_file.h). */
#include "hd_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "hd_error.h"

int hd_file_read(const char *dir, const char *name, void *buf, size_t cap, size_t *len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? HD_ENOTFOUND : hd_from_errno(errno);
    }
    ssize_t got = read(fd, buf, cap);
    int err = errno;
    close(fd);
    if (got < 0) {
        return hd_from_errno(err);
    }
    *len = (size_t)got;
    return 0;
}

int hd_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return hd_from_errno(errno);
    }
    int rv = fsync(fd) == 0 ? 0 : hd_from_errno(errno);
    close(fd);
    return rv;
}

int hd_file_replace(const char *dir, const char *name, const void *data, size_t len,
                    mode_t mode)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        return HD_EINVAL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return hd_from_errno(errno);
    }
    ssize_t wrote = write(fd, data, len);
    int rv = 0;
    if (wrote != (ssize_t)len) {
        rv = hd_from_errno(wrote < 0 ? errno : EIO); /* a short write: the disk is full */
    } else if (fsync(fd) != 0) {
        rv = hd_from_errno(errno);
    }
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = hd_from_errno(errno);
    }
    return rv == 0 ? hd_fsync_dir(dir) : rv;
}
