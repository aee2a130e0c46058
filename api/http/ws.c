/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket (RFC 6455) on the HTTP engine: handshake, messages in, control frames. */
#include "ws.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <wslay/wslay.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_base64.h"
#include "hd_error.h"
#include "hd_util.h"

#define API_WS__GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define API_WS__KEY_B64_LEN 24u /* 16 random bytes in base64 */

struct api_ws {
    struct api_http_conn *conn;
    wslay_event_context_ptr ctx;
    struct api_ws_callbacks cb;
    void *arg;
    const uint8_t *in;   /* input being handed to wslay (during on_data) */
    size_t in_len;
    size_t message_bytes_max;
    /* Parser state is dropped between messages (see api_ws__maybe_rest):
     * bytes fed to wslay and bytes of the frames it completed. */
    uint64_t fed, framed;
    uint64_t frame_bytes;  /* the frame being received, header included */
    bool fragmented;       /* inside a message of several frames */
    bool in_recv;        /* inside wslay_event_recv: defer frees */
    bool ended;          /* api_http_stream_end was called */
    bool free_pending;   /* api_ws_free was called inside wslay_event_recv */
    bool closed;         /* no more callbacks: CLOSED was reported, or the owner
                            closed or freed it */
};

/* ---- wslay's I/O callbacks ---------------------------------------- */

static ssize_t api_ws__recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                            void *user)
{
    (void)flags;
    struct api_ws *ws = user;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t api_ws__send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                            int flags, void *user)
{
    (void)flags;
    struct api_ws *ws = user;
    /* The connection queues whatever the socket does not take, so a frame
     * is never left half-written inside wslay. */
    if (ws->ended || api_http_stream_write(ws->conn, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void api_ws__on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m,
                           void *user)
{
    (void)ctx;
    struct api_ws *ws = user;
    if (ws->closed) {
        return;
    }
    if (m->opcode == WSLAY_TEXT_FRAME) {
        ws->cb.on_text(ws, m->msg, m->msg_length, ws->arg);
    } else if (m->opcode == WSLAY_BINARY_FRAME) {
        /* Sent after wslay_event_recv returns; the owner hears CLOSED. */
        static const char reason[] = "binary frames are not supported";
        wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA, (const uint8_t *)reason,
                                sizeof reason - 1);
    }
    /* Pings are answered and close frames echoed by wslay itself. */
}

/* A frame starts: its size on the wire. Client frames are masked, and
 * wslay refuses lengths not in their shortest form, so this is exact. */
static void api_ws__on_frame_start(wslay_event_context_ptr ctx,
                                   const struct wslay_event_on_frame_recv_start_arg *f,
                                   void *user)
{
    (void)ctx;
    struct api_ws *ws = user;
    uint64_t len = f->payload_length;
    ws->frame_bytes = 2 + 4 + (len < 126 ? 0 : len <= 0xffff ? 2 : 8) + len;
    if (f->opcode == WSLAY_TEXT_FRAME || f->opcode == WSLAY_BINARY_FRAME ||
        f->opcode == WSLAY_CONTINUATION_FRAME) {
        ws->fragmented = !f->fin;
    }
}

static void api_ws__on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    (void)ctx;
    struct api_ws *ws = user;
    ws->framed += ws->frame_bytes;
}

/* wslay's parser (about 9 KiB), made when input arrives. */
static int api_ws__context(struct api_ws *ws)
{
    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = api_ws__recv,
        .send_callback = api_ws__send,
        .on_frame_recv_start_callback = api_ws__on_frame_start,
        .on_frame_recv_end_callback = api_ws__on_frame_end,
        .on_msg_recv_callback = api_ws__on_msg,
    };
    if (ws->ctx != NULL) {
        return 0;
    }
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0) {
        ws->ctx = NULL;
        return HD_ENOMEM;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->message_bytes_max);
    ws->fed = ws->framed = 0;
    ws->fragmented = false;
    return 0;
}

/* Between messages wslay holds no state worth its memory: every byte fed
 * belongs to a frame it completed, no message is half received, nothing
 * waits to be sent and no close was exchanged. Then the parser is freed,
 * so that an idle WebSocket costs about 1 KiB instead of 10. */
static void api_ws__maybe_rest(struct api_ws *ws)
{
    if (ws->ctx == NULL || ws->ended || ws->fed != ws->framed || ws->fragmented ||
        wslay_event_want_write(ws->ctx) || wslay_event_get_close_received(ws->ctx) ||
        wslay_event_get_close_sent(ws->ctx)) {
        return;
    }
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
}

/* ---- Output and the end of the connection ------------------------- */

static void api_ws__end_stream(struct api_ws *ws)
{
    if (!ws->ended) {
        ws->ended = true;
        api_http_stream_end(ws->conn);
    }
}

/* Writes the control frames wslay queued, after the owner's frames. */
static void api_ws__send_control(struct api_ws *ws)
{
    if (ws->ended || ws->ctx == NULL || !wslay_event_want_write(ws->ctx)) {
        return;
    }
    if (!ws->closed) {
        ws->cb.on_flush(ws, ws->arg);
    }
    if (wslay_event_send(ws->ctx) != 0 || wslay_event_get_close_sent(ws->ctx)) {
        /* Our close frame is out (or the connection failed): the server
         * closes TCP first (RFC 6455 7.1.1), lingering on the input. */
        api_ws__end_stream(ws);
    }
}

static void api_ws__report_closed(struct api_ws *ws)
{
    if (!ws->closed) {
        ws->closed = true;
        ws->cb.on_event(ws, API_WS_CLOSED, ws->arg);
    }
}

static void api_ws__free_now(struct api_ws *ws)
{
    api_ws__end_stream(ws);
    if (ws->ctx != NULL) {
        wslay_event_context_free(ws->ctx);
    }
    hd_free(ws);
}

static void api_ws__on_data(struct api_http_conn *c, const char *data, size_t len, void *arg)
{
    (void)c;
    struct api_ws *ws = arg;
    if (ws->ended) {
        return;
    }
    if (api_ws__context(ws) != 0) {
        HD_LOG_WARN("ws: out of memory for a parser; closing");
        api_ws__end_stream(ws);
        api_ws__report_closed(ws);
        return;
    }
    ws->in = (const uint8_t *)data;
    ws->in_len = len;
    ws->fed += len;
    ws->in_recv = true;
    int rv = wslay_event_recv(ws->ctx);
    ws->in_recv = false;
    ws->in_len = 0;
    if (ws->free_pending) {
        /* A close the owner queued inside the callback goes out first. */
        api_ws__send_control(ws);
        api_ws__free_now(ws);
        return;
    }
    if (rv != 0) {
        HD_LOG_DEBUG("ws: receive failed (%d), closing", rv);
    }
    api_ws__send_control(ws);
    /* The client closed, broke the protocol (wslay has queued and sent a
     * close: 1002, 1003, 1007, 1009), or the connection failed. */
    if (rv != 0 || ws->ended || wslay_event_get_close_received(ws->ctx)) {
        api_ws__end_stream(ws);
        api_ws__report_closed(ws); /* the owner may free ws here */
        return;
    }
    api_ws__maybe_rest(ws);
}

static void api_ws__on_stream_event(struct api_http_conn *c, int event, void *arg)
{
    (void)c;
    struct api_ws *ws = arg;
    if (event == API_HTTP_STREAM_CLOSED) {
        api_ws__report_closed(ws);
    } else if (!ws->closed) {
        ws->cb.on_event(ws, API_WS_DRAINED, ws->arg);
    }
}

/* ---- Handshake ---------------------------------------------------- */

/* True if the comma-separated header value holds token (any case). */
static bool api_ws__has_token(const char *v, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t start = i;
        while (i < len && v[i] != ',') i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) end--;
        if (end - start == tlen && strncasecmp(v + start, token, tlen) == 0) {
            return true;
        }
    }
    return false;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)). */
static int api_ws__accept_value(const char *key, size_t key_len, char out[32])
{
    char text[API_WS__KEY_B64_LEN + sizeof API_WS__GUID];
    HD_ASSERT(key_len == API_WS__KEY_B64_LEN);
    memcpy(text, key, key_len);
    memcpy(text + key_len, API_WS__GUID, sizeof API_WS__GUID - 1);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(text, key_len + sizeof API_WS__GUID - 1, digest, &dlen, EVP_sha1(), NULL) != 1 ||
        dlen != 20) {
        return HD_EFAILED;
    }
    hd_base64_encode(digest, dlen, out);
    out[hd_base64_encoded_len(dlen)] = '\0';
    return 0;
}

/* NULL if req is a valid handshake; otherwise what is wrong. */
static const char *api_ws__check(const struct api_http_request *req, bool *bad_version)
{
    size_t len = 0;
    const char *v;
    *bad_version = false;
    if (req->method != HTTP_GET || req->http_minor < 1) {
        return "a WebSocket handshake is a GET over HTTP/1.1";
    }
    v = api_http_header(req, "Upgrade", &len);
    if (v == NULL || !api_ws__has_token(v, len, "websocket")) {
        return "this route takes a WebSocket handshake (Upgrade: websocket)";
    }
    v = api_http_header(req, "Connection", &len);
    if (v == NULL || !api_ws__has_token(v, len, "upgrade")) {
        return "a WebSocket handshake needs Connection: Upgrade";
    }
    v = api_http_header(req, "Sec-WebSocket-Version", &len);
    if (v == NULL || len != 2 || memcmp(v, "13", 2) != 0) {
        *bad_version = true;
        return "only WebSocket version 13 is supported";
    }
    v = api_http_header(req, "Sec-WebSocket-Key", &len);
    uint8_t raw[32];
    size_t raw_len = 0;
    if (v == NULL || len != API_WS__KEY_B64_LEN || hd_base64_decode(v, len, raw, &raw_len) != 0 ||
        raw_len != 16) {
        return "Sec-WebSocket-Key must be 16 bytes in base64";
    }
    return NULL;
}


int api_ws_accept(struct api_http_conn *c, const struct api_http_request *req,
                  size_t message_bytes_max, const struct api_ws_callbacks *cb, void *arg,
                  struct api_ws **out)
{
    HD_ASSERT(cb != NULL && cb->on_text != NULL && cb->on_event != NULL && cb->on_flush != NULL);
    bool bad_version = false;
    const char *bad = api_ws__check(req, &bad_version);
    if (bad != NULL) {
        api_http_respond_error(c, bad_version ? 426 : 400, "bad_handshake", bad,
                               bad_version ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        return HD_EINVAL;
    }
    size_t key_len = 0;
    const char *key = api_http_header(req, "Sec-WebSocket-Key", &key_len);
    char accept[32];
    struct api_ws *ws = hd_calloc(1, sizeof *ws);
    if (ws == NULL || api_ws__accept_value(key, key_len, accept) != 0) {
        hd_free(ws);
        api_http_respond_error(c, 503, "overloaded", "cannot open a WebSocket now",
                               "Retry-After: 1\r\n");
        return HD_ENOMEM;
    }
    ws->conn = c;
    ws->message_bytes_max = message_bytes_max;
    ws->cb = *cb;
    ws->arg = arg;
    char headers[160];
    snprintf(headers, sizeof headers,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    *out = ws;
    int rv = api_http_upgrade(c, headers, api_ws__on_data, api_ws__on_stream_event, ws);
    if (rv != 0) {
        api_ws__free_now(ws);
        *out = NULL;
        return rv;
    }
    return 0;
}

/* ---- Sending ------------------------------------------------------ */

struct api_ws__sink {
    uint8_t *buf;
    size_t len;
};

static ssize_t api_ws__sink_send(const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    struct api_ws__sink *s = user;
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return (ssize_t)len;
}

int api_ws_encode(const void *payload, size_t len, bool binary, uint8_t **out,
                  size_t *out_len)
{
    /* A frame context only holds framing state; one per thread is enough,
     * and every frame is sent whole before the next. */
    static _Thread_local wslay_frame_context_ptr enc;
    static _Thread_local struct api_ws__sink sink;
    static const struct wslay_frame_callbacks cbs = {.send_callback = api_ws__sink_send};
    if (enc == NULL && wslay_frame_context_init(&enc, &cbs, &sink) != 0) {
        return HD_ENOMEM;
    }
    uint8_t *buf = hd_malloc(len + API_WS_HEADER_MAX);
    if (buf == NULL) {
        return HD_ENOMEM;
    }
    sink = (struct api_ws__sink){buf, 0};
    struct wslay_frame_iocb io = {.fin = 1,
                                  .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
                                  .mask = 0,
                                  .payload_length = len, .data = payload, .data_length = len};
    ssize_t sent = wslay_frame_send(enc, &io);
    if (sent < 0 || (size_t)sent != len) {
        /* The sink takes everything: only a bug could get here. */
        HD_LOG_ERROR("ws: framing %zu bytes failed (%zd)", len, sent);
        hd_free(buf);
        return HD_EFAILED;
    }
    HD_ASSERT(sink.len >= len + 2 && sink.len <= len + API_WS_HEADER_MAX);
    *out = buf;
    *out_len = sink.len;
    return 0;
}

struct api_http_conn *api_ws_conn(struct api_ws *ws)
{
    return ws->conn;
}

void api_ws_close(struct api_ws *ws, uint16_t code, const char *reason)
{
    if (ws->closed || ws->ended) {
        return;
    }
    size_t rlen = strlen(reason);
    HD_ASSERT(rlen <= 123); /* a control frame's payload is at most 125 bytes */
    if (api_ws__context(ws) != 0) {
        api_ws__end_stream(ws); /* no memory for a close frame: just close */
        ws->closed = true;
        return;
    }
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rlen);
    if (!ws->in_recv) {
        api_ws__send_control(ws); /* in recv: api_ws__on_data sends it */
    }
    ws->closed = true;
}

void api_ws_free(struct api_ws *ws)
{
    ws->closed = true;
    if (ws->in_recv) {
        ws->free_pending = true;
        return;
    }
    api_ws__free_now(ws);
}
