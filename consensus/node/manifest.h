/* SPDX-License-Identifier: Apache-2.0 */
/* The snapshot manifest (manifest.c): what a shard's Raft snapshot holds. */
#ifndef CONS_MANIFEST_H
#define CONS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

/*
 * A shard's state stays in RocksDB; its Raft snapshot is only this manifest,
 * naming the applied index the state must reach before the snapshot may
 * replace the log (docs/disk-format.md):
 *
 *   u32 magic "HDSN"   u32 shard   u64 applied index
 */

#define CONS_MANIFEST_MAGIC 0x4e534448u /* "HDSN" */
#define CONS_MANIFEST_SIZE 16u

struct cons_manifest {
    uint32_t shard;
    uint64_t applied;
};

void cons_manifest_encode(uint8_t out[CONS_MANIFEST_SIZE], const struct cons_manifest *m);

/* HD_ECORRUPT unless the bytes are exactly one manifest. */
int cons_manifest_decode(const uint8_t *buf, size_t len, struct cons_manifest *out);

#endif
