/* SPDX-License-Identifier: Apache-2.0 */
/* Pure parts of the peer transport: frame headers, HELLO payloads, address parsing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "transport.h"

#define CONS__FRAME_CRC_OFFSET 12u /* the checksum covers the bytes before it */

/* ---------------------------------------------------------------- frames --- */

void cons__frame_seal(uint8_t *frame, uint8_t kind, uint16_t shard, uint32_t len)
{
    HD_ASSERT(frame != NULL);
    HD_ASSERT(len <= CONS_FRAME_PAYLOAD_MAX);
    hd_put_u32(frame, CONS_FRAME_MAGIC);
    frame[4] = CONS_FRAME_VERSION;
    frame[5] = kind;
    hd_put_u16(frame + 6, shard);
    hd_put_u32(frame + 8, len);
    uint32_t crc = hd_crc32c(0, frame, CONS__FRAME_CRC_OFFSET);
    crc = hd_crc32c(crc, frame + CONS_FRAME_HEADER_SIZE, len);
    hd_put_u32(frame + CONS__FRAME_CRC_OFFSET, crc);
}

int cons__frame_decode_header(const uint8_t *hdr, struct cons__frame_hdr *out)
{
    HD_ASSERT(hdr != NULL);
    HD_ASSERT(out != NULL);
    if (hd_get_u32(hdr) != CONS_FRAME_MAGIC) {
        return HD_ECORRUPT;
    }
    *out = (struct cons__frame_hdr){
        .version = hdr[4],
        .kind = hdr[5],
        .shard = hd_get_u16(hdr + 6),
        .len = hd_get_u32(hdr + 8),
        .crc = hd_get_u32(hdr + CONS__FRAME_CRC_OFFSET),
    };
    /* Checked before the reader sizes its buffer for the payload. */
    return out->len <= CONS_FRAME_PAYLOAD_MAX ? 0 : HD_ECORRUPT;
}

int cons__frame_verify(const uint8_t *frame, const struct cons__frame_hdr *h)
{
    HD_ASSERT(frame != NULL);
    HD_ASSERT(h->len <= CONS_FRAME_PAYLOAD_MAX);
    uint32_t crc = hd_crc32c(0, frame, CONS__FRAME_CRC_OFFSET);
    crc = hd_crc32c(crc, frame + CONS_FRAME_HEADER_SIZE, h->len);
    return crc == h->crc ? 0 : HD_ECORRUPT;
}

/* ----------------------------------------------------------------- hello --- */

void cons__hello_encode(uint8_t *payload, const struct cons__hello *h)
{
    HD_ASSERT(h->from_id != 0);
    memcpy(payload, h->cluster, 16);
    hd_put_u64(payload + 16, h->from_id);
    hd_put_u64(payload + 24, h->to_id);
}

int cons__hello_decode(const uint8_t *payload, size_t len, struct cons__hello *out)
{
    HD_ASSERT(out != NULL);
    if (payload == NULL || len != CONS__HELLO_SIZE) {
        return HD_ECORRUPT;
    }
    memcpy(out->cluster, payload, 16);
    out->from_id = hd_get_u64(payload + 16);
    out->to_id = hd_get_u64(payload + 24);
    return out->from_id != 0 ? 0 : HD_ECORRUPT;
}

/* ------------------------------------------------------------- addresses --- */

static int cons__hex(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cons__parse_cluster_id(const char *hex, uint8_t out[16])
{
    if (hex == NULL || strlen(hex) != 32) {
        return HD_EINVAL;
    }
    for (int i = 0; i < 16; i++) {
        int hi = cons__hex(hex[2 * i]);
        int lo = cons__hex(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return HD_EINVAL;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int cons__parse_addr(const char *s, struct sockaddr_storage *out)
{
    HD_ASSERT(out != NULL);
    char host[64];
    const char *colon = s != NULL ? strrchr(s, ':') : NULL;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof host) {
        return HD_EINVAL;
    }
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port > 65535) {
        return HD_EINVAL;
    }
    size_t host_len = (size_t)(colon - s);
    bool v6 = s[0] == '[';
    if (v6 && (host_len < 3 || s[host_len - 1] != ']')) {
        return HD_EINVAL;
    }
    memcpy(host, s + v6, host_len - 2 * v6);
    host[host_len - 2 * v6] = '\0';
    memset(out, 0, sizeof *out);
    int rv = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
    return rv == 0 ? 0 : HD_EINVAL;
}

void cons__addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
    HD_ASSERT(len > 0);
    char ip[64] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        uv_ip4_name(in, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        uv_ip6_name(in6, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%d", ip, port);
    } else {
        snprintf(buf, len, "?");
    }
}
