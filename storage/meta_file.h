/* SPDX-License-Identifier: Apache-2.0 */
/* A small blob replaced atomically and durably, kept in two alternating slots. */
#ifndef ST_META_FILE_H
#define ST_META_FILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Files: DIR/NAME.1 and DIR/NAME.2. Each holds a header (magic, version,
 * generation, length, CRC32C over header and blob) and the blob.
 *
 * Durability rules:
 *   1. A write goes to the slot NOT holding the newest generation, with
 *      generation + 1, then fdatasync; the newest slot is never touched, so a
 *      torn write leaves the previous blob intact.
 *   2. On load the valid slot with the highest generation wins; a slot with a
 *      bad checksum is ignored (it was being written when the node stopped).
 *   3. Both slots invalid but present is corruption (HD_ECORRUPT).
 */

#define ST_META_BLOB_MAX (1u << 20)

struct st_meta_file {
    int dir_fd;           /* directory holding the slots */
    char name[64];        /* base name */
    uint64_t generation;  /* of the newest valid slot, 0 if none */
};

/* Opens the directory; loads nothing yet. */
int st_meta_file_init(struct st_meta_file *m, const char *dir, const char *name);
void st_meta_file_close(struct st_meta_file *m);

/* Loads the newest blob into buf. HD_ENOTFOUND if no slot exists yet,
 * HD_ETOOBIG if cap is too small. */
int st_meta_file_load(struct st_meta_file *m, void *buf, size_t cap, size_t *len);

/* Writes a new blob durably (synchronous: blocks for one fdatasync). */
int st_meta_file_store(struct st_meta_file *m, const void *blob, size_t len);

/* Removes both slots durably (the blob is gone, as if never stored). */
int st_meta_file_remove(struct st_meta_file *m);

#endif
