/* SPDX-License-Identifier: Apache-2.0 */
/* Disk use of the data directory for GET /v1/status: bytes under wal/,
 * snapshots/ and state/, and the file system's free and total space. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "api.h"

/* Sum of the sizes of regular files under the directory fd (closed here).
 * Depth is bounded: the data directory is shallow, and a loop of bind
 * mounts must not hang the status route. */
static uint64_t api__dir_bytes(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return 0;
    }
    uint64_t sum = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (S_ISREG(st.st_mode)) {
            sum += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode) && depth < 8) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub >= 0) sum += api__dir_bytes(sub, depth + 1);
        }
    }
    closedir(d);
    return sum;
}

static uint64_t api__subdir_bytes(const char *data_dir, const char *name)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, name);
    if (n < 0 || (size_t)n >= sizeof path) return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd >= 0 ? api__dir_bytes(fd, 0) : 0;
}

json_t *api_status_disk(const char *data_dir)
{
    if (data_dir == NULL) return json_null();
    uint64_t wal = api__subdir_bytes(data_dir, "wal");
    uint64_t snapshots = api__subdir_bytes(data_dir, "snapshots");
    uint64_t state = api__subdir_bytes(data_dir, "state");
    json_t *disk = json_pack("{s:s, s:I, s:I, s:I}", "data_dir", data_dir, "wal_bytes",
                             (json_int_t)wal, "snapshot_bytes", (json_int_t)snapshots,
                             "state_bytes", (json_int_t)state);
    struct statvfs vfs;
    if (disk != NULL && statvfs(data_dir, &vfs) == 0) {
        json_object_set_new(disk, "fs_free_bytes",
                            json_integer((json_int_t)((uint64_t)vfs.f_bavail * vfs.f_frsize)));
        json_object_set_new(disk, "fs_total_bytes",
                            json_integer((json_int_t)((uint64_t)vfs.f_blocks * vfs.f_frsize)));
    }
    return disk;
}
