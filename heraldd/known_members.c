/* SPDX-License-Identifier: Apache-2.0 */
/* DATA/herald.members (see known_members.h). */
#include "known_members.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hd_error.h"
#include "hd_file.h"
#include "hd_ts.h"
#include "hd_util.h"

/* "cluster_id " 32 "\n", 64 x "member " 20 " " 63 "\n", "crc32c " 8 "\n". */
#define API_KNOWN_TEXT_MAX 8192u

static bool api__address_ok(const char *a)
{
    size_t len = strnlen(a, API_KNOWN_ADDRESS_MAX + 1);
    if (len == 0 || len > API_KNOWN_ADDRESS_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (a[i] <= ' ' || a[i] > '~') return false;
    }
    return true;
}

int api_known_members_valid(const struct api_known_members *m)
{
    if (strnlen(m->cluster_id, sizeof m->cluster_id) != 32 ||
        strspn(m->cluster_id, "0123456789abcdef") != 32 || m->n == 0 ||
        m->n > API_KNOWN_MEMBERS_MAX) {
        return HD_EINVAL;
    }
    for (unsigned i = 0; i < m->n; i++) {
        if (m->list[i].id == 0 || (i > 0 && m->list[i].id <= m->list[i - 1].id) ||
            !api__address_ok(m->list[i].address)) {
            return HD_EINVAL;
        }
    }
    return 0;
}

bool api_known_members_equal(const struct api_known_members *a,
                             const struct api_known_members *b)
{
    if (a->n != b->n || strcmp(a->cluster_id, b->cluster_id) != 0) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (a->list[i].id != b->list[i].id || strcmp(a->list[i].address, b->list[i].address) != 0) {
            return false;
        }
    }
    return true;
}

/* The text of a valid list; its length (always below cap). */
static size_t api__text(const struct api_known_members *m, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "cluster_id %s\n", m->cluster_id);
    for (unsigned i = 0; i < m->n; i++) {
        n += (size_t)snprintf(buf + n, cap - n, "member %" PRIu64 " %s\n", m->list[i].id,
                              m->list[i].address);
    }
    uint32_t crc = hd_crc32c(0, buf, n);
    n += (size_t)snprintf(buf + n, cap - n, "crc32c %08x\n", crc);
    return n;
}

/* The next line of [*p, end) without its '\n' into line (NUL-terminated);
 * false if there is none or it is longer than cap - 1. */
static bool api__line(const char **p, const char *end, char *line, size_t cap)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    if (nl == NULL || (size_t)(nl - *p) >= cap) {
        return false;
    }
    memcpy(line, *p, (size_t)(nl - *p));
    line[nl - *p] = '\0';
    *p = nl + 1;
    return true;
}

int api_known_members_parse(const char *text, size_t len, struct api_known_members *out)
{
    /* Read loosely, then accepted only if the writer's text for what was
     * read is the input byte for byte: no extra spaces, signs, leading
     * zeros, reordering or trailing bytes get through, and the checksum
     * line is checked by that same comparison. */
    char again[API_KNOWN_TEXT_MAX];
    struct api_known_members m;
    if (len == 0 || len >= API_KNOWN_TEXT_MAX || memchr(text, '\0', len) != NULL) {
        return HD_ECORRUPT;
    }
    memset(&m, 0, sizeof m);
    const char *p = text, *end = text + len;
    char line[128];
    if (!api__line(&p, end, line, sizeof line) || strncmp(line, "cluster_id ", 11) != 0 ||
        strlen(line + 11) != 32) {
        return HD_ECORRUPT;
    }
    memcpy(m.cluster_id, line + 11, 33);
    while (api__line(&p, end, line, sizeof line) && strncmp(line, "member ", 7) == 0) {
        char *sp = strchr(line + 7, ' ');
        if (m.n == API_KNOWN_MEMBERS_MAX || sp == NULL ||
            hd_u64_parse(line + 7, (size_t)(sp - (line + 7)), &m.list[m.n].id) != 0 ||
            strlen(sp + 1) > API_KNOWN_ADDRESS_MAX) {
            return HD_ECORRUPT;
        }
        snprintf(m.list[m.n].address, sizeof m.list[m.n].address, "%s", sp + 1);
        m.n++;
    }
    /* The line that ended the loop was the checksum's: the comparison
     * below checks it and that nothing follows. */
    if (api_known_members_valid(&m) != 0) {
        return HD_ECORRUPT;
    }
    size_t n = api__text(&m, again, sizeof again);
    if (n != len || memcmp(again, text, len) != 0) {
        return HD_ECORRUPT;
    }
    *out = m;
    return 0;
}

int api_known_members_load(const char *dir, struct api_known_members *out)
{
    char text[API_KNOWN_TEXT_MAX];
    size_t len = 0;
    int rv = hd_file_read(dir, API_KNOWN_MEMBERS_FILE, text, sizeof text, &len);
    return rv != 0 ? rv : api_known_members_parse(text, len, out);
}

int api_known_members_save(const char *dir, const struct api_known_members *m)
{
    char text[API_KNOWN_TEXT_MAX];
    if (api_known_members_valid(m) != 0) {
        return HD_EINVAL;
    }
    size_t n = api__text(m, text, sizeof text);
    return hd_file_replace(dir, API_KNOWN_MEMBERS_FILE, text, n, 0644);
}
