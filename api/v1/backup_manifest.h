/* SPDX-License-Identifier: Apache-2.0 */
/* backup.json: what a backup holds and where it came from (docs/disk-format.md). */
#ifndef API_V1_BACKUP_MANIFEST_H
#define API_V1_BACKUP_MANIFEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BACKUP_MANIFEST_NAME "backup.json"
#define BACKUP_FORMAT 1u

/*
 * {"format":1, "backup_id":"<32 hex>", "cluster_id":"<32 hex>",
 *  "node_id":N, "shards":S, "created_ms":T, "version":"..."}
 * beside state/ (a RocksDB checkpoint). backup_id names this backup: a
 * cluster restored from it has a cluster id of its own, made from its
 * members and this id (heraldd/restore.c).
 */
struct backup_manifest {
    unsigned format;
    char backup_id[33];
    char cluster_id[33];
    uint64_t node_id;
    unsigned shards;
    uint64_t created_ms;
    char version[32];
};

json_t *backup_manifest_json(const struct backup_manifest *m);
/* malloc'ed text (one JSON object and a newline), or NULL. */
char *backup_manifest_text(const struct backup_manifest *m);
/* 0, or HD_EINVAL with errmsg saying which field is wrong. */
int backup_manifest_parse(const char *text, size_t len, struct backup_manifest *m,
                          char *errmsg, size_t errmsg_len);

#endif
