/* SPDX-License-Identifier: Apache-2.0 */
/* Limits per token (tenant): appends/s, bytes/s, open streams and channels
 * touched per second, from the auth file. */
#ifndef API_TOKEN_LIMITS_H
#define API_TOKEN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"

struct api_server;
struct api_principal;

/*
 * Rates are buckets that refill at the token's rate, up to one second's
 * worth, and may go into debt: a request is let through while the bucket
 * is not empty and takes all it needs, so a batch larger than one
 * second's worth still passes once, and the token then waits its debt
 * off. Being over answers 429 with Retry-After (the seconds until the
 * bucket is positive again). The state is kept by token name, so a reload
 * keeps it; a token without limits costs nothing.
 */
struct api_tenant;

/* n appends of bytes request bytes for who. True to go on; false with
 * *retry_after_s set when over a rate (counted per token). */
bool api_limit_appends(struct api_server *s, const struct api_principal *who, size_t n,
                       size_t bytes, uint64_t *retry_after_s);

/* An append to channel (len bytes) by who: false with *retry_after_s = 1
 * when the token has limit:channels=N and already appended to N other
 * channels in this wall-clock second (counted). Touching a channel costs
 * state on every replica (its head, its keys); this bounds how fast one
 * tenant can spread over new ones. */
bool api_limit_channel(struct api_server *s, const struct api_principal *who,
                       const char *channel, size_t len, uint64_t *retry_after_s);

/* A tail or WebSocket opens for who: false when at limit:streams (counted). */
bool api_limit_stream_open(struct api_server *s, const struct api_principal *who);
/* It ended (every api_limit_stream_open() that returned true, once). */
void api_limit_stream_closed(struct api_server *s, const struct api_principal *who);

/* Answers 429 rate_limited with Retry-After. */
void api_limit_respond(struct api_server *s, struct api_http_conn *c, uint64_t retry_after_s,
                       const char *what);

/* Appends the per-token metric lines to /metrics' text via emit. */
void api_limit_metrics(struct api_server *s, void (*emit)(void *arg, const char *name,
                                                           uint64_t value),
                       void *arg);

/* Frees every tenant's state. */
void api_limit_free_all(struct api_tenant *list);

#endif
