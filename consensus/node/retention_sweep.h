/* SPDX-License-Identifier: Apache-2.0 */
/* The retention sweep (retention_sweep.c): a shard leader trims by the effective policy. */
#ifndef CONS_RETENTION_SWEEP_H
#define CONS_RETENTION_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cons_node;
struct cons__bytes_entry;

/* The sweep's state, in the node (node_internal.h). */
struct cons_retention {
    uv_timer_t timer;
    bool started;
    unsigned next_shard;          /* where the next tick starts */
    char cursor[128];             /* the last channel visited in next_shard */
    size_t cursor_len;            /* 0: from the shard's first channel */
    unsigned in_flight;           /* trims proposed, not yet answered */
    uint64_t pass;                /* full passes over every shard */
    struct cons__bytes_entry **windows; /* byte windows by channel hash */
    size_t n_windows;
};

/* What one tick may do; the rest waits for the next. */
#define CONS_RETENTION_CHANNELS_PER_TICK 1024u
#define CONS_RETENTION_MESSAGES_PER_TICK 65536u
#define CONS_RETENTION_TRIMS_PER_TICK 256u

/* Starts the timer; its ticks do nothing while no policy is in effect. */
void cons__retention_start(struct cons_node *n);
/* Stops it and frees the windows; cb(handle) once the timer is closed. */
void cons__retention_stop(struct cons_node *n, uv_close_cb cb);

#endif
