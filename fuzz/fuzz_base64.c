/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the strict base64 decoder (common/hd_base64.c) on arbitrary bytes. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_base64.h"
#include "hd_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding writes no more than hd_base64_decoded_max() bytes (ASan checks the
 * exact-size buffer) and either fails with HD_EINVAL or yields bytes whose
 * encoding is the input up to the pad bits; the encoder's output always
 * decodes back to its input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t max = hd_base64_decoded_max(size);
    uint8_t *out = malloc(max > 0 ? max : 1);
    char *enc = malloc(hd_base64_encoded_len(size) + 1);
    HD_ASSERT(out != NULL && enc != NULL);
    size_t n = 0;
    int rv = hd_base64_decode(in, size, out, &n);
    if (rv != 0) {
        HD_ASSERT(rv == HD_EINVAL);
    } else {
        HD_ASSERT(n <= max && size % 4 == 0 && n + 2 >= max);
        size_t m = hd_base64_encode(out, n, enc);
        HD_ASSERT(m == size);
        /* Equal but for the pad bits, in the data character before '='. */
        size_t pad = 0;
        if (size > 0) pad = (size_t)(in[size - 1] == '=') + (size_t)(in[size - 2] == '=');
        size_t same = pad > 0 ? size - pad - 1 : size;
        HD_ASSERT(memcmp(enc, in, same) == 0);
        HD_ASSERT(memcmp(enc + size - pad, in + size - pad, pad) == 0);
    }
    /* Round trip of the input as bytes. */
    size_t m = hd_base64_encode(data, size, enc);
    HD_ASSERT(m == hd_base64_encoded_len(size));
    uint8_t *back = malloc(hd_base64_decoded_max(m) + 1);
    HD_ASSERT(back != NULL);
    HD_ASSERT(hd_base64_decode(enc, m, back, &n) == 0 && n == size);
    HD_ASSERT(memcmp(back, data, size) == 0);
    free(back);
    free(enc);
    free(out);
    return 0;
}
