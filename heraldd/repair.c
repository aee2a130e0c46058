/* SPDX-License-Identifier: Apache-2.0 */
/* --repair auto: retire a damaged node's id through a peer and rejoin under a new one. */
#define _GNU_SOURCE 1 /* nftw's FTW_PHYS */
#include "repair.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "hd_damage.h"
#include "hd_error.h"
#include "hd_file.h"
#include "hd_exit.h"
#include "hd_util.h"
#include "notify.h"
#include "known_members.h"
#include "repair_record.h"
#include "repair_request.h"

/*
 * The safety argument is in consensus/node/repair.c (why a new id, and
 * why the old one is removed before the new one is added). This file is
 * the damaged node's part:
 *
 *   start-up finds damage  -> DATA/REPAIR_NEEDED, start again
 *   RocksDB damage running -> DATA/REPAIR_NEEDED, exit 3 (storage/rocks.cc);
 *                             the supervisor's restart comes here
 *   REPAIR_NEEDED present  -> ask a peer to retire the old id (serving
 *                             only /v1/status "repairing" and /metrics,
 *                             retrying with backoff while no quorum answers);
 *                             the new id it grants goes into herald.repair
 *                             (pending_id) before anything is moved;
 *                             move wal/, state/, snapshots/, herald.id to
 *                             DATA/damaged-<unix time>/; write herald.id
 *                             under the new id; herald.repair (the count,
 *                             pending 0); remove REPAIR_NEEDED last;
 *                             start again, as a joining member.
 *
 * Every step can be cut by a crash and done again: the marker stays until
 * the end, and a granted id is never asked for twice.
 */

#define API_DAMAGED_PREFIX "damaged-"

/* The members to ask: every one known but this node (by its id, or its
 * address: a member listed under another id there would be this node's
 * leftover). Fills peers if not NULL; returns how many. */
static unsigned api__peers(const struct api_repair_ctx *c, uint64_t self,
                           struct cons_member peers[API_MEMBERS_MAX])
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->members->n; i++) {
        const struct cons_member *m = &c->members->list[i];
        if (m->id != self && strcmp(m->address, c->peer_listen) != 0) {
            if (peers != NULL) peers[n] = *m;
            n++;
        }
    }
    return n;
}

bool api_repair_possible(const struct api_repair_ctx *c, char *errmsg, size_t errmsg_len)
{
    if (c->want->cluster_id[0] == '\0') {
        snprintf(errmsg, errmsg_len, "no --bootstrap or --join names the cluster this data "
                 "belonged to (a one-node cluster's damage may be all it has)");
        return false;
    }
    if (api__peers(c, c->want->node_id, NULL) == 0) {
        snprintf(errmsg, errmsg_len, "no other member is known to repair from (neither "
                 "--bootstrap nor %s names one; --join names only the cluster)%s",
                 API_KNOWN_MEMBERS_FILE,
                 c->members->n == 1 ? "; a one-node cluster's damage may be all it has" : "");
        return false;
    }
    return true;
}

int api_repair_adopt(const char *data_dir, uint64_t *node_id, bool *repaired,
                     uint64_t *repairs, char *errmsg, size_t errmsg_len)
{
    struct api_repair_record r;
    int rv = api_repair_record_load(data_dir, &r);
    if (rv == HD_ENOTFOUND) {
        return 0;
    }
    if (rv == HD_ECORRUPT) {
        /* Damage like any other: repair (with --repair auto), which writes
         * the record again; without, the ids below are not mapped and a
         * repaired node's start is refused, naming its id. */
        HD_LOG_ERROR("%s/%s is damaged", data_dir, API_REPAIR_RECORD_FILE);
        char reason[HD_DAMAGE_REASON_MAX];
        snprintf(reason, sizeof reason, "%s is damaged", API_REPAIR_RECORD_FILE);
        if (!hd_damage_marked(data_dir, NULL, 0) && (rv = hd_damage_mark_at(data_dir, reason)) != 0) {
            snprintf(errmsg, errmsg_len, "%s/%s: %s", data_dir, HD_DAMAGE_MARKER,
                     hd_strerror(rv));
            return rv;
        }
        return 0;
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "%s/%s: %s", data_dir, API_REPAIR_RECORD_FILE,
                 hd_strerror(rv));
        return rv;
    }
    *repairs = r.repairs;
    if (*node_id == r.origin_id && r.node_id != r.origin_id) {
        HD_LOG_INFO("%s: node %llu was repaired %llu time(s) and runs as node %llu now",
                    data_dir, (unsigned long long)r.origin_id, (unsigned long long)r.repairs,
                    (unsigned long long)r.node_id);
        *node_id = r.node_id;
        *repaired = true;
    } else if (*node_id == r.node_id && r.node_id != r.origin_id) {
        *repaired = true;
    }
    return 0;
}

void api_repair_mark_and_restart(const struct api_repair_ctx *c, const char *reason)
{
    if (hd_damage_marked(c->data_dir, NULL, 0)) {
        /* Marked already, yet the repair did not run: starting again would
         * only come back here. */
        HD_LOG_ERROR("%s/%s is there already; not starting again", c->data_dir,
                     HD_DAMAGE_MARKER);
        return;
    }
    int rv = hd_damage_mark_at(c->data_dir, reason);
    if (rv != 0) {
        HD_LOG_ERROR("cannot write %s/%s: %s", c->data_dir, HD_DAMAGE_MARKER, hd_strerror(rv));
        return;
    }
    HD_LOG_WARN("damaged data: %s; repairing from the peers (--repair auto)", reason);
    hd_damage_exec(c->argv, "to repair what " HD_DAMAGE_MARKER " names");
}

/* ------------------------------------------------------ moving aside --- */

static uint64_t api__tree_bytes;

static int api__tree_add(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path;
    (void)flag;
    (void)f;
    api__tree_bytes += (uint64_t)st->st_blocks * 512u;
    return 0;
}

static uint64_t api__tree_size(const char *dir)
{
    api__tree_bytes = 0;
    (void)nftw(dir, api__tree_add, 32, FTW_PHYS);
    return api__tree_bytes;
}

static int api__tree_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void api__tree_remove(const char *dir, const char *why)
{
    uint64_t bytes = api__tree_size(dir);
    if (nftw(dir, api__tree_rm, 32, FTW_DEPTH | FTW_PHYS) != 0) {
        HD_LOG_WARN("repair: removing %s (%s): %s", dir, why, strerror(errno));
        return;
    }
    HD_LOG_WARN("repair: removed %s (%" PRIu64 " MiB): %s", dir, bytes >> 20, why);
}

/* The damaged copies keep forensic evidence, but the node must be able to
 * hold a fresh copy of its state and still keep --disk-reserve free, or it
 * would refuse appends and replication (storage/disk_space.c) and never
 * catch up. So: only the newest copy is kept, and only while the space
 * free is at least twice the reserve plus the copy's own size (what the
 * fresh state will take again). */
static void api__prune_damaged(const char *data_dir, const char *newest, uint64_t reserve)
{
    DIR *d = opendir(data_dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, API_DAMAGED_PREFIX, strlen(API_DAMAGED_PREFIX)) != 0) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
        if (strcmp(path, newest) != 0) {
            api__tree_remove(path, "an older damaged copy; only the newest is kept");
        }
    }
    if (d != NULL) closedir(d);
    struct statvfs sv;
    uint64_t size = api__tree_size(newest);
    if (reserve > 0 && statvfs(data_dir, &sv) == 0) {
        uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (free_bytes < 2 * reserve + size) {
            api__tree_remove(newest, "too little free space to keep it beside a fresh copy "
                                     "and the --disk-reserve");
        }
    }
}

/* Moves the damaged contents into DATA/damaged-<unix time>/ (a name taken
 * already gets a suffix); *out is its path. */
static int api__move_aside(const char *data_dir, char *out, size_t out_len)
{
    long long now = (long long)time(NULL);
    for (int k = 0;; k++) {
        if (k == 0) snprintf(out, out_len, "%s/%s%lld", data_dir, API_DAMAGED_PREFIX, now);
        else snprintf(out, out_len, "%s/%s%lld.%d", data_dir, API_DAMAGED_PREFIX, now, k);
        if (mkdir(out, 0755) == 0) break;
        if (errno != EEXIST || k > 100) return hd_from_errno(errno);
    }
    static const char *const parts[] = {"wal", "state", "snapshots", "herald.id"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char from[PATH_MAX], to[PATH_MAX + 16];
        snprintf(from, sizeof from, "%s/%s", data_dir, parts[i]);
        snprintf(to, sizeof to, "%s/%s", out, parts[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            int err = errno;
            HD_LOG_ERROR("repair: move %s to %s: %s", from, to, strerror(err));
            return hd_from_errno(err);
        }
    }
    return hd_fsync_dir(data_dir);
}

/* Installs the new id: everything damaged aside, a new herald.id, the
 * record, and the marker removed last. */
static int api__install(const struct api_repair_ctx *c, const char *reason,
                        struct api_repair_record *rec, const struct api_identity *old)
{
    char aside[PATH_MAX];
    int rv = api__move_aside(c->data_dir, aside, sizeof aside);
    if (rv != 0) {
        return rv;
    }
    uint64_t bytes = api__tree_size(aside);
    struct api_identity want = {.node_id = rec->pending_id, .shards = old->shards};
    snprintf(want.cluster_id, sizeof want.cluster_id, "%s", old->cluster_id);
    struct api_identity got;
    char errmsg[512] = "";
    rv = api_data_identity(c->data_dir, &want, &got, errmsg, sizeof errmsg);
    if (rv != 0) {
        HD_LOG_ERROR("repair: %s", errmsg);
        return rv;
    }
    uint64_t old_id = old->node_id;
    *rec = (struct api_repair_record){.origin_id = rec->origin_id, .node_id = rec->pending_id,
                                      .repairs = rec->repairs + 1, .pending_id = 0};
    rv = api_repair_record_save(c->data_dir, rec);
    if (rv == 0) {
        rv = hd_damage_clear(c->data_dir);
    }
    if (rv != 0) {
        HD_LOG_ERROR("repair: %s: %s", c->data_dir, hd_strerror(rv));
        return rv;
    }
    HD_LOG_WARN("repair %llu of %s done: damaged: %s; node %llu retired from every shard, "
                "rejoining cluster %s as node %llu (it serves once the members added it and "
                "it caught up); the damaged data, %" PRIu64 " MiB, is in %s: delete it when "
                "done with it",
                (unsigned long long)rec->repairs, c->data_dir, reason,
                (unsigned long long)old_id, old->cluster_id, (unsigned long long)rec->node_id,
                bytes >> 20, aside);
    api__prune_damaged(c->data_dir, aside, c->disk_reserve);
    return 0;
}

/* ---------------------------------------------------- asking the peers --- */

struct api__asking {
    const struct api_repair_ctx *c;
    struct api_server server;     /* what the status route shows */
    struct api_repair_view view;
    struct api_http_server *http;
    struct cons_repair_request *request;
    struct api_repair_record *rec;
    int rv;
};

static void api__asked(void *arg, uint64_t new_id)
{
    struct api__asking *a = arg;
    a->rec->pending_id = new_id;
    a->rv = api_repair_record_save(a->c->data_dir, a->rec);
    if (a->rv != 0) {
        HD_LOG_ERROR("repair: cannot record the new id %llu in %s/%s: %s",
                     (unsigned long long)new_id, a->c->data_dir, API_REPAIR_RECORD_FILE,
                     hd_strerror(a->rv));
    }
    a->view.request = NULL;
    cons_repair_request_close(a->request, NULL, NULL);
    a->request = NULL;
    api_http_server_close(a->http, NULL, NULL);
}

/* Runs the loop until a peer retired old->node_id and granted a new id. */
static int api__ask(const struct api_repair_ctx *c, const char *reason,
                    const struct api_identity *old, struct api_repair_record *rec)
{
    struct cons_member peers[API_MEMBERS_MAX];
    unsigned n = api__peers(c, old->node_id, peers);
    if (n == 0) {
        HD_LOG_ERROR("repair: no member but this one is known (--bootstrap, %s)",
                     API_KNOWN_MEMBERS_FILE);
        return HD_EINVAL;
    }
    static struct api__asking a;
    a = (struct api__asking){.c = c, .rec = rec};
    a.server = (struct api_server){.loop = uv_default_loop(), .node_id = old->node_id,
                                   .started_us = hd_now_us(), .repairs_total = rec->repairs};
    snprintf(a.server.cluster_id, sizeof a.server.cluster_id, "%s", old->cluster_id);
    a.view = (struct api_repair_view){.server = &a.server, .reason = reason};
    char errmsg[512] = "";
    int rv = api_http_server_init(&a.http, a.server.loop, c->listen, NULL, api_repair_route,
                                  &a.view, errmsg, sizeof errmsg);
    if (rv != 0) {
        HD_LOG_ERROR("repair: %s", errmsg);
        return rv;
    }
    if (*c->tls != NULL) {
        api_http_server_set_tls(a.http, *c->tls);
        *c->tls = NULL;
    }
    struct cons_repair_request_options ro = {.loop = a.server.loop, .old_id = old->node_id,
                                             .cluster_id = old->cluster_id,
                                             .address = c->peer_listen, .peers = peers,
                                             .n_peers = n, .tls = c->peer_tls};
    rv = cons_repair_request_start(&a.request, &ro, api__asked, &a, errmsg, sizeof errmsg);
    if (rv != 0) {
        HD_LOG_ERROR("repair: %s", errmsg);
        api_http_server_close(a.http, NULL, NULL);
        uv_run(a.server.loop, UV_RUN_DEFAULT);
        return rv;
    }
    a.view.request = a.request;
    char asked[1024];
    size_t len = 0;
    asked[0] = '\0';
    for (unsigned i = 0; i < n && len < sizeof asked; i++) {
        len += (size_t)snprintf(asked + len, sizeof asked - len, "%s%llu=%s", i ? "," : "",
                                (unsigned long long)peers[i].id, peers[i].address);
    }
    HD_LOG_INFO("repair: the members to ask, one at a time: %s (--bootstrap's, then those "
                "%s names)", asked, API_KNOWN_MEMBERS_FILE);
    /* No READY: the node serves nothing yet (a supervisor's start timeout
     * restarts it, and the marker resumes the repair). */
    api_notify_status("repairing: asking the members to retire node %llu (%s)",
                      (unsigned long long)old->node_id, reason);
    HD_LOG_WARN("repair: node %llu of cluster %s: %s; serving nothing until a member retires "
                "this id (GET /v1/status on %s says \"repairing\")",
                (unsigned long long)old->node_id, old->cluster_id, reason, c->listen);
    uv_run(a.server.loop, UV_RUN_DEFAULT);
    return a.rv;
}

int api_repair_run(const struct api_repair_ctx *c, const char *reason)
{
    char why[512] = "";
    if (!api_repair_possible(c, why, sizeof why)) {
        HD_LOG_ERROR("%s/%s says the data is damaged (%s), but repair is not possible: %s; "
                     "refusing to start (exit %d): replace the disk",
                     c->data_dir, HD_DAMAGE_MARKER, reason, why, HD_EXIT_CORRUPT);
        return HD_EXIT_CORRUPT;
    }
    /* Which node and cluster the data belonged to: herald.id if it still
     * reads, else the command line, which must name the same cluster. */
    struct api_identity old;
    int rv = api_data_identity_read(c->data_dir, &old);
    if (rv != 0) {
        old = *c->want;
        if (api_cluster_id_shards(old.cluster_id, &old.shards) != 0) {
            HD_LOG_ERROR("repair: %s/herald.id: %s, and the command line names no cluster; "
                         "refusing (exit %d)", c->data_dir, hd_strerror(rv), HD_EXIT_CORRUPT);
            return HD_EXIT_CORRUPT;
        }
    } else if (strcmp(old.cluster_id, c->want->cluster_id) != 0) {
        HD_LOG_ERROR("repair: %s holds node %llu of cluster %s, not of cluster %s that the "
                     "command line describes; refusing to repair it from that cluster "
                     "(exit %d)", c->data_dir, (unsigned long long)old.node_id, old.cluster_id,
                     c->want->cluster_id, HD_EXIT_CORRUPT);
        return HD_EXIT_CORRUPT;
    }
    struct api_repair_record rec;
    rv = api_repair_record_load(c->data_dir, &rec);
    if (rv != 0) {
        rec = (struct api_repair_record){.origin_id = c->want->node_id, .node_id = old.node_id,
                                         .repairs = c->repairs};
    }
    if (rec.pending_id == 0) {
        rv = api__ask(c, reason, &old, &rec);
        if (rv != 0) {
            return HD_EXIT_START;
        }
    } else {
        HD_LOG_INFO("repair: node %llu was retired and granted id %llu before a stop; "
                    "installing it", (unsigned long long)old.node_id,
                    (unsigned long long)rec.pending_id);
    }
    rv = api__install(c, reason, &rec, &old);
    if (rv != 0) {
        return HD_EXIT_START;
    }
    hd_damage_exec(c->argv, "under the new id");
    return HD_EXIT_START;
}
