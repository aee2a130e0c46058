/* SPDX-License-Identifier: Apache-2.0 */
/* Strict base64 codec (hd_base64.h says why it is hand-written). */
#include "hd_base64.h"

#include <stdbool.h>

#include "hd_assert.h"
#include "hd_error.h"

static const char hd__b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t hd_base64_encode(const uint8_t *in, size_t len, char *out)
{
    HD_ASSERT(len < SIZE_MAX / 4 * 3);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16;
        if (i + 1 < len) w |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) w |= in[i + 2];
        out[o++] = hd__b64_alphabet[(w >> 18) & 63];
        out[o++] = hd__b64_alphabet[(w >> 12) & 63];
        out[o++] = i + 1 < len ? hd__b64_alphabet[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? hd__b64_alphabet[w & 63] : '=';
    }
    return o;
}

static int hd__b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int hd_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    if (len % 4 != 0) {
        return HD_EINVAL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char ch = in[i + (size_t)j];
            if (ch == '=' && last && j >= 2) {
                pad++;
                v[j] = 0;
                continue;
            }
            v[j] = hd__b64_value(ch);
            if (v[j] < 0 || pad > 0) {
                return HD_EINVAL; /* bad character, or data after '=' */
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[n++] = (uint8_t)(w >> 16);
        if (pad < 2) out[n++] = (uint8_t)(w >> 8);
        if (pad < 1) out[n++] = (uint8_t)w;
    }
    *out_len = n;
    return 0;
}
