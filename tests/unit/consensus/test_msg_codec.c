/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the peer wire codec of Raft messages (consensus/msg_codec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hd_error.h"
#include "hd_util.h"
#include "msg_codec.h"

/* ------------------------------------------------------------- fixtures --- */

#define BIG_LEN ((size_t)3 << 20) /* a large entry: 3 MiB */

static uint8_t *big_buf;

static int setup(void **state)
{
    (void)state;
    big_buf = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++) {
        big_buf[i] = (uint8_t)(i * 2654435761u >> 13);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(big_buf);
    return 0;
}

static struct raft_entry test_entries[] = {
    {.term = 3, .type = RAFT_COMMAND, .buf = {(void *)"hello", 5}},
    {.term = 3, .type = RAFT_BARRIER, .buf = {NULL, 0}},
    {.term = 4, .type = RAFT_COMMAND, .buf = {NULL, BIG_LEN}}, /* big_buf */
    {.term = 4, .type = RAFT_COMMAND, .buf = {NULL, 0}},
    {.term = 9, .type = RAFT_CHANGE, .buf = {(void *)"conf!!!", 7}},
};
#define N_TEST_ENTRIES (sizeof test_entries / sizeof test_entries[0])

static struct raft_configuration test_conf(unsigned n)
{
    struct raft_configuration c;
    raft_configuration_init(&c);
    static const int roles[] = {RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE};
    for (unsigned i = 0; i < n; i++) {
        char addr[32];
        snprintf(addr, sizeof addr, "10.0.0.%u:74%02u", i + 1, i);
        assert_int_equal(raft_configuration_add(&c, 1000 + i, addr, roles[i % 3]), 0);
    }
    return c;
}

/* Builds a message of `type`; `variant` picks flag combinations and sizes.
 * Messages with a configuration must be freed with free_msg(). */
static struct raft_message make_msg(unsigned type, unsigned variant)
{
    struct raft_message m = {.type = (unsigned short)type, .server_id = 2};
    test_entries[2].buf.base = big_buf;
    switch (type) {
        case RAFT_IO_APPEND_ENTRIES:
            m.append_entries = (struct raft_append_entries){
                .term = 9, .prev_log_index = 100 + variant, .prev_log_term = 3,
                .leader_commit = 90, .entries = variant % 2 ? NULL : test_entries,
                .n_entries = variant % 2 ? 0 : (variant ? 2 : (unsigned)N_TEST_ENTRIES)};
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            m.append_entries_result = (struct raft_append_entries_result){
                .term = 7, .rejected = variant, .last_log_index = UINT64_MAX - variant};
            break;
        case RAFT_IO_REQUEST_VOTE:
            m.request_vote = (struct raft_request_vote){
                .term = 11, .candidate_id = 3, .last_log_index = 55, .last_log_term = 10,
                .disrupt_leader = variant & 1, .pre_vote = (variant >> 1) & 1};
            break;
        case RAFT_IO_REQUEST_VOTE_RESULT:
            m.request_vote_result = (struct raft_request_vote_result){
                .term = 12, .vote_granted = variant & 1,
                .pre_vote = (raft_tribool)((variant >> 1) % 3)};
            break;
        case RAFT_IO_INSTALL_SNAPSHOT:
            m.install_snapshot = (struct raft_install_snapshot){
                .term = 13, .last_index = 5000, .last_term = 12,
                .conf = test_conf(1 + variant % 5), .conf_index = 4000,
                .data = {variant % 2 ? NULL : big_buf, variant % 2 ? 0 : 1000 + variant}};
            break;
        default:
            m.timeout_now = (struct raft_timeout_now){
                .term = 14, .last_log_index = 77, .last_log_term = 13};
            break;
    }
    return m;
}

static void free_msg(struct raft_message *m)
{
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
    }
}

/* Concatenates an encoding's iovecs (what the transport copies). */
static uint8_t *flatten(const struct cons_msg_enc *e)
{
    uint8_t *buf = malloc(e->len + 1);
    size_t off = 0;
    for (unsigned i = 0; i < e->iov_n; i++) {
        memcpy(buf + off, e->iov[i].iov_base, e->iov[i].iov_len);
        off += e->iov[i].iov_len;
    }
    assert_int_equal(off, e->len);
    return buf;
}

static uint8_t *encode_flat(const struct raft_message *m, size_t *len)
{
    struct cons_msg_enc e;
    assert_int_equal(cons_msg_encode(m, &e), 0);
    uint8_t *buf = flatten(&e);
    *len = e.len;
    cons_msg_enc_release(&e);
    return buf;
}

/* -------------------------------------------------------------- compare --- */

static void assert_entries_equal(const struct raft_append_entries *a,
                                 const struct raft_append_entries *b)
{
    assert_int_equal(a->n_entries, b->n_entries);
    if (b->n_entries == 0) {
        assert_null(b->entries);
        return;
    }
    void *batch = b->entries[0].batch;
    assert_non_null(batch);
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry *x = &a->entries[i], *y = &b->entries[i];
        assert_int_equal(x->term, y->term);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->buf.len, y->buf.len);
        assert_ptr_equal(y->batch, batch); /* one batch, as raft expects */
        if (x->buf.len == 0) {
            assert_null(y->buf.base);
        } else {
            assert_memory_equal(x->buf.base, y->buf.base, x->buf.len);
        }
    }
}

static void assert_conf_equal(const struct raft_configuration *a,
                              const struct raft_configuration *b)
{
    assert_int_equal(a->n, b->n);
    for (unsigned i = 0; i < a->n; i++) {
        assert_int_equal(a->servers[i].id, b->servers[i].id);
        assert_int_equal(a->servers[i].role, b->servers[i].role);
        assert_string_equal(a->servers[i].address, b->servers[i].address);
    }
}

static void assert_msg_equal(const struct raft_message *a, const struct raft_message *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(b->server_id, 0); /* the transport supplies the sender */
    assert_null(b->server_address);
    switch (a->type) {
        case RAFT_IO_APPEND_ENTRIES:
            assert_int_equal(a->append_entries.term, b->append_entries.term);
            assert_int_equal(a->append_entries.prev_log_index, b->append_entries.prev_log_index);
            assert_int_equal(a->append_entries.prev_log_term, b->append_entries.prev_log_term);
            assert_int_equal(a->append_entries.leader_commit, b->append_entries.leader_commit);
            assert_entries_equal(&a->append_entries, &b->append_entries);
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            assert_memory_equal(&a->append_entries_result, &b->append_entries_result,
                                sizeof a->append_entries_result);
            break;
        case RAFT_IO_REQUEST_VOTE: {
            const struct raft_request_vote *x = &a->request_vote, *y = &b->request_vote;
            assert_true(x->term == y->term && x->candidate_id == y->candidate_id);
            assert_true(x->last_log_index == y->last_log_index);
            assert_true(x->last_log_term == y->last_log_term);
            assert_int_equal(x->disrupt_leader, y->disrupt_leader);
            assert_int_equal(x->pre_vote, y->pre_vote);
            break;
        }
        case RAFT_IO_REQUEST_VOTE_RESULT:
            assert_int_equal(a->request_vote_result.term, b->request_vote_result.term);
            assert_int_equal(a->request_vote_result.vote_granted,
                             b->request_vote_result.vote_granted);
            assert_int_equal(a->request_vote_result.pre_vote, b->request_vote_result.pre_vote);
            break;
        case RAFT_IO_INSTALL_SNAPSHOT: {
            const struct raft_install_snapshot *x = &a->install_snapshot, *y = &b->install_snapshot;
            assert_true(x->term == y->term && x->last_index == y->last_index);
            assert_true(x->last_term == y->last_term && x->conf_index == y->conf_index);
            assert_conf_equal(&x->conf, &y->conf);
            assert_int_equal(x->data.len, y->data.len);
            assert_non_null(y->data.base); /* raft frees it; never NULL */
            if (x->data.len > 0) {
                assert_memory_equal(x->data.base, y->data.base, x->data.len);
            }
            break;
        }
        default:
            assert_memory_equal(&a->timeout_now, &b->timeout_now, sizeof a->timeout_now);
            break;
    }
}

/* ---------------------------------------------------------------- tests --- */

static void test_roundtrip_every_type(void **state)
{
    (void)state;
    for (unsigned type = RAFT_IO_APPEND_ENTRIES; type <= RAFT_IO_TIMEOUT_NOW; type++) {
        for (unsigned variant = 0; variant < 6; variant++) {
            struct raft_message m = make_msg(type, variant);
            size_t len;
            uint8_t *buf = encode_flat(&m, &len);
            struct raft_message d;
            assert_int_equal(cons_msg_decode(buf, len, &d), 0);
            free(buf); /* the decoded message must not point into the input */
            assert_msg_equal(&m, &d);
            cons_msg_release(&d);
            free_msg(&m);
        }
    }
}

static void test_encode_gathers_entry_buffers(void **state)
{
    (void)state;
    struct raft_message m = make_msg(RAFT_IO_APPEND_ENTRIES, 0);
    struct cons_msg_enc e;
    assert_int_equal(cons_msg_encode(&m, &e), 0);
    /* Three non-empty entries, borrowed in order, not copied. */
    assert_int_equal(e.iov_n, 4);
    assert_ptr_equal(e.iov[0].iov_base, e.head);
    assert_ptr_equal(e.iov[1].iov_base, test_entries[0].buf.base);
    assert_ptr_equal(e.iov[2].iov_base, big_buf);
    assert_int_equal(e.iov[2].iov_len, BIG_LEN);
    assert_ptr_equal(e.iov[3].iov_base, test_entries[4].buf.base);
    assert_true(e.iov[0].iov_len < 4096);
    cons_msg_enc_release(&e);

    m = make_msg(RAFT_IO_INSTALL_SNAPSHOT, 0);
    assert_int_equal(cons_msg_encode(&m, &e), 0);
    assert_int_equal(e.iov_n, 2);
    assert_ptr_equal(e.iov[1].iov_base, big_buf);
    cons_msg_enc_release(&e);
    free_msg(&m);
}

static void test_every_truncation_is_rejected(void **state)
{
    (void)state;
    test_entries[2].buf.len = 40; /* keep the quadratic loop small */
    for (unsigned type = RAFT_IO_APPEND_ENTRIES; type <= RAFT_IO_TIMEOUT_NOW; type++) {
        struct raft_message m = make_msg(type, 0);
        size_t len;
        uint8_t *buf = encode_flat(&m, &len);
        struct raft_message d;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut + 1); /* exact size: ASan sees overreads */
            memcpy(copy, buf, cut);
            assert_int_equal(cons_msg_decode(copy, cut, &d), HD_ECORRUPT);
            free(copy);
        }
        buf[len] = 0; /* and a trailing byte */
        assert_int_equal(cons_msg_decode(buf, len + 1, &d), HD_ECORRUPT);
        assert_int_equal(cons_msg_decode(buf, len, &d), 0);
        cons_msg_release(&d);
        free(buf);
        free_msg(&m);
    }
    test_entries[2].buf.len = BIG_LEN;
}

static void test_random_flips_never_crash(void **state)
{
    (void)state;
    test_entries[2].buf.len = 100;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    unsigned accepted = 0, rejected = 0;
    for (unsigned type = RAFT_IO_APPEND_ENTRIES; type <= RAFT_IO_TIMEOUT_NOW; type++) {
        struct raft_message m = make_msg(type, 0);
        size_t len;
        uint8_t *orig = encode_flat(&m, &len);
        for (unsigned round = 0; round < 3000; round++) {
            uint8_t *buf = malloc(len);
            memcpy(buf, orig, len);
            unsigned flips = 1 + round % 3;
            for (unsigned k = 0; k < flips; k++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                buf[rng % len] ^= (uint8_t)(1u << (rng >> 32) % 8);
            }
            struct raft_message d;
            int rv = cons_msg_decode(buf, len, &d);
            free(buf);
            assert_true(rv == 0 || rv == HD_ECORRUPT);
            if (rv == 0) {
                accepted++; /* e.g. a flipped term: still a valid message */
                cons_msg_release(&d);
            } else {
                rejected++;
            }
        }
        free(orig);
        free_msg(&m);
    }
    assert_true(accepted > 0 && rejected > 0);
    test_entries[2].buf.len = BIG_LEN;
}

/* Patches byte `off` of an encoded message and expects a rejection. */
static void expect_corrupt_patch(const struct raft_message *m, size_t off, uint8_t val)
{
    size_t len;
    uint8_t *buf = encode_flat(m, &len);
    assert_true(off < len);
    buf[off] = val;
    struct raft_message d;
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    free(buf);
}

static void test_bad_header_fields_are_rejected(void **state)
{
    (void)state;
    struct raft_message m = make_msg(RAFT_IO_TIMEOUT_NOW, 0);
    expect_corrupt_patch(&m, 0, CONS_MSG_VERSION + 1); /* unknown version */
    expect_corrupt_patch(&m, 1, 0);                    /* unknown types */
    expect_corrupt_patch(&m, 1, 7);
    expect_corrupt_patch(&m, 2, 1);                    /* flags on a flagless type */
    expect_corrupt_patch(&m, 3, 1);                    /* reserved byte */
    m = make_msg(RAFT_IO_REQUEST_VOTE, 0);
    expect_corrupt_patch(&m, 2, 0x04);                 /* unknown flag bit */
    m = make_msg(RAFT_IO_REQUEST_VOTE_RESULT, 0);
    expect_corrupt_patch(&m, 2, 0x06);                 /* tribool value 3 */
    m = make_msg(RAFT_IO_APPEND_ENTRIES, 2);           /* 2 entries: "hello", barrier */
    expect_corrupt_patch(&m, 4 + 32 + 4 + 8, 4);       /* first entry's type */
    expect_corrupt_patch(&m, 4 + 32 + 4 + 9, 6);       /* its length: sum mismatch */
    struct raft_message d;
    assert_int_equal(cons_msg_decode(NULL, 0, &d), HD_ECORRUPT);
}

static void test_counts_are_capped_before_allocating(void **state)
{
    (void)state;
    struct raft_message m = make_msg(RAFT_IO_APPEND_ENTRIES, 1); /* no entries */
    size_t len;
    uint8_t *buf = encode_flat(&m, &len);
    struct raft_message d;
    hd_put_u32(buf + 4 + 32, CONS_MSG_ENTRIES_MAX + 1);
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    hd_put_u32(buf + 4 + 32, UINT32_MAX);
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    hd_put_u32(buf + 4 + 32, 1000); /* fewer bytes than 1000 headers */
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    free(buf);

    m = make_msg(RAFT_IO_INSTALL_SNAPSHOT, 1); /* one server, no data */
    buf = encode_flat(&m, &len);
    hd_put_u32(buf + 4 + 32, CONS_MSG_SERVERS_MAX + 1);
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    hd_put_u32(buf + 4 + 32, 0);
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    free(buf);
    free_msg(&m);
    /* Messages larger than the cap are refused without reading them. */
    assert_int_equal(cons_msg_decode(big_buf, (size_t)CONS_MSG_SIZE_MAX + 1, &d),
                     HD_ECORRUPT);
}

static void test_bad_configurations_are_rejected(void **state)
{
    (void)state;
    struct raft_message m = make_msg(RAFT_IO_INSTALL_SNAPSHOT, 1); /* 2 servers */
    size_t server0 = 4 + 32 + 4;
    size_t server1 = server0 + 10 + strlen(m.install_snapshot.conf.servers[0].address);
    expect_corrupt_patch(&m, server0 + 8, 3);     /* role */
    expect_corrupt_patch(&m, server0 + 10, 0);    /* NUL inside the address */
    size_t len;
    uint8_t *buf = encode_flat(&m, &len);
    struct raft_message d;
    memset(buf + server0, 0, 8); /* id 0: raft_configuration_add would assert */
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    memcpy(buf + server0, buf + server1, 8); /* duplicate id */
    assert_int_equal(cons_msg_decode(buf, len, &d), HD_ECORRUPT);
    free(buf);
    free_msg(&m);
}

static void test_encode_limits(void **state)
{
    (void)state;
    struct cons_msg_enc e;
    struct raft_message m = {.type = 0};
    assert_int_equal(cons_msg_encode(&m, &e), HD_EINVAL);
    m.type = 42;
    assert_int_equal(cons_msg_encode(&m, &e), HD_EINVAL);
    /* More than 64 MiB of entries: refused before any byte is read. */
    struct raft_entry huge[2] = {{.term = 1, .type = RAFT_COMMAND, .buf = {NULL, 40u << 20}},
                                 {.term = 1, .type = RAFT_COMMAND, .buf = {NULL, 30u << 20}}};
    m = (struct raft_message){.type = RAFT_IO_APPEND_ENTRIES,
                              .append_entries = {.entries = huge, .n_entries = 2}};
    assert_int_equal(cons_msg_encode(&m, &e), HD_ETOOBIG);
    m.append_entries.n_entries = CONS_MSG_ENTRIES_MAX + 1;
    assert_int_equal(cons_msg_encode(&m, &e), HD_ETOOBIG);
    m = make_msg(RAFT_IO_INSTALL_SNAPSHOT, 0);
    struct raft_configuration big = test_conf(CONS_MSG_SERVERS_MAX + 1);
    struct raft_configuration small = m.install_snapshot.conf;
    m.install_snapshot.conf = big;
    assert_int_equal(cons_msg_encode(&m, &e), HD_ETOOBIG);
    m.install_snapshot.conf = small;
    raft_configuration_close(&big);
    free_msg(&m);
}

/* raft_malloc fails on the Nth call from now on; sweep N upward. */
static int heap_countdown;
static void *fail_malloc(void *data, size_t size)
{
    (void)data;
    return heap_countdown-- > 0 ? malloc(size) : NULL;
}
static void *fail_calloc(void *data, size_t n, size_t size)
{
    (void)data;
    return heap_countdown-- > 0 ? calloc(n, size) : NULL;
}
static void *fail_realloc(void *data, void *p, size_t size)
{
    (void)data;
    return heap_countdown-- > 0 ? realloc(p, size) : NULL;
}
static void plain_free(void *data, void *p)
{
    (void)data;
    free(p);
}

static void test_allocation_failures_leak_nothing(void **state)
{
    (void)state;
    struct raft_heap heap = {.malloc = fail_malloc, .free = plain_free,
                             .calloc = fail_calloc, .realloc = fail_realloc};
    test_entries[2].buf.len = 64;
    unsigned types[] = {RAFT_IO_APPEND_ENTRIES, RAFT_IO_INSTALL_SNAPSHOT};
    for (unsigned k = 0; k < 2; k++) {
        struct raft_message m = make_msg(types[k], 4); /* 5 servers */
        size_t len;
        uint8_t *buf = encode_flat(&m, &len);
        int rv = HD_ENOMEM;
        for (int n = 0; rv == HD_ENOMEM; n++) {
            assert_true(n < 100);
            struct raft_message d;
            heap_countdown = n;
            raft_heap_set(&heap);
            rv = cons_msg_decode(buf, len, &d);
            raft_heap_set_default();
            assert_true(rv == 0 || rv == HD_ENOMEM);
            if (rv == 0) {
                assert_msg_equal(&m, &d);
                cons_msg_release(&d);
            }
        }
        free(buf);
        free_msg(&m);
    }
    test_entries[2].buf.len = BIG_LEN;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_encode_gathers_entry_buffers),
        cmocka_unit_test(test_every_truncation_is_rejected),
        cmocka_unit_test(test_random_flips_never_crash),
        cmocka_unit_test(test_bad_header_fields_are_rejected),
        cmocka_unit_test(test_counts_are_capped_before_allocating),
        cmocka_unit_test(test_bad_configurations_are_rejected),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_allocation_failures_leak_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
