/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench --rate: the open loop's schedule of sends (bench_pace.h). */
#include "bench_pace.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

static uint64_t pace_due_ns(const struct bench_pace *p, uint64_t k)
{
    return p->start_ns + (uint64_t)((double)k * 1e9 / p->rate);
}

static void pace_on_poll(uv_poll_t *h, int status, int events)
{
    struct bench_pace *p = h->data;
    (void)status;
    (void)events;
    uint64_t expirations;
    if (read(p->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) return;
    p->armed_for = UINT64_MAX; /* one-shot: it fired */
    if (!p->stopped) p->on_due(p->arg);
}

static void pace_on_closed(uv_handle_t *h)
{
    struct bench_pace *p = h->data;
    close(p->tfd); /* only now: never close a descriptor libuv still polls */
    p->tfd = -1;
}

void bench_pace_close(struct bench_pace *p)
{
    uv_close((uv_handle_t *)&p->poll, pace_on_closed);
}

int bench_pace_init(struct bench_pace *p, uv_loop_t *loop, double rate, double duration_s,
                    void (*on_due)(void *arg), void *arg)
{
    memset(p, 0, sizeof *p);
    p->rate = rate;
    p->total = (uint64_t)(rate * duration_s);
    if (p->total == 0) p->total = 1;
    p->armed_for = UINT64_MAX;
    p->on_due = on_due;
    p->arg = arg;
    p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->tfd < 0) return -errno;
    int rv = uv_poll_init(loop, &p->poll, p->tfd);
    if (rv != 0) {
        close(p->tfd);
        return rv;
    }
    p->poll.data = p;
    rv = uv_poll_start(&p->poll, UV_READABLE, pace_on_poll);
    if (rv != 0) bench_pace_close(p); /* the loop finishes closing it */
    return rv;
}

void bench_pace_start(struct bench_pace *p, uint64_t now_ns)
{
    p->start_ns = now_ns;
}

bool bench_pace_due(const struct bench_pace *p, uint64_t now_ns)
{
    return !p->stopped && p->start_ns != 0 && p->next < p->total &&
           pace_due_ns(p, p->next) <= now_ns;
}

bool bench_pace_take(struct bench_pace *p, uint64_t now_ns, uint64_t *due_ns)
{
    if (!bench_pace_due(p, now_ns)) return false;
    *due_ns = pace_due_ns(p, p->next++);
    if (now_ns - *due_ns >= BENCH_PACE_LATE_NS) p->late++;
    return true;
}

void bench_pace_arm(struct bench_pace *p, uint64_t now_ns)
{
    if (p->stopped || p->start_ns == 0 || p->next >= p->total || p->armed_for == p->next) return;
    uint64_t due = pace_due_ns(p, p->next);
    if (due <= now_ns) return; /* due already: whoever is free takes it */
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                          .tv_nsec = (long)(due % 1000000000u)}};
    if (timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) p->armed_for = p->next;
}

void bench_pace_stop(struct bench_pace *p)
{
    p->stopped = true;
}

