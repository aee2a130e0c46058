/* SPDX-License-Identifier: Apache-2.0 */
/* JSON log lines, encoded by jansson. */
#include "log_json.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_util.h"

static void api__log_json_line(int level, const char *when, const char *message)
{
    json_t *msg = json_string(message);
    char *copy = NULL;
    if (msg == NULL) {
        /* Not UTF-8 (a path, say): JSON strings must be, so bytes above
         * ASCII become '?' rather than losing the line. */
        size_t len = strlen(message);
        copy = hd_strndup(message, len);
        for (size_t i = 0; copy != NULL && i < len; i++) {
            if ((unsigned char)copy[i] >= 0x80) {
                copy[i] = '?';
            }
        }
        msg = copy != NULL ? json_string(copy) : NULL;
    }
    json_t *obj = json_object();
    char *line = NULL;
    if (obj != NULL && msg != NULL) {
        json_object_set_new(obj, "time", json_string(when));
        json_object_set_new(obj, "level", json_string(hd_log_level_name(level)));
        json_object_set(obj, "message", msg);
        line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    if (line != NULL) {
        /* One write per line, so lines of two threads never interleave. */
        size_t n = strlen(line);
        line[n] = '\n';
        fwrite(line, 1, n + 1, stderr);
        line[n] = '\0';
        free(line);
    } else {
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"error\",\"message\":\"out of memory "
                "writing a log line\"}\n", when);
    }
    json_decref(obj);
    json_decref(msg);
    hd_free(copy);
}

void api_log_json_start(void)
{
    hd_log_sink = api__log_json_line;
}
