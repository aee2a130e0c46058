/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the CLI's status tables (cli/status_format.c) on whatever
 * JSON a server sends: any document, of any shape, must print or be refused
 * without a crash, and a table of nodes counts the one that did not answer. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hd_assert.h"
#include "status_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *st = json_loadb((const char *)data, size, 0, NULL);
    if (st == NULL) return 0;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    HD_ASSERT(out != NULL);
    int rv = cli_status_print(out, st, NULL);
    HD_ASSERT(rv == 0 || rv == -1);
    /* The same answer as its own predecessor: no time passed, no rates. */
    rv = cli_status_print(out, st, st);
    HD_ASSERT(rv == 0 || rv == -1);
    HD_ASSERT(cli_rate(st, st, "appends", "committed") < 0);
    struct cli_node_view views[2] = {{"http://a", st}, {"http://b", NULL}};
    HD_ASSERT(cli_cluster_print(out, views, 2) == 1);
    fclose(out);
    free(text);
    json_decref(st);
    return 0;
}
