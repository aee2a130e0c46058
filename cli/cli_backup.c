/* SPDX-License-Identifier: Apache-2.0 */
/* herald backup DIR. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "herald/herald.h"

static const char backup_help[] =
    "usage: herald backup DIR\n"
    "\n"
    "Asks the node (--server) for a backup of its whole state into DIR, a\n"
    "directory on the node's machine that does not exist yet (its parent must;\n"
    "on the node's file system the backup is hard links, so it is cheap). The\n"
    "node keeps serving meanwhile. Prints the backup's manifest as JSON.\n"
    "heraldd --restore DIR starts a new cluster from it.\n";

int cli_backup(const char *url, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(backup_help, stdout);
        return CLI_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(backup_help, stderr);
        return CLI_USAGE;
    }
    struct herald_client c;
    if (cli_client_init(&c, url) != 0) {
        fprintf(stderr, "herald: %s\n", herald_errmsg(&c));
        return CLI_USAGE;
    }
    char *text = NULL;
    int rv = herald_backup(&c, argv[1], &text);
    return cli_finish_json_call(&c, "backup", rv, text);
}
