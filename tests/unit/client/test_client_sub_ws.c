/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald subscriptions over a real WebSocket: a tiny echo peer
 * (wslay in server mode, on a socketpair, in a thread) answers the
 * handshake and sends every frame back. The client makes it echo server
 * frames by sending them itself, so the whole path (handshake, masking,
 * framing, partial reads, decoding, reconnect and resume) runs. It is no
 * model of herald: it understands nothing it receives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hd_error.h"
#include "sub_internal.h"

#define RECORD_MAX 64

enum peer_mode { PEER_ECHO, PEER_BAD_ACCEPT, PEER_404 };

struct peer {
    int fd;
    enum peer_mode mode;
    pthread_t thread;
    pthread_mutex_t mu;
    char *frames[RECORD_MAX]; /* text frames received, in order */
    int nframes;
    volatile int drop;        /* set: close the socket abruptly */
    volatile int done;
};

static ssize_t peer_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                         void *user)
{
    struct peer *p = user;
    (void)flags;
    ssize_t n = recv(p->fd, buf, len, 0);
    if (n > 0) return n;
    wslay_event_set_error(ctx, n < 0 && errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK
                                                        : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t peer_send(wslay_event_context_ptr ctx, const uint8_t *d, size_t len, int flags,
                         void *user)
{
    struct peer *p = user;
    (void)flags;
    ssize_t n = send(p->fd, d, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    wslay_event_set_error(ctx, errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK
                                               : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void peer_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                        void *user)
{
    struct peer *p = user;
    if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME) return;
    pthread_mutex_lock(&p->mu);
    if (a->opcode == WSLAY_TEXT_FRAME && p->nframes < RECORD_MAX) {
        p->frames[p->nframes++] = strndup((const char *)a->msg, a->msg_length);
    }
    pthread_mutex_unlock(&p->mu);
    struct wslay_event_msg m = {.opcode = a->opcode, .msg = a->msg, .msg_length = a->msg_length};
    wslay_event_queue_msg(ctx, &m);
}

/* Reads the upgrade request and answers it as mode says. */
static bool peer_handshake(struct peer *p)
{
    char req[4096];
    size_t len = 0;
    while (len < sizeof req - 1) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        poll(&pfd, 1, 100);
        ssize_t n = recv(p->fd, req + len, sizeof req - 1 - len, 0);
        if (n == 0 || p->drop) return false;
        if (n > 0) len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL) break;
    }
    char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k == NULL) return false;
    char key[HERALD__WS_KEY_LEN + 1] = "", accept[HERALD__WS_ACCEPT_LEN + 1];
    memcpy(key, k + 19, HERALD__WS_KEY_LEN);
    herald__ws_accept(key, accept, sizeof accept);
    if (p->mode == PEER_BAD_ACCEPT) accept[0] = accept[0] == 'A' ? 'B' : 'A';
    char answer[512];
    int n = p->mode == PEER_404
                ? snprintf(answer, sizeof answer, "HTTP/1.1 404 Not Found\r\n"
                                                  "Content-Length: 0\r\n\r\n")
                : snprintf(answer, sizeof answer,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
    return send(p->fd, answer, (size_t)n, MSG_NOSIGNAL) == n && p->mode == PEER_ECHO;
}

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = peer_recv, .send_callback = peer_send, .on_msg_recv_callback = peer_on_msg};
    wslay_event_context_ptr ctx = NULL;
    if (peer_handshake(p) && wslay_event_context_server_init(&ctx, &cbs, p) == 0) {
        while (!p->drop && (wslay_event_want_read(ctx) || wslay_event_want_write(ctx))) {
            struct pollfd pfd = {.fd = p->fd,
                                 .events = POLLIN | (wslay_event_want_write(ctx) ? POLLOUT : 0)};
            poll(&pfd, 1, 20);
            if (wslay_event_recv(ctx) != 0 || wslay_event_send(ctx) != 0) break;
        }
        wslay_event_context_free(ctx);
    }
    close(p->fd);
    p->done = 1;
    return NULL;
}

static struct peer *peer_start(int fd, enum peer_mode mode)
{
    struct peer *p = calloc(1, sizeof *p);
    p->fd = fd;
    p->mode = mode;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    pthread_mutex_init(&p->mu, NULL);
    assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
    return p;
}

static void peer_stop(struct peer *p)
{
    p->drop = 1;
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->nframes; i++) free(p->frames[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int peer_count(struct peer *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->nframes;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* ------------------------------------------------------------- client */

struct env {
    struct peer *peers[8]; /* one per connection */
    int npeers;
    enum peer_mode mode;
    int messages;
    char got[16][64];      /* "channel:seq" of each message */
    int events[16];
    uint64_t stop_at;      /* stop when messages reaches it */
};

static int env_connect(struct herald_sub *s, void *arg)
{
    struct env *e = arg;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    assert_true(e->npeers < 8);
    e->peers[e->npeers++] = peer_start(sv[1], e->mode);
    return herald__sub_attach(s, sv[0]);
}

static int env_message(void *arg, const struct herald_message *m)
{
    struct env *e = arg;
    if (e->messages < 16) {
        snprintf(e->got[e->messages], sizeof e->got[0], "%s:%llu", m->channel,
                 (unsigned long long)m->seq);
    }
    e->messages++;
    return e->stop_at != 0 && (uint64_t)e->messages >= e->stop_at;
}

static int env_event(void *arg, const struct herald_sub_event *ev)
{
    struct env *e = arg;
    e->events[ev->type]++;
    return 0;
}

static struct herald_sub *env_open(struct env *e)
{
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "http://127.0.0.1:7400/pre"), 0);
    c.backoff_initial_ms = 5;
    c.backoff_max_ms = 20;
    struct herald_sub *s;
    assert_int_equal(herald_sub_open(&s, &c, env_message, env_event, e), 0);
    s->connector = env_connect;
    s->connector_arg = e;
    return s;
}

static void env_close(struct env *e, struct herald_sub *s)
{
    herald_sub_close(s);
    for (int i = 0; i < e->npeers; i++) peer_stop(e->peers[i]);
}

/* Runs s until the current peer has recorded n frames (or 5 s). */
static void run_until_recorded(struct herald_sub *s, struct env *e, int n)
{
    for (int i = 0; i < 500 && (e->npeers == 0 || peer_count(e->peers[e->npeers - 1]) < n); i++) {
        assert_true(herald_sub_run(s, 10) >= 0);
    }
    assert_true(peer_count(e->peers[e->npeers - 1]) >= n);
}

static void echo(struct herald_sub *s, const char *text)
{
    assert_int_equal(herald__sub_queue(s, text, strlen(text)), 0);
}

static const char *frame_msg(const char *ch, int seq)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"message\",\"channel\":\"%s\",\"seq\":%d,"
             "\"ts\":\"5.000001\",\"nonce\":\"n%d\",\"payload\":\"x\"}", ch, seq, seq);
    return buf;
}

static void test_ws_deliver_and_resume(void **state)
{
    (void)state;
    struct env e = {.mode = PEER_ECHO};
    struct herald_sub *s = env_open(&e);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald_sub_add(s, "b", HERALD_SUB_NOW), 0);
    run_until_recorded(s, &e, 1);
    assert_int_equal(e.events[HERALD_SUB_CONNECTED], 1);
    struct peer *p1 = e.peers[0];
    assert_non_null(strstr(p1->frames[0], "\"type\":\"subscribe\""));
    assert_non_null(strstr(p1->frames[0], "\"a\":0"));
    assert_non_null(strstr(p1->frames[0], "\"b\":\"now\""));
    /* Server frames, echoed: subscribed, then messages. */
    echo(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":2}");
    echo(s, "{\"type\":\"subscribed\",\"channel\":\"b\",\"head\":7}");
    echo(s, frame_msg("a", 1));
    echo(s, frame_msg("b", 8));
    echo(s, frame_msg("a", 2));
    assert_int_equal(herald_sub_append(s, "ap1", "a", "hello", 5, "nonce-1"), 0);
    e.stop_at = 3;
    for (int i = 0; i < 500 && e.messages < 3; i++) assert_true(herald_sub_run(s, 10) >= 0);
    assert_int_equal(e.messages, 3);
    assert_string_equal(e.got[0], "a:1");
    assert_string_equal(e.got[1], "b:8");
    assert_string_equal(e.got[2], "a:2");
    assert_int_equal(e.events[HERALD_SUB_SUBSCRIBED], 2);
    /* The peer drops the connection: the client reconnects and subscribes
     * every channel from its last seq, and sends the append again. */
    run_until_recorded(s, &e, 7);
    p1->drop = 1;
    e.stop_at = 0;
    for (int i = 0; i < 500 && (e.npeers < 2 || peer_count(e.peers[1]) < 2); i++) {
        assert_true(herald_sub_run(s, 10) >= 0);
    }
    assert_int_equal(e.npeers, 2);
    assert_true(e.events[HERALD_SUB_DISCONNECTED] >= 1);
    assert_int_equal(e.events[HERALD_SUB_CONNECTED], 2);
    struct peer *p2 = e.peers[1];
    assert_non_null(strstr(p2->frames[0], "\"a\":2"));
    assert_non_null(strstr(p2->frames[0], "\"b\":8"));
    assert_non_null(strstr(p2->frames[1], "\"type\":\"append\""));
    assert_non_null(strstr(p2->frames[1], "\"id\":\"ap1\""));
    assert_non_null(strstr(p2->frames[1], "\"nonce\":\"nonce-1\""));
    assert_int_equal(herald_sub_appends_in_flight(s), 1);
    env_close(&e, s);
}

/* A seq skipped by the "server" fails the subscription, in a text frame or
 * a binary one (?frames=binary: the same JSON, the same checks); so does a
 * frame that is not JSON, and a frame over the size limit. */
static int run_bad(const char *text, size_t len, bool binary, uint64_t max_frame)
{
    struct env e = {.mode = PEER_ECHO};
    struct herald_sub *s = env_open(&e);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    run_until_recorded(s, &e, 1);
    s->max_frame = max_frame;
    wslay_event_config_set_max_recv_msg_length(s->ws, max_frame);
    struct wslay_event_msg m = {.opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                                .msg = (const uint8_t *)text, .msg_length = len};
    assert_int_equal(wslay_event_queue_msg(s->ws, &m), 0);
    int rv = 0;
    for (int i = 0; i < 500 && rv == 0; i++) rv = herald_sub_run(s, 10);
    assert_int_equal(herald_sub_process(s), rv); /* stays failed */
    assert_int_equal(herald_sub_run(s, 10), rv);
    env_close(&e, s);
    return rv;
}

/* Queues text as a binary frame; the echo peer sends it back as one. */
static void echo_binary(struct herald_sub *s, const char *text)
{
    struct wslay_event_msg m = {.opcode = WSLAY_BINARY_FRAME, .msg = (const uint8_t *)text,
                                .msg_length = strlen(text)};
    assert_int_equal(wslay_event_queue_msg(s->ws, &m), 0);
}

/* ?frames=binary: the server's frames come binary and are read as the
 * text ones are (an earlier client refused them, HD_ECORRUPT). */
static void test_ws_binary_frames_delivered(void **state)
{
    (void)state;
    struct env e = {.mode = PEER_ECHO};
    struct herald_sub *s = env_open(&e);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    run_until_recorded(s, &e, 1);
    echo_binary(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":2}");
    echo_binary(s, frame_msg("a", 1));
    echo_binary(s, frame_msg("a", 2));
    e.stop_at = 2;
    for (int i = 0; i < 500 && e.messages < 2; i++) assert_true(herald_sub_run(s, 10) >= 0);
    assert_int_equal(e.messages, 2);
    assert_string_equal(e.got[0], "a:1");
    assert_string_equal(e.got[1], "a:2");
    assert_int_equal(e.events[HERALD_SUB_SUBSCRIBED], 1);
    env_close(&e, s);
}

static void test_ws_bad_frames(void **state)
{
    (void)state;
    const char *gap = "{\"type\":\"message\",\"channel\":\"a\",\"seq\":2,\"ts\":\"1.0\","
                      "\"payload\":\"x\"}";
    assert_int_equal(run_bad(gap, strlen(gap), false, HERALD__SUB_FRAME_MAX), HD_ECORRUPT);
    assert_int_equal(run_bad("not json", 8, false, HERALD__SUB_FRAME_MAX), HD_ECORRUPT);
    assert_int_equal(run_bad(gap, strlen(gap), true, HERALD__SUB_FRAME_MAX), HD_ECORRUPT);
    size_t big = 100000;
    char *text = malloc(big);
    memset(text, 'x', big);
    assert_int_equal(run_bad(text, big, false, 4096), HD_ETOOBIG);
    free(text);
}

static void test_ws_refused_handshake(void **state)
{
    (void)state;
    struct env e = {.mode = PEER_BAD_ACCEPT};
    struct herald_sub *s = env_open(&e);
    assert_int_equal(herald_sub_run(s, 2000), HD_ECORRUPT);
    assert_non_null(strstr(herald_sub_errmsg(s), "Sec-WebSocket-Accept"));
    env_close(&e, s);
    struct env e2 = {.mode = PEER_404};
    s = env_open(&e2);
    assert_int_equal(herald_sub_run(s, 2000), HD_ENOTFOUND);
    env_close(&e2, s);
}

/* No server at all: herald_sub_run gives up after retry_deadline_ms. */
static void test_ws_unreachable(void **state)
{
    (void)state;
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "http://127.0.0.1:1"), 0);
    c.retry_deadline_ms = 200;
    c.backoff_initial_ms = 10;
    c.backoff_max_ms = 40;
    struct herald_sub *s;
    assert_int_equal(herald_sub_open(&s, &c, env_message, NULL, NULL), 0);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald_sub_run(s, 5000), HD_EUNAVAIL);
    assert_non_null(strstr(herald_sub_errmsg(s), "no connection"));
    herald_sub_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_deliver_and_resume),
        cmocka_unit_test(test_ws_binary_frames_delivered),
        cmocka_unit_test(test_ws_bad_frames),
        cmocka_unit_test(test_ws_refused_handshake),
        cmocka_unit_test(test_ws_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
