/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: backup.json (api/v1/backup_manifest.c), as heraldd --restore
 * reads it: any bytes are refused with a reason or parse to a manifest that
 * writes back to text parsing to the same manifest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup_manifest.h"
#include "hd_assert.h"
#include "hd_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct backup_manifest m, again;
    char errmsg[256] = "";
    int rv = backup_manifest_parse((const char *)data, size, &m, errmsg, sizeof errmsg);
    HD_ASSERT(rv == 0 || rv == HD_EINVAL);
    if (rv != 0) {
        HD_ASSERT(strncmp(errmsg, BACKUP_MANIFEST_NAME ": ", strlen(BACKUP_MANIFEST_NAME) + 2) == 0);
        return 0;
    }
    HD_ASSERT(m.format == BACKUP_FORMAT && m.shards >= 1 && m.node_id >= 1);
    char *text = backup_manifest_text(&m);
    HD_ASSERT(text != NULL);
    HD_ASSERT(backup_manifest_parse(text, strlen(text), &again, errmsg, sizeof errmsg) == 0);
    HD_ASSERT(strcmp(m.backup_id, again.backup_id) == 0 &&
              strcmp(m.cluster_id, again.cluster_id) == 0 && strcmp(m.version, again.version) == 0);
    HD_ASSERT(m.node_id == again.node_id && m.shards == again.shards &&
              m.created_ms == again.created_ms && m.format == again.format);
    free(text);
    return 0;
}
