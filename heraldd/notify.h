/* SPDX-License-Identifier: Apache-2.0 */
/* Tells the service manager what the node does (sd_notify, libsystemd):
 * STATUS= lines along the start and the stop, READY=1 once HTTP is served,
 * STOPPING=1 at a graceful stop, and WATCHDOG=1 from a loop timer every
 * half of WATCHDOG_USEC when the unit sets WatchdogSec=. Without
 * NOTIFY_SOCKET (not started by systemd) every call does nothing. */
#ifndef API_NOTIFY_H
#define API_NOTIFY_H

#include <stdbool.h>
#include <uv.h>

struct api_notify {
    uv_timer_t watchdog;
    bool watchdog_on;
};

void api_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* READY=1 with a STATUS line; starts the watchdog timer if systemd asks
 * for one. */
void api_notify_ready(struct api_notify *n, uv_loop_t *loop, const char *status);

/* STOPPING=1 with a STATUS line. */
void api_notify_stopping(const char *status);

/* Closes the watchdog timer (the loop can end). */
void api_notify_close(struct api_notify *n);

#endif
