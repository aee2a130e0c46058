/* SPDX-License-Identifier: Apache-2.0 */
/* Who a damaged node asks for its repair (see repair_peers.h). */
#include "repair_peers.h"

#include <stdio.h>
#include <string.h>

#include "hd_error.h"
#include "hd_util.h"

static void api__peer_add(struct api_members *out, uint64_t id, const char *address)
{
    if (out->n == API_MEMBERS_MAX || api_members_address(out, id) != NULL ||
        strlen(address) >= sizeof out->addresses[0]) {
        return;
    }
    snprintf(out->addresses[out->n], sizeof out->addresses[0], "%s", address);
    out->list[out->n] = (struct cons_member){id, out->addresses[out->n]};
    out->n++;
}

void api_repair_peers(const char *data_dir, const char *cluster_id,
                      const struct api_members *bootstrap, struct api_members *out,
                      struct api_member_keeper *keeper)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < bootstrap->n; i++) {
        api__peer_add(out, bootstrap->list[i].id, bootstrap->list[i].address);
    }
    struct api_known_members *known = &keeper->last;
    int rv = api_known_members_load(data_dir, known);
    keeper->have_last = rv == 0;
    if (rv == HD_ENOTFOUND) {
        return;
    }
    if (rv != 0) {
        /* Rewritten once the node runs; until then a repair asks only
         * --bootstrap's members, if any. */
        HD_LOG_WARN("%s/%s: %s; not used (a repair would ask only --bootstrap's members; "
                    "it is written again once this node runs)", data_dir,
                    API_KNOWN_MEMBERS_FILE, hd_strerror(rv));
        return;
    }
    if (cluster_id[0] == '\0' || strcmp(known->cluster_id, cluster_id) != 0) {
        if (cluster_id[0] != '\0') {
            HD_LOG_WARN("%s/%s names the members of cluster %s, not of cluster %s that the "
                        "command line names; not used", data_dir, API_KNOWN_MEMBERS_FILE,
                        known->cluster_id, cluster_id);
        }
        return;
    }
    for (unsigned i = 0; i < known->n; i++) {
        api__peer_add(out, known->list[i].id, known->list[i].address);
    }
}

int api_repair_peers_keep(void *arg, const struct cons_member *members, unsigned n)
{
    struct api_member_keeper *k = arg;
    struct api_known_members now = {.n = 0};
    snprintf(now.cluster_id, sizeof now.cluster_id, "%s", k->cluster_id);
    char text[1024];
    size_t len = 0;
    text[0] = '\0';
    for (unsigned i = 0; i < n && now.n < API_KNOWN_MEMBERS_MAX; i++) {
        if (strlen(members[i].address) > API_KNOWN_ADDRESS_MAX) {
            continue; /* not a peer address this cluster accepts */
        }
        now.list[now.n].id = members[i].id;
        snprintf(now.list[now.n].address, sizeof now.list[0].address, "%s", members[i].address);
        now.n++;
        if (len < sizeof text) {
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%llu=%s", i ? "," : "",
                                    (unsigned long long)members[i].id, members[i].address);
        }
    }
    if (k->have_last && api_known_members_equal(&now, &k->last)) {
        return 0; /* the file says so already (a start with the same members) */
    }
    int rv = api_known_members_save(k->data_dir, &now);
    if (rv != 0) {
        if (!k->failed) {
            HD_LOG_WARN("cannot keep the members %s in %s/%s: %s (trying again; a repair of "
                        "this node would ask only the members it knew before)", text,
                        k->data_dir, API_KNOWN_MEMBERS_FILE, hd_strerror(rv));
        }
        k->failed = true;
        return rv;
    }
    k->failed = false;
    k->last = now;
    k->have_last = true;
    HD_LOG_INFO("members of cluster %s: %s (kept in %s/%s, for a repair)", now.cluster_id,
                text, k->data_dir, API_KNOWN_MEMBERS_FILE);
    return 0;
}
