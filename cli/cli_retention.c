/* SPDX-License-Identifier: Apache-2.0 */
/* herald retention list: the node's retention policy as a table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "status_format.h"

static const char retention_help[] =
    "usage: herald retention list [--json]\n"
    "\n"
    "Prints the retention policy of the node asked (--server): its rules, the\n"
    "first matching pattern of which applies to a channel (max age, messages,\n"
    "bytes), the policy's hash and how often each shard's leader sweeps.\n"
    "--json prints the status' \"retention\" object instead.\n"
    "\n"
    "Policies are configuration, not cluster state: they are set with heraldd\n"
    "--retention (or the config file's retention key) and take effect at the\n"
    "next start. Give every node the same policy: a shard's leader trims by its\n"
    "own (`herald cluster status` warns when they differ).\n";

int cli_retention(const char *url, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(retention_help, stdout);
        return CLI_OK;
    }
    bool list = argc >= 2 && strcmp(argv[1], "list") == 0;
    bool as_json = argc == 3 && strcmp(argv[2], "--json") == 0;
    if (!list || argc > 3 || (argc == 3 && !as_json)) {
        fputs(retention_help, stderr);
        return CLI_USAGE;
    }
    char err[600];
    json_t *st = NULL;
    int rc = cli_fetch_status(url, &st, err, sizeof err);
    if (rc != CLI_OK) {
        fprintf(stderr, "herald retention: %s\n", err);
        return rc;
    }
    if (as_json) {
        char *text = json_dumps(json_object_get(st, "retention"), JSON_PRESERVE_ORDER);
        if (text != NULL) puts(text);
        rc = text != NULL ? CLI_OK : CLI_FAIL;
        free(text);
    } else if (cli_retention_print(stdout, st) != 0) {
        fprintf(stderr, "herald retention: %s: the node's status has no retention policy "
                        "(an older heraldd?)\n", url);
        rc = CLI_FAIL;
    }
    json_decref(st);
    return rc;
}
