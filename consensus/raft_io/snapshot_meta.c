/* SPDX-License-Identifier: Apache-2.0 */
/* Codec and storage of a shard's snapshot: index, term, configuration, manifest. */
#include <string.h>

#include "hd_alloc.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "hd_util.h"
#include "raft_io_internal.h"

/*
 * Blob (in the shard's two-slot meta file, which adds magic and CRC32C):
 *   u32 version (1), u64 index, u64 term, u64 configuration_index,
 *   u32 n_servers, n times: u64 id, u8 role, u16 address_len, address,
 *   u32 data_len, data
 * The data is the FSM's manifest (consensus/node/manifest.h): small by design; the state
 * itself stays in RocksDB.
 */

#define CONS_SNAP_VERSION 1u

static size_t cons__snap_size(const struct raft_snapshot *snap)
{
    size_t size = 4 + 8 + 8 + 8 + 4 + 4;
    for (unsigned i = 0; i < snap->configuration.n; i++) {
        size += 8 + 1 + 2 + strlen(snap->configuration.servers[i].address);
    }
    for (unsigned i = 0; i < snap->n_bufs; i++) {
        size += snap->bufs[i].len;
    }
    return size;
}

int cons__snapshot_store(struct cons_shard_log *sl, const struct raft_snapshot *snap)
{
    size_t size = cons__snap_size(snap);
    if (size > ST_META_BLOB_MAX) {
        return HD_ETOOBIG;
    }
    uint8_t *blob = hd_malloc(size);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    uint8_t *p = blob;
    hd_put_u32(p, CONS_SNAP_VERSION);
    hd_put_u64(p + 4, snap->index);
    hd_put_u64(p + 12, snap->term);
    hd_put_u64(p + 20, snap->configuration_index);
    hd_put_u32(p + 28, snap->configuration.n);
    p += 32;
    for (unsigned i = 0; i < snap->configuration.n; i++) {
        const struct raft_server *srv = &snap->configuration.servers[i];
        size_t alen = strlen(srv->address);
        hd_put_u64(p, srv->id);
        p[8] = (uint8_t)srv->role;
        hd_put_u16(p + 9, (uint16_t)alen);
        memcpy(p + 11, srv->address, alen);
        p += 11 + alen;
    }
    uint8_t *data_len_at = p;
    p += 4;
    for (unsigned i = 0; i < snap->n_bufs; i++) {
        memcpy(p, snap->bufs[i].base, snap->bufs[i].len);
        p += snap->bufs[i].len;
    }
    hd_put_u32(data_len_at, (uint32_t)(p - data_len_at - 4));
    HD_ASSERT((size_t)(p - blob) == size);
    int rv = st_meta_file_store(&sl->snap, blob, size);
    hd_free(blob);
    return rv;
}

static int cons__snap_decode_servers(const uint8_t **pp, const uint8_t *end, uint32_t n,
                                     struct raft_configuration *conf)
{
    const uint8_t *p = *pp;
    HD_ASSERT(p <= end && conf->n == 0);
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 11) return HD_ECORRUPT;
        uint64_t id = hd_get_u64(p);
        int role = p[8];
        uint16_t alen = hd_get_u16(p + 9);
        p += 11;
        if (end - p < alen || alen > 255) return HD_ECORRUPT;
        char addr[256];
        memcpy(addr, p, alen);
        addr[alen] = '\0';
        p += alen;
        if (raft_configuration_add(conf, id, addr, role) != 0) return HD_ECORRUPT;
    }
    *pp = p;
    return 0;
}

int cons__snapshot_decode(const uint8_t *blob, size_t len, struct raft_snapshot *snap)
{
    const uint8_t *p = blob, *end = blob + len;
    if (len < 32 || hd_get_u32(p) != CONS_SNAP_VERSION) return HD_ECORRUPT;
    snap->index = hd_get_u64(p + 4);
    snap->term = hd_get_u64(p + 12);
    snap->configuration_index = hd_get_u64(p + 20);
    uint32_t n = hd_get_u32(p + 28);
    p += 32;
    raft_configuration_init(&snap->configuration);
    int rv = cons__snap_decode_servers(&p, end, n, &snap->configuration);
    if (rv != 0 || end - p < 4) goto err;
    uint32_t data_len = hd_get_u32(p);
    p += 4;
    if ((size_t)(end - p) != data_len) goto err;
    rv = HD_ENOMEM;
    snap->bufs = raft_malloc(sizeof *snap->bufs);
    if (snap->bufs == NULL) goto err;
    snap->bufs[0].base = raft_malloc(data_len > 0 ? data_len : 1);
    if (snap->bufs[0].base == NULL) {
        raft_free(snap->bufs);
        goto err;
    }
    memcpy(snap->bufs[0].base, p, data_len);
    snap->bufs[0].len = data_len;
    snap->n_bufs = 1;
    HD_ASSERT(p + data_len == end); /* exactly one blob */
    return 0;
err:
    raft_configuration_close(&snap->configuration);
    return rv == HD_ENOMEM ? HD_ENOMEM : HD_ECORRUPT;
}

int cons__snapshot_load(struct cons_shard_log *sl, struct raft_snapshot **out)
{
    *out = NULL;
    uint8_t *blob = hd_malloc(ST_META_BLOB_MAX);
    if (blob == NULL) {
        return HD_ENOMEM;
    }
    size_t len = 0;
    int rv = st_meta_file_load(&sl->snap, blob, ST_META_BLOB_MAX, &len);
    if (rv == 0) {
        struct raft_snapshot *snap = raft_calloc(1, sizeof *snap);
        rv = snap == NULL ? HD_ENOMEM : cons__snapshot_decode(blob, len, snap);
        if (rv == 0) {
            *out = snap;
        } else {
            raft_free(snap);
        }
    }
    hd_free(blob);
    HD_ASSERT((rv == 0) == (*out != NULL));
    return rv;
}

int cons__snapshot_index(struct cons_shard_log *sl, uint64_t *index)
{
    *index = 0;
    struct raft_snapshot *snap = NULL;
    int rv = cons__snapshot_load(sl, &snap);
    if (rv == HD_ENOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    *index = snap->index;
    raft_configuration_close(&snap->configuration);
    for (unsigned i = 0; i < snap->n_bufs; i++) {
        raft_free(snap->bufs[i].base);
    }
    raft_free(snap->bufs);
    raft_free(snap);
    return 0;
}
