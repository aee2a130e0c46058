/* SPDX-License-Identifier: Apache-2.0 */
/* A thread that writes the sockets of long-lived streams for the loop. */
#ifndef API_HTTP_WRITER_H
#define API_HTTP_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/*
 * Delivery is write-heavy: a commit goes out on the socket of every
 * subscriber, and each writev (with, on loopback, the receiver's TCP
 * processing, which the sender pays for) costs more than everything else
 * the loop does for that message. The loop hands those writes to this
 * thread, so that appends and delivery run on two cores, and a write round
 * over thousands of connections no longer holds appends up.
 *
 * Rules:
 *  - Every function here is called on the loop thread; the callbacks run
 *    on it too (from a uv_async), never inside these calls.
 *  - A connection's socket is written only by the writer from its first
 *    job until it is released; the loop still reads it. Jobs are written
 *    in the order submitted, jobs of one connection gathered into one
 *    writev where they queue up.
 *  - A job's buffers must stay unchanged until its done callback.
 *  - The loop must not close the socket before released(): the writer
 *    may still be in a writev on it, and a closed fd number is soon
 *    reused by another connection.
 */

struct http_writer;
struct http_wconn;

struct http_writer_cbs {
    /* One job finished: status 0 (all bytes written), or a negative errno
     * (the socket failed, or -ECANCELED: aborted unwritten). Later jobs of
     * a failed connection fail too. release(arg) of the job was called
     * just before. */
    void (*done)(void *owner, size_t bytes, int status);
    /* The writer no longer touches the connection's socket. */
    void (*released)(void *owner);
};

/* Starts the thread. 0, HD_ENOMEM, or an error of the system. */
int http_writer_start(struct http_writer **out, uv_loop_t *loop, const struct http_writer_cbs *cbs);

/* Stops it once no connection is attached; closed(arg) runs from the loop
 * when it is gone. */
void http_writer_stop(struct http_writer *w, void (*closed)(void *arg), void *arg);

/* A connection on socket fd, for owner (handed to the callbacks). NULL on
 * allocation failure. */
struct http_wconn *http_writer_attach(struct http_writer *w, int fd, void *owner);

/* Queues bufs (n_bufs of them, bytes in all) for the socket. The buffer
 * descriptors are copied, the bytes are not. HD_ENOMEM (nothing queued,
 * release not called). */
int http_writer_submit(struct http_wconn *wc, const uv_buf_t *bufs, unsigned n_bufs, size_t bytes,
                       void (*release)(void *arg), void *arg);

/* Asks for the connection back: after the queued jobs are written, or at
 * once with abort (they fail with -ECANCELED). released() follows, then
 * wc is freed. A graceful release may be made abortive by a second call;
 * nothing may be submitted after the first. */
void http_writer_release(struct http_wconn *wc, bool abort);

#endif
