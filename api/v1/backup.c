/* SPDX-License-Identifier: Apache-2.0 */
/* POST /v1/backup: a consistent copy of this node's state, taken online. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "backup_manifest.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_file.h"
#include "hd_util.h"
#include "log.h"
#include "node.h"

/*
 * {"dir": "/abs/path"}: dir must not exist, its parent must. The node makes
 * dir, a RocksDB checkpoint of its whole state in dir/state (hard links on
 * the same file system, so it is cheap, and a consistent point: every apply
 * is one write batch with its applied index), then dir/backup.json
 * (backup_manifest.h). The work runs on libuv's thread pool; appends and
 * reads go on meanwhile. One backup at a time per node. heraldd --restore
 * starts a new cluster from dir.
 */

struct api_backup {
    struct api_server *server;
    struct api_http_conn *conn;
    char dir[PATH_MAX];
    struct backup_manifest m;
    int status;                 /* of the work: 0 or HD_E* */
    char what[64];              /* the step that failed */
    uv_work_t work;
};

static int api__write_manifest(const struct api_backup *b)
{
    char *text = backup_manifest_text(&b->m);
    if (text == NULL) {
        return HD_ENOMEM;
    }
    int rv = hd_file_replace(b->dir, BACKUP_MANIFEST_NAME, text, strlen(text), 0640);
    free(text);
    return rv;
}

static void api__backup_work(uv_work_t *w)
{
    struct api_backup *b = w->data;
    char state[PATH_MAX + 16];
    if (mkdir(b->dir, 0750) != 0) {
        b->status = hd_from_errno(errno);
        snprintf(b->what, sizeof b->what, "make the directory");
        return;
    }
    snprintf(state, sizeof state, "%s/state", b->dir);
    b->status = log_checkpoint(b->server->log, state);
    if (b->status != 0) {
        snprintf(b->what, sizeof b->what, "checkpoint the state");
        return;
    }
    b->status = api__write_manifest(b);
    if (b->status != 0) {
        snprintf(b->what, sizeof b->what, "write " BACKUP_MANIFEST_NAME);
    }
}

static void api__backup_done(uv_work_t *w, int status)
{
    struct api_backup *b = w->data;
    struct api_server *s = b->server;
    s->backup_running = false;
    if (status != 0 && b->status == 0) {
        b->status = HD_EIO;
        snprintf(b->what, sizeof b->what, "run the backup");
    }
    if (b->status == 0) {
        HD_LOG_INFO("backup %s taken in %s", b->m.backup_id, b->dir);
        json_t *body = backup_manifest_json(&b->m);
        if (body != NULL) {
            json_object_set_new(body, "dir", json_string(b->dir));
        }
        api_respond_json(s, b->conn, 200, body, NULL);
    } else {
        char message[PATH_MAX + 160];
        snprintf(message, sizeof message, "backup into %s: could not %s: %s", b->dir, b->what,
                 hd_strerror(b->status));
        HD_LOG_WARN("%s", message);
        if (b->status == HD_EEXIST) {
            api_respond_error(s, b->conn, 409, "exists", message);
        } else if (b->status == HD_ENOTFOUND || b->status == HD_EINVAL) {
            api_respond_error(s, b->conn, 400, "bad_dir", message);
        } else {
            api_respond_error(s, b->conn, 500, "backup_failed", message);
        }
    }
    hd_free(b);
}

void api_backup(struct api_server *s, struct api_http_conn *c, const struct api_http_request *req)
{
    json_error_t jerr;
    json_t *obj = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *dir = json_string_value(json_object_get(obj, "dir"));
    size_t len = dir != NULL ? strlen(dir) : 0;
    bool ok = json_is_object(obj) && json_object_size(obj) == 1 && len > 1 && dir[0] == '/' &&
              len < PATH_MAX - 64 && len == json_string_length(json_object_get(obj, "dir"));
    if (!ok) {
        json_decref(obj);
        api_respond_error(s, c, 400, "bad_json",
                          "the body must be {\"dir\": \"/absolute/path\"}, a directory that "
                          "does not exist yet, on the node's machine");
        return;
    }
    if (s->backup_running) {
        json_decref(obj);
        api_respond_error(s, c, 409, "backup_running", "a backup of this node is under way");
        return;
    }
    struct api_backup *b = hd_calloc(1, sizeof *b);
    if (b == NULL) {
        json_decref(obj);
        api_respond_error(s, c, 503, "unavailable", "out of memory");
        return;
    }
    b->server = s;
    b->conn = c;
    memcpy(b->dir, dir, len + 1);
    json_decref(obj);
    b->m = (struct backup_manifest){.format = BACKUP_FORMAT, .node_id = s->node_id,
                                    .shards = cons_node_n_shards(s->node),
                                    .created_ms = hd_now_us() / 1000};
    snprintf(b->m.cluster_id, sizeof b->m.cluster_id, "%.32s", s->cluster_id);
    snprintf(b->m.version, sizeof b->m.version, "%s", HERALD_VERSION);
    uint8_t raw[16];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        hd_free(b);
        api_respond_error(s, c, 503, "unavailable", "no random bytes for the backup id");
        return;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(b->m.backup_id + 2 * i, 3, "%02x", raw[i]);
    }
    b->work.data = b;
    if (uv_queue_work(s->loop, &b->work, api__backup_work, api__backup_done) != 0) {
        hd_free(b);
        api_respond_error(s, c, 503, "unavailable", "cannot start a backup now");
        return;
    }
    s->backup_running = true;
}
