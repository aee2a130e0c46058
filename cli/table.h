/* SPDX-License-Identifier: Apache-2.0 */
/* Plain-text tables for the CLI: a header row, then rows of cells; columns
 * are as wide as their widest cell, numbers right-aligned, text left. */
#ifndef HERALD_CLI_TABLE_H
#define HERALD_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#define CLI_TABLE_COLS_MAX 12

struct cli_table {
    size_t n_cols;
    const char *header[CLI_TABLE_COLS_MAX];
    char **cells; /* n_rows * n_cols, hd_alloc'd strings */
    size_t n_rows;
    size_t cap_rows;
    int failed;   /* out of memory: print says so instead of a short table */
};

/* Starts a table with n_cols (<= CLI_TABLE_COLS_MAX) column titles
 * (static strings). */
void cli_table_init(struct cli_table *t, size_t n_cols, const char *const *header);
/* Adds a row of printf-formatted cells: fmt holds exactly n_cols
 * conversions separated by '\t'. */
void cli_table_row(struct cli_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes the table, two spaces between columns, no trailing blanks.
 * Returns 0, or -1 if a row could not be stored or out could not be written. */
int cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table *t);

#endif
