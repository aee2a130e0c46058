/* SPDX-License-Identifier: Apache-2.0 */
/* The byte rules of channel ids and nonces, and a channel's shard, checked by the API on input, by
 * the log codec on every entry it encodes or decodes, and by libherald before
 * it sends a request. One definition, so the layers cannot disagree. */
#ifndef HD_IDS_H
#define HD_IDS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest channel id and nonce, in bytes. Both lengths are one byte in the
 * entry format (log/entry.h), so neither may exceed 255. */
#define HD_CHANNEL_MAX 128u
#define HD_NONCE_MAX 128u

/* True if the len bytes at id form a channel id: 1..HD_CHANNEL_MAX bytes of
 * [A-Za-z0-9._:-]. Such an id is safe in a URL path unescaped. id may be
 * NULL when len is 0 (then false). */
bool hd_channel_valid(const char *id, size_t len);

/* True if the len bytes at nonce form a nonce: 1..HD_NONCE_MAX printable
 * ASCII bytes (0x21-0x7e: no space, no control, no byte >= 0x80). nonce may
 * be NULL when len is 0 (then false). */
bool hd_nonce_valid(const char *nonce, size_t len);

/* The shard of a channel: XXH3-64 of its bytes, modulo the shard count.
 * Part of the cluster's contract: the log keys its state by it, and clients
 * that send appends straight to a shard's leader (GET /v1/shards) compute it
 * the same way. n_shards is 1..65536, the channel id valid. */
unsigned hd_shard_of(unsigned n_shards, const char *channel, size_t len);

#endif
