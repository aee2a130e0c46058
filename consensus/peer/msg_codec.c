/* SPDX-License-Identifier: Apache-2.0 */
/* Encoder and decoder of Raft messages for the peer link (docs/wire-format.md). */
#include "msg_codec.h"

#include <stdbool.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"

#define CONS__MSG_PREAMBLE 4u
#define CONS__MSG_ENTRY_HEAD 13u  /* u64 term, u8 type, u32 len */
#define CONS__MSG_SERVER_HEAD 10u /* u64 id, u8 role, u8 address length */

/* Flag bits of the preamble, per type. */
#define CONS__RV_DISRUPT_LEADER 0x01u /* REQUEST_VOTE */
#define CONS__RV_PRE_VOTE 0x02u
#define CONS__RVR_GRANTED 0x01u       /* REQUEST_VOTE_RESULT */
#define CONS__RVR_PRE_VOTE_SHIFT 1    /* 2 bits: a raft_tribool */
#define CONS__RVR_PRE_VOTE_MASK 0x06u

/* Bytes of the fixed fields that follow the preamble, by type. */
static size_t cons__msg_fixed_size(unsigned type)
{
    switch (type) {
        case RAFT_IO_APPEND_ENTRIES:
            return 4 * 8 + 4; /* term, prev index, prev term, commit, n */
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            return 3 * 8;
        case RAFT_IO_REQUEST_VOTE:
            return 4 * 8;
        case RAFT_IO_REQUEST_VOTE_RESULT:
            return 8;
        case RAFT_IO_INSTALL_SNAPSHOT:
            return 4 * 8 + 4; /* term, last index, last term, conf index, n */
        case RAFT_IO_TIMEOUT_NOW:
            return 3 * 8;
        default:
            return 0;
    }
}

/* ------------------------------------------------------------- encoding --- */

/* The sizes an encoding needs: head bytes, borrowed bytes and iovecs. */
struct cons__msg_plan {
    size_t head_len;
    size_t body_len;
    unsigned borrowed_n;
};

static int cons__msg_plan_entries(const struct raft_append_entries *a,
                                  struct cons__msg_plan *plan)
{
    if (a->n_entries > CONS_MSG_ENTRIES_MAX) {
        return HD_ETOOBIG;
    }
    HD_ASSERT(a->n_entries == 0 || a->entries != NULL);
    plan->head_len += (size_t)a->n_entries * CONS__MSG_ENTRY_HEAD;
    for (unsigned i = 0; i < a->n_entries; i++) {
        size_t len = a->entries[i].buf.len;
        if (len > CONS_MSG_SIZE_MAX) {
            return HD_ETOOBIG; /* also keeps the sum below from overflowing */
        }
        plan->body_len += len;
        plan->borrowed_n += len > 0;
        if (plan->body_len > CONS_MSG_SIZE_MAX) {
            return HD_ETOOBIG;
        }
    }
    return 0;
}

static int cons__msg_plan_snapshot(const struct raft_install_snapshot *s,
                                   struct cons__msg_plan *plan)
{
    if (s->conf.n > CONS_MSG_SERVERS_MAX || s->data.len > CONS_MSG_SIZE_MAX) {
        return HD_ETOOBIG;
    }
    for (unsigned i = 0; i < s->conf.n; i++) {
        size_t len = strlen(s->conf.servers[i].address);
        if (len > CONS_MSG_ADDRESS_LEN_MAX) {
            return HD_ETOOBIG;
        }
        plan->head_len += CONS__MSG_SERVER_HEAD + len;
    }
    plan->head_len += 8; /* data length */
    plan->body_len = s->data.len;
    plan->borrowed_n = s->data.len > 0;
    return 0;
}

static int cons__msg_plan(const struct raft_message *m, struct cons__msg_plan *plan)
{
    size_t fixed = cons__msg_fixed_size(m->type);
    if (fixed == 0) {
        return HD_EINVAL;
    }
    *plan = (struct cons__msg_plan){.head_len = CONS__MSG_PREAMBLE + fixed};
    int rv = 0;
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        rv = cons__msg_plan_entries(&m->append_entries, plan);
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        rv = cons__msg_plan_snapshot(&m->install_snapshot, plan);
    }
    if (rv == 0 && plan->head_len + plan->body_len > CONS_MSG_SIZE_MAX) {
        rv = HD_ETOOBIG;
    }
    return rv;
}

static uint8_t *cons__put64(uint8_t *p, uint64_t v)
{
    hd_put_u64(p, v);
    return p + 8;
}

static uint8_t *cons__put32(uint8_t *p, uint32_t v)
{
    hd_put_u32(p, v);
    return p + 4;
}

/* Writes the entry headers and adds an iovec per non-empty entry. */
static uint8_t *cons__msg_put_entries(uint8_t *p, const struct raft_append_entries *a,
                                      struct cons_msg_enc *e)
{
    p = cons__put32(p, a->n_entries);
    for (unsigned i = 0; i < a->n_entries; i++) {
        const struct raft_entry *entry = &a->entries[i];
        HD_ASSERT(entry->type == RAFT_COMMAND || entry->type == RAFT_BARRIER ||
                  entry->type == RAFT_CHANGE);
        p = cons__put64(p, entry->term);
        *p++ = (uint8_t)entry->type;
        p = cons__put32(p, (uint32_t)entry->buf.len);
        if (entry->buf.len > 0) {
            e->iov[e->iov_n++] = (struct iovec){entry->buf.base, entry->buf.len};
        }
    }
    return p;
}

static uint8_t *cons__msg_put_snapshot(uint8_t *p, const struct raft_install_snapshot *s,
                                       struct cons_msg_enc *e)
{
    p = cons__put32(p, s->conf.n);
    for (unsigned i = 0; i < s->conf.n; i++) {
        const struct raft_server *srv = &s->conf.servers[i];
        size_t len = strlen(srv->address);
        HD_ASSERT(srv->role >= 0 && srv->role <= 255);
        p = cons__put64(p, srv->id);
        *p++ = (uint8_t)srv->role;
        *p++ = (uint8_t)len;
        memcpy(p, srv->address, len);
        p += len;
    }
    p = cons__put64(p, s->data.len);
    if (s->data.len > 0) {
        e->iov[e->iov_n++] = (struct iovec){s->data.base, s->data.len};
    }
    return p;
}

/* Writes the preamble and fixed fields of any type; returns the cursor. */
static uint8_t *cons__msg_put_fixed(uint8_t *p, const struct raft_message *m)
{
    uint8_t flags = 0;
    const struct raft_request_vote *rv = &m->request_vote;
    const struct raft_request_vote_result *rr = &m->request_vote_result;
    if (m->type == RAFT_IO_REQUEST_VOTE) {
        flags = (uint8_t)((rv->disrupt_leader ? CONS__RV_DISRUPT_LEADER : 0) |
                          (rv->pre_vote ? CONS__RV_PRE_VOTE : 0));
    } else if (m->type == RAFT_IO_REQUEST_VOTE_RESULT) {
        HD_ASSERT(rr->pre_vote <= raft_tribool_false);
        flags = (uint8_t)((rr->vote_granted ? CONS__RVR_GRANTED : 0) |
                          ((unsigned)rr->pre_vote << CONS__RVR_PRE_VOTE_SHIFT));
    }
    *p++ = CONS_MSG_VERSION;
    *p++ = (uint8_t)m->type;
    *p++ = flags;
    *p++ = 0;
    switch (m->type) {
        case RAFT_IO_APPEND_ENTRIES: {
            const struct raft_append_entries *a = &m->append_entries;
            p = cons__put64(p, a->term);
            p = cons__put64(p, a->prev_log_index);
            p = cons__put64(p, a->prev_log_term);
            return cons__put64(p, a->leader_commit);
        }
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            p = cons__put64(p, m->append_entries_result.term);
            p = cons__put64(p, m->append_entries_result.rejected);
            return cons__put64(p, m->append_entries_result.last_log_index);
        case RAFT_IO_REQUEST_VOTE:
            p = cons__put64(p, rv->term);
            p = cons__put64(p, rv->candidate_id);
            p = cons__put64(p, rv->last_log_index);
            return cons__put64(p, rv->last_log_term);
        case RAFT_IO_REQUEST_VOTE_RESULT:
            return cons__put64(p, rr->term);
        case RAFT_IO_INSTALL_SNAPSHOT: {
            const struct raft_install_snapshot *s = &m->install_snapshot;
            p = cons__put64(p, s->term);
            p = cons__put64(p, s->last_index);
            p = cons__put64(p, s->last_term);
            return cons__put64(p, s->conf_index);
        }
        default:
            HD_ASSERT(m->type == RAFT_IO_TIMEOUT_NOW);
            p = cons__put64(p, m->timeout_now.term);
            p = cons__put64(p, m->timeout_now.last_log_index);
            return cons__put64(p, m->timeout_now.last_log_term);
    }
}

int cons_msg_encode(const struct raft_message *m, struct cons_msg_enc *out)
{
    HD_ASSERT(m != NULL);
    HD_ASSERT(out != NULL);
    *out = (struct cons_msg_enc){0};
    struct cons__msg_plan plan;
    int rv = cons__msg_plan(m, &plan);
    if (rv != 0) {
        return rv;
    }
    /* One allocation: the iovec array first (for alignment), then the head.
     * The borrowed buffers are not copied: that is the copy saved. */
    size_t iov_n = 1 + (size_t)plan.borrowed_n;
    size_t iov_size = iov_n * sizeof(struct iovec);
    uint8_t *mem = hd_malloc(iov_size + plan.head_len);
    if (mem == NULL) {
        return HD_ENOMEM;
    }
    out->iov = (struct iovec *)(void *)mem;
    out->head = mem + iov_size;
    out->iov[0] = (struct iovec){out->head, plan.head_len};
    out->iov_n = 1;
    uint8_t *p = cons__msg_put_fixed(out->head, m);
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        p = cons__msg_put_entries(p, &m->append_entries, out);
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        p = cons__msg_put_snapshot(p, &m->install_snapshot, out);
    }
    HD_ASSERT((size_t)(p - out->head) == plan.head_len);
    HD_ASSERT(out->iov_n == iov_n);
    out->len = plan.head_len + plan.body_len;
    return 0;
}

void cons_msg_enc_release(struct cons_msg_enc *e)
{
    HD_ASSERT(e != NULL);
    hd_free(e->iov); /* the head lives in the same allocation */
    *e = (struct cons_msg_enc){0};
}

/* ------------------------------------------------------------- decoding --- */

/* A bounds-checked reader: a short read sets `bad` and yields zeros, so the
 * callers check `bad` once after a group of fields instead of per field. */
struct cons__rd {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
};

static size_t cons__rd_left(const struct cons__rd *r) { return (size_t)(r->end - r->p); }

static const uint8_t *cons__rd_take(struct cons__rd *r, size_t n)
{
    if (r->bad || cons__rd_left(r) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static uint64_t cons__get64(struct cons__rd *r)
{
    const uint8_t *p = cons__rd_take(r, 8);
    return p != NULL ? hd_get_u64(p) : 0;
}

static uint32_t cons__get32(struct cons__rd *r)
{
    const uint8_t *p = cons__rd_take(r, 4);
    return p != NULL ? hd_get_u32(p) : 0;
}

static uint8_t cons__get8(struct cons__rd *r)
{
    const uint8_t *p = cons__rd_take(r, 1);
    return p != NULL ? *p : 0;
}

/* Checks the entry headers and returns the payload bytes they announce
 * in *total; the headers must be followed by exactly that many bytes. */
static int cons__msg_scan_entries(struct cons__rd hdrs, uint32_t n, size_t *total)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        (void)cons__get64(&hdrs);
        uint8_t type = cons__get8(&hdrs);
        sum += cons__get32(&hdrs);
        if (type != RAFT_COMMAND && type != RAFT_BARRIER && type != RAFT_CHANGE) {
            return HD_ECORRUPT;
        }
    }
    if (hdrs.bad || sum != cons__rd_left(&hdrs)) {
        return HD_ECORRUPT;
    }
    *total = (size_t)sum;
    return 0;
}

static int cons__msg_get_entries(struct cons__rd *r, struct raft_append_entries *a)
{
    uint32_t n = cons__get32(r);
    if (r->bad || n > CONS_MSG_ENTRIES_MAX ||
        cons__rd_left(r) / CONS__MSG_ENTRY_HEAD < n) {
        return HD_ECORRUPT; /* checked before allocating n entries */
    }
    if (n == 0) {
        return cons__rd_left(r) == 0 ? 0 : HD_ECORRUPT;
    }
    size_t total = 0;
    int rv = cons__msg_scan_entries(*r, n, &total);
    if (rv != 0) {
        return rv;
    }
    struct raft_entry *entries = raft_calloc(n, sizeof *entries);
    uint8_t *batch = raft_malloc(total > 0 ? total : 1); /* raft wants a batch */
    if (entries == NULL || batch == NULL) {
        raft_free(entries);
        raft_free(batch);
        return HD_ENOMEM;
    }
    const uint8_t *payload = r->p + (size_t)n * CONS__MSG_ENTRY_HEAD;
    memcpy(batch, payload, total);
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry *e = &entries[i];
        e->term = cons__get64(r);
        e->type = cons__get8(r);
        e->buf.len = cons__get32(r);
        e->buf.base = e->buf.len > 0 ? batch + off : NULL;
        e->batch = batch;
        off += e->buf.len;
    }
    HD_ASSERT(!r->bad && off == total);
    r->p = r->end;
    a->entries = entries;
    a->n_entries = n;
    return 0;
}

static int cons__raft_conf_err(int rv)
{
    return rv == RAFT_NOMEM ? HD_ENOMEM : HD_ECORRUPT;
}

static int cons__msg_get_conf(struct cons__rd *r, struct raft_configuration *conf)
{
    uint32_t n = cons__get32(r);
    if (r->bad || n == 0 || n > CONS_MSG_SERVERS_MAX) {
        return HD_ECORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = cons__get64(r);
        uint8_t role = cons__get8(r);
        uint8_t len = cons__get8(r);
        const uint8_t *addr = cons__rd_take(r, len);
        if (r->bad || id == 0 || memchr(addr, 0, len) != NULL) {
            return HD_ECORRUPT; /* raft_configuration_add asserts id != 0 */
        }
        if (role != RAFT_STANDBY && role != RAFT_VOTER && role != RAFT_SPARE) {
            return HD_ECORRUPT;
        }
        char address[CONS_MSG_ADDRESS_LEN_MAX + 1];
        memcpy(address, addr, len);
        address[len] = '\0';
        int rv = raft_configuration_add(conf, id, address, role);
        if (rv != 0) {
            return cons__raft_conf_err(rv); /* duplicate id or address */
        }
    }
    return 0;
}

static int cons__msg_get_snapshot(struct cons__rd *r, struct raft_install_snapshot *s)
{
    raft_configuration_init(&s->conf);
    int rv = cons__msg_get_conf(r, &s->conf);
    if (rv != 0) {
        goto err_conf;
    }
    uint64_t len = cons__get64(r);
    if (r->bad || len != cons__rd_left(r)) {
        rv = HD_ECORRUPT;
        goto err_conf;
    }
    s->data.base = raft_malloc(len > 0 ? (size_t)len : 1);
    if (s->data.base == NULL) {
        rv = HD_ENOMEM;
        goto err_conf;
    }
    s->data.len = (size_t)len;
    memcpy(s->data.base, r->p, s->data.len);
    r->p = r->end;
    return 0;

err_conf:
    raft_configuration_close(&s->conf);
    raft_configuration_init(&s->conf);
    HD_ASSERT(rv != 0);
    return rv;
}

/* Checks the flags of the preamble and decodes them into `m`. */
static int cons__msg_get_flags(uint8_t flags, struct raft_message *m)
{
    switch (m->type) {
        case RAFT_IO_REQUEST_VOTE:
            m->request_vote.disrupt_leader = (flags & CONS__RV_DISRUPT_LEADER) != 0;
            m->request_vote.pre_vote = (flags & CONS__RV_PRE_VOTE) != 0;
            return (flags & ~(CONS__RV_DISRUPT_LEADER | CONS__RV_PRE_VOTE)) ? HD_ECORRUPT : 0;
        case RAFT_IO_REQUEST_VOTE_RESULT: {
            unsigned pre_vote = (flags & CONS__RVR_PRE_VOTE_MASK) >> CONS__RVR_PRE_VOTE_SHIFT;
            if (pre_vote > raft_tribool_false ||
                (flags & ~(CONS__RVR_GRANTED | CONS__RVR_PRE_VOTE_MASK))) {
                return HD_ECORRUPT;
            }
            m->request_vote_result.vote_granted = (flags & CONS__RVR_GRANTED) != 0;
            m->request_vote_result.pre_vote = (raft_tribool)pre_vote;
            return 0;
        }
        default:
            return flags != 0 ? HD_ECORRUPT : 0;
    }
}

/* Reads the fixed fields of every type (the counts excepted). */
static void cons__msg_get_fixed(struct cons__rd *r, struct raft_message *m)
{
    uint64_t f[4];
    size_t nf = cons__msg_fixed_size(m->type) / 8;
    HD_ASSERT(nf >= 1 && nf <= 4);
    for (size_t i = 0; i < nf; i++) {
        f[i] = cons__get64(r);
    }
    switch (m->type) {
        case RAFT_IO_APPEND_ENTRIES:
            m->append_entries = (struct raft_append_entries){
                .term = f[0], .prev_log_index = f[1], .prev_log_term = f[2],
                .leader_commit = f[3]};
            break;
        case RAFT_IO_APPEND_ENTRIES_RESULT:
            m->append_entries_result = (struct raft_append_entries_result){
                .term = f[0], .rejected = f[1], .last_log_index = f[2]};
            break;
        case RAFT_IO_REQUEST_VOTE:
            m->request_vote = (struct raft_request_vote){
                .term = f[0], .candidate_id = f[1], .last_log_index = f[2],
                .last_log_term = f[3]};
            break;
        case RAFT_IO_REQUEST_VOTE_RESULT:
            m->request_vote_result = (struct raft_request_vote_result){.term = f[0]};
            break;
        case RAFT_IO_INSTALL_SNAPSHOT:
            m->install_snapshot = (struct raft_install_snapshot){
                .term = f[0], .last_index = f[1], .last_term = f[2], .conf_index = f[3]};
            break;
        default:
            m->timeout_now = (struct raft_timeout_now){
                .term = f[0], .last_log_index = f[1], .last_log_term = f[2]};
            break;
    }
}

int cons_msg_decode(const uint8_t *buf, size_t len, struct raft_message *out)
{
    HD_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    if (buf == NULL || len < CONS__MSG_PREAMBLE || len > CONS_MSG_SIZE_MAX ||
        buf[0] != CONS_MSG_VERSION || buf[3] != 0 || cons__msg_fixed_size(buf[1]) == 0) {
        return HD_ECORRUPT;
    }
    struct cons__rd r = {buf + CONS__MSG_PREAMBLE, buf + len, false};
    out->type = buf[1];
    cons__msg_get_fixed(&r, out);
    int rv = r.bad ? HD_ECORRUPT : cons__msg_get_flags(buf[2], out);
    if (rv == 0 && out->type == RAFT_IO_APPEND_ENTRIES) {
        rv = cons__msg_get_entries(&r, &out->append_entries);
    } else if (rv == 0 && out->type == RAFT_IO_INSTALL_SNAPSHOT) {
        rv = cons__msg_get_snapshot(&r, &out->install_snapshot);
    } else if (rv == 0 && cons__rd_left(&r) != 0) {
        rv = HD_ECORRUPT; /* trailing bytes */
    }
    if (rv != 0) {
        memset(out, 0, sizeof *out); /* the helpers freed what they took */
        return rv;
    }
    HD_ASSERT(r.p == r.end);
    return 0;
}

void cons_msg_release(struct raft_message *m)
{
    HD_ASSERT(m != NULL);
    if (m->type == RAFT_IO_APPEND_ENTRIES && m->append_entries.entries != NULL) {
        struct raft_append_entries *a = &m->append_entries;
        void *batch = NULL;
        for (unsigned i = 0; i < a->n_entries; i++) {
            /* Same walk as raft's entryBatchesDestroy: batches are runs. */
            if (a->entries[i].batch != batch) {
                batch = a->entries[i].batch;
                raft_free(batch);
            }
        }
        raft_free(a->entries);
        a->entries = NULL;
        a->n_entries = 0;
    } else if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_configuration_close(&m->install_snapshot.conf);
        raft_configuration_init(&m->install_snapshot.conf);
        raft_free(m->install_snapshot.data.base);
        m->install_snapshot.data = (struct raft_buffer){0};
    }
}
