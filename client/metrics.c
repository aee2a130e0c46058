/* SPDX-License-Identifier: Apache-2.0 */
/* GET /metrics, and reading one sample out of its Prometheus text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_error.h"

int herald_metrics(struct herald_client *c, char **text)
{
    *text = NULL;
    struct herald__resp r;
    bool sent = false;
    herald__resp_init(&r, NULL, NULL);
    int rv = herald__exchange(c, "GET", "/metrics", "Accept: text/plain\r\n", NULL, 0,
                              herald__now_ms() + c->request_timeout_ms, &r, &sent);
    if (rv == 0 && r.status != 200) {
        rv = herald__http_error(c, &r, "/metrics");
    } else if (rv == 0) {
        *text = hd_strndup(r.body.data ? r.body.data : "", r.body.len);
        if (*text == NULL) rv = herald__fail(c, HD_ENOMEM, "metrics: out of memory");
    }
    herald__resp_close(&r);
    return rv;
}

/* The value of a sample line "NAME VALUE [TIMESTAMP]" whose value token
 * is at v (len bytes to the end of the line). */
static int herald__sample_value(const char *v, size_t len, double *value)
{
    size_t n = 0;
    while (n < len && v[n] != ' ' && v[n] != '\t') n++;
    char buf[64];
    if (n == 0 || n >= sizeof buf) return HD_ECORRUPT;
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (*end != '\0' || !isfinite(d)) return HD_ECORRUPT;
    *value = d;
    return 0;
}

int herald_metric_value(const char *text, size_t len, const char *name, double *value)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - i;
        i += line_len + 1;
        if (name_len > 0 && line_len > name_len + 1 && memcmp(line, name, name_len) == 0 &&
            line[name_len] == ' ') {
            return herald__sample_value(line + name_len + 1, line_len - name_len - 1, value);
        }
    }
    return HD_ENOTFOUND;
}
