/* SPDX-License-Identifier: Apache-2.0 */
/* The members the shards' configurations name, reported when they change (member_watch.c). */
#ifndef CONS_MEMBER_WATCH_H
#define CONS_MEMBER_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "frames.h"

struct cons_node;

#define CONS_MEMBER_WATCH_MAX 64u
#define CONS_MEMBER_WATCH_RETRY_MS 10000u  /* after on_members failed */

/* The union last reported to on_members (ids rising). */
struct cons_member_watch {
    bool reported;                /* on_members took a list once */
    unsigned n;
    uint64_t ids[CONS_MEMBER_WATCH_MAX];
    char addresses[CONS_MEMBER_WATCH_MAX][CONS_FRAME_ADDRESS_MAX + 1];
    uint64_t retry_at_ms;         /* 0: no failed report waiting */
};

/* Calls opts.on_members if the union of every shard's configuration
 * differs from what it last took (or it never took one, or its last call
 * failed and CONS_MEMBER_WATCH_RETRY_MS passed). At start and from the
 * ticker. */
void cons__member_watch(struct cons_node *n);

#endif
