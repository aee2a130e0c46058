/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd --restore: a new cluster from a backup (api/v1/backup.c). */
#ifndef HERALDD_RESTORE_H
#define HERALDD_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "data_dir.h"
#include "members.h"

/* Reads BACKUP_DIR/backup.json and fills want for the new cluster: the
 * backup's shard count, and a cluster id of its own, from the members (or
 * this node alone) and the backup's id. */
int api_restore_plan(const char *backup_dir, const struct api_members *members,
                     uint64_t node_id, struct api_identity *want, char *errmsg,
                     size_t errmsg_len);

/* Puts the backup's state into data_dir/state (hard links, or copies
 * across file systems) and starts each shard's applied index at 1, the
 * index of the snapshot the new cluster's Raft logs begin with. data_dir
 * must hold no node yet. */
int api_restore_state(const char *data_dir, const char *backup_dir, unsigned shards,
                      char *errmsg, size_t errmsg_len);

#endif
