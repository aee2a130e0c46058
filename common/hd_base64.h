/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648 section 4: the standard alphabet, with '=' padding), as
 * payload_b64 carries binary payloads over the HTTP API.
 *
 * Hand-written, once, because no library on herald's link line has it and
 * the Debian candidates are lenient where the API must not be: libb64 skips
 * invalid characters silently, OpenSSL's EVP_DecodeBlock (not a dependency
 * either) neither rejects bad padding nor reports the real length, and
 * GLib's g_base64_decode skips invalid characters. */
#ifndef HD_BASE64_H
#define HD_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters hd_base64_encode() writes for len bytes: 4 * ceil(len / 3).
 * len must be below SIZE_MAX / 4 * 3. */
static inline size_t hd_base64_encoded_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

/* Bytes hd_base64_decode() may write for len characters, at most. */
static inline size_t hd_base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

/* Encodes len bytes of in into out, which holds hd_base64_encoded_len(len)
 * bytes; writes no NUL. Returns the number of characters written. */
size_t hd_base64_encode(const uint8_t *in, size_t len, char *out);

/* Decodes len characters of in into out, which holds
 * hd_base64_decoded_max(len) bytes, and sets *out_len. Strict: HD_EINVAL
 * (with *out_len untouched; out may have been written) unless len is a
 * multiple of 4, every character is in the alphabet, and '=' appears only as
 * one or two final characters. No whitespace or line breaks. As RFC 4648
 * section 3.5 allows, non-zero pad bits ("Zh==" for "f") are not rejected:
 * the API has always accepted them. "" decodes to zero bytes. */
int hd_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

#endif
