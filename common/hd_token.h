/* SPDX-License-Identifier: Apache-2.0 */
/* Access tokens: the auth file's line format, the hash tokens are kept as, and the scope rule. */
#ifndef HD_TOKEN_H
#define HD_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_ids.h"

/*
 * The auth file (heraldd --auth-file) has one token per line:
 *
 *     NAME sha256:HEX SCOPE [SCOPE...]
 *
 * NAME is 1-64 bytes of [A-Za-z0-9._-], unique in the file; it is what logs
 * and metrics show. HEX is the 64 lowercase hex digits of the SHA-256 of the
 * token; the token itself is never stored. SCOPE is one of
 *     append:PATTERN  read:PATTERN  subscribe:PATTERN  admin  status
 * where PATTERN is a channel id, or a channel prefix followed by '*'
 * ("team-42:*"), or '*' alone for every channel. Limits may follow, each
 * at most once:
 *     limit:appends=N  appends per second (a batch counts each line)
 *     limit:bytes=N    request body bytes of appends per second
 *     limit:streams=N  SSE tails and WebSockets open at once
 *     limit:channels=N distinct channels appended to per second
 * (N from 1 to 10^12; no limit field: unlimited). Fields are separated by
 * spaces or tabs; blank lines and lines starting with '#' are ignored.
 */

enum {
    HD_SCOPE_APPEND = 1u << 0,
    HD_SCOPE_READ = 1u << 1,
    HD_SCOPE_SUBSCRIBE = 1u << 2,
    HD_SCOPE_ADMIN = 1u << 3,  /* membership and other cluster changes */
    HD_SCOPE_STATUS = 1u << 4, /* /v1/status and /metrics */
};

#define HD_TOKEN_NAME_MAX 64u
#define HD_TOKEN_HASH_BYTES 32u
/* A generated token: "hd_" and the 64 hex digits of 32 random bytes (URL-safe). */
#define HD_TOKEN_TEXT_MAX 80u

/* One scope of a token; pattern is empty for admin and status. */
struct hd_grant {
    unsigned scope;                  /* one HD_SCOPE_* bit */
    char pattern[HD_CHANNEL_MAX + 2];
    size_t pattern_len;
    bool prefix;                     /* pattern ended in '*' (dropped from pattern) */
};

struct hd_token {
    char name[HD_TOKEN_NAME_MAX + 1];
    uint8_t hash[HD_TOKEN_HASH_BYTES];
    struct hd_grant *grants;
    size_t n_grants;
    unsigned scopes;                 /* union of the grants' scopes */
    uint64_t appends_per_s;          /* limit:appends; 0: none */
    uint64_t bytes_per_s;            /* limit:bytes; 0: none */
    uint64_t streams_max;            /* limit:streams; 0: none */
    uint64_t channels_per_s;         /* limit:channels; 0: none */
};

struct hd_token_set {
    struct hd_token *tokens;
    size_t n;
};

/* Parses one scope ("read:team-42:*", "admin"). HD_EINVAL if it is none.
 * (Limit fields are parsed only as part of a line.) */
int hd_grant_parse(const char *text, size_t len, struct hd_grant *out);

/* Parses a whole auth file's text. On error returns HD_EINVAL (or
 * HD_ENOMEM) with "line N: what is wrong" in errmsg, and *out untouched. */
int hd_token_set_parse(const char *text, size_t len, struct hd_token_set **out, char *errmsg,
                       size_t errmsg_len);
/* Reads and parses the file at path (errmsg names the file). */
int hd_token_set_load(const char *path, struct hd_token_set **out, char *errmsg,
                      size_t errmsg_len);
void hd_token_set_free(struct hd_token_set *set);

/* The token whose hash matches the presented token's, or NULL. Every entry
 * is compared, in constant time, so the time says nothing about how close a
 * guess came. */
const struct hd_token *hd_token_set_find(const struct hd_token_set *set, const char *token,
                                         size_t len);
/* The token named name, or NULL. */
const struct hd_token *hd_token_set_named(const struct hd_token_set *set, const char *name);

/* True if the token holds scope (one HD_SCOPE_* bit) for this channel; for
 * admin and status the channel is ignored (pass NULL, 0). */
bool hd_token_allows(const struct hd_token *t, unsigned scope, const char *channel, size_t len);
/* Parses a channel PATTERN alone (a channel id, a prefix and '*', or '*')
 * into out->pattern and out->prefix (scope 0): the one pattern syntax of
 * scopes and of retention rules (hd_retention.h). HD_EINVAL if it is none. */
int hd_pattern_parse(const char *pat, size_t len, struct hd_grant *out);
/* True if one grant of this scope covers channel. */
bool hd_grant_matches(const struct hd_grant *g, const char *channel, size_t len);

void hd_token_hash(const char *token, size_t len, uint8_t out[HD_TOKEN_HASH_BYTES]);

/* A new random token (getrandom) into out (HD_TOKEN_TEXT_MAX bytes). */
int hd_token_generate(char *out, size_t out_len);

/* The auth-file line of token `token` named name with the given scopes
 * and limit fields (checked here), without a newline. Returns HD_EINVAL for a bad name
 * or scope (errmsg says which), HD_ETOOBIG if out is too small. */
int hd_token_line(const char *name, const char *token, const char *const *scopes,
                  size_t n_scopes, char *out, size_t out_len, char *errmsg, size_t errmsg_len);

#endif
