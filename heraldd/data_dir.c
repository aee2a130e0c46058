/* SPDX-License-Identifier: Apache-2.0 */
/* The data directory's lock and identity file (see data_dir.h). */
#include "data_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_file.h"
#include "hd_util.h"

int api_data_lock(const char *dir, int *lock_fd, char *errmsg, size_t errmsg_len)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errmsg_len, "create data directory %s: %s", dir, strerror(errno));
        return hd_from_errno(errno);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(errmsg, errmsg_len, "open %s: %s", path, strerror(errno));
        return hd_from_errno(errno);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        snprintf(errmsg, errmsg_len, "%s is locked: another heraldd is using %s", path, dir);
        return err == EWOULDBLOCK ? HD_ELOCKED : hd_from_errno(err);
    }
    *lock_fd = fd;
    return 0;
}

static int api__identity_text(const struct api_identity *id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "format %d\nnode_id %" PRIu64 "\ncluster_id %s\nshards %u\n",
                     API_DATA_FORMAT, id->node_id, id->cluster_id, id->shards);
    uint32_t crc = hd_crc32c(0, buf, (size_t)n);
    n += snprintf(buf + n, cap - (size_t)n, "crc32c %08x\n", crc);
    return n;
}

static int api__identity_parse(const char *text, size_t len, struct api_identity *id)
{
    const char *crc_at = strstr(text, "crc32c ");
    unsigned crc = 0;
    int format = 0;
    if (crc_at == NULL || sscanf(crc_at, "crc32c %8x", &crc) != 1 ||
        hd_crc32c(0, text, (size_t)(crc_at - text)) != crc || len > 1024) {
        return HD_ECORRUPT;
    }
    if (sscanf(text, "format %d\nnode_id %" SCNu64 "\ncluster_id %32s\nshards %u\n", &format,
               &id->node_id, id->cluster_id, &id->shards) != 4 ||
        format != API_DATA_FORMAT || id->node_id == 0 || id->shards == 0) {
        return HD_ECORRUPT;
    }
    return 0;
}

/* Writes the file atomically: temp file, fsync, rename, fsync directory. */
static int api__identity_write(const char *dir, const struct api_identity *id)
{
    char text[512];
    int n = api__identity_text(id, text, sizeof text);
    return hd_file_replace(dir, "herald.id", text, (size_t)n, 0644);
}

/* --bootstrap on a directory that has data: the same command line serves
 * the first start and every later one (a unit file), so data of this very
 * node of this very cluster (the id derives from the member list) is
 * started as it is; anything else is refused, naming what the data is. */
static int api__identity_rebootstrap(const char *dir, const struct api_identity *want,
                                     const struct api_identity *have, char *errmsg,
                                     size_t errmsg_len)
{
    if (strcmp(want->cluster_id, have->cluster_id) != 0 || want->node_id != have->node_id) {
        snprintf(errmsg, errmsg_len,
                 "%s holds node %llu of cluster %s, but --bootstrap with --id %llu describes "
                 "cluster %s: another member list (start without --bootstrap to run the "
                 "data that is there)",
                 dir, (unsigned long long)have->node_id, have->cluster_id,
                 (unsigned long long)want->node_id, want->cluster_id);
        return HD_EEXIST;
    }
    HD_LOG_INFO("%s already holds node %llu of cluster %s, the cluster --bootstrap describes: "
                "starting it (nothing is bootstrapped again)",
                dir, (unsigned long long)have->node_id, have->cluster_id);
    return 0;
}

int api_data_identity_read(const char *dir, struct api_identity *out)
{
    char path[4096], text[1025];
    snprintf(path, sizeof path, "%s/herald.id", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return errno == ENOENT ? HD_ENOTFOUND : hd_from_errno(errno);
    }
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    memset(out, 0, sizeof *out);
    return api__identity_parse(text, len, out);
}

int api_data_identity(const char *dir, const struct api_identity *want,
                      struct api_identity *out, char *errmsg, size_t errmsg_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/herald.id", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL && errno == ENOENT) {
        *out = *want;
        if (out->shards == 0) {
            out->shards = API_DEFAULT_SHARDS;
        }
        uint8_t raw[16];
        bool generate = out->cluster_id[0] == '\0'; /* none derived from members */
        if (generate && getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            snprintf(errmsg, errmsg_len, "getrandom: %s", strerror(errno));
            return HD_EIO;
        }
        for (int i = 0; generate && i < 14; i++) {
            snprintf(out->cluster_id + 2 * i, 3, "%02x", raw[i]);
        }
        if (generate) { /* the shard count, as in members.c */
            snprintf(out->cluster_id + 28, 5, "%04x", out->shards & 0xffffu);
        }
        int rv = api__identity_write(dir, out);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "write %s: %s", path, hd_strerror(rv));
        }
        return rv;
    }
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "open %s: %s", path, strerror(errno));
        return hd_from_errno(errno);
    }
    char text[1025];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    if (api__identity_parse(text, len, out) != 0) {
        snprintf(errmsg, errmsg_len, "%s is damaged or of an unknown format; refusing to start",
                 path);
        return HD_ECORRUPT;
    }
    if (want->bootstrap) {
        return api__identity_rebootstrap(dir, want, out, errmsg, errmsg_len);
    }
    if (want->cluster_id[0] != '\0' && strcmp(want->cluster_id, out->cluster_id) != 0) {
        snprintf(errmsg, errmsg_len, "%s belongs to cluster %s, not %s", dir, out->cluster_id,
                 want->cluster_id);
        return HD_EINVAL;
    }
    if (want->shards != 0 && want->shards != out->shards) {
        snprintf(errmsg, errmsg_len,
                 "%s was created with %u shards; --shards %u cannot change that", path,
                 out->shards, want->shards);
        return HD_EINVAL;
    }
    return 0;
}
