/* SPDX-License-Identifier: Apache-2.0 */
/* Incremental text/event-stream parser, fed arbitrary byte slices. */
#include <string.h>

#include "client_internal.h"
#include "hd_error.h"

/* One line holds at most one data field: a 1 MiB payload as base64 inside
 * JSON is ~1.4 MiB, so 8 MiB leaves room without being unbounded. */
#define SSE_LINE_MAX ((size_t)8 << 20)

void herald__sse_init(struct herald__sse *s, herald__sse_cb cb, void *arg)
{
    memset(s, 0, sizeof *s);
    s->cb = cb;
    s->arg = arg;
    s->line_max = SSE_LINE_MAX;
}

void herald__sse_close(struct herald__sse *s)
{
    herald__buf_free(&s->line);
    herald__buf_free(&s->data);
    herald__buf_free(&s->type);
    herald__buf_free(&s->last_id);
}

/* Blank line: dispatch the event being built, then reset it. Per the spec an
 * event without data lines is not dispatched, but its id still counts. */
static int sse_dispatch(struct herald__sse *s)
{
    int rv = 0;
    if (s->have_data) {
        struct herald__sse_event ev = {
            .type = s->type.len > 0 ? s->type.data : "message",
            .data = s->data.data ? s->data.data : "",
            .data_len = s->data.len,
            .id = s->last_id.data ? s->last_id.data : "",
            .id_set = s->id_set,
        };
        rv = s->cb(s->arg, &ev);
    }
    herald__buf_reset(&s->data);
    herald__buf_reset(&s->type);
    s->have_data = false;
    s->id_set = false;
    return rv;
}

/* Handles one complete line (without its terminator). */
static int sse_line(struct herald__sse *s, const char *line, size_t len)
{
    if (len == 0) return sse_dispatch(s);
    if (line[0] == ':') return 0; /* comment, e.g. a keep-alive */
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = len - name_len - (colon ? 1 : 0);
    if (value_len > 0 && value[0] == ' ') { /* one leading space is dropped */
        value++;
        value_len--;
    }
    int rv = 0;
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (s->have_data) rv = herald__buf_append(&s->data, "\n", 1);
        if (rv == 0) rv = herald__buf_append(&s->data, value, value_len);
        s->have_data = true;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        herald__buf_reset(&s->type);
        rv = herald__buf_append(&s->type, value, value_len);
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(value, '\0', value_len) == NULL) { /* spec: ignore ids with NUL */
            herald__buf_reset(&s->last_id);
            rv = herald__buf_append(&s->last_id, value, value_len);
            s->id_set = true;
        }
    }
    /* "retry" and unknown fields are ignored: reconnection timing is ours. */
    return rv;
}

int herald__sse_feed(struct herald__sse *s, const char *data, size_t len)
{
    size_t i = 0;
    if (s->skip_lf && len > 0) {
        if (data[0] == '\n') i = 1; /* second half of a "\r\n" split across slices */
        s->skip_lf = false;
    }
    while (i < len) {
        size_t start = i;
        while (i < len && data[i] != '\n' && data[i] != '\r') i++;
        if (s->line.len + (i - start) > s->line_max) return HD_ETOOBIG;
        if (i == len) { /* partial line: keep for the next slice */
            return herald__buf_append(&s->line, data + start, i - start);
        }
        int rv;
        if (s->line.len > 0) {
            rv = herald__buf_append(&s->line, data + start, i - start);
            if (rv == 0) rv = sse_line(s, s->line.data, s->line.len);
            herald__buf_reset(&s->line);
        } else {
            rv = sse_line(s, data + start, i - start);
        }
        if (data[i] == '\r') {
            if (i + 1 < len && data[i + 1] == '\n') {
                i++;
            } else if (i + 1 == len) {
                s->skip_lf = true;
            }
        }
        i++;
        if (rv != 0) return rv;
    }
    return 0;
}
