/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd's config file, parsed by libinih (see config_file.h). inih reads
 * through our line reader, which counts lines (so every error names its
 * line, even one inih passes no number for) and refuses NUL bytes,
 * overlong lines and section headers before inih sees them. */
#include "config_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "options_table.h"

struct api__cfg {
    struct api_options *o;
    const char *file;
    const char *text;      /* the file's bytes, and where the next line starts */
    size_t len, pos;
    int line;              /* number of the line inih holds now (from 1) */
    int first_line[API_OPTS_MAX]; /* per option (table order), where the file set it */
    char *errmsg;
    size_t errmsg_len;
    bool failed;
};

static int api__cfg_fail(struct api__cfg *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records the first error as "FILE:LINE: ..." and stops inih (its reader
 * returns end of file from here on). Returns 0: inih's "handler failed". */
static int api__cfg_fail(struct api__cfg *c, const char *fmt, ...)
{
    if (!c->failed) {
        c->failed = true;
        int n = snprintf(c->errmsg, c->errmsg_len, "%s:%d: ", c->file, c->line);
        if (n >= 0 && (size_t)n < c->errmsg_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->errmsg + n, c->errmsg_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return 0;
}

/* inih's reader: the next line of the text, newline included, into buf.
 * One call is one line of the file, so c->line is the line inih parses. */
static char *api__cfg_reader(char *buf, int size, void *arg)
{
    struct api__cfg *c = arg;
    if (c->failed || c->pos >= c->len) {
        return NULL;
    }
    c->line++;
    const char *start = c->text + c->pos;
    const char *nl = memchr(start, '\n', c->len - c->pos);
    size_t n = nl != NULL ? (size_t)(nl - start) + 1 : c->len - c->pos;
    if (memchr(start, '\0', n) != NULL) {
        api__cfg_fail(c, "the line holds a NUL byte (not a text file?)");
        return NULL;
    }
    if (n > API_CONFIG_LINE_MAX + 1 || n + 1 > (size_t)size) {
        api__cfg_fail(c, "the line is longer than %d bytes", API_CONFIG_LINE_MAX);
        return NULL;
    }
    /* Sections are refused here too: a [section] with no key never reaches
     * the handler. */
    size_t i = 0;
    if (c->line == 1 && n >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) {
        i = 3; /* a UTF-8 byte order mark, which inih skips */
    }
    while (i < n && (start[i] == ' ' || start[i] == '\t' || start[i] == '\r')) {
        i++;
    }
    if (i < n && start[i] == '[') {
        api__cfg_fail(c, "sections are not used: every key goes at the top level, "
                      "not under %.*s", (int)(n - i < 64 ? n - i - (nl != NULL) : 64),
                      start + i);
        return NULL;
    }
    memcpy(buf, start, n);
    buf[n] = '\0';
    c->pos += n;
    return buf;
}

static int api__cfg_handler(void *arg, const char *section, const char *name, const char *value)
{
    struct api__cfg *c = arg;
    if (c->failed) {
        return 0;
    }
    if (section[0] != '\0') {
        return api__cfg_fail(c, "sections are not used: key '%s' is under [%s]", name, section);
    }
    const struct api_opt *opt = api_opt_find(name);
    if (opt == NULL) {
        return api__cfg_fail(c, "unknown key '%s' (the keys are heraldd's flags without --, "
                             "see heraldd --help)", name);
    }
    if (opt->kind == API_OPT_CLI) {
        return api__cfg_fail(c, "'%s' is a command-line flag only, not a config key", name);
    }
    size_t idx = api_opt_index(opt);
    if (c->first_line[idx] != 0) {
        return api__cfg_fail(c, "key '%s' is given twice (first on line %d)", name,
                             c->first_line[idx]);
    }
    c->first_line[idx] = c->line;
    if (value[0] == '\0') {
        return api__cfg_fail(c, "key '%s' has no value", name);
    }
    /* The option keeps a pointer to the value: the options own a copy. */
    char **grown = hd_realloc(c->o->owned, (c->o->n_owned + 1) * sizeof *grown);
    if (grown == NULL) {
        return api__cfg_fail(c, "out of memory");
    }
    c->o->owned = grown;
    char *copy = hd_strndup(value, strlen(value));
    if (copy == NULL) {
        return api__cfg_fail(c, "out of memory");
    }
    c->o->owned[c->o->n_owned++] = copy;
    char err[512] = "";
    if (opt->parse(c->o, opt, copy, err, sizeof err) != 0) {
        return api__cfg_fail(c, "%s%s", name, err);
    }
    return 1;
}

int api_options_load_text(struct api_options *o, const char *text, size_t len, const char *file,
                          char *errmsg, size_t errmsg_len)
{
    /* inih's run-time settings (Debian builds it with INI_RUNTIME_OPTIONS):
     * no continuation lines, so an indented key is a key; no inline
     * comments, so a value may hold ';' (whole-line comments only); lines
     * up to our own limit (the reader refuses longer ones). */
    ini_allow_multiline = false;
    ini_allow_inline_comments = false;
    ini_allow_no_value = false;
    ini_use_stack = true;
    ini_max_line = API_CONFIG_LINE_MAX + 3;
    struct api__cfg c = {.o = o, .file = file, .text = text, .len = len,
                         .errmsg = errmsg, .errmsg_len = errmsg_len};
    int rv = ini_parse_stream(api__cfg_reader, &c, api__cfg_handler, &c);
    if (c.failed) {
        return HD_EINVAL;
    }
    if (rv != 0) {
        /* inih's own refusal: the line is neither `key = value` nor a
         * comment (rv is its number, which our count agrees with). */
        c.line = rv;
        api__cfg_fail(&c, "not a 'key = value' line nor a comment");
        return HD_EINVAL;
    }
    return 0;
}

int api_options_load_file(struct api_options *o, const char *path, char *errmsg,
                          size_t errmsg_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errmsg, errmsg_len, "cannot open config file %s: %s", path, strerror(errno));
        return HD_EINVAL;
    }
    char *text = hd_malloc(API_CONFIG_FILE_MAX + 1);
    size_t len = text != NULL ? fread(text, 1, API_CONFIG_FILE_MAX + 1, f) : 0;
    int rv = 0;
    if (text == NULL) {
        snprintf(errmsg, errmsg_len, "%s: out of memory", path);
        rv = HD_ENOMEM;
    } else if (ferror(f)) {
        snprintf(errmsg, errmsg_len, "cannot read config file %s: %s", path, strerror(errno));
        rv = HD_EINVAL;
    } else if (len > API_CONFIG_FILE_MAX) {
        snprintf(errmsg, errmsg_len, "config file %s is larger than %u bytes", path,
                 API_CONFIG_FILE_MAX);
        rv = HD_EINVAL;
    } else {
        rv = api_options_load_text(o, text, len, path, errmsg, errmsg_len);
    }
    hd_free(text);
    fclose(f);
    return rv;
}
