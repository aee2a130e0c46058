/* SPDX-License-Identifier: Apache-2.0 */
/* Two-slot atomic metadata file (see meta_file.h for the durability rules). */
#include "meta_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

#define ST_META_MAGIC 0x4154454d44524548ull /* "HERDMETA" */
#define ST_META_VERSION 1u
#define ST_META_HEADER_SIZE 32u /* magic 8, version 4, len 4, gen 8, crc 4, pad 4 */

int st_meta_file_init(struct st_meta_file *m, const char *dir, const char *name)
{
    HD_ASSERT(m != NULL && dir != NULL && name != NULL);
    HD_ASSERT(strlen(name) < sizeof m->name);
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m->dir_fd < 0) {
        return hd_from_errno(errno);
    }
    return 0;
}

void st_meta_file_close(struct st_meta_file *m)
{
    if (m->dir_fd >= 0) {
        close(m->dir_fd);
        m->dir_fd = -1;
    }
}

/* Reads slot `slot` (1 or 2). Returns 0 and the generation if valid,
 * HD_ENOTFOUND if missing, HD_ECORRUPT if present but invalid. */
static int st__meta_read_slot(struct st_meta_file *m, int slot, uint8_t *buf,
                              size_t cap, size_t *len, uint64_t *gen)
{
    char path[80];
    snprintf(path, sizeof path, "%s.%d", m->name, slot);
    int fd = openat(m->dir_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? HD_ENOTFOUND : hd_from_errno(errno);
    }
    uint8_t header[ST_META_HEADER_SIZE];
    ssize_t n = pread(fd, header, sizeof header, 0);
    int rv = HD_ECORRUPT;
    if (n != (ssize_t)sizeof header || hd_get_u64(header) != ST_META_MAGIC ||
        hd_get_u32(header + 8) != ST_META_VERSION) {
        goto out;
    }
    uint32_t blob_len = hd_get_u32(header + 12);
    if (blob_len > ST_META_BLOB_MAX) {
        goto out;
    }
    if (blob_len > cap) {
        rv = HD_ETOOBIG;
        goto out;
    }
    n = pread(fd, buf, blob_len, ST_META_HEADER_SIZE);
    if (n != (ssize_t)blob_len) {
        goto out;
    }
    uint32_t crc = hd_crc32c(0, header, 24);
    crc = hd_crc32c(crc, buf, blob_len);
    if (crc != hd_get_u32(header + 24)) {
        goto out;
    }
    *len = blob_len;
    *gen = hd_get_u64(header + 16);
    rv = 0;
out:
    close(fd);
    return rv;
}

int st_meta_file_load(struct st_meta_file *m, void *buf, size_t cap, size_t *len)
{
    HD_ASSERT(m->dir_fd >= 0);
    uint8_t *tmp = hd_malloc(cap > 0 ? cap : 1);
    if (tmp == NULL) {
        return HD_ENOMEM;
    }
    size_t len1 = 0, len2 = 0;
    uint64_t gen1 = 0, gen2 = 0;
    int rv1 = st__meta_read_slot(m, 1, buf, cap, &len1, &gen1);
    int rv2 = st__meta_read_slot(m, 2, tmp, cap, &len2, &gen2);
    int rv = 0;
    if (rv1 == 0 && (rv2 != 0 || gen1 >= gen2)) {
        *len = len1;
        m->generation = gen1;
    } else if (rv2 == 0) {
        memcpy(buf, tmp, len2);
        *len = len2;
        m->generation = gen2;
    } else if (rv1 == HD_ENOTFOUND && rv2 == HD_ENOTFOUND) {
        rv = HD_ENOTFOUND;
    } else if (rv1 == HD_ETOOBIG || rv2 == HD_ETOOBIG) {
        rv = HD_ETOOBIG;
    } else if (rv1 == HD_ENOTFOUND || rv2 == HD_ENOTFOUND) {
        /* One slot missing, the other torn: the very first store was cut. */
        rv = HD_ENOTFOUND;
    } else {
        rv = HD_ECORRUPT;
    }
    hd_free(tmp);
    return rv;
}

int st_meta_file_store(struct st_meta_file *m, const void *blob, size_t len)
{
    HD_ASSERT(m->dir_fd >= 0);
    HD_ASSERT(len <= ST_META_BLOB_MAX);
    uint64_t gen = m->generation + 1;
    int slot = (gen % 2 == 1) ? 1 : 2; /* never the slot holding `generation` */
    uint8_t header[ST_META_HEADER_SIZE] = {0};
    hd_put_u64(header, ST_META_MAGIC);
    hd_put_u32(header + 8, ST_META_VERSION);
    hd_put_u32(header + 12, (uint32_t)len);
    hd_put_u64(header + 16, gen);
    uint32_t crc = hd_crc32c(0, header, 24);
    hd_put_u32(header + 24, hd_crc32c(crc, blob, len));

    char path[80];
    snprintf(path, sizeof path, "%s.%d", m->name, slot);
    bool created = faccessat(m->dir_fd, path, F_OK, 0) != 0;
    int fd = openat(m->dir_fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return hd_from_errno(errno);
    }
    int rv = 0;
    struct iovec iov[2] = {{header, sizeof header}, {(void *)(uintptr_t)blob, len}};
    ssize_t n = pwritev(fd, iov, 2, 0);
    if (n != (ssize_t)(sizeof header + len)) {
        rv = n < 0 ? hd_from_errno(errno) : HD_EIO;
    } else if (fdatasync(fd) != 0) {
        rv = hd_from_errno(errno);
    }
    close(fd);
    if (rv == 0 && created && fsync(m->dir_fd) != 0) {
        rv = hd_from_errno(errno);
    }
    if (rv == 0) {
        m->generation = gen;
    }
    return rv;
}

int st_meta_file_remove(struct st_meta_file *m)
{
    HD_ASSERT(m->dir_fd >= 0);
    for (int slot = 1; slot <= 2; slot++) {
        char path[80];
        snprintf(path, sizeof path, "%s.%d", m->name, slot);
        if (unlinkat(m->dir_fd, path, 0) != 0 && errno != ENOENT) {
            return hd_from_errno(errno);
        }
    }
    m->generation = 0;
    return fsync(m->dir_fd) == 0 ? 0 : hd_from_errno(errno);
}
