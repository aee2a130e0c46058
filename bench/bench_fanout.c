/* SPDX-License-Identifier: Apache-2.0 */
/* `herald bench --fanout`: many WebSocket subscribers (libherald's
 * non-blocking herald_sub API on one libuv loop, in a thread of their own)
 * while bench_run() appends over HTTP in the main thread, closed loop
 * (--in-flight) or open loop (--rate). Every appended payload starts with
 * its send time, so each delivery gives an append-to-delivery latency
 * without any lookup, and the message's ts gives a commit-to-delivery one
 * (wall clocks: meaningful on one host). Subscribers may be on other
 * servers than the appends (--sub-servers: a cluster's followers).
 *
 * Expected deliveries are exact: bench_run() counts acknowledged appends
 * per channel, the subscription plan gives each channel's subscribers, and
 * each connection must receive the acknowledged appends of its channels. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench_internal.h"
#include "herald/herald.h"

#define TICK_MS 250        /* deadlines of every subscription are checked this often */
/* After the appends: stop once every expected delivery came, or once
 * deliveries pause this long, or at most after DRAIN_MAX_MS (a loaded
 * node, e.g. a sanitizer build on two busy cores, may lag seconds). A
 * subscriber that fell behind can stall for seconds after it read
 * everything: its receive window had closed, and on loopback the node's
 * socket then learned that it opened only from its next zero-window probe
 * (TCP persist timer, backing off: ss showed 7.5 s between probes, bytes
 * waiting in the node's send queue, none in the subscriber's). 2 s, then
 * 5 s, counted such deliveries as missing. */
#define DRAIN_QUIET_MS 20000
#define DRAIN_QUIET_TEXT "20 s"
#define DRAIN_MAX_MS 60000
#define DRAIN_MAX_TEXT "60 s"
#define RATE_CONNECTIONS 256 /* --rate's default, as `herald bench --rate` */

struct fan_conn {
    struct fan_state *st;
    struct herald_sub *sub;
    uv_poll_t *poll;   /* on the current socket, or NULL */
    uv_timer_t timer;  /* reconnect delay */
    int events;        /* what poll watches */
    int poll_fd;       /* the socket poll watches */
    bool ready;        /* every channel subscribed once */
    int subscribed;    /* channels confirmed on this connection */
    atomic_uint_fast64_t delivered; /* bench messages received (the loop
                                       writes, the main thread watches) */
    uint64_t expected; /* acknowledged appends to its channels */
    /* Seen as the loop stopped, for a connection short of its share: */
    int unread;        /* bytes in its socket not read yet (-1: no socket) */
    int want;          /* herald_sub_want() */
    int polled;        /* events its poll handle watched (-1: no handle) */
};

struct fan_state {
    const struct bench_fanout_opts *o;
    const char *token;
    const char *ca_file;
    uv_loop_t loop;
    uv_async_t stop_async; /* the main thread asks the loop to end */
    uv_timer_t tick;
    struct fan_conn *conns;
    atomic_int ready_conns;        /* connections with all channels subscribed */
    atomic_uint_fast64_t delivered; /* messages delivered, all connections */
    atomic_uint_fast64_t window_ns; /* latencies count for sends after it */
    uint64_t win_start_ns;         /* window start (main thread only) */
    uint64_t win_start_count;      /* delivered at the window start */
    uint64_t win_delivered;        /* deliveries inside the window */
    double win_s;                  /* window length */
    uint64_t disconnects, sub_errors, foreign;
    uint32_t *channel_subs;        /* per channel, the connections subscribing it */
    uint64_t expected;             /* deliveries the acknowledged appends call for */
    uint64_t undelivered;          /* of those, missing once drained */
    int short_conns;               /* connections that missed some */
    double drain_s;                /* waited for deliveries after the appends */
    const char *drain_end;         /* why that wait ended */
    struct bench_result deliver;   /* latencies from the append's send */
    struct bench_result commit;    /* latencies from the message's ts */
    char fatal[256];
    bool stopping;
};

/* ------------------------------------------------------------ the hot path */

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* 16 hex digits at the payload's start, the send time; false if not ours. */
static bool parse_stamp(const uint8_t *p, size_t len, uint64_t *ns)
{
    if (len < 16) return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        uint8_t c = p[i];
        unsigned d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 16;
        if (d == 16) return false;
        v = v << 4 | d;
    }
    *ns = v;
    return true;
}

static int fan_on_message(void *arg, const struct herald_message *m)
{
    struct fan_conn *cn = arg;
    struct fan_state *st = cn->st;
    uint64_t sent_ns;
    if (!parse_stamp(m->payload, m->payload_len, &sent_ns)) {
        st->foreign++;
        return 0;
    }
    uint64_t now = uv_hrtime();
    atomic_fetch_add_explicit(&st->delivered, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cn->delivered, 1, memory_order_relaxed);
    if (sent_ns < atomic_load_explicit(&st->window_ns, memory_order_relaxed)) return 0;
    bench_record_latency(&st->deliver, now > sent_ns ? (now - sent_ns) / 1000 : 0);
    uint64_t wall = wall_us();
    bench_record_latency(&st->commit, wall > m->ts_us ? wall - m->ts_us : 0);
    return 0;
}

static int fan_on_event(void *arg, const struct herald_sub_event *ev)
{
    struct fan_conn *cn = arg;
    struct fan_state *st = cn->st;
    if (ev->type == HERALD_SUB_SUBSCRIBED && !cn->ready &&
        ++cn->subscribed == st->o->sub_channels) {
        cn->ready = true;
        atomic_fetch_add(&st->ready_conns, 1);
    } else if (ev->type == HERALD_SUB_ERROR) {
        if (st->sub_errors++ == 0) {
            fprintf(stderr, "herald bench: subscriber error: %s %s: %s\n",
                    ev->channel ? ev->channel : "", ev->code, ev->message);
        }
    } else if (ev->type == HERALD_SUB_DISCONNECTED) {
        st->disconnects++;
        cn->subscribed = 0; /* resumed channels are confirmed again */
    }
    return 0;
}

/* ------------------------------------------------------- the event loop */

static void conn_drive(struct fan_conn *cn);

static void on_poll_closed(uv_handle_t *h)
{
    free(h);
}

static void drop_poll(struct fan_conn *cn)
{
    if (cn->poll == NULL) return;
    uv_close((uv_handle_t *)cn->poll, on_poll_closed);
    cn->poll = NULL;
    cn->events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    conn_drive(h->data);
}

static void on_reconnect(uv_timer_t *t)
{
    struct fan_conn *cn = t->data;
    if (cn->st->stopping) return;
    if (herald_sub_connect(cn->sub) != 0) {
        uv_timer_start(&cn->timer, on_reconnect, (uint64_t)herald_sub_backoff_ms(cn->sub), 0);
        return;
    }
    conn_drive(cn);
}

/* Lets the subscription do what it can, then watches what it waits for. A
 * new socket (after a reconnect) gets a new poll handle. */
static void conn_drive(struct fan_conn *cn)
{
    struct fan_state *st = cn->st;
    int rv = herald_sub_process(cn->sub);
    if (rv < 0) {
        if (st->fatal[0] == '\0') {
            snprintf(st->fatal, sizeof st->fatal, "subscriber: %s (%s)",
                     herald_sub_errmsg(cn->sub), herald_strerror(rv));
        }
        drop_poll(cn);
        return;
    }
    int fd = herald_sub_fd(cn->sub);
    if (rv == 1 || fd < 0) {
        drop_poll(cn);
        if (!st->stopping) {
            uv_timer_start(&cn->timer, on_reconnect, (uint64_t)herald_sub_backoff_ms(cn->sub), 0);
        }
        return;
    }
    if (cn->poll != NULL && cn->poll_fd != fd) drop_poll(cn);
    if (cn->poll == NULL) {
        cn->poll = malloc(sizeof *cn->poll);
        if (cn->poll == NULL || uv_poll_init(&st->loop, cn->poll, fd) != 0) {
            free(cn->poll);
            cn->poll = NULL;
            snprintf(st->fatal, sizeof st->fatal, "uv_poll_init failed");
            return;
        }
        cn->poll->data = cn;
        cn->poll_fd = fd;
    }
    int want = herald_sub_want(cn->sub);
    int events = (want & HERALD_SUB_WANT_READ ? UV_READABLE : 0) |
                 (want & HERALD_SUB_WANT_WRITE ? UV_WRITABLE : 0);
    if (events != cn->events) {
        uv_poll_start(cn->poll, events, on_poll);
        cn->events = events;
    }
}

/* Handshake deadlines and keep-alive pings of every subscription. */
static void on_tick(uv_timer_t *t)
{
    struct fan_state *st = t->data;
    for (int i = 0; i < st->o->subscribers; i++) {
        struct fan_conn *cn = &st->conns[i];
        if (cn->poll != NULL && herald_sub_timeout_ms(cn->sub) == 0) conn_drive(cn);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_stop(uv_async_t *a)
{
    struct fan_state *st = a->data;
    st->stopping = true;
    for (int i = 0; i < st->o->subscribers; i++) {
        struct fan_conn *cn = &st->conns[i];
        if (atomic_load_explicit(&cn->delivered, memory_order_relaxed) < cn->expected) {
            int fd = herald_sub_fd(cn->sub);
            cn->unread = -1;
            if (fd >= 0 && ioctl(fd, FIONREAD, &cn->unread) != 0) cn->unread = -1;
            cn->want = herald_sub_want(cn->sub);
            cn->polled = cn->poll != NULL && uv_is_active((uv_handle_t *)cn->poll) ? cn->events
                                                                                    : -1;
        }
        drop_poll(cn);
        uv_close((uv_handle_t *)&st->conns[i].timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&st->tick, on_handle_closed);
    uv_close((uv_handle_t *)&st->stop_async, on_handle_closed);
}

/* The plan: connection i subscribes channels i*K .. i*K+K-1 (mod C) from
 * "now" (K <= C, so K different channels); with K = 1 the connections
 * spread evenly over the channels. */
static long plan_channel(const struct bench_fanout_opts *o, int i, int k)
{
    return ((long)i * o->sub_channels + k) % o->channels;
}

/* Connection i, on server i mod n (--sub-servers), its plan's channels. */
static int conn_open(struct fan_state *st, int i, const struct herald_client *c)
{
    struct fan_conn *cn = &st->conns[i];
    cn->st = st;
    uv_timer_init(&st->loop, &cn->timer);
    cn->timer.data = cn;
    if (herald_sub_open(&cn->sub, c, fan_on_message, fan_on_event, cn) != 0) return -1;
    char name[32];
    for (int k = 0; k < st->o->sub_channels; k++) {
        long ch = plan_channel(st->o, i, k);
        st->channel_subs[ch]++;
        snprintf(name, sizeof name, "bench-%ld", ch);
        if (herald_sub_add(cn->sub, name, HERALD_SUB_NOW) != 0) return -1;
    }
    /* Spread the connects over the first ticks, not one burst. */
    uv_timer_start(&cn->timer, on_reconnect, (uint64_t)(i / 200), 0);
    return 0;
}

static void *fan_thread(void *arg)
{
    struct fan_state *st = arg;
    uv_run(&st->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ----------------------------------------------------------- the run */

static void on_window(void *arg, bool start)
{
    struct fan_state *st = arg;
    uint64_t now = uv_hrtime();
    uint64_t count = atomic_load(&st->delivered);
    if (start) {
        st->win_start_ns = now;
        st->win_start_count = count;
        atomic_store(&st->window_ns, now);
    } else {
        st->win_delivered = count - st->win_start_count;
        st->win_s = (double)(now - st->win_start_ns) / 1e9;
    }
}

/* Thousands of sockets need more than the usual soft limit of 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Subscribes every connection (on its server's client) and starts the
 * subscribers' thread; on failure st->fatal says why (unless out of memory). */
static int fan_start(struct fan_state *st, pthread_t *thread)
{
    const struct bench_fanout_opts *o = st->o;
    struct herald_client c[BENCH_SERVERS_MAX];
    int n = 0, rv = -1;
    for (; n < o->n_sub_urls; n++) {
        if (herald_client_init(&c[n], o->sub_urls[n]) != 0) {
            snprintf(st->fatal, sizeof st->fatal, "%s", herald_errmsg(&c[n]));
            goto out;
        }
        c[n].token = st->token;
        c[n].ca_file = st->ca_file;
    }
    atomic_store(&st->window_ns, UINT64_MAX);
    st->conns = calloc((size_t)o->subscribers, sizeof *st->conns);
    st->channel_subs = calloc((size_t)o->channels, sizeof *st->channel_subs);
    if (st->conns == NULL || st->channel_subs == NULL || uv_loop_init(&st->loop) != 0) goto out;
    uv_async_init(&st->loop, &st->stop_async, on_stop);
    st->stop_async.data = st;
    uv_timer_init(&st->loop, &st->tick);
    st->tick.data = st;
    uv_timer_start(&st->tick, on_tick, TICK_MS, TICK_MS);
    for (int i = 0; i < o->subscribers; i++) {
        if (conn_open(st, i, &c[i % o->n_sub_urls]) != 0) {
            snprintf(st->fatal, sizeof st->fatal, "cannot set up subscriber %d", i);
            goto out;
        }
    }
    rv = pthread_create(thread, NULL, fan_thread, st) == 0 ? 0 : -1;
out:
    for (int i = 0; i < n; i++) herald_client_close(&c[i]); /* the subscriptions copied them */
    return rv;
}

/* Waits until every connection has every channel subscribed. */
static bool wait_ready(struct fan_state *st)
{
    uint64_t t0 = uv_hrtime();
    int last = -1;
    for (;;) {
        int ready = atomic_load(&st->ready_conns);
        if (ready == st->o->subscribers) return true;
        if ((double)(uv_hrtime() - t0) / 1e9 > st->o->ready_wait_s) {
            snprintf(st->fatal, sizeof st->fatal,
                     "only %d of %d subscriber connections subscribed within %g s", ready,
                     st->o->subscribers, st->o->ready_wait_s);
            return false;
        }
        if (!st->o->json && ready != last && ready > 0 && isatty(2)) {
            fprintf(stderr, "\rsubscribed: %d/%d connections", ready, st->o->subscribers);
            last = ready;
        }
        struct timespec ts = {.tv_nsec = 50000000};
        nanosleep(&ts, NULL);
    }
}

/* Every acknowledged append, once to each subscriber of its channel: the
 * sum over channels of acknowledged appends x subscribers (st->expected),
 * and each connection's share (the appends to its channels). An append
 * whose answer was lost (counted in the append errors) may have committed
 * all the same: its deliveries come on top. */
static void fan_expected(struct fan_state *st, const struct bench_result *app)
{
    const struct bench_fanout_opts *o = st->o;
    st->expected = 0;
    if (app->channel_acked == NULL) return; /* no appends ran */
    for (int ch = 0; ch < o->channels; ch++) {
        st->expected += app->channel_acked[ch] * st->channel_subs[ch];
    }
    for (int i = 0; i < o->subscribers; i++) {
        uint64_t want = 0;
        for (int k = 0; k < o->sub_channels; k++) want += app->channel_acked[plan_channel(o, i, k)];
        st->conns[i].expected = want;
    }
}

/* Every connection has its share; missing deliveries and the connections
 * short of theirs in st->undelivered and st->short_conns. */
static bool fan_complete(struct fan_state *st)
{
    st->undelivered = 0;
    st->short_conns = 0;
    for (int i = 0; i < st->o->subscribers; i++) {
        uint64_t got = atomic_load_explicit(&st->conns[i].delivered, memory_order_relaxed);
        if (got < st->conns[i].expected) {
            st->undelivered += st->conns[i].expected - got;
            st->short_conns++;
        }
    }
    return st->short_conns == 0;
}

/* After the appends: wait until every connection has its share, or until
 * deliveries pause (DRAIN_*), then end the loop. */
static void fan_stop(struct fan_state *st, pthread_t thread)
{
    uint64_t t0 = uv_hrtime(), last = atomic_load(&st->delivered), quiet_since = t0;
    for (;;) {
        if (last >= st->expected && fan_complete(st)) {
            st->drain_end = "complete";
            break;
        }
        if ((uv_hrtime() - t0) / 1000000 >= DRAIN_MAX_MS) {
            st->drain_end = "limit"; /* DRAIN_MAX_MS */
            break;
        }
        if ((uv_hrtime() - quiet_since) / 1000000 >= DRAIN_QUIET_MS) {
            st->drain_end = "quiet"; /* DRAIN_QUIET_MS without a delivery */
            break;
        }
        struct timespec ts = {.tv_nsec = 50000000};
        nanosleep(&ts, NULL);
        uint64_t now = atomic_load(&st->delivered);
        if (now != last) {
            last = now;
            quiet_since = uv_hrtime();
        }
    }
    st->drain_s = (double)(uv_hrtime() - t0) / 1e9;
    uv_async_send(&st->stop_async);
    pthread_join(thread, NULL);
    uv_loop_close(&st->loop);
    fan_complete(st); /* the final count */
}

static void fan_free(struct fan_state *st)
{
    for (int i = 0; st->conns != NULL && i < st->o->subscribers; i++) {
        herald_sub_close(st->conns[i].sub);
    }
    free(st->conns);
    free(st->channel_subs);
    bench_result_free(&st->deliver);
    bench_result_free(&st->commit);
}

/* On stderr, the first connections short of their share: where they were
 * and what their socket held (unread bytes: the server sent them). */
static void fan_say_short(const struct fan_state *st)
{
    const struct bench_fanout_opts *o = st->o;
    for (int i = 0, said = 0; i < o->subscribers && said < 5; i++) {
        const struct fan_conn *cn = &st->conns[i];
        uint64_t got = atomic_load(&cn->delivered);
        if (got >= cn->expected) continue;
        said++;
        fprintf(stderr, "herald bench: subscriber %d on %s (bench-%ld%s): %" PRIu64 " of %" PRIu64
                " delivered; %d bytes unread in its socket, wants %d, polled %d\n",
                i, o->sub_urls[i % o->n_sub_urls], plan_channel(o, i, 0),
                o->sub_channels > 1 ? " ..." : "", got, cn->expected, cn->unread, cn->want,
                cn->polled);
    }
}

/* ---------------------------------------------------------- the report */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void add_latency(json_t *o, const char *prefix, struct bench_result *r)
{
    if (r->lat_len > 1) qsort(r->lat_us, r->lat_len, sizeof *r->lat_us, cmp_u64);
    char key[32];
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50_us", 0.5}, {"p99_us", 0.99}, {"max_us", 1.0}};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        snprintf(key, sizeof key, "%s_%s", prefix, qs[i].name);
        json_object_set_new(o, key, json_integer((json_int_t)bench_percentile(
                                        r->lat_us, r->lat_len, qs[i].q)));
    }
}

static json_t *fan_summary(struct fan_state *st, const struct bench_config *cfg,
                           const struct bench_result *app)
{
    const struct bench_fanout_opts *o = st->o;
    double fanout = (double)o->subscribers * o->sub_channels / o->channels;
    json_t *errors = json_object();
    for (int i = 0; i < app->error_kinds; i++) {
        json_object_set_new(errors, app->errors[i].kind, json_integer((json_int_t)app->errors[i].count));
    }
    json_t *subs = json_array();
    for (int i = 0; i < o->n_sub_urls; i++) {
        json_array_append_new(subs, json_string(o->sub_urls[i]));
    }
    double acked_per_s = app->elapsed_s > 0 ? (double)app->acked / app->elapsed_s : 0.0;
    json_t *run = json_pack(
        "{s:i, s:i, s:i, s:f, s:o, s:i, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:i,"
        " s:I, s:I, s:I, s:o, s:o, s:o, s:s*, s:s*}",
        "subscribers", o->subscribers, "channels_per_subscriber", o->sub_channels, "channels",
        o->channels, "fanout_per_channel", fanout, "in_flight",
        cfg->rate > 0 ? json_null() : json_integer(o->in_flight), "connections",
        cfg->connections, "elapsed_s", app->elapsed_s, "appends_per_s", acked_per_s,
        "deliveries_per_s", st->win_s > 0 ? (double)st->win_delivered / st->win_s : 0.0,
        "appends_acked", (json_int_t)app->acked_total, "sent", (json_int_t)app->sent, "failed",
        (json_int_t)app->failed, "delivered", (json_int_t)atomic_load(&st->delivered),
        "expected", (json_int_t)st->expected, "undelivered", (json_int_t)st->undelivered,
        "subscribers_short", st->short_conns, "disconnects", (json_int_t)st->disconnects,
        "subscribe_errors", (json_int_t)st->sub_errors, "foreign_messages",
        (json_int_t)st->foreign, "append_errors", errors, "servers", bench_targets_json(cfg),
        "sub_servers", subs, "fatal", st->fatal[0] ? st->fatal : NULL, "append_fatal",
        app->fatal[0] ? app->fatal : NULL);
    /* How long the wait for deliveries after the appends took, and why it
     * ended: complete, quiet (none for DRAIN_QUIET_MS) or limit. */
    json_object_set_new(run, "drain_s", json_real(st->drain_s));
    json_object_set_new(run, "drain_end", st->drain_end ? json_string(st->drain_end) : json_null());
    if (cfg->rate > 0) { /* the open loop's figures, as `herald bench --rate` reports them */
        json_object_set_new(run, "offered_per_s", json_real(cfg->rate));
        json_object_set_new(run, "achieved_per_s", json_real((double)app->sent / cfg->duration_s));
        json_object_set_new(run, "acked_per_s", json_real(acked_per_s));
        json_object_set_new(run, "scheduled", json_integer((json_int_t)app->scheduled));
        json_object_set_new(run, "late", json_integer((json_int_t)app->late));
        uint64_t unsent = app->scheduled > app->sent ? app->scheduled - app->sent : 0;
        json_object_set_new(run, "unsent", json_integer((json_int_t)unsent));
    }
    add_latency(run, "deliver", &st->deliver);
    add_latency(run, "commit", &st->commit);
    return run;
}

static int64_t geti(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static double getf(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static void fan_print(json_t *r)
{
    bool rate = json_object_get(r, "offered_per_s") != NULL;
    printf("%11s %8s %8s %7s %13s %13s %16s %12s %12s %12s %12s %12s %12s %11s %11s\n",
           "subscribers", "chan/sub", "channels", "fanout", rate ? "offered_per_s" : "in_flight",
           rate ? "acked_per_s" : "appends_per_s", "deliveries_per_s", "deliv_p50_us",
           "deliv_p99_us", "deliv_max_us", "commit_p50_us", "commit_p99_us", "commit_max_us",
           "delivered", "expected");
    printf("%11d %8d %8d %7.1f %13.0f %13.1f %16.1f %12" PRId64 " %12" PRId64 " %12" PRId64
           " %12" PRId64 " %12" PRId64 " %12" PRId64 " %11" PRId64 " %11" PRId64 "\n",
           (int)geti(r, "subscribers"), (int)geti(r, "channels_per_subscriber"),
           (int)geti(r, "channels"), getf(r, "fanout_per_channel"),
           rate ? getf(r, "offered_per_s") : (double)geti(r, "in_flight"),
           getf(r, "appends_per_s"), getf(r, "deliveries_per_s"), geti(r, "deliver_p50_us"),
           geti(r, "deliver_p99_us"), geti(r, "deliver_max_us"), geti(r, "commit_p50_us"),
           geti(r, "commit_p99_us"), geti(r, "commit_max_us"), geti(r, "delivered"),
           geti(r, "expected"));
    printf("appends: sent %" PRId64 ", acked %" PRId64 ", failed %" PRId64, geti(r, "sent"),
           geti(r, "appends_acked"), geti(r, "failed"));
    if (rate) {
        printf(", late %" PRId64 ", unsent %" PRId64 " of %" PRId64 " scheduled (achieved %.1f/s)",
               geti(r, "late"), geti(r, "unsent"), geti(r, "scheduled"), getf(r, "achieved_per_s"));
    }
    const char *key;
    json_t *count;
    json_object_foreach(json_object_get(r, "append_errors"), key, count) {
        printf(", %s=%" PRId64, key, (int64_t)json_integer_value(count));
    }
    printf("; disconnects %" PRId64 ", subscribe errors %" PRId64 "\n", geti(r, "disconnects"),
           geti(r, "subscribe_errors"));
    if (geti(r, "subscribers_short") > 0) {
        const char *end = json_string_value(json_object_get(r, "drain_end"));
        bool quiet = end != NULL && strcmp(end, "quiet") == 0;
        printf("FAILED: %" PRId64 " of %" PRId64 " expected deliveries missing, on %" PRId64
               " of %" PRId64 " subscriber connections (waited %.1f s after the appends, "
               "until %s)\n",
               geti(r, "undelivered"), geti(r, "expected"), geti(r, "subscribers_short"),
               geti(r, "subscribers"), getf(r, "drain_s"),
               quiet ? "none came for " DRAIN_QUIET_TEXT : "the limit, " DRAIN_MAX_TEXT);
    }
    json_t *fatal = json_object_get(r, "fatal");
    if (json_is_string(fatal)) printf("FAILED: %s\n", json_string_value(fatal));
    fatal = json_object_get(r, "append_fatal");
    if (json_is_string(fatal)) printf("appends FAILED: %s\n", json_string_value(fatal));
}

/* Which servers, how many subscribers, what load. */
static void fan_print_head(const struct bench_config *cfg, const struct bench_fanout_opts *o)
{
    char targets[2048], load[96];
    printf("herald bench --fanout: appends to %s, subscribers on ",
           bench_targets_text(cfg, targets, sizeof targets));
    for (int i = 0; i < o->n_sub_urls; i++) printf("%s%s", i ? "," : "", o->sub_urls[i]);
    if (cfg->rate > 0) {
        snprintf(load, sizeof load, "%g appends/s offered over %d connections", cfg->rate,
                 cfg->connections);
    } else {
        snprintf(load, sizeof load, "%d appends in flight", o->in_flight);
    }
    printf("\n  %d subscriber connections x %d channels over %d channels, %s, %ld-byte payloads, "
           "%g s\n", o->subscribers, o->sub_channels, o->channels, load, o->payload_bytes,
           o->duration_s);
    fflush(stdout);
}

int bench_fanout_main(const struct bench_config *base, const struct bench_fanout_opts *o)
{
    struct fan_state *st = calloc(1, sizeof *st);
    if (st == NULL) return 1;
    st->o = o;
    st->token = base->token;
    st->ca_file = base->ca_file;
    raise_fd_limit();
    /* The appends: closed loop (--in-flight), or open loop at o->rate with
     * one request per connection at most, as `herald bench --rate`. */
    struct bench_config cfg = *base;
    cfg.rate = o->rate;
    if (o->rate > 0) {
        cfg.connections = cfg.in_flight = o->connections > 0 ? o->connections : RATE_CONNECTIONS;
    } else {
        cfg.in_flight = o->in_flight;
        cfg.connections = o->connections > 0 && o->connections < o->in_flight ? o->connections
                                                                              : o->in_flight;
    }
    cfg.stamp_payload = true;
    cfg.count_channels = true;
    cfg.on_window = on_window;
    cfg.window_arg = st;
    if (!o->json) fan_print_head(&cfg, o);
    pthread_t thread;
    struct bench_result app = {0};
    bool started = fan_start(st, &thread) == 0;
    if (started && wait_ready(st)) {
        if (!o->json && isatty(2)) fprintf(stderr, "\n");
        bench_run(&cfg, &app);
    }
    if (started) {
        fan_expected(st, &app);
        fan_stop(st, thread);
        fan_say_short(st);
    }
    json_t *run = fan_summary(st, &cfg, &app);
    /* Success: appends were acknowledged and every subscriber got every
     * acknowledged append of its channels. */
    int rc = app.acked_total > 0 && st->short_conns == 0 && st->fatal[0] == '\0' ? 0 : 1;
    if (o->json) {
        json_object_set_new(run, "bench", json_string("fanout"));
        json_object_set_new(run, "server", json_string(cfg.targets[0].url));
        char *text = json_dumps(run, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (text != NULL) puts(text);
        free(text);
    } else {
        fan_print(run);
    }
    json_decref(run);
    bench_result_free(&app);
    fan_free(st);
    free(st);
    return rc;
}
