/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench --rate: the open loop's schedule of sends. */
#ifndef HERALD_BENCH_PACE_H
#define HERALD_BENCH_PACE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/*
 * Send k of the schedule is due at start + k / rate (k = 0 .. total-1,
 * total = rate x duration), whatever happened to the sends before it: the
 * schedule never waits for answers (an open loop). The engine takes a due
 * send whenever it has a free connection, and measures its latency from
 * the time it was due, so that waiting for a connection, or a client that
 * fell behind, counts against the server instead of hiding its stalls
 * (no coordinated omission).
 *
 * A timerfd on CLOCK_MONOTONIC (the clock of uv_hrtime()), armed at the
 * next due time, wakes the loop with microsecond precision, where libuv's
 * own timers round to milliseconds.
 */

/* A send taken this long after it was due counts as late. */
#define BENCH_PACE_LATE_NS 1000000u

struct bench_pace {
    uv_poll_t poll;        /* watches tfd */
    int tfd;               /* the timerfd */
    double rate;           /* sends per second */
    uint64_t total;        /* sends in the schedule */
    uint64_t start_ns;     /* uv_hrtime() of send 0; 0 before the start */
    uint64_t next;         /* the next send to hand out */
    uint64_t armed_for;    /* send the timer is armed for, or UINT64_MAX */
    uint64_t late;         /* sends handed out BENCH_PACE_LATE_NS or more late */
    bool stopped;          /* nothing more is handed out */
    void (*on_due)(void *arg); /* the timer fired: sends are due */
    void *arg;
};

/* Sets up the timer on loop; 0, or a negative errno. */
int bench_pace_init(struct bench_pace *p, uv_loop_t *loop, double rate, double duration_s,
                    void (*on_due)(void *arg), void *arg);
/* Send 0 is due at now_ns. */
void bench_pace_start(struct bench_pace *p, uint64_t now_ns);
/* True when a send is due at now_ns. */
bool bench_pace_due(const struct bench_pace *p, uint64_t now_ns);
/* Hands out the next send if it is due: its due time in *due_ns. */
bool bench_pace_take(struct bench_pace *p, uint64_t now_ns, uint64_t *due_ns);
/* Arms the timer for the next send (a free connection waits for it); a
 * send already due, or one the timer is armed for, needs nothing. */
void bench_pace_arm(struct bench_pace *p, uint64_t now_ns);
/* Hands out nothing more. */
void bench_pace_stop(struct bench_pace *p);
/* Closes the timer (on the loop; uv_run returns once it is closed). */
void bench_pace_close(struct bench_pace *p);

#endif
