/* SPDX-License-Identifier: Apache-2.0 */
/* Plain-text tables for the CLI (see table.h). */
#include "table.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hd_alloc.h"

void cli_table_init(struct cli_table *t, size_t n_cols, const char *const *header)
{
    memset(t, 0, sizeof *t);
    t->n_cols = n_cols <= CLI_TABLE_COLS_MAX ? n_cols : CLI_TABLE_COLS_MAX;
    for (size_t i = 0; i < t->n_cols; i++) t->header[i] = header[i];
}

void cli_table_row(struct cli_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    if (n < 0 || hd_reserve((void **)&t->cells, &t->cap_rows, t->n_rows + 1,
                            t->n_cols * sizeof(char *), 8) != 0) {
        if (n >= 0) free(line); /* vasprintf allocates with malloc */
        t->failed = 1;
        return;
    }
    char **row = t->cells + t->n_rows * t->n_cols;
    char *p = line;
    for (size_t i = 0; i < t->n_cols; i++) {
        char *tab = p != NULL ? strchr(p, '\t') : NULL;
        size_t len = p == NULL ? 0 : tab != NULL ? (size_t)(tab - p) : strlen(p);
        row[i] = hd_strndup(p != NULL ? p : "", len);
        if (row[i] == NULL) t->failed = 1;
        p = tab != NULL ? tab + 1 : NULL;
    }
    free(line);
    t->n_rows++;
}

/* A cell made of digits (optionally signed, with a decimal point) or a
 * dash placeholder is a number: right-aligned. */
static bool cli__numeric(const char *s)
{
    if (strcmp(s, "-") == 0) return true;
    if (*s == '-' || *s == '+') s++;
    if (*s == '\0') return false;
    for (; *s; s++) {
        if ((*s < '0' || *s > '9') && *s != '.') return false;
    }
    return true;
}

int cli_table_print(const struct cli_table *t, FILE *out)
{
    if (t->failed) {
        fputs("(out of memory: table not printed)\n", out);
        return -1;
    }
    size_t width[CLI_TABLE_COLS_MAX];
    bool right[CLI_TABLE_COLS_MAX];
    for (size_t c = 0; c < t->n_cols; c++) {
        width[c] = strlen(t->header[c]);
        right[c] = t->n_rows > 0;
        for (size_t r = 0; r < t->n_rows; r++) {
            const char *cell = t->cells[r * t->n_cols + c];
            size_t len = strlen(cell);
            if (len > width[c]) width[c] = len;
            if (len > 0 && !cli__numeric(cell)) right[c] = false;
        }
    }
    for (size_t r = 0; r <= t->n_rows; r++) {
        const char *const *row =
            r == 0 ? t->header : (const char *const *)t->cells + (r - 1) * t->n_cols;
        /* Empty cells at the end of a row are not padded: no trailing blanks. */
        size_t end = t->n_cols;
        while (end > 1 && row[end - 1][0] == '\0') end--;
        for (size_t c = 0; c < end; c++) {
            bool last = c + 1 == end;
            int w = (int)width[c];
            if (right[c]) {
                fprintf(out, "%*s", w, row[c]);
            } else {
                fprintf(out, "%-*s", last ? 0 : w, row[c]);
            }
            fputs(last ? "\n" : "  ", out);
        }
    }
    return ferror(out) ? -1 : 0;
}

void cli_table_free(struct cli_table *t)
{
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) hd_free(t->cells[i]);
    hd_free(t->cells);
    memset(t, 0, sizeof *t);
}
