/* SPDX-License-Identifier: Apache-2.0 */
/* Codecs of herald's own peer frames (layouts in frames.h). */
#include "frames.h"

#include <string.h>

#include "entry.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

size_t cons_forward_req_encode_head(uint8_t *head, const struct cons_forward_req *r)
{
    HD_ASSERT(r->channel_len > 0 && r->channel_len <= LOG_CHANNEL_MAX);
    HD_ASSERT(r->nonce_len > 0 && r->nonce_len <= LOG_NONCE_MAX);
    uint8_t *p = head;
    *p++ = CONS_FORWARD_VERSION;
    hd_put_u64(p, r->id);
    p += 8;
    *p++ = (uint8_t)r->channel_len;
    memcpy(p, r->channel, r->channel_len);
    p += r->channel_len;
    *p++ = (uint8_t)r->nonce_len;
    memcpy(p, r->nonce, r->nonce_len);
    p += r->nonce_len;
    hd_put_u32(p, (uint32_t)r->payload_len);
    p += 4;
    return (size_t)(p - head);
}

int cons_forward_req_decode(const uint8_t *buf, size_t len, struct cons_forward_req *out)
{
    const uint8_t *p = buf, *end = buf + len;
    if (len < 10 || *p++ != CONS_FORWARD_VERSION) return HD_ECORRUPT;
    out->id = hd_get_u64(p);
    p += 8;
    out->channel_len = *p++;
    if ((size_t)(end - p) < out->channel_len + 1) return HD_ECORRUPT;
    out->channel = (const char *)p;
    p += out->channel_len;
    out->nonce_len = *p++;
    if ((size_t)(end - p) < out->nonce_len + 4) return HD_ECORRUPT;
    out->nonce = (const char *)p;
    p += out->nonce_len;
    out->payload_len = hd_get_u32(p);
    p += 4;
    if ((size_t)(end - p) != out->payload_len) return HD_ECORRUPT;
    out->payload = p;
    if (!log_channel_valid(out->channel, out->channel_len) ||
        !log_nonce_valid(out->nonce, out->nonce_len)) {
        return HD_ECORRUPT;
    }
    return 0;
}

void cons_forward_resp_encode(uint8_t out[CONS_FORWARD_RESP_SIZE],
                              const struct cons_forward_resp *r)
{
    out[0] = CONS_FORWARD_VERSION;
    hd_put_u64(out + 1, r->id);
    hd_put_u32(out + 9, (uint32_t)r->status);
    hd_put_u64(out + 13, r->seq);
    hd_put_u64(out + 21, r->ts);
    out[29] = r->duplicate ? 1 : 0;
}

int cons_forward_resp_decode(const uint8_t *buf, size_t len, struct cons_forward_resp *out)
{
    if (len != CONS_FORWARD_RESP_SIZE || buf[0] != CONS_FORWARD_VERSION || buf[29] > 1) {
        return HD_ECORRUPT;
    }
    out->id = hd_get_u64(buf + 1);
    out->status = (int32_t)hd_get_u32(buf + 9);
    out->seq = hd_get_u64(buf + 13);
    out->ts = hd_get_u64(buf + 21);
    out->duplicate = buf[29] == 1;
    if (out->status > 0) return HD_ECORRUPT;
    return 0;
}
