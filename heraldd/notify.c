/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify from heraldd: see notify.h. */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "hd_error.h"
#include "hd_util.h"

void api_notify_status(const char *fmt, ...)
{
    char status[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(status, sizeof status, fmt, ap);
    va_end(ap);
    sd_notifyf(0, "STATUS=%s", status);
}

static void api__notify_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

void api_notify_ready(struct api_notify *n, uv_loop_t *loop, const char *status)
{
    int rv = sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    if (rv < 0) {
        HD_LOG_WARN("cannot tell systemd the node is ready: %s", strerror(-rv));
    }
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
        return;
    }
    /* Half the period, as sd_watchdog_enabled(3) advises: a ping is never
     * late by the loop's ordinary delays. A loop stuck for longer than
     * WatchdogSec= misses them, and systemd restarts the node. */
    uint64_t every_ms = usec / 2000 > 0 ? usec / 2000 : 1;
    uv_timer_init(loop, &n->watchdog);
    uv_timer_start(&n->watchdog, api__notify_watchdog, 0, every_ms);
    uv_unref((uv_handle_t *)&n->watchdog); /* never what keeps the loop running */
    n->watchdog_on = true;
    HD_LOG_INFO("systemd watchdog: WATCHDOG=1 every %llu ms", (unsigned long long)every_ms);
}

void api_notify_stopping(const char *status)
{
    sd_notifyf(0, "STOPPING=1\nSTATUS=%s", status);
}

void api_notify_close(struct api_notify *n)
{
    if (n->watchdog_on) {
        uv_close((uv_handle_t *)&n->watchdog, NULL);
        n->watchdog_on = false;
    }
}
