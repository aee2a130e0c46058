/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP port of a node under repair: status and metrics only (see api.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "hd_alloc.h"
#include "hd_util.h"
#include "metrics_text.h"
#include "repair_request.h"

static bool api__is(const struct api_http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path_len == n && memcmp(req->path, path, n) == 0;
}

static void api__repair_status(struct api_repair_view *v, struct api_http_conn *c)
{
    struct api_server *s = v->server;
    struct cons_repair_request_status rs = {0};
    if (v->request != NULL) {
        cons_repair_request_status(v->request, &rs);
    }
    json_t *repair = json_pack("{s:s, s:I, s:I, s:i, s:s}", "reason", v->reason, "old_id",
                               (json_int_t)s->node_id, "asking", (json_int_t)rs.asking,
                               "attempts", (int)rs.attempts, "last_error", rs.last_error);
    json_t *body = json_pack("{s:I, s:s, s:s, s:s, s:I, s:o, s:I, s:I}", "node_id",
                             (json_int_t)s->node_id, "cluster_id", s->cluster_id, "version",
                             HERALD_VERSION, "state", "repairing", "uptime_s",
                             (json_int_t)((hd_now_us() - s->started_us) / 1000000u), "repair",
                             repair, "repairs", (json_int_t)s->repairs_total, "now_ms",
                             (json_int_t)(hd_now_us() / 1000u));
    api_respond_json(s, c, 200, body, NULL);
}

static void api__repair_metrics(struct api_repair_view *v, struct api_http_conn *c)
{
    struct api_text t = {0};
    api__printf(&t,
                "# HELP herald_repairs_total Times this node found its data damaged and "
                "rejoined under a new id.\n# TYPE herald_repairs_total counter\n"
                "herald_repairs_total %" PRIu64 "\n"
                "# HELP herald_repairing 1 while the node waits for its peers to retire its "
                "damaged id.\n# TYPE herald_repairing gauge\nherald_repairing 1\n",
                v->server->repairs_total);
    v->server->metrics.requests++;
    api_http_respond(c, 200, "text/plain; version=0.0.4", NULL, t.buf != NULL ? t.buf : "",
                     t.len);
    hd_free(t.buf);
}

void api_repair_route(struct api_http_conn *c, const struct api_http_request *req, void *arg)
{
    struct api_repair_view *v = arg;
    bool get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if (get && api__is(req, "/v1/status")) {
        api__repair_status(v, c);
    } else if (get && api__is(req, "/metrics")) {
        api__repair_metrics(v, c);
    } else {
        api_respond_error(v->server, c, 503, "repairing",
                          "this node found its data damaged and is rejoining the cluster; "
                          "ask another node");
    }
}
