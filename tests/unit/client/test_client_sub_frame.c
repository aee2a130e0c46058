/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for libherald's subscription pieces that need no connection: the
 * decoding of every server frame, the handshake checks, the append frame,
 * and the per-channel bookkeeping (positions, gaps, repeats, removals). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_error.h"
#include "sub_internal.h"

static int decode(const char *text, struct herald__frame *f, struct herald__buf *scratch)
{
    char why[256];
    return herald__frame_decode(text, strlen(text), scratch, f, why, sizeof why);
}

static void test_frame_message(void **state)
{
    (void)state;
    struct herald__buf scratch = {0};
    struct herald__frame f;
    assert_int_equal(decode("{\"type\":\"message\",\"channel\":\"room-1\",\"seq\":58,"
                            "\"ts\":\"1732234567.000123\",\"nonce\":\"n-9\",\"payload\":\"hi\"}",
                            &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_MESSAGE);
    assert_string_equal(f.msg.channel, "room-1");
    assert_int_equal(f.msg.seq, 58);
    assert_int_equal(f.msg.ts_us, 1732234567000123ULL);
    assert_string_equal(f.msg.nonce, "n-9");
    assert_int_equal(f.msg.payload_len, 2);
    assert_memory_equal(f.msg.payload, "hi", 2);
    assert_false(f.msg.payload_binary);
    assert_null(f.root); /* read in place, no JSON tree */
    herald__frame_free(&f);
    /* An escape or a non-ASCII byte takes jansson's path, to the same
     * fields: the escapes decoded, the strings NUL-terminated. */
    assert_int_equal(decode("{\"type\":\"message\",\"channel\":\"room-1\",\"seq\":59,"
                            "\"ts\":\"1732234567.000124\",\"nonce\":\"n-10\","
                            "\"payload\":\"say \\\"hi\\\" \xc3\xa9\"}",
                            &f, &scratch), 0);
    assert_non_null(f.root);
    assert_string_equal(f.msg.channel, "room-1");
    assert_int_equal(f.msg.seq, 59);
    assert_string_equal(f.msg.nonce, "n-10");
    assert_string_equal((const char *)f.msg.payload, "say \"hi\" \xc3\xa9");
    herald__frame_free(&f);
    /* payload_b64: decoded into scratch, flagged binary. */
    assert_int_equal(decode("{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"ts\":\"1.5\","
                            "\"nonce\":\"x\",\"payload_b64\":\"AP8=\"}", &f, &scratch), 0);
    assert_true(f.msg.payload_binary);
    assert_int_equal(f.msg.payload_len, 2);
    assert_int_equal(f.msg.payload[0], 0);
    assert_int_equal(f.msg.payload[1], 0xff);
    herald__frame_free(&f);
    herald__buf_free(&scratch);
}

static void test_frame_others(void **state)
{
    (void)state;
    struct herald__buf scratch = {0};
    struct herald__frame f;
    assert_int_equal(decode("{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":7}", &f,
                            &scratch), 0);
    assert_int_equal(f.type, HERALD__F_SUBSCRIBED);
    assert_string_equal(f.channel, "a");
    assert_int_equal(f.seq, 7);
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"unsubscribed\",\"channel\":\"a\"}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_UNSUBSCRIBED);
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"ack\",\"id\":\"a1\",\"channel\":\"r\",\"seq\":3,"
                            "\"ts\":\"2.000001\",\"duplicate\":true}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_ACK);
    assert_string_equal(f.id, "a1");
    assert_int_equal(f.seq, 3);
    assert_int_equal(f.ts_us, 2000001);
    assert_true(f.duplicate);
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"error\",\"code\":\"bad_channel\",\"message\":\"no\","
                            "\"channel\":\"bad channel!\",\"id\":\"s1\"}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_ERROR);
    assert_string_equal(f.code, "bad_channel");
    assert_string_equal(f.channel, "bad channel!");
    assert_string_equal(f.id, "s1");
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"pong\",\"id\":\"p1\"}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_PONG);
    assert_string_equal(f.id, "p1");
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"pong\"}", &f, &scratch), 0);
    assert_null(f.id);
    herald__frame_free(&f);
    assert_int_equal(decode("{\"type\":\"closing\",\"reason\":\"slow_consumer\","
                            "\"message\":\"behind\"}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_CLOSING);
    assert_string_equal(f.code, "slow_consumer");
    herald__frame_free(&f);
    /* A type from a newer server is not an error. */
    assert_int_equal(decode("{\"type\":\"stats\",\"x\":1}", &f, &scratch), 0);
    assert_int_equal(f.type, HERALD__F_UNKNOWN);
    herald__frame_free(&f);
    herald__buf_free(&scratch);
}

static void test_frame_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "not json", "[1,2]", "\"message\"", "{}", "{\"type\":7}",
        "{\"type\":\"message\",\"type\":\"ack\"}", /* duplicate key */
        "{\"type\":\"message\",\"channel\":\"c\",\"ts\":\"1.0\",\"nonce\":\"n\",\"payload\":\"\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":0,\"ts\":\"1.0\",\"payload\":\"\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":-1,\"ts\":\"1.0\",\"payload\":\"\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1.5,\"ts\":\"1.0\",\"payload\":\"\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"ts\":1,\"payload\":\"\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"ts\":\"1.0\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"ts\":\"1.0\",\"payload_b64\":\"***\"}",
        "{\"type\":\"message\",\"channel\":\"a b\",\"seq\":1,\"ts\":\"1.0\",\"payload\":\"\"}",
        "{\"type\":\"message\",\"seq\":1,\"ts\":\"1.0\",\"payload\":\"\"}",
        "{\"type\":\"subscribed\",\"channel\":\"a\"}",
        "{\"type\":\"subscribed\",\"head\":1}",
        "{\"type\":\"unsubscribed\"}",
        "{\"type\":\"ack\",\"channel\":\"r\",\"seq\":3,\"ts\":\"2.0\",\"duplicate\":false}",
        "{\"type\":\"ack\",\"id\":\"a\",\"channel\":\"r\",\"seq\":3,\"ts\":\"2.0\"}",
        "{\"type\":\"ack\",\"id\":\"a\",\"channel\":\"r\",\"ts\":\"2.0\",\"duplicate\":false}",
        "{\"type\":\"error\",\"message\":\"no code\"}",
        "{\"type\":\"closing\",\"message\":\"no reason\"}",
        "{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"ts\":\"1.0\",\"payload\":\"\xff\"}",
    };
    struct herald__buf scratch = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct herald__frame f;
        char why[256] = "";
        int rv = herald__frame_decode(bad[i], strlen(bad[i]), &scratch, &f, why, sizeof why);
        if (rv != HD_ECORRUPT) fail_msg("accepted: %s", bad[i]);
        assert_true(why[0] != '\0');
        herald__frame_free(&f);
    }
    herald__buf_free(&scratch);
}

static void test_error_codes(void **state)
{
    (void)state;
    assert_int_equal(herald__frame_error_rv("outcome_unknown"), HD_EUNKNOWN);
    assert_int_equal(herald__frame_error_rv("overloaded"), HD_EUNAVAIL);
    assert_int_equal(herald__frame_error_rv("epoch_ahead"), HD_EUNAVAIL);
    assert_int_equal(herald__frame_error_rv("payload_too_large"), HD_ETOOBIG);
    assert_int_equal(herald__frame_error_rv("bad_nonce"), HD_EINVAL);
    assert_int_equal(herald__frame_error_rv("something_new"), HD_EINVAL);
}

static void test_handshake(void **state)
{
    (void)state;
    char accept[HERALD__WS_ACCEPT_LEN + 1];
    /* The example of RFC 6455 section 1.3. */
    assert_int_equal(herald__ws_accept("dGhlIHNhbXBsZSBub25jZQ==", accept, sizeof accept), 0);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char key[HERALD__WS_KEY_LEN + 1], key2[HERALD__WS_KEY_LEN + 1];
    assert_int_equal(herald__ws_key(key, sizeof key), 0);
    assert_int_equal(herald__ws_key(key2, sizeof key2), 0);
    assert_int_equal(strlen(key), HERALD__WS_KEY_LEN);
    assert_string_not_equal(key, key2);
    struct herald__buf req = {0};
    assert_int_equal(herald__ws_request(&req, "::1", "7400", "/p", key, NULL), 0);
    assert_non_null(strstr(req.data, "GET /p/v1/subscribe?frames=binary HTTP/1.1\r\n"
                                    "Host: [::1]:7400\r\n"));
    assert_non_null(strstr(req.data, "Sec-WebSocket-Version: 13\r\n"));
    herald__buf_free(&req);

    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";
    char why[160];
    int status;
    const char *good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(herald__ws_check_answer(good, strlen(good), k, &status, why, sizeof why), 0);
    assert_int_equal(status, 101);
    const char *wrong = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
    assert_int_equal(herald__ws_check_answer(wrong, strlen(wrong), k, &status, why, sizeof why),
                     HD_ECORRUPT);
    const char *no_up = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    assert_int_equal(herald__ws_check_answer(no_up, strlen(no_up), k, &status, why, sizeof why),
                     HD_ECORRUPT);
    const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(herald__ws_check_answer(nf, strlen(nf), k, &status, why, sizeof why),
                     HD_ENOTFOUND);
    assert_int_equal(status, 404);
    const char *busy = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n";
    assert_int_equal(herald__ws_check_answer(busy, strlen(busy), k, &status, why, sizeof why),
                     HD_EUNAVAIL);
    assert_int_equal(herald__ws_check_answer("garbage\r\n\r\n", 11, k, &status, why, sizeof why),
                     HD_ECORRUPT);
}

static void test_append_frame(void **state)
{
    (void)state;
    struct herald__buf b = {0};
    assert_int_equal(herald__frame_append(&b, "a1", "room", "n\"1", "hi", 2), 0);
    assert_string_equal(b.data, "{\"type\":\"append\",\"id\":\"a1\",\"channel\":\"room\","
                                "\"nonce\":\"n\\\"1\",\"payload\":\"hi\"}");
    herald__buf_reset(&b);
    assert_int_equal(herald__frame_append(&b, "a2", "room", "n", "\x00\xff", 2), 0);
    assert_non_null(strstr(b.data, "\"payload_b64\":\"AP8=\""));
    herald__buf_reset(&b);
    assert_int_equal(herald__frame_append(&b, "", "room", "n", "x", 1), HD_EINVAL);
    assert_int_equal(herald__frame_append(&b, "a", "room", "", "x", 1), HD_EINVAL);
    herald__buf_free(&b);
}

/* ----------------------------------------------------------- bookkeeping */

struct seen {
    int messages;
    uint64_t last_seq;
    char last_channel[HERALD_CHANNEL_MAX + 1];
    int events[16]; /* count per type */
    int stop_after; /* stop when messages reaches it (0: never) */
    uint64_t last_gone_first, last_gone_epoch;
};

static int seen_message(void *arg, const struct herald_message *m)
{
    struct seen *sn = arg;
    sn->messages++;
    sn->last_seq = m->seq;
    snprintf(sn->last_channel, sizeof sn->last_channel, "%s", m->channel);
    return sn->stop_after != 0 && sn->messages >= sn->stop_after;
}

static int seen_event(void *arg, const struct herald_sub_event *ev)
{
    struct seen *sn = arg;
    sn->events[ev->type]++;
    if (ev->type == HERALD_SUB_GONE) {
        sn->last_gone_first = ev->seq;
        sn->last_gone_epoch = ev->epoch;
    }
    return 0;
}

static ssize_t nosend(wslay_event_context_ptr ctx, const uint8_t *d, size_t l, int f, void *u)
{
    (void)d, (void)l, (void)f, (void)u;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static ssize_t norecv(wslay_event_context_ptr ctx, uint8_t *d, size_t l, int f, void *u)
{
    (void)d, (void)l, (void)f, (void)u;
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
}

static int zeromask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *u)
{
    (void)ctx, (void)u;
    memset(buf, 0, len);
    return 0;
}

/* A subscription that believes it is connected; what it sends stays queued
 * in wslay, and frames are fed to it directly. */
static struct herald_sub *fake_open(struct seen *sn)
{
    struct herald_client c;
    assert_int_equal(herald_client_init(&c, "http://127.0.0.1:1"), 0);
    struct herald_sub *s;
    assert_int_equal(herald_sub_open(&s, &c, seen_message, seen_event, sn), 0);
    static const struct wslay_event_callbacks cbs = {.recv_callback = norecv,
                                                     .send_callback = nosend,
                                                     .genmask_callback = zeromask};
    assert_int_equal(wslay_event_context_client_init(&s->ws, &cbs, s), 0);
    s->state = HERALD__S_OPEN;
    s->last_rx_ms = herald__now_ms();
    return s;
}

static int feed(struct herald_sub *s, const char *text)
{
    return herald__sub_on_text(s, text, strlen(text));
}

static char *msg(const char *ch, uint64_t seq)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"message\",\"channel\":\"%s\",\"seq\":%llu,"
             "\"ts\":\"1.000001\",\"nonce\":\"n\",\"payload\":\"p\"}", ch,
             (unsigned long long)seq);
    return buf;
}

static void test_positions(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald_sub_add(s, "b", 41), 0);
    assert_int_equal(herald_sub_add(s, "c", HERALD_SUB_NOW), 0);
    assert_int_equal(herald_sub_add(s, "a", 0), HD_EEXIST);
    assert_int_equal(herald_sub_add(s, "bad id", 0), HD_EINVAL);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":2}"), 0);
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"c\",\"head\":9}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_SUBSCRIBED], 2);
    uint64_t pos;
    assert_int_equal(herald_sub_position(s, "c", &pos), 0);
    assert_int_equal(pos, 9); /* "now" became the head */
    assert_int_equal(feed(s, msg("a", 1)), 0);
    assert_int_equal(feed(s, msg("b", 42)), 0); /* before its subscribed: order holds */
    assert_int_equal(feed(s, msg("a", 2)), 0);
    assert_int_equal(feed(s, msg("c", 10)), 0);
    assert_int_equal(sn.messages, 4);
    assert_int_equal(herald_sub_position(s, "a", &pos), 0);
    assert_int_equal(pos, 2);
    assert_int_equal(herald_sub_position(s, "b", &pos), 0);
    assert_int_equal(pos, 42);
    assert_int_equal(herald_sub_position(s, "zz", &pos), HD_ENOTFOUND);
    /* Removing: nothing of it is delivered after, even if still in flight. */
    assert_int_equal(herald_sub_remove(s, "a"), 0);
    assert_int_equal(herald_sub_remove(s, "a"), HD_ENOTFOUND);
    assert_int_equal(herald_sub_add(s, "a", 0), HD_EBUSY);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, msg("a", 3)), 0);
    assert_int_equal(sn.messages, 4);
    assert_int_equal(feed(s, "{\"type\":\"unsubscribed\",\"channel\":\"a\"}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_UNSUBSCRIBED], 1);
    assert_int_equal(herald_sub_channel_count(s), 2);
    assert_int_equal(herald_sub_add(s, "a", 3), 0); /* gone: may come back */
    herald_sub_close(s);
}

static void test_gap_and_repeat(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 5), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, msg("a", 6)), 0);
    assert_int_equal(feed(s, msg("a", 8)), HD_ECORRUPT);
    assert_non_null(strstr(herald_sub_errmsg(s), "gap"));
    assert_int_equal(feed(s, msg("a", 7)), HD_ECORRUPT); /* stays failed */
    assert_int_equal(sn.messages, 1);
    herald_sub_close(s);

    s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 5), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, msg("a", 5)), HD_ECORRUPT);
    assert_non_null(strstr(herald_sub_errmsg(s), "repeat"));
    herald_sub_close(s);

    s = fake_open(&sn); /* a channel never subscribed */
    assert_int_equal(feed(s, msg("x", 1)), HD_ECORRUPT);
    herald_sub_close(s);
}

/* A gone frame ends the channel's subscription: no reconnect asks for it
 * again, its messages are no longer taken, and it may be added again. */
static void test_gone(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald_sub_add(s, "b", 0), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":2}"), 0);
    assert_int_equal(feed(s, msg("a", 1)), 0);
    assert_int_equal(feed(s, "{\"type\":\"gone\",\"channel\":\"a\",\"first_seq\":1,"
                             "\"epoch\":3}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_GONE], 1);
    assert_int_equal(sn.last_gone_first, 1);
    assert_int_equal(sn.last_gone_epoch, 3);
    uint64_t pos;
    assert_int_equal(herald_sub_position(s, "a", &pos), HD_ENOTFOUND);
    assert_int_equal(herald_sub_channel_count(s), 1);
    /* The epoch of "subscribed" must be a count when present. */
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"b\",\"head\":0,"
                             "\"epoch\":-1}"), HD_ECORRUPT);
    herald_sub_close(s);
    s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "b", 0), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    /* Gone at subscribe time (no subscribed first): the same. */
    assert_int_equal(feed(s, "{\"type\":\"gone\",\"channel\":\"b\",\"first_seq\":7,"
                             "\"epoch\":0}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_GONE], 2);
    assert_int_equal(herald_sub_channel_count(s), 0);
    /* A gone of a channel not subscribed changes nothing. */
    assert_int_equal(feed(s, "{\"type\":\"gone\",\"channel\":\"z\",\"first_seq\":1,"
                             "\"epoch\":0}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_GONE], 2);
    assert_int_equal(herald_sub_add(s, "a", 0), 0); /* may come back */
    assert_int_equal(feed(s, "{\"type\":\"gone\",\"channel\":\"a\"}"), HD_ECORRUPT);
    herald_sub_close(s);
}

/* The epoch of a position: given with it, or learnt from "subscribed". */
static void test_epochs(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    uint64_t e = 99;
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald_sub_epoch(s, "a", &e), HD_EBUSY); /* not known yet */
    assert_int_equal(herald_sub_add_epoch(s, "b", 7, 2), 0);
    assert_int_equal(herald_sub_epoch(s, "b", &e), 0);
    assert_int_equal(e, 2);
    assert_int_equal(herald_sub_add_epoch(s, "c", HERALD_SUB_NOW, 0), HD_EINVAL);
    assert_int_equal(herald_sub_epoch(s, "zz", &e), HD_ENOTFOUND);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":4,"
                             "\"epoch\":3}"), 0);
    assert_int_equal(herald_sub_epoch(s, "a", &e), 0);
    assert_int_equal(e, 3);
    /* A server that does not say (older) leaves the given epoch. */
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"b\",\"head\":9}"), 0);
    assert_int_equal(herald_sub_epoch(s, "b", &e), 0);
    assert_int_equal(e, 2);
    herald_sub_close(s);
}

/* epoch_ahead (a node behind a delete): the channel waits a backoff and is
 * asked for again, told to the user once, until it is subscribed. */
static void test_epoch_ahead_waits_and_asks_again(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    s->cfg.backoff_initial_ms = 20;
    s->cfg.backoff_max_ms = 40;
    const char *ahead = "{\"type\":\"error\",\"channel\":\"a\",\"code\":\"epoch_ahead\","
                        "\"message\":\"behind\"}";
    assert_int_equal(herald_sub_add_epoch(s, "a", 3, 2), 0);
    assert_int_equal(herald_sub_add(s, "b", 0), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    struct herald__chan *a = (struct herald__chan *)herald__smap_get(&s->chans, "a", 1);
    assert_int_equal(a->state, HERALD__CH_SENT);
    assert_int_equal(feed(s, ahead), 0);
    assert_int_equal(sn.events[HERALD_SUB_ERROR], 1);
    assert_int_equal(herald_sub_channel_count(s), 2); /* kept, not forgotten */
    assert_int_equal(a->state, HERALD__CH_WANTED);
    assert_false(a->dirty);
    int64_t first_wait = s->ahead_at_ms - herald__now_ms();
    assert_true(first_wait > 0 && first_wait <= 20);
    assert_true(herald_sub_timeout_ms(s) <= 20); /* the run loop wakes for it */
    herald__sub_ahead_due(s); /* not yet */
    assert_false(a->dirty);
    while (herald__now_ms() < s->ahead_at_ms) {
    }
    herald__sub_ahead_due(s);
    assert_true(a->dirty);
    assert_int_equal(s->ahead_at_ms, 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(a->state, HERALD__CH_SENT);
    /* Again: not told again, and the wait doubles (up to the cap). */
    assert_int_equal(feed(s, ahead), 0);
    assert_int_equal(sn.events[HERALD_SUB_ERROR], 1);
    int64_t second_wait = s->ahead_at_ms - herald__now_ms();
    assert_true(second_wait > 20 && second_wait <= 40);
    /* A reconnect asks for it at once. */
    assert_int_equal(herald__sub_resume(s), 0);
    assert_int_equal(a->state, HERALD__CH_SENT);
    assert_int_equal(s->ahead_at_ms, 0);
    assert_int_equal(feed(s, "{\"type\":\"subscribed\",\"channel\":\"a\",\"head\":0,"
                             "\"epoch\":2}"), 0);
    assert_int_equal(a->ahead_tries, 0);
    assert_int_equal(sn.events[HERALD_SUB_SUBSCRIBED], 1);
    /* Told again after a subscription in between; a waiting channel can be
     * removed, and nothing is asked for it then. */
    assert_int_equal(herald_sub_add_epoch(s, "c", 0, 5), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, "{\"type\":\"error\",\"channel\":\"c\","
                             "\"code\":\"epoch_ahead\",\"message\":\"behind\"}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_ERROR], 2);
    assert_int_equal(herald_sub_remove(s, "c"), 0);
    assert_int_equal(herald_sub_channel_count(s), 2);
    while (herald__now_ms() < s->ahead_at_ms) {
    }
    herald__sub_ahead_due(s);
    assert_int_equal(s->ahead_at_ms, 0);
    assert_null(s->dirty_head);
    herald_sub_close(s);
}

static void test_errors_and_acks(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(herald_sub_append(s, "x1", "a", "hello", 5, "n1"), 0);
    assert_int_equal(herald_sub_append(s, "x1", "a", "hello", 5, "n2"), HD_EEXIST);
    assert_int_equal(herald_sub_append(s, NULL, "a", "hello", 5, NULL), 0);
    assert_int_equal(herald_sub_appends_in_flight(s), 2);
    assert_int_equal(feed(s, "{\"type\":\"ack\",\"id\":\"x1\",\"channel\":\"a\",\"seq\":1,"
                             "\"ts\":\"1.0\",\"duplicate\":false}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_ACK], 1);
    assert_int_equal(herald_sub_appends_in_flight(s), 1);
    /* An ack nobody waits for (answered before a reconnect) is ignored. */
    assert_int_equal(feed(s, "{\"type\":\"ack\",\"id\":\"x1\",\"channel\":\"a\",\"seq\":1,"
                             "\"ts\":\"1.0\",\"duplicate\":true}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_ACK], 1);
    assert_int_equal(feed(s, "{\"type\":\"error\",\"id\":\"a1\",\"code\":\"outcome_unknown\","
                             "\"message\":\"retry\"}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_ERROR], 1);
    assert_int_equal(herald_sub_appends_in_flight(s), 0);
    /* A refused subscribe forgets the channel. */
    assert_int_equal(feed(s, "{\"type\":\"error\",\"channel\":\"a\","
                             "\"code\":\"too_many_channels\",\"message\":\"full\"}"), 0);
    assert_int_equal(herald_sub_channel_count(s), 0);
    assert_int_equal(feed(s, "{\"type\":\"pong\",\"id\":\"p\"}"), 0);
    assert_int_equal(feed(s, "{\"type\":\"closing\",\"reason\":\"shutting_down\"}"), 0);
    assert_int_equal(sn.events[HERALD_SUB_PONG], 1);
    assert_int_equal(sn.events[HERALD_SUB_CLOSING], 1);
    herald_sub_close(s);
}

/* After a stop, frames that were already read wait for the next process
 * instead of being lost or delivered to a callback that asked to stop. */
static void test_stop_holds_frames(void **state)
{
    (void)state;
    struct seen sn = {.stop_after = 1};
    struct herald_sub *s = fake_open(&sn);
    assert_int_equal(herald_sub_add(s, "a", 0), 0);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    assert_int_equal(feed(s, msg("a", 1)), 0);
    assert_int_equal(feed(s, msg("a", 2)), 0);
    assert_int_equal(feed(s, msg("a", 3)), 0);
    assert_int_equal(sn.messages, 1);
    assert_non_null(s->held_head);
    assert_int_equal(herald_sub_timeout_ms(s), 0);
    sn.stop_after = 0;
    assert_int_equal(herald_sub_process(s), 0); /* delivers the held frames */
    assert_int_equal(sn.messages, 3);
    assert_int_equal(sn.last_seq, 3);
    herald_sub_close(s);
}

static void test_many_channels(void **state)
{
    (void)state;
    struct seen sn = {0};
    struct herald_sub *s = fake_open(&sn);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "ch-%d", i);
        assert_int_equal(herald_sub_add(s, name, (uint64_t)i), 0);
    }
    assert_int_equal(herald_sub_channel_count(s), 5000);
    assert_int_equal(herald__sub_flush_ops(s), 0);
    /* Five frames of 1000 channels, not one of 5000. */
    assert_int_equal(wslay_event_get_queued_msg_count(s->ws), 5);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof name, "ch-%d", i);
        assert_int_equal(feed(s, msg(name, (uint64_t)i + 1)), 0);
    }
    uint64_t pos;
    assert_int_equal(herald_sub_position(s, "ch-4998", &pos), 0);
    assert_int_equal(pos, 4999);
    herald_sub_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_message),   cmocka_unit_test(test_frame_others),
        cmocka_unit_test(test_frame_bad),       cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_handshake),       cmocka_unit_test(test_append_frame),
        cmocka_unit_test(test_positions),       cmocka_unit_test(test_gap_and_repeat),
        cmocka_unit_test(test_errors_and_acks), cmocka_unit_test(test_stop_holds_frames),
        cmocka_unit_test(test_many_channels),   cmocka_unit_test(test_gone),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_epoch_ahead_waits_and_asks_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
