/* SPDX-License-Identifier: Apache-2.0 */
/* The codec of herald's own peer frames (layouts in frames.h). */
#include "frames.h"

#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_ids.h"
#include "hd_util.h"
#include "transport.h"

/* ------------------------------------------------------------ writing --- */

struct cons_wr {
    uint8_t *p;
    uint8_t *end;
};

static void cons__put_u8(struct cons_wr *w, uint8_t v)
{
    HD_ASSERT(w->end - w->p >= 1);
    *w->p++ = v;
}

static void cons__put_u32(struct cons_wr *w, uint32_t v)
{
    HD_ASSERT(w->end - w->p >= 4);
    hd_put_u32(w->p, v);
    w->p += 4;
}

static void cons__put_u64(struct cons_wr *w, uint64_t v)
{
    HD_ASSERT(w->end - w->p >= 8);
    hd_put_u64(w->p, v);
    w->p += 8;
}

/* A u8 length, then the bytes. */
static void cons__put_str8(struct cons_wr *w, const char *s, size_t len)
{
    HD_ASSERT(len <= UINT8_MAX && (size_t)(w->end - w->p) >= 1 + len);
    *w->p++ = (uint8_t)len;
    memcpy(w->p, s, len);
    w->p += len;
}

/* What a forwarded command may be: the command codec's rule (a trim names
 * a before_seq >= 1, a delete none, on a valid channel id; a policy its
 * text or a clear), without a trim's flags, which the frame does not carry. */
static bool cons__command_valid(const struct log_command *c)
{
    return log_command_valid(c) && (c->kind == LOG_ENTRY_KIND_POLICY || c->flags == 0);
}

static void cons__encode_body(const struct cons_frame *f, struct cons_wr *w)
{
    switch (f->kind) {
    case CONS_FRAME_FORWARD_REQ:
        HD_ASSERT(hd_channel_valid(f->u.forward_req.channel, f->u.forward_req.channel_len));
        HD_ASSERT(hd_nonce_valid(f->u.forward_req.nonce, f->u.forward_req.nonce_len));
        HD_ASSERT(f->u.forward_req.payload_len <= UINT32_MAX);
        cons__put_str8(w, f->u.forward_req.channel, f->u.forward_req.channel_len);
        cons__put_str8(w, f->u.forward_req.nonce, f->u.forward_req.nonce_len);
        cons__put_u32(w, (uint32_t)f->u.forward_req.payload_len);
        break;
    case CONS_FRAME_FORWARD_RESP:
        HD_ASSERT(f->u.forward_resp.status <= 0);
        cons__put_u32(w, (uint32_t)f->u.forward_resp.status);
        cons__put_u64(w, f->u.forward_resp.seq);
        cons__put_u64(w, f->u.forward_resp.ts);
        cons__put_u8(w, f->u.forward_resp.duplicate ? 1 : 0);
        break;
    case CONS_FRAME_STATE_REQ:
        cons__put_u64(w, f->u.state_req.min_applied);
        break;
    case CONS_FRAME_STATE_CHUNK:
        HD_ASSERT((f->u.state_chunk.flags & ~(CONS_FRAME_STATE_LAST | CONS_FRAME_STATE_ERROR)) == 0);
        cons__put_u32(w, f->u.state_chunk.seq);
        cons__put_u8(w, f->u.state_chunk.flags);
        break;
    case CONS_FRAME_MEMBER_REQ:
        HD_ASSERT(f->u.member_req.op == CONS_FRAME_MEMBER_ADD ||
                  f->u.member_req.op == CONS_FRAME_MEMBER_REMOVE);
        HD_ASSERT(f->u.member_req.address_len <= CONS_FRAME_ADDRESS_MAX);
        cons__put_u8(w, f->u.member_req.op);
        cons__put_u64(w, f->u.member_req.node);
        cons__put_str8(w, f->u.member_req.address, f->u.member_req.address_len);
        break;
    case CONS_FRAME_MEMBER_RESP:
        HD_ASSERT(f->u.member_resp.status <= 0);
        cons__put_u32(w, (uint32_t)f->u.member_resp.status);
        break;
    case CONS_FRAME_REPAIR_REQ:
        HD_ASSERT(f->u.repair_req.old_node != 0);
        HD_ASSERT(f->u.repair_req.address_len <= CONS_FRAME_ADDRESS_MAX);
        cons__put_u64(w, f->u.repair_req.old_node);
        cons__put_str8(w, f->u.repair_req.address, f->u.repair_req.address_len);
        break;
    case CONS_FRAME_REPAIR_RESP:
        HD_ASSERT(f->u.repair_resp.status <= 0);
        HD_ASSERT((f->u.repair_resp.status == 0) == (f->u.repair_resp.new_node != 0));
        cons__put_u32(w, (uint32_t)f->u.repair_resp.status);
        cons__put_u64(w, f->u.repair_resp.new_node);
        break;
    case CONS_FRAME_READ_REQ:
        break;
    case CONS_FRAME_READ_RESP:
        HD_ASSERT(f->u.read_resp.status <= 0);
        cons__put_u32(w, (uint32_t)f->u.read_resp.status);
        cons__put_u64(w, f->u.read_resp.index);
        break;
    case CONS_FRAME_COMMAND_REQ:
        HD_ASSERT(cons__command_valid(&f->u.command_req));
        cons__put_u8(w, f->u.command_req.kind);
        if (f->u.command_req.kind == LOG_ENTRY_KIND_POLICY) {
            cons__put_u8(w, (uint8_t)f->u.command_req.flags);
            cons__put_u32(w, (uint32_t)f->u.command_req.text_len); /* the text: bulk */
            break;
        }
        cons__put_str8(w, f->u.command_req.channel, f->u.command_req.channel_len);
        cons__put_u64(w, f->u.command_req.before_seq);
        break;
    default:
        HD_ASSERT(!"not a herald frame kind");
    }
}

unsigned cons_frame_encode(const struct cons_frame *f, uint8_t head[CONS_FRAME_HEAD_MAX],
                           struct iovec iov[2])
{
    HD_ASSERT(f != NULL && head != NULL && iov != NULL);
    struct cons_wr w = {head, head + CONS_FRAME_HEAD_MAX};
    cons__put_u8(&w, CONS_FRAME_VERSION);
    cons__put_u64(&w, f->id);
    cons__encode_body(f, &w);
    iov[0] = (struct iovec){head, (size_t)(w.p - head)};
    const void *bulk = NULL;
    size_t bulk_len = 0;
    if (f->kind == CONS_FRAME_FORWARD_REQ) {
        bulk = f->u.forward_req.payload;
        bulk_len = f->u.forward_req.payload_len;
    } else if (f->kind == CONS_FRAME_STATE_CHUNK) {
        bulk = f->u.state_chunk.chunk;
        bulk_len = f->u.state_chunk.len;
    } else if (f->kind == CONS_FRAME_COMMAND_REQ &&
               f->u.command_req.kind == LOG_ENTRY_KIND_POLICY) {
        bulk = f->u.command_req.text;
        bulk_len = f->u.command_req.text_len;
    }
    if (bulk_len == 0) {
        return 1;
    }
    iov[1] = (struct iovec){(void *)(uintptr_t)bulk, bulk_len};
    return 2;
}

/* ------------------------------------------------------------ reading --- */

/* A bounds-checked reader: a read past the end sets `bad` and yields 0. */
struct cons_rd {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
};

static bool cons__has(struct cons_rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint8_t cons__get_u8(struct cons_rd *r)
{
    return cons__has(r, 1) ? *r->p++ : 0;
}

static uint32_t cons__get_u32(struct cons_rd *r)
{
    if (!cons__has(r, 4)) return 0;
    uint32_t v = hd_get_u32(r->p);
    r->p += 4;
    return v;
}

static uint64_t cons__get_u64(struct cons_rd *r)
{
    if (!cons__has(r, 8)) return 0;
    uint64_t v = hd_get_u64(r->p);
    r->p += 8;
    return v;
}

/* n bytes in place; NULL (and bad) if fewer are left. */
static const uint8_t *cons__get_bytes(struct cons_rd *r, size_t n)
{
    if (!cons__has(r, n)) return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

/* A status is 0 or a negative HD_E* code. */
static int32_t cons__get_status(struct cons_rd *r)
{
    int32_t s = (int32_t)cons__get_u32(r);
    if (s > 0) r->bad = true;
    return s;
}

static void cons__decode_forward_req(struct cons_rd *r, struct cons_frame *f)
{
    f->u.forward_req.channel_len = cons__get_u8(r);
    f->u.forward_req.channel = (const char *)cons__get_bytes(r, f->u.forward_req.channel_len);
    f->u.forward_req.nonce_len = cons__get_u8(r);
    f->u.forward_req.nonce = (const char *)cons__get_bytes(r, f->u.forward_req.nonce_len);
    f->u.forward_req.payload_len = cons__get_u32(r);
    f->u.forward_req.payload = cons__get_bytes(r, f->u.forward_req.payload_len);
    const struct log_append *a = &f->u.forward_req;
    if (r->bad || !hd_channel_valid(a->channel, a->channel_len) ||
        !hd_nonce_valid(a->nonce, a->nonce_len)) {
        r->bad = true;
    }
}

static void cons__decode_body(struct cons_rd *r, struct cons_frame *f)
{
    switch (f->kind) {
    case CONS_FRAME_FORWARD_REQ:
        cons__decode_forward_req(r, f);
        break;
    case CONS_FRAME_FORWARD_RESP:
        f->u.forward_resp.status = cons__get_status(r);
        f->u.forward_resp.seq = cons__get_u64(r);
        f->u.forward_resp.ts = cons__get_u64(r);
        uint8_t dup = cons__get_u8(r);
        f->u.forward_resp.duplicate = dup == 1;
        r->bad |= dup > 1;
        break;
    case CONS_FRAME_STATE_REQ:
        f->u.state_req.min_applied = cons__get_u64(r);
        break;
    case CONS_FRAME_STATE_CHUNK:
        f->u.state_chunk.seq = cons__get_u32(r);
        f->u.state_chunk.flags = cons__get_u8(r);
        f->u.state_chunk.len = r->bad ? 0 : (size_t)(r->end - r->p);
        f->u.state_chunk.chunk = cons__get_bytes(r, f->u.state_chunk.len);
        r->bad |= (f->u.state_chunk.flags & ~(CONS_FRAME_STATE_LAST | CONS_FRAME_STATE_ERROR)) != 0;
        break;
    case CONS_FRAME_MEMBER_REQ:
        f->u.member_req.op = cons__get_u8(r);
        f->u.member_req.node = cons__get_u64(r);
        f->u.member_req.address_len = cons__get_u8(r);
        f->u.member_req.address = (const char *)cons__get_bytes(r, f->u.member_req.address_len);
        r->bad |= f->u.member_req.op != CONS_FRAME_MEMBER_ADD &&
                  f->u.member_req.op != CONS_FRAME_MEMBER_REMOVE;
        r->bad |= f->u.member_req.address_len > CONS_FRAME_ADDRESS_MAX;
        break;
    case CONS_FRAME_MEMBER_RESP:
        f->u.member_resp.status = cons__get_status(r);
        break;
    case CONS_FRAME_REPAIR_REQ:
        f->u.repair_req.old_node = cons__get_u64(r);
        f->u.repair_req.address_len = cons__get_u8(r);
        f->u.repair_req.address = (const char *)cons__get_bytes(r, f->u.repair_req.address_len);
        r->bad |= f->u.repair_req.old_node == 0;
        r->bad |= f->u.repair_req.address_len > CONS_FRAME_ADDRESS_MAX;
        break;
    case CONS_FRAME_REPAIR_RESP:
        f->u.repair_resp.status = cons__get_status(r);
        f->u.repair_resp.new_node = cons__get_u64(r);
        r->bad |= (f->u.repair_resp.status == 0) != (f->u.repair_resp.new_node != 0);
        break;
    case CONS_FRAME_READ_REQ:
        break;
    case CONS_FRAME_READ_RESP:
        f->u.read_resp.status = cons__get_status(r);
        f->u.read_resp.index = cons__get_u64(r);
        break;
    case CONS_FRAME_COMMAND_REQ:
        f->u.command_req.kind = cons__get_u8(r);
        if (f->u.command_req.kind == LOG_ENTRY_KIND_POLICY) {
            f->u.command_req.flags = cons__get_u8(r);
            f->u.command_req.text_len = cons__get_u32(r);
            f->u.command_req.text = (const char *)cons__get_bytes(r, f->u.command_req.text_len);
            r->bad |= !r->bad && !cons__command_valid(&f->u.command_req);
            break;
        }
        f->u.command_req.channel_len = cons__get_u8(r);
        f->u.command_req.channel =
            (const char *)cons__get_bytes(r, f->u.command_req.channel_len);
        f->u.command_req.before_seq = cons__get_u64(r);
        r->bad |= !r->bad && !cons__command_valid(&f->u.command_req);
        break;
    default:
        r->bad = true;
    }
}

int cons_frame_decode(uint8_t kind, const uint8_t *buf, size_t len, struct cons_frame *out)
{
    HD_ASSERT(out != NULL && (buf != NULL || len == 0));
    memset(out, 0, sizeof *out);
    out->kind = kind;
    struct cons_rd r = {buf, buf + len, false};
    if (cons__get_u8(&r) != CONS_FRAME_VERSION) {
        return HD_ECORRUPT;
    }
    out->id = cons__get_u64(&r);
    cons__decode_body(&r, out);
    /* Every byte must be accounted for: a longer frame is a newer layout
     * this node does not know, not one to half-read. */
    if (r.bad || r.p != r.end) {
        return HD_ECORRUPT;
    }
    return 0;
}

int cons_frame_send(struct cons_transport *t, uint64_t to, uint16_t shard,
                    const struct cons_frame *f)
{
    uint8_t head[CONS_FRAME_HEAD_MAX];
    struct iovec iov[2];
    unsigned n = cons_frame_encode(f, head, iov);
    return cons_transport_send(t, to, f->kind, shard, iov, n);
}
