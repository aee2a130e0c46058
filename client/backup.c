/* SPDX-License-Identifier: Apache-2.0 */
/* A backup of the node's state (POST /v1/backup). */
#include <jansson.h>
#include <stdlib.h>

#include "client_internal.h"
#include "hd_error.h"
#include "herald/herald.h"

int herald_backup(struct herald_client *c, const char *dir, char **json_text)
{
    *json_text = NULL;
    if (dir == NULL || dir[0] != '/') {
        return herald__fail(c, HD_EINVAL,
                            "the backup directory must be an absolute path on the node");
    }
    json_t *o = json_pack("{s:s}", "dir", dir);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL) {
        return herald__fail(c, HD_ENOMEM, "out of memory");
    }
    /* A checkpoint flushes the memtables first: give it time. Not retried:
     * the directory it made would refuse the second attempt. */
    int rv = herald__json_call(c, "POST", "/v1/backup", body, herald__now_ms() + 600000,
                               json_text);
    free(body);
    return rv;
}
