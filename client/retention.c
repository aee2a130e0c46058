/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster's retention policy: GET, PUT and DELETE /v1/retention. */
#include <jansson.h>
#include <stdlib.h>

#include "client_internal.h"
#include "hd_error.h"
#include "herald/herald.h"

/* Not retried: the server answers once the change applied, and a change
 * sent again after an unknown outcome is the caller's call to make. */
#define HERALD__RETENTION_TIMEOUT_MS 60000

int herald_retention_get(struct herald_client *c, char **json_text)
{
    *json_text = NULL;
    return herald__json_call(c, "GET", "/v1/retention", NULL,
                             herald__now_ms() + HERALD__RETENTION_TIMEOUT_MS, json_text);
}

int herald_retention_set(struct herald_client *c, const char *rules, char **json_text)
{
    *json_text = NULL;
    if (rules == NULL) {
        return herald__fail(c, HD_EINVAL, "no retention rules given");
    }
    json_t *o = json_pack("{s:s}", "rules", rules);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL) {
        return herald__fail(c, HD_EINVAL, "the rules must be UTF-8 text");
    }
    int rv = herald__json_call(c, "PUT", "/v1/retention", body,
                               herald__now_ms() + HERALD__RETENTION_TIMEOUT_MS, json_text);
    free(body);
    return rv;
}

int herald_retention_clear(struct herald_client *c, char **json_text)
{
    *json_text = NULL;
    return herald__json_call(c, "DELETE", "/v1/retention", NULL,
                             herald__now_ms() + HERALD__RETENTION_TIMEOUT_MS, json_text);
}
