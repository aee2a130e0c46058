/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the codec of herald's own peer frames (consensus/peer/frames.h). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "frames.h"
#include "hd_assert.h"
#include "hd_error.h"

/*
 * The first input byte is the frame kind, the rest its payload. A payload
 * that decodes is encoded again and must come back byte for byte: the
 * layout has one encoding, so anything else is a decoder that accepted
 * bytes it did not read. Bad input must give HD_ECORRUPT, never an assert
 * or an out-of-bounds read (ASan checks that).
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct cons_frame f;
    int rv = cons_frame_decode(data[0], data + 1, size - 1, &f);
    if (rv != 0) {
        HD_ASSERT(rv == HD_ECORRUPT);
        return 0;
    }
    HD_ASSERT(f.kind == data[0]);
    uint8_t head[CONS_FRAME_HEAD_MAX];
    struct iovec iov[2];
    unsigned n = cons_frame_encode(&f, head, iov);
    size_t off = 1;
    for (unsigned i = 0; i < n; i++) {
        HD_ASSERT(off + iov[i].iov_len <= size);
        HD_ASSERT(memcmp(data + off, iov[i].iov_base, iov[i].iov_len) == 0);
        off += iov[i].iov_len;
    }
    HD_ASSERT(off == size);
    return 0;
}
