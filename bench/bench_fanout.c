/* SPDX-License-Identifier: Apache-2.0 */
/* `herald bench --fanout`: many WebSocket subscribers (libherald's
 * non-blocking herald_sub API on one libuv loop, in a thread of their own)
 * while bench_run() appends over HTTP in the main thread. Every appended
 * payload starts with its send time, so each delivery gives an
 * append-to-delivery latency without any lookup, and the message's ts gives
 * a commit-to-delivery one (wall clocks: meaningful on one host). */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench_internal.h"
#include "herald/herald.h"

#define TICK_MS 250        /* deadlines of every subscription are checked this often */
/* After the appends: stop once every expected delivery came, or once
 * deliveries pause this long, or at most after DRAIN_MAX_MS (a loaded
 * node, e.g. a sanitizer build on two busy cores, may lag seconds). */
#define DRAIN_QUIET_MS 2000
#define DRAIN_MAX_MS 60000

struct fan_conn {
    struct fan_state *st;
    struct herald_sub *sub;
    uv_poll_t *poll;   /* on the current socket, or NULL */
    uv_timer_t timer;  /* reconnect delay */
    int events;        /* what poll watches */
    int poll_fd;       /* the socket poll watches */
    bool ready;        /* every channel subscribed once */
    int subscribed;    /* channels confirmed on this connection */
};

struct fan_state {
    const struct bench_fanout_opts *o;
    const char *url;
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
        drop_poll(&st->conns[i]);
        uv_close((uv_handle_t *)&st->conns[i].timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&st->tick, on_handle_closed);
    uv_close((uv_handle_t *)&st->stop_async, on_handle_closed);
}

/* Connection i subscribes channels i*K .. i*K+K-1 (mod C) from "now": with
 * K = 1 the connections spread evenly over the channels. */
static int conn_open(struct fan_state *st, int i, const struct herald_client *c)
{
    struct fan_conn *cn = &st->conns[i];
    cn->st = st;
    uv_timer_init(&st->loop, &cn->timer);
    cn->timer.data = cn;
    if (herald_sub_open(&cn->sub, c, fan_on_message, fan_on_event, cn) != 0) return -1;
    char name[32];
    for (int k = 0; k < st->o->sub_channels; k++) {
        long ch = ((long)i * st->o->sub_channels + k) % st->o->channels;
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

static int fan_start(struct fan_state *st, pthread_t *thread)
{
    struct herald_client c;
    if (herald_client_init(&c, st->url) != 0) {
        snprintf(st->fatal, sizeof st->fatal, "%s", herald_errmsg(&c));
        return -1;
    }
    c.token = st->token;
    c.ca_file = st->ca_file;
    atomic_store(&st->window_ns, UINT64_MAX);
    st->conns = calloc((size_t)st->o->subscribers, sizeof *st->conns);
    if (st->conns == NULL || uv_loop_init(&st->loop) != 0) return -1;
    uv_async_init(&st->loop, &st->stop_async, on_stop);
    st->stop_async.data = st;
    uv_timer_init(&st->loop, &st->tick);
    st->tick.data = st;
    uv_timer_start(&st->tick, on_tick, TICK_MS, TICK_MS);
    for (int i = 0; i < st->o->subscribers; i++) {
        if (conn_open(st, i, &c) != 0) {
            snprintf(st->fatal, sizeof st->fatal, "cannot set up subscriber %d", i);
            return -1;
        }
    }
    return pthread_create(thread, NULL, fan_thread, st) == 0 ? 0 : -1;
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

/* Every acknowledged append, once to each subscriber of its channel. */
static uint64_t fan_expected(const struct fan_state *st, const struct bench_result *app)
{
    const struct bench_fanout_opts *o = st->o;
    double fanout = (double)o->subscribers * o->sub_channels / o->channels;
    return (uint64_t)((double)app->acked_total * fanout + 0.5);
}

/* After the appends: wait for the deliveries (DRAIN_*), then end the loop. */
static void fan_stop(struct fan_state *st, pthread_t thread, uint64_t expected)
{
    uint64_t t0 = uv_hrtime(), last = atomic_load(&st->delivered), quiet_since = t0;
    while (last < expected && (uv_hrtime() - t0) / 1000000 < DRAIN_MAX_MS &&
           (uv_hrtime() - quiet_since) / 1000000 < DRAIN_QUIET_MS) {
        struct timespec ts = {.tv_nsec = 50000000};
        nanosleep(&ts, NULL);
        uint64_t now = atomic_load(&st->delivered);
        if (now != last) {
            last = now;
            quiet_since = uv_hrtime();
        }
    }
    uv_async_send(&st->stop_async);
    pthread_join(thread, NULL);
    uv_loop_close(&st->loop);
}

static void fan_free(struct fan_state *st)
{
    for (int i = 0; st->conns != NULL && i < st->o->subscribers; i++) {
        herald_sub_close(st->conns[i].sub);
    }
    free(st->conns);
    bench_result_free(&st->deliver);
    bench_result_free(&st->commit);
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

static json_t *fan_summary(struct fan_state *st, const struct bench_result *app)
{
    const struct bench_fanout_opts *o = st->o;
    double fanout = (double)o->subscribers * o->sub_channels / o->channels;
    json_t *errors = json_object();
    for (int i = 0; i < app->error_kinds; i++) {
        json_object_set_new(errors, app->errors[i].kind, json_integer((json_int_t)app->errors[i].count));
    }
    json_t *run = json_pack(
        "{s:i, s:i, s:i, s:f, s:i, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:s*, s:s*}",
        "subscribers", o->subscribers, "channels_per_subscriber", o->sub_channels, "channels",
        o->channels, "fanout_per_channel", fanout, "in_flight", o->in_flight, "elapsed_s",
        app->elapsed_s, "appends_per_s", app->elapsed_s > 0 ? (double)app->acked / app->elapsed_s : 0.0,
        "deliveries_per_s", st->win_s > 0 ? (double)st->win_delivered / st->win_s : 0.0,
        "appends_acked", (json_int_t)app->acked_total, "delivered",
        (json_int_t)atomic_load(&st->delivered), "expected",
        (json_int_t)fan_expected(st, app), "disconnects",
        (json_int_t)st->disconnects, "subscribe_errors", (json_int_t)st->sub_errors,
        "foreign_messages", (json_int_t)st->foreign, "append_errors", errors, "fatal",
        st->fatal[0] ? st->fatal : NULL, "append_fatal", app->fatal[0] ? app->fatal : NULL);
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
    return json_real_value(json_object_get(o, k));
}

static void fan_print(json_t *r)
{
    printf("%11s %8s %8s %7s %9s %13s %16s %12s %12s %12s %12s %12s %12s %11s %11s\n",
           "subscribers", "chan/sub", "channels", "fanout", "in_flight", "appends_per_s",
           "deliveries_per_s", "deliv_p50_us", "deliv_p99_us", "deliv_max_us", "commit_p50_us",
           "commit_p99_us", "commit_max_us", "delivered", "expected");
    printf("%11d %8d %8d %7.1f %9d %13.1f %16.1f %12" PRId64 " %12" PRId64 " %12" PRId64
           " %12" PRId64 " %12" PRId64 " %12" PRId64 " %11" PRId64 " %11" PRId64 "\n",
           (int)geti(r, "subscribers"), (int)geti(r, "channels_per_subscriber"),
           (int)geti(r, "channels"), getf(r, "fanout_per_channel"), (int)geti(r, "in_flight"),
           getf(r, "appends_per_s"), getf(r, "deliveries_per_s"), geti(r, "deliver_p50_us"),
           geti(r, "deliver_p99_us"), geti(r, "deliver_max_us"), geti(r, "commit_p50_us"),
           geti(r, "commit_p99_us"), geti(r, "commit_max_us"), geti(r, "delivered"),
           geti(r, "expected"));
    printf("disconnects %" PRId64 ", subscribe errors %" PRId64, geti(r, "disconnects"),
           geti(r, "subscribe_errors"));
    const char *key;
    json_t *count;
    json_object_foreach(json_object_get(r, "append_errors"), key, count) {
        printf(", append %s=%" PRId64, key, (int64_t)json_integer_value(count));
    }
    json_t *fatal = json_object_get(r, "fatal");
    if (json_is_string(fatal)) printf("\nFAILED: %s", json_string_value(fatal));
    fatal = json_object_get(r, "append_fatal");
    if (json_is_string(fatal)) printf("\nappends FAILED: %s", json_string_value(fatal));
    putchar('\n');
}

int bench_fanout_main(const char *url, const struct bench_config *base,
                      const struct bench_fanout_opts *o)
{
    struct fan_state *st = calloc(1, sizeof *st);
    if (st == NULL) return 1;
    st->o = o;
    st->url = url;
    st->token = base->token;
    st->ca_file = base->ca_file;
    raise_fd_limit();
    if (!o->json) {
        printf("herald bench --fanout: %s, %d subscriber connections x %d channels over %d "
               "channels, %d appends in flight, %ld-byte payloads, %g s\n",
               url, o->subscribers, o->sub_channels, o->channels, o->in_flight,
               o->payload_bytes, o->duration_s);
        fflush(stdout);
    }
    pthread_t thread;
    struct bench_result app = {0};
    bool started = fan_start(st, &thread) == 0;
    if (started && wait_ready(st)) {
        if (!o->json && isatty(2)) fprintf(stderr, "\n");
        struct bench_config cfg = *base;
        cfg.in_flight = o->in_flight;
        cfg.connections = o->connections > 0 && o->connections < o->in_flight ? o->connections
                                                                              : o->in_flight;
        cfg.stamp_payload = true;
        cfg.on_window = on_window;
        cfg.window_arg = st;
        bench_run(&cfg, &app);
    }
    if (started) fan_stop(st, thread, fan_expected(st, &app));
    json_t *run = fan_summary(st, &app);
    int rc = atomic_load(&st->delivered) > 0 && st->fatal[0] == '\0' ? 0 : 1;
    if (o->json) {
        json_object_set_new(run, "bench", json_string("fanout"));
        json_object_set_new(run, "server", json_string(url));
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
