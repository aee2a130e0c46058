/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the codec of herald's own peer frames (consensus/peer/frames.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "frames.h"
#include "hd_error.h"
#include "hd_util.h"

/* Encodes f into one flat buffer (what the transport writes). */
static size_t flatten(const struct cons_frame *f, uint8_t *out, size_t cap)
{
    uint8_t head[CONS_FRAME_HEAD_MAX];
    struct iovec iov[2];
    unsigned n = cons_frame_encode(f, head, iov);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_true(len + iov[i].iov_len <= cap);
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

static void roundtrip(const struct cons_frame *f, struct cons_frame *out)
{
    /* static: a decoded frame borrows its strings from the buffer, and the
     * callers read them after this returns. */
    static uint8_t buf[1024];
    size_t len = flatten(f, buf, sizeof buf);
    assert_int_equal(cons_frame_decode(f->kind, buf, len, out), 0);
    assert_int_equal(out->kind, f->kind);
    assert_int_equal(out->id, f->id);
    if (f->kind == CONS_FRAME_STATE_CHUNK) {
        return; /* its chunk runs to the end: any length is a chunk */
    }
    /* One byte short, or one too many: both are corrupt. */
    struct cons_frame junk;
    assert_int_equal(cons_frame_decode(f->kind, buf, len - 1, &junk), HD_ECORRUPT);
    buf[len] = 0;
    assert_int_equal(cons_frame_decode(f->kind, buf, len + 1, &junk), HD_ECORRUPT);
}

static void test_forward_roundtrip(void **state)
{
    (void)state;
    struct cons_frame f = {.kind = CONS_FRAME_FORWARD_REQ, .id = 7,
                           .u.forward_req = {"general", 7, "n-1", 3,
                                             (const uint8_t *)"hello", 5}};
    struct cons_frame out;
    roundtrip(&f, &out);
    assert_int_equal(out.u.forward_req.channel_len, 7);
    assert_memory_equal(out.u.forward_req.channel, "general", 7);
    assert_memory_equal(out.u.forward_req.nonce, "n-1", 3);
    assert_int_equal(out.u.forward_req.payload_len, 5);
    assert_memory_equal(out.u.forward_req.payload, "hello", 5);

    struct cons_frame r = {.kind = CONS_FRAME_FORWARD_RESP, .id = 7,
                           .u.forward_resp = {HD_EUNKNOWN, 0, 0, false}};
    roundtrip(&r, &out);
    assert_int_equal(out.u.forward_resp.status, HD_EUNKNOWN);
    r.u.forward_resp = (struct cons_frame_forward_resp){0, 12, 1732234567000123ull, true};
    roundtrip(&r, &out);
    assert_int_equal(out.u.forward_resp.seq, 12);
    assert_int_equal(out.u.forward_resp.ts, 1732234567000123ull);
    assert_true(out.u.forward_resp.duplicate);
}

static void test_state_member_read_roundtrip(void **state)
{
    (void)state;
    struct cons_frame out;
    struct cons_frame f = {.kind = CONS_FRAME_STATE_REQ, .id = 1,
                           .u.state_req.min_applied = 99};
    roundtrip(&f, &out);
    assert_int_equal(out.u.state_req.min_applied, 99);
    f = (struct cons_frame){.kind = CONS_FRAME_STATE_CHUNK, .id = 2,
                            .u.state_chunk = {5, CONS_FRAME_STATE_LAST,
                                              (const uint8_t *)"abc", 3}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.state_chunk.seq, 5);
    assert_int_equal(out.u.state_chunk.flags, CONS_FRAME_STATE_LAST);
    assert_int_equal(out.u.state_chunk.len, 3);
    assert_memory_equal(out.u.state_chunk.chunk, "abc", 3);
    f = (struct cons_frame){.kind = CONS_FRAME_MEMBER_REQ, .id = 3,
                            .u.member_req = {CONS_FRAME_MEMBER_ADD, 4, "127.0.0.1:7431", 14}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.member_req.op, CONS_FRAME_MEMBER_ADD);
    assert_int_equal(out.u.member_req.node, 4);
    assert_memory_equal(out.u.member_req.address, "127.0.0.1:7431", 14);
    f = (struct cons_frame){.kind = CONS_FRAME_MEMBER_RESP, .id = 4,
                            .u.member_resp.status = HD_EBUSY};
    roundtrip(&f, &out);
    assert_int_equal(out.u.member_resp.status, HD_EBUSY);
    f = (struct cons_frame){.kind = CONS_FRAME_REPAIR_REQ, .id = 7,
                            .u.repair_req = {3, "127.0.0.1:7421", 14}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.repair_req.old_node, 3);
    assert_memory_equal(out.u.repair_req.address, "127.0.0.1:7421", 14);
    f = (struct cons_frame){.kind = CONS_FRAME_REPAIR_RESP, .id = 8,
                            .u.repair_resp = {0, 5}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.repair_resp.new_node, 5);
    f = (struct cons_frame){.kind = CONS_FRAME_REPAIR_RESP, .id = 9,
                            .u.repair_resp = {HD_EUNAVAIL, 0}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.repair_resp.status, HD_EUNAVAIL);
    f = (struct cons_frame){.kind = CONS_FRAME_READ_REQ, .id = 5};
    roundtrip(&f, &out);
    f = (struct cons_frame){.kind = CONS_FRAME_READ_RESP, .id = 6,
                            .u.read_resp = {0, 1234}};
    roundtrip(&f, &out);
    assert_int_equal(out.u.read_resp.index, 1234);
}

/* The wire layout is fixed: a READ_RESP is exactly these 21 bytes. */
static void test_layout_is_stable(void **state)
{
    (void)state;
    struct cons_frame f = {.kind = CONS_FRAME_READ_RESP, .id = 0x0102030405060708ull,
                           .u.read_resp = {HD_EUNAVAIL, 0x1122334455667788ull}};
    uint8_t buf[64];
    assert_int_equal(flatten(&f, buf, sizeof buf), 21);
    assert_int_equal(buf[0], CONS_FRAME_VERSION);
    assert_int_equal(hd_get_u64(buf + 1), 0x0102030405060708ull);
    assert_int_equal((int32_t)hd_get_u32(buf + 9), HD_EUNAVAIL);
    assert_int_equal(hd_get_u64(buf + 13), 0x1122334455667788ull);
}

static void test_command_roundtrip(void **state)
{
    (void)state;
    struct cons_frame f = {.kind = CONS_FRAME_COMMAND_REQ, .id = 9,
                           .u.command_req = {.kind = LOG_ENTRY_KIND_TRIM, .channel = "chat:1",
                                             .channel_len = 6, .before_seq = 42}};
    struct cons_frame out;
    roundtrip(&f, &out);
    assert_int_equal(out.u.command_req.kind, LOG_ENTRY_KIND_TRIM);
    assert_int_equal(out.u.command_req.channel_len, 6);
    assert_memory_equal(out.u.command_req.channel, "chat:1", 6);
    assert_int_equal(out.u.command_req.before_seq, 42);
    assert_int_equal(out.u.command_req.flags, 0);
    f.u.command_req.kind = LOG_ENTRY_KIND_DELETE;
    f.u.command_req.before_seq = 0;
    roundtrip(&f, &out);
    assert_int_equal(out.u.command_req.kind, LOG_ENTRY_KIND_DELETE);
    /* A delete with a seq, a trim without one, another kind: corrupt. */
    uint8_t buf[256];
    size_t len = flatten(&f, buf, sizeof buf);
    buf[len - 1] = 1;
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
    buf[len - 1] = 0;
    buf[9] = LOG_ENTRY_KIND_TRIM;
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
    buf[9] = 1;
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
}

/* The cluster's retention policy: its text rides as the frame's bulk bytes. */
static void test_policy_command_roundtrip(void **state)
{
    (void)state;
    const char *text = "chat:*=age:7d;*=none";
    struct cons_frame f = {.kind = CONS_FRAME_COMMAND_REQ, .id = 11,
                           .u.command_req = {.kind = LOG_ENTRY_KIND_POLICY, .text = text,
                                             .text_len = strlen(text)}};
    struct cons_frame out;
    roundtrip(&f, &out);
    assert_int_equal(out.u.command_req.kind, LOG_ENTRY_KIND_POLICY);
    assert_int_equal(out.u.command_req.flags, 0);
    assert_int_equal(out.u.command_req.text_len, strlen(text));
    assert_memory_equal(out.u.command_req.text, text, strlen(text));
    uint8_t buf[256];
    size_t len = flatten(&f, buf, sizeof buf);
    assert_int_equal(len, 1 + 8 + 1 + 1 + 4 + strlen(text));
    /* A byte that is not printable, a clear with text, unknown flags: corrupt. */
    buf[len - 1] = '\n';
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
    buf[len - 1] = 'e';
    buf[10] = LOG_POLICY_CLEAR;
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
    buf[10] = 2;
    assert_int_equal(cons_frame_decode(CONS_FRAME_COMMAND_REQ, buf, len, &out), HD_ECORRUPT);
    /* A clear. */
    f.u.command_req = (struct log_command){.kind = LOG_ENTRY_KIND_POLICY,
                                           .flags = LOG_POLICY_CLEAR};
    roundtrip(&f, &out);
    assert_true(out.u.command_req.kind == LOG_ENTRY_KIND_POLICY &&
                out.u.command_req.flags == LOG_POLICY_CLEAR && out.u.command_req.text_len == 0);
}

static void test_rejects_bad_frames(void **state)
{
    (void)state;
    struct cons_frame out;
    uint8_t b[64] = {0};
    b[0] = CONS_FRAME_VERSION;
    /* Unknown kinds, RAFT included (it has its own codec). */
    assert_int_equal(cons_frame_decode(CONS_FRAME_RAFT, b, 9, &out), HD_ECORRUPT);
    assert_int_equal(cons_frame_decode(200, b, 9, &out), HD_ECORRUPT);
    /* Another version. */
    b[0] = 2;
    assert_int_equal(cons_frame_decode(CONS_FRAME_READ_REQ, b, 9, &out), HD_ECORRUPT);
    b[0] = CONS_FRAME_VERSION;
    assert_int_equal(cons_frame_decode(CONS_FRAME_READ_REQ, b, 9, &out), 0);
    /* A positive status is not an HD_E* code. */
    hd_put_u32(b + 9, 5);
    assert_int_equal(cons_frame_decode(CONS_FRAME_MEMBER_RESP, b, 13, &out), HD_ECORRUPT);
    /* An unknown membership op, an empty channel, unknown chunk flags. */
    b[9] = 3;
    b[18] = 0;
    assert_int_equal(cons_frame_decode(CONS_FRAME_MEMBER_REQ, b, 19, &out), HD_ECORRUPT);
    b[9] = 0;
    assert_int_equal(cons_frame_decode(CONS_FRAME_FORWARD_REQ, b, 15, &out), HD_ECORRUPT);
    hd_put_u32(b + 9, 0);
    b[13] = 4;
    assert_int_equal(cons_frame_decode(CONS_FRAME_STATE_CHUNK, b, 14, &out), HD_ECORRUPT);
    /* A duplicate flag other than 0 or 1. */
    memset(b + 9, 0, 21);
    b[29] = 2;
    assert_int_equal(cons_frame_decode(CONS_FRAME_FORWARD_RESP, b, 30, &out), HD_ECORRUPT);
    /* An address longer than a member address can be. */
    b[9] = CONS_FRAME_MEMBER_ADD;
    b[18] = CONS_FRAME_ADDRESS_MAX + 1;
    uint8_t big[19 + CONS_FRAME_ADDRESS_MAX + 1];
    memcpy(big, b, 19);
    memset(big + 19, 'a', CONS_FRAME_ADDRESS_MAX + 1);
    assert_int_equal(cons_frame_decode(CONS_FRAME_MEMBER_REQ, big, sizeof big, &out),
                     HD_ECORRUPT);
    /* A repair answer granting no id, or an error that grants one; a
     * request to retire node 0. */
    uint8_t rp[21] = {CONS_FRAME_VERSION};
    assert_int_equal(cons_frame_decode(CONS_FRAME_REPAIR_RESP, rp, 21, &out), HD_ECORRUPT);
    hd_put_u32(rp + 9, (uint32_t)HD_EBUSY);
    rp[13] = 4;
    assert_int_equal(cons_frame_decode(CONS_FRAME_REPAIR_RESP, rp, 21, &out), HD_ECORRUPT);
    rp[13] = 0;
    assert_int_equal(cons_frame_decode(CONS_FRAME_REPAIR_RESP, rp, 21, &out), 0);
    memset(rp + 9, 0, 9);
    assert_int_equal(cons_frame_decode(CONS_FRAME_REPAIR_REQ, rp, 18, &out), HD_ECORRUPT);
    /* A channel id or nonce the id rules refuse (common/hd_ids.h). */
    struct cons_frame fr = {.kind = CONS_FRAME_FORWARD_REQ, .id = 1,
                            .u.forward_req = {"general", 7, "n-1", 3, NULL, 0}};
    uint8_t enc[64];
    size_t len = flatten(&fr, enc, sizeof enc);
    assert_int_equal(cons_frame_decode(CONS_FRAME_FORWARD_REQ, enc, len, &out), 0);
    enc[10 + 3] = ' '; /* "gen eral" */
    assert_int_equal(cons_frame_decode(CONS_FRAME_FORWARD_REQ, enc, len, &out), HD_ECORRUPT);
    enc[10 + 3] = 'e';
    enc[10 + 7 + 1 + 1] = 0x7f; /* a control byte in the nonce */
    assert_int_equal(cons_frame_decode(CONS_FRAME_FORWARD_REQ, enc, len, &out), HD_ECORRUPT);
    /* Nothing at all. */
    assert_int_equal(cons_frame_decode(CONS_FRAME_READ_REQ, NULL, 0, &out), HD_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_roundtrip),
        cmocka_unit_test(test_state_member_read_roundtrip),
        cmocka_unit_test(test_command_roundtrip),
        cmocka_unit_test(test_policy_command_roundtrip),
        cmocka_unit_test(test_layout_is_stable),
        cmocka_unit_test(test_rejects_bad_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
