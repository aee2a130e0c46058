/* SPDX-License-Identifier: Apache-2.0 */
/* The data directory: its lock and its identity file. */
#ifndef API_DATA_DIR_H
#define API_DATA_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * DATA/LOCK      flock()ed for the life of the process: one node per directory.
 * DATA/herald.id text, written once when the node is created:
 *                  format 1 / node_id N / cluster_id HEX / shards N / crc32c HEX
 *                A start with another shard count, or a file that does not
 *                check out, is refused: the data belongs to another cluster
 *                or is damaged, and guessing would serve wrong data.
 */

#define API_DATA_FORMAT 1
#define API_DEFAULT_SHARDS 16u

struct api_identity {
    uint64_t node_id;
    char cluster_id[40];   /* 32 hex digits; empty in `want`: a random one */
    unsigned shards;
    bool bootstrap;        /* in `want`: a --bootstrap start; data already there
                              must be this node of this cluster */
};

/* Creates DATA if missing and takes DATA/LOCK; returns the lock fd. */
int api_data_lock(const char *dir, int *lock_fd, char *errmsg, size_t errmsg_len);

/* Loads DATA/herald.id, or creates it from *want if there is none. On load,
 * a want->shards that differs is an error (0 = take what is there; on
 * creation 0 means API_DEFAULT_SHARDS). */
int api_data_identity(const char *dir, const struct api_identity *want,
                      struct api_identity *out, char *errmsg, size_t errmsg_len);

/* Only reads DATA/herald.id: 0, HD_ENOTFOUND, HD_ECORRUPT (damaged) or an
 * I/O error. */
int api_data_identity_read(const char *dir, struct api_identity *out);

#endif
