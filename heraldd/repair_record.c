/* SPDX-License-Identifier: Apache-2.0 */
/* DATA/herald.repair (see repair_record.h). */
#include "repair_record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_file.h"
#include "hd_util.h"

#define API_RECORD_MAX 512u

static int api__record_text(const struct api_repair_record *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "origin_id %" PRIu64 "\nnode_id %" PRIu64 "\nrepairs %" PRIu64
                     "\npending_id %" PRIu64 "\n",
                     r->origin_id, r->node_id, r->repairs, r->pending_id);
    uint32_t crc = hd_crc32c(0, buf, (size_t)n);
    n += snprintf(buf + n, cap - (size_t)n, "crc32c %08x\n", crc);
    return n;
}

int api_repair_record_parse(const char *text, size_t len, struct api_repair_record *out)
{
    /* Strict: the text must be what api__record_text writes for the values
     * read, byte for byte, so nothing else (spaces, signs, leading zeros,
     * trailing bytes) passes. */
    char copy[API_RECORD_MAX + 1], again[API_RECORD_MAX];
    if (len == 0 || len > API_RECORD_MAX || memchr(text, '\0', len) != NULL) {
        return HD_ECORRUPT;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    struct api_repair_record r;
    if (sscanf(copy, "origin_id %" SCNu64 " node_id %" SCNu64 " repairs %" SCNu64
                     " pending_id %" SCNu64, &r.origin_id, &r.node_id, &r.repairs,
               &r.pending_id) != 4 ||
        r.origin_id == 0 || r.node_id == 0) {
        return HD_ECORRUPT;
    }
    int n = api__record_text(&r, again, sizeof again);
    if ((size_t)n != len || memcmp(again, copy, len) != 0) {
        return HD_ECORRUPT;
    }
    *out = r;
    return 0;
}

int api_repair_record_load(const char *dir, struct api_repair_record *out)
{
    char text[API_RECORD_MAX + 1];
    size_t len = 0;
    int rv = hd_file_read(dir, API_REPAIR_RECORD_FILE, text, sizeof text, &len);
    return rv != 0 ? rv : api_repair_record_parse(text, len, out);
}

int api_repair_record_save(const char *dir, const struct api_repair_record *r)
{
    char text[API_RECORD_MAX];
    int n = api__record_text(r, text, sizeof text);
    return hd_file_replace(dir, API_REPAIR_RECORD_FILE, text, (size_t)n, 0644);
}
