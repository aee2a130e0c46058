/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket (RFC 6455) on the HTTP engine: handshake, messages in, control frames. */
#ifndef API_HTTP_WS_H
#define API_HTTP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"

/*
 * The framing is wslay's: its event API reads frames (reassembling
 * fragments, checking masks and opcodes, enforcing the message size) and
 * answers pings and close frames; api_ws_encode() frames what the
 * owner sends. Data frames never go out through wslay's queue: the owner
 * writes them (shared between connections, see api/fanout/) with
 * api_http_stream_writev, in its own order. Before wslay writes a control
 * frame, the owner is asked to flush what it holds (on_flush), so that a
 * close frame is always the last frame.
 *
 * Runs on the loop thread only. Text messages are handed over whole; their
 * UTF-8 is the owner's to check (herald's owner parses them as JSON).
 */

struct api_ws;

enum {
    API_WS_DRAINED = 1, /* the connection's output queue fell to 0 */
    API_WS_CLOSED = 2,  /* the connection is gone: free the owner's state,
                           then api_ws_free() */
};

struct api_ws_callbacks {
    /* A whole text message, lent for the call. */
    void (*on_text)(struct api_ws *ws, const uint8_t *msg, size_t len, void *arg);
    /* DRAINED or CLOSED. */
    void (*on_event)(struct api_ws *ws, int event, void *arg);
    /* Write out everything held for this connection now (see above). */
    void (*on_flush)(struct api_ws *ws, void *arg);
};

/* The most a frame header takes. */
#define API_WS_HEADER_MAX 14u

/* Checks the handshake in req. If it is valid, answers 101 and *out is the
 * new WebSocket, which keeps c until api_ws_free(). Otherwise answers the
 * request (400, or 426 for another protocol version), gives c back and
 * returns HD_EINVAL. HD_ENOMEM / HD_ESHUTDOWN: c was given back too. */
int api_ws_accept(struct api_http_conn *c, const struct api_http_request *req,
                  size_t message_bytes_max, const struct api_ws_callbacks *cb, void *arg,
                  struct api_ws **out);

/* Frames len bytes as one unmasked text frame (binary: a binary frame)
 * into a new hd_malloc'd buffer of header + payload. */
int api_ws_encode(const void *payload, size_t len, bool binary, uint8_t **out,
                  size_t *out_len);

/* The connection, for api_http_stream_writev / _queued / api_http_read_pause. */
struct api_http_conn *api_ws_conn(struct api_ws *ws);

/* Sends a close frame with code and reason (at most 123 bytes) and ends
 * the connection: the server closes TCP first (RFC 6455 7.1.1). Write out
 * what you hold before; no callback follows, except that api_ws_free() is
 * still due. */
void api_ws_close(struct api_ws *ws, uint16_t code, const char *reason);

/* Ends the connection now (if it is still open) and frees ws. Call it
 * once, also after API_WS_CLOSED. */
void api_ws_free(struct api_ws *ws);

#endif
