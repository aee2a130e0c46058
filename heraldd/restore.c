/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd --restore: a new cluster from a backup. */
#include "restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup_manifest.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_file.h"
#include "hd_util.h"
#include "log.h"

/*
 * The backup's state is copied as it is; what makes it a new cluster is
 * Raft's side. Every shard starts from a snapshot at index 1 that names
 * this state (consensus/node/shard.c, opts.restore), never from a first
 * entry: a member without the state (started with --join) is sent that
 * snapshot and copies the state, as a replica behind a compacted log does.
 * The new cluster id mixes in the backup's id, so a node bootstrapped
 * without --restore from the same member list is another cluster and is
 * refused at the peer handshake instead of replaying a log that never held
 * the restored messages.
 */

int api_restore_plan(const char *backup_dir, const struct api_members *members,
                     uint64_t node_id, struct api_identity *want, char *errmsg,
                     size_t errmsg_len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" BACKUP_MANIFEST_NAME, backup_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "--restore: open %s: %s", path, strerror(errno));
        return HD_EINVAL;
    }
    char text[4096];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    struct backup_manifest m;
    char why[256];
    if (len == sizeof text || backup_manifest_parse(text, len, &m, why, sizeof why) != 0) {
        snprintf(errmsg, errmsg_len, "--restore: %s: %s", path,
                 len == sizeof text ? "too long" : why);
        return HD_EINVAL;
    }
    if (want->shards != 0 && want->shards != m.shards) {
        snprintf(errmsg, errmsg_len, "--restore: the backup has %u shards, not --shards %u",
                 m.shards, want->shards);
        return HD_EINVAL;
    }
    want->shards = m.shards;
    /* Alone (no --bootstrap), the node's id stands in for the member list. */
    char salt[64];
    snprintf(salt, sizeof salt, "%s/%llu", m.backup_id,
             members->n == 0 ? (unsigned long long)node_id : 0ull);
    api_members_cluster_id(members, m.shards, salt, want->cluster_id);
    /* A later start with the same command line finds its own data. */
    want->bootstrap = true;
    HD_LOG_INFO("--restore: backup %s of cluster %s (node %llu, %u shards), taken at %llu ms; "
                "the new cluster is %s", m.backup_id, m.cluster_id,
                (unsigned long long)m.node_id, m.shards, (unsigned long long)m.created_ms,
                want->cluster_id);
    return 0;
}

/* Hard link, or a copy where links cannot go (another file system). */
static int api__place_file(const char *from, const char *to)
{
    if (link(from, to) == 0) {
        return 0;
    }
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
        return hd_from_errno(errno);
    }
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in >= 0 ? open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640) : -1;
    int rv = in < 0 || out < 0 ? hd_from_errno(errno) : 0;
    char buf[1 << 16];
    for (ssize_t n; rv == 0 && (n = read(in, buf, sizeof buf)) != 0;) {
        if (n < 0 || write(out, buf, (size_t)n) != n) {
            rv = hd_from_errno(n < 0 ? errno : EIO);
        }
    }
    if (rv == 0 && fsync(out) != 0) {
        rv = hd_from_errno(errno);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    return rv;
}

static int api__place_state(const char *from_dir, const char *to_dir, char *errmsg,
                            size_t errmsg_len)
{
    DIR *d = opendir(from_dir);
    if (d == NULL) {
        snprintf(errmsg, errmsg_len, "--restore: open %s: %s", from_dir, strerror(errno));
        return HD_EINVAL;
    }
    if (mkdir(to_dir, 0750) != 0) {
        snprintf(errmsg, errmsg_len, "--restore: make %s: %s", to_dir, strerror(errno));
        closedir(d);
        return hd_from_errno(errno);
    }
    int rv = 0;
    unsigned files = 0;
    for (struct dirent *e; rv == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char from[PATH_MAX + 256], to[PATH_MAX + 256];
        snprintf(from, sizeof from, "%s/%s", from_dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", to_dir, e->d_name);
        rv = api__place_file(from, to);
        if (rv != 0) {
            snprintf(errmsg, errmsg_len, "--restore: %s to %s: %s", from, to, hd_strerror(rv));
        }
        files++;
    }
    closedir(d);
    if (rv == 0) {
        rv = hd_fsync_dir(to_dir);
    }
    if (rv == 0) {
        HD_LOG_INFO("--restore: %u files of %s placed in %s", files, from_dir, to_dir);
    }
    return rv;
}

int api_restore_state(const char *data_dir, const char *backup_dir, unsigned shards,
                      char *errmsg, size_t errmsg_len)
{
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof from, "%s/state", backup_dir);
    snprintf(to, sizeof to, "%s/state", data_dir);
    struct stat st;
    if (stat(to, &st) == 0) {
        snprintf(errmsg, errmsg_len, "--restore: %s already holds a state; restore into an "
                 "empty data directory", data_dir);
        return HD_EEXIST;
    }
    int rv = api__place_state(from, to, errmsg, errmsg_len);
    if (rv != 0) {
        return rv;
    }
    struct log_store *ls = NULL;
    struct log_options lo = {.dir = to, .n_shards = shards, .dedup_window_us = 1};
    rv = log_store_open(&ls, &lo, errmsg, errmsg_len);
    for (unsigned i = 0; rv == 0 && i < shards; i++) {
        rv = log_state_rebase(ls, (uint16_t)i, 1);
    }
    if (rv == 0) {
        rv = log_flush(ls);
    }
    if (ls != NULL) {
        log_store_close(ls);
    }
    if (rv != 0 && errmsg[0] == '\0') {
        snprintf(errmsg, errmsg_len, "--restore: start the state's shards anew: %s",
                 hd_strerror(rv));
    }
    return rv;
}
