/* SPDX-License-Identifier: Apache-2.0 */
/* Whether this node takes writes, and why not: the "writes" object of
 * /v1/status, from the free-space reserve (storage/disk_space.h). */
#include "api.h"
#include "disk_space.h"
#include "hd_error.h"
#include "node.h"

json_t *api_writes_json(struct api_server *s)
{
    struct st_space *space = cons_node_space(s->node);
    if (space == NULL) {
        return json_pack("{s:b, s:n}", "accepted", 1, "reason");
    }
    struct st_space_status st;
    st_space_status(space, &st);
    json_t *w = json_pack("{s:b, s:I, s:I, s:I, s:I}", "accepted", !st.low, "free_bytes",
                          (json_int_t)st.free_bytes, "total_bytes", (json_int_t)st.total_bytes,
                          "reserve_bytes", (json_int_t)st.reserve, "refused",
                          (json_int_t)st.refused);
    if (w == NULL) {
        return NULL;
    }
    /* A reason only while writes are refused; "disk_full" is the one a
     * running node can recover from without a restart. */
    json_object_set_new(w, "reason", st.low ? json_string("disk_full") : json_null());
    /* Below half the reserve a follower stops storing replicated entries
     * too, and falls behind until space returns. */
    json_object_set_new(w, "replicating", json_boolean(!st.below_floor));
    json_object_set_new(w, "replication_refused", json_integer((json_int_t)st.floor_refused));
    if (st.error != 0) {
        json_object_set_new(w, "space_error", json_string(hd_strerror(st.error)));
    }
    return w;
}

void api_writes_metrics(struct api_server *s, struct st_space_status *out)
{
    struct st_space *space = cons_node_space(s->node);
    *out = (struct st_space_status){0};
    if (space != NULL) {
        st_space_status(space, out);
    }
}
