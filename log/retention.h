/* SPDX-License-Identifier: Apache-2.0 */
/* What a channel's retention rule asks to drop (retention.c), for the shard leader's sweep. */
#ifndef LOG_RETENTION_H
#define LOG_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hd_retention.h"
#include "log.h"

/*
 * Only the shard leader computes this, from its applied state and clock;
 * what it computes becomes an ordinary trim entry (command.h), so every
 * replica drops the same messages whatever its own clock or policy.
 *
 * - messages:N keeps the newest N (N = 0: none).
 * - age:A drops every message whose ts is older than now - A, the last one
 *   included: an emptied channel keeps its seq and epoch (command.h).
 * - bytes:B keeps the newest messages whose payloads add up to at most B;
 *   the last message stays even if it alone is larger (B = 0: none stay).
 *   Payload sizes are summed over a window kept by the caller between
 *   calls (struct log_bytes_window), so each call reads only the messages
 *   appended since the last one and those it drops; the first call on a
 *   channel reads it whole, over as many calls as its budget needs.
 * The plan is the highest seq any limit asks for.
 */

enum log_retention_reason {
    LOG_RETENTION_NONE = 0,
    LOG_RETENTION_AGE,
    LOG_RETENTION_MESSAGES,
    LOG_RETENTION_BYTES,
};

/* The payload bytes of messages lo..hi of one epoch of a channel. A
 * message of a given epoch and seq never changes, so this stays exact
 * until a trim above lo or a delete, which the next call notices. */
struct log_bytes_window {
    bool valid;
    uint64_t epoch;
    uint64_t lo;
    uint64_t hi;                  /* lo - 1 when empty */
    uint64_t bytes;
};

struct log_retention_plan {
    uint64_t before_seq;          /* 0: nothing to drop */
    bool may_empty;               /* before_seq is past the last message */
    enum log_retention_reason reason;
    uint64_t first_seq;           /* the channel's first and last seq before */
    uint64_t last_seq;
};

/* The trim the rule asks for on channel at now_us (the caller's clock).
 * *budget is how many messages it may read (decremented); when it runs out
 * the bytes limit waits for the next call (the others cost a few point
 * reads). w may be NULL when the rule has no bytes limit. */
int log_retention_plan(struct log_store *ls, const char *ch, size_t len,
                       const struct hd_retention_rule *rule, uint64_t now_us,
                       struct log_bytes_window *w, size_t *budget,
                       struct log_retention_plan *out);

const char *log_retention_reason_name(enum log_retention_reason r);

/* Calls cb for each channel of the shard that has messages, in key order
 * (the ids' length, then their bytes), starting after channel `after`
 * (after_len 0: from the first), until cb returns non-zero. One iterator
 * for the walk; cb may read the store (it must not apply entries). */
typedef int (*log_channel_cb)(void *arg, const char *channel, size_t len);
int log_channel_walk(struct log_store *ls, uint16_t shard, const char *after, size_t after_len,
                     log_channel_cb cb, void *arg);

#endif
