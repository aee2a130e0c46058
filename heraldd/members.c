/* SPDX-License-Identifier: Apache-2.0 */
/* --bootstrap member lists, cluster ids, default peer addresses. */
#include "members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "hd_error.h"
#include "hd_util.h"

static int api__member_cmp(const void *a, const void *b)
{
    const struct cons_member *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int api__parse_one(const char *item, size_t len, struct api_members *out,
                          char *errmsg, size_t errmsg_len)
{
    const char *eq = memchr(item, '=', len);
    uint64_t id = 0;
    size_t addr_len = eq != NULL ? len - (size_t)(eq - item) - 1 : 0;
    const char *colon = eq != NULL ? memchr(eq, ':', addr_len + 1) : NULL;
    if (eq == NULL || hd_u64_parse(item, (size_t)(eq - item), &id) != 0 || id == 0 ||
        addr_len == 0 || addr_len >= sizeof out->addresses[0] || colon == NULL) {
        snprintf(errmsg, errmsg_len, "--bootstrap: '%.*s' is not ID=HOST:PORT", (int)len, item);
        return HD_EINVAL;
    }
    if (api_members_address(out, id) != NULL) {
        snprintf(errmsg, errmsg_len, "--bootstrap: node %llu is listed twice",
                 (unsigned long long)id);
        return HD_EINVAL;
    }
    if (out->n == API_MEMBERS_MAX) {
        snprintf(errmsg, errmsg_len, "--bootstrap: at most %d members", API_MEMBERS_MAX);
        return HD_EINVAL;
    }
    memcpy(out->addresses[out->n], eq + 1, addr_len);
    out->addresses[out->n][addr_len] = '\0';
    out->list[out->n] = (struct cons_member){id, out->addresses[out->n]};
    out->n++;
    return 0;
}

int api_members_parse(const char *spec, struct api_members *out, char *errmsg,
                      size_t errmsg_len)
{
    memset(out, 0, sizeof *out);
    const char *p = spec;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int rv = api__parse_one(p, len, out, errmsg, errmsg_len);
        if (rv != 0) {
            return rv;
        }
        p += len + (comma != NULL ? 1 : 0);
    }
    if (out->n == 0) {
        snprintf(errmsg, errmsg_len, "--bootstrap: no members");
        return HD_EINVAL;
    }
    /* Sorted, so that ids and addresses line up alike on every member. */
    struct cons_member sorted[API_MEMBERS_MAX];
    memcpy(sorted, out->list, out->n * sizeof *sorted);
    qsort(sorted, out->n, sizeof *sorted, api__member_cmp);
    memcpy(out->list, sorted, out->n * sizeof *sorted);
    return 0;
}

const char *api_members_address(const struct api_members *m, uint64_t id)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->list[i].id == id) {
            return m->list[i].address;
        }
    }
    return NULL;
}

void api_members_cluster_id(const struct api_members *m, unsigned shards, const char *salt,
                            char out[33])
{
    char text[API_MEMBERS_MAX * 96 + 64];
    size_t len = 0;
    if (salt != NULL) {
        len += (size_t)snprintf(text, sizeof text, "restored:%.40s;", salt);
    }
    for (unsigned i = 0; i < m->n; i++) {
        len += (size_t)snprintf(text + len, sizeof text - len, "%llu=%s,",
                                (unsigned long long)m->list[i].id, m->list[i].address);
    }
    uint64_t a = hd_hash64(text, len);
    text[len] = '#'; /* a second, different input for the other half */
    uint64_t b = hd_hash64(text, len + 1);
    /* The last four hex digits are the shard count: a node joining with the
     * id learns it, and peers with another count fail the handshake. */
    snprintf(out, 33, "%016llx%012llx%04x", (unsigned long long)a,
             (unsigned long long)(b & 0xffffffffffffull), shards & 0xffffu);
}

int api_cluster_id_shards(const char *id, unsigned *shards)
{
    if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        return HD_EINVAL;
    }
    unsigned v = (unsigned)strtoul(id + 28, NULL, 16);
    if (v == 0) {
        return HD_EINVAL;
    }
    *shards = v;
    return 0;
}

int api_peer_address_default(const char *listen, char *out, size_t out_len)
{
    const char *colon = strrchr(listen, ':');
    uint64_t port;
    if (colon == NULL || hd_u64_parse(colon + 1, strlen(colon + 1), &port) != 0 ||
        port == 0 || port >= 65535) {
        return HD_EINVAL;
    }
    snprintf(out, out_len, "%.*s:%llu", (int)(colon - listen), listen,
             (unsigned long long)port + 1);
    return 0;
}
