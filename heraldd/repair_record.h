/* SPDX-License-Identifier: Apache-2.0 */
/* DATA/herald.repair: what repairs did to this data directory's identity. */
#ifndef API_REPAIR_RECORD_H
#define API_REPAIR_RECORD_H

#include <stddef.h>
#include <stdint.h>

/*
 * Written (temp file, fsync, rename, fsync of the directory) by every
 * repair, and kept across them; never moved aside with the damaged data:
 *
 *   origin_id N    the id the command line knows (--id): the node's first
 *   node_id N      the id it runs under now (herald.id says the same)
 *   repairs N      repairs so far (/v1/status "repairs", herald_repairs_total)
 *   pending_id N   a new id granted by the peers but not installed yet (0: none)
 *   crc32c HEX     of the lines before it
 *
 * With it, the unchanged command line (--id origin, --bootstrap) still
 * starts the node under its new id, as a member that joined.
 */

#define API_REPAIR_RECORD_FILE "herald.repair"

struct api_repair_record {
    uint64_t origin_id;
    uint64_t node_id;
    uint64_t repairs;
    uint64_t pending_id;
};

/* Parses the file's text; HD_ECORRUPT unless it is exactly one valid record. */
int api_repair_record_parse(const char *text, size_t len, struct api_repair_record *out);

/* Loads DATA/herald.repair: 0, HD_ENOTFOUND (none), HD_ECORRUPT or an I/O error. */
int api_repair_record_load(const char *dir, struct api_repair_record *out);

/* Replaces DATA/herald.repair durably. */
int api_repair_record_save(const char *dir, const struct api_repair_record *r);

#endif
