/* SPDX-License-Identifier: Apache-2.0 */
/* DATA/herald.members: the cluster's members this node last saw, for a repair. */
#ifndef API_KNOWN_MEMBERS_H
#define API_KNOWN_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A damaged node repairs itself by asking another member (heraldd/repair.c).
 * A node started with --bootstrap has a list on its command line; a node
 * that joined with --join has only the cluster id. So every node keeps the
 * members it saw in its shards' Raft configurations (the union of every
 * shard's, id and peer address) in this file, replaced (temp file, fsync,
 * rename, fsync of the directory) whenever that union changes, start-up
 * included. It lives beside herald.id, outside wal/ and state/, and a
 * repair never moves it aside. The text:
 *
 *   cluster_id HEX     the cluster the members belong to (32 hex digits)
 *   member ID ADDRESS  one line per member, ids rising, each once
 *   crc32c HEX         of the lines before it
 *
 * A file that is not exactly what the writer produces (a flipped bit, a
 * cut, anything appended) is damaged and not used.
 */

#define API_KNOWN_MEMBERS_FILE "herald.members"
#define API_KNOWN_MEMBERS_MAX 64u
#define API_KNOWN_ADDRESS_MAX 63u  /* bytes of a peer address, as on the wire */

struct api_known_member {
    uint64_t id;
    char address[API_KNOWN_ADDRESS_MAX + 1];
};

struct api_known_members {
    char cluster_id[33];
    unsigned n;
    struct api_known_member list[API_KNOWN_MEMBERS_MAX];
};

/* Whether m is what a file may hold: a cluster id of 32 lowercase hex
 * digits, 1..API_KNOWN_MEMBERS_MAX members with rising ids of at least 1
 * and non-empty addresses of printable bytes without spaces. */
int api_known_members_valid(const struct api_known_members *m);

/* Whether a and b name the same cluster and members. */
bool api_known_members_equal(const struct api_known_members *a,
                             const struct api_known_members *b);

/* Parses the file's text; HD_ECORRUPT unless it is exactly what the writer
 * produces for a valid list. */
int api_known_members_parse(const char *text, size_t len, struct api_known_members *out);

/* Loads DATA/herald.members: 0, HD_ENOTFOUND (none), HD_ECORRUPT, or an
 * I/O error. */
int api_known_members_load(const char *dir, struct api_known_members *out);

/* Replaces DATA/herald.members durably; HD_EINVAL if m is not valid. */
int api_known_members_save(const char *dir, const struct api_known_members *m);

#endif
