/* SPDX-License-Identifier: Apache-2.0 */
/* The hot append's JSON (append_json.h). Profiled at 256 in flight, jansson
 * took about a tenth of the node's CPU: a tree, a hash table and a string
 * copy per member to read three strings, and another tree plus a dump to
 * write four members. Here the body is read in place and the answer printed
 * straight into a buffer; anything unusual goes back to jansson. */
#include <string.h>

#include "append_json.h"
#include "hd_assert.h"
#include "hd_ids.h"
#include "hd_json_flat.h"
#include "hd_out.h"
#include "hd_ts.h"

bool api_append_json_fields(const struct hd_json_flat *o, struct api_append_input *out)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->m[i].str == NULL) {
            return false; /* a number: jansson's to answer */
        }
    }
    const struct hd_json_flat_member *nonce = hd_json_flat_get(o, "nonce");
    const struct hd_json_flat_member *payload = hd_json_flat_get(o, "payload");
    const struct hd_json_flat_member *payload_b64 = hd_json_flat_get(o, "payload_b64");
    if (nonce == NULL || (payload == NULL) == (payload_b64 == NULL)) {
        return false;
    }
    const struct hd_json_flat_member *p = payload != NULL ? payload : payload_b64;
    *out = (struct api_append_input){nonce->str, nonce->str_len, p->str, p->str_len,
                                     payload_b64 != NULL};
    return true;
}

bool api_append_json_scan(const char *body, size_t len, struct api_append_input *out)
{
    struct hd_json_flat o;
    return hd_json_flat_scan(body, len, &o) && api_append_json_fields(&o, out);
}

/* Writes the members every answer ends with, and the closing brace. */
static void api__append_members(struct hd_out *o, const char *channel, size_t channel_len,
                                uint64_t seq, uint64_t ts_us, bool duplicate)
{
    HD_ASSERT(hd_channel_valid(channel, channel_len)); /* nothing to escape */
    char ts[HD_TS_STR_MAX];
    int ts_len = hd_ts_format(ts_us, ts, sizeof ts);
    HD_ASSERT(ts_len > 0);
    hd_out_str(o, "\"channel\":\"");
    hd_out_mem(o, channel, channel_len);
    hd_out_str(o, "\",\"seq\":");
    hd_out_u64(o, seq);
    hd_out_str(o, ",\"ts\":\"");
    hd_out_mem(o, ts, (size_t)ts_len);
    hd_out_str(o, duplicate ? "\",\"duplicate\":true}" : "\",\"duplicate\":false}");
}

size_t api_append_json_answer(char *buf, const char *channel, size_t channel_len, uint64_t seq,
                              uint64_t ts_us, bool duplicate)
{
    struct hd_out o = hd_out_init(buf, API_APPEND_ANSWER_MAX);
    hd_out_str(&o, "{");
    api__append_members(&o, channel, channel_len, seq, ts_us, duplicate);
    HD_ASSERT(hd_out_fits(&o)); /* 128-byte channel, 20-digit seq fit */
    return o.len;
}

size_t api_append_json_ack(char *buf, const char *id, size_t id_len, const char *channel,
                           size_t channel_len, uint64_t seq, uint64_t ts_us, bool duplicate)
{
    if (id_len > API_WS_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < id_len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            return 0; /* json_dumps would escape it */
        }
    }
    struct hd_out o = hd_out_init(buf, API_APPEND_ACK_MAX);
    hd_out_str(&o, "{\"type\":\"ack\",\"id\":\"");
    hd_out_mem(&o, id, id_len);
    hd_out_str(&o, "\",");
    api__append_members(&o, channel, channel_len, seq, ts_us, duplicate);
    HD_ASSERT(hd_out_fits(&o));
    return o.len;
}
