/* SPDX-License-Identifier: Apache-2.0 */
/* backup.json, both ways. */
#include "backup_manifest.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_error.h"

json_t *backup_manifest_json(const struct backup_manifest *m)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:I, s:s}", "format", (json_int_t)m->format,
                     "backup_id", m->backup_id, "cluster_id", m->cluster_id, "node_id",
                     (json_int_t)m->node_id, "shards", (json_int_t)m->shards, "created_ms",
                     (json_int_t)m->created_ms, "version", m->version);
}

char *backup_manifest_text(const struct backup_manifest *m)
{
    json_t *j = backup_manifest_json(m);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        return NULL;
    }
    size_t len = strlen(text);
    char *out = realloc(text, len + 2);
    if (out == NULL) {
        free(text);
        return NULL;
    }
    out[len] = '\n';
    out[len + 1] = '\0';
    return out;
}

static bool backup__hex32(const char *s)
{
    return s != NULL && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

static int backup__bad(char *errmsg, size_t errmsg_len, const char *what)
{
    snprintf(errmsg, errmsg_len, BACKUP_MANIFEST_NAME ": %s", what);
    return HD_EINVAL;
}

int backup_manifest_parse(const char *text, size_t len, struct backup_manifest *m,
                          char *errmsg, size_t errmsg_len)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rv = 0;
    json_int_t format = json_integer_value(json_object_get(j, "format"));
    json_int_t node = json_integer_value(json_object_get(j, "node_id"));
    json_int_t shards = json_integer_value(json_object_get(j, "shards"));
    json_int_t created = json_integer_value(json_object_get(j, "created_ms"));
    const char *bid = json_string_value(json_object_get(j, "backup_id"));
    const char *cid = json_string_value(json_object_get(j, "cluster_id"));
    const char *version = json_string_value(json_object_get(j, "version"));
    if (!json_is_object(j)) {
        rv = backup__bad(errmsg, errmsg_len, "not a JSON object");
    } else if (format != BACKUP_FORMAT) {
        rv = backup__bad(errmsg, errmsg_len, "unknown format (this heraldd reads format 1)");
    } else if (!backup__hex32(bid) || !backup__hex32(cid)) {
        rv = backup__bad(errmsg, errmsg_len, "backup_id and cluster_id must be 32 hex digits");
    } else if (node <= 0 || shards <= 0 || shards > 65536 || created < 0) {
        rv = backup__bad(errmsg, errmsg_len, "node_id, shards or created_ms out of range");
    } else if (version == NULL || strlen(version) >= sizeof m->version) {
        rv = backup__bad(errmsg, errmsg_len, "version missing or too long");
    } else {
        *m = (struct backup_manifest){.format = (unsigned)format, .node_id = (uint64_t)node,
                                      .shards = (unsigned)shards,
                                      .created_ms = (uint64_t)created};
        memcpy(m->backup_id, bid, 33);
        memcpy(m->cluster_id, cid, 33);
        snprintf(m->version, sizeof m->version, "%s", version);
    }
    json_decref(j);
    return rv;
}
