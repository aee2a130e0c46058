/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the peer wire decoders (Raft messages, frame headers, HELLO payloads). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "msg_codec.h"
#include "transport.h"

/*
 * The first input byte picks what the rest is:
 *   even: a Raft message for cons_msg_decode(); a decoded message is
 *         re-encoded and must come back byte for byte, then released;
 *   odd:  a stream of transport frames, parsed like a connection does;
 *         every frame that passes the checks is also tried as a HELLO.
 * Bad input must give HD_ECORRUPT, never an assert or an out-of-bounds
 * read (ASan checks that).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_reencode(const struct raft_message *m, const uint8_t *data, size_t size)
{
    struct cons_msg_enc e;
    int rv = cons_msg_encode(m, &e);
    HD_ASSERT(rv == 0);
    HD_ASSERT(e.len == size);
    size_t off = 0;
    for (unsigned i = 0; i < e.iov_n; i++) {
        HD_ASSERT(memcmp(data + off, e.iov[i].iov_base, e.iov[i].iov_len) == 0);
        off += e.iov[i].iov_len;
    }
    HD_ASSERT(off == size);
    cons_msg_enc_release(&e);
}

static void fuzz_msg(const uint8_t *data, size_t size)
{
    struct raft_message m;
    int rv = cons_msg_decode(data, size, &m);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return;
    }
    fuzz_reencode(&m, data, size);
    cons_msg_release(&m);
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
    while (size >= CONS_FRAME_HEADER_SIZE) {
        struct cons__frame_hdr h;
        if (cons__frame_decode_header(data, &h) != 0) {
            return;
        }
        HD_ASSERT(h.len <= CONS_FRAME_PAYLOAD_MAX);
        if (size - CONS_FRAME_HEADER_SIZE < h.len) {
            return;
        }
        (void)cons__frame_verify(data, &h); /* no checksum gate: reach the hello */
        struct cons__hello hello;
        if (cons__hello_decode(data + CONS_FRAME_HEADER_SIZE, h.len, &hello) == 0) {
            HD_ASSERT(h.len == CONS__HELLO_SIZE && hello.from_id != 0);
        }
        data += CONS_FRAME_HEADER_SIZE + h.len;
        size -= CONS_FRAME_HEADER_SIZE + h.len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if (data[0] % 2 == 0) {
        fuzz_msg(data + 1, size - 1);
    } else {
        fuzz_frames(data + 1, size - 1);
    }
    return 0;
}
