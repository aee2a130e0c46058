/* SPDX-License-Identifier: Apache-2.0 */
/* herald retention list|set|clear: the effective retention policy, and the cluster's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "herald/herald.h"
#include "status_format.h"

static const char retention_help[] =
    "usage: herald retention list [--json]\n"
    "       herald retention set RULES... [--json]\n"
    "       herald retention clear [--json]\n"
    "\n"
    "list prints the retention policy in effect on the node asked (--server): its\n"
    "rules, the first matching pattern of which applies to a channel (max age,\n"
    "messages, bytes), the policy's hash, where it comes from and how often each\n"
    "shard's leader sweeps. --json prints the status' \"retention\" object instead.\n"
    "\n"
    "set gives the whole cluster one policy, through Raft: every node, and every\n"
    "node added, restarted or restored later, uses it instead of its own\n"
    "--retention (the config file's retention key). RULES are\n"
    "PATTERN=LIMIT[,LIMIT...] or PATTERN=none, as several arguments or one with\n"
    "';' between rules; LIMIT is age:N{s|m|h|d|w}, messages:N or bytes:N[KiB|MiB|\n"
    "GiB|TiB|kB|MB|GB|TB]. The node checks them before anything changes.\n"
    "clear drops the cluster's policy: each node goes back to its own --retention.\n"
    "set and clear print the policy then in effect on the node asked (--json: its\n"
    "object). Any node takes them; with no leader (an election under way) the\n"
    "answer is 503 unavailable: run the command again.\n"
    "\n"
    "examples:\n"
    "  herald retention set 'chat:*=age:7d,messages:100000' 'audit:*=none' '*=age:30d'\n"
    "  herald retention clear\n";

/* Prints a policy object as a table, or as JSON. */
static int print_policy(const char *url, const json_t *r, bool as_json)
{
    if (as_json) {
        char *text = json_dumps(r, JSON_PRESERVE_ORDER);
        if (text == NULL) {
            return CLI_FAIL;
        }
        puts(text);
        free(text);
        return CLI_OK;
    }
    if (cli_retention_print(stdout, r) != 0) {
        fprintf(stderr, "herald retention: %s: the answer has no retention policy "
                        "(an older heraldd?)\n", url);
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int retention_list(const char *url, bool as_json)
{
    char err[600];
    json_t *st = NULL;
    int rc = cli_fetch_status(url, &st, err, sizeof err);
    if (rc != CLI_OK) {
        fprintf(stderr, "herald retention: %s\n", err);
        return rc;
    }
    rc = print_policy(url, json_object_get(st, "retention"), as_json);
    json_decref(st);
    return rc;
}

/* set (rules, n of them) or clear (n == 0). */
static int retention_change(const char *url, char **rules, int n, bool as_json)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) {
        len += strlen(rules[i]) + 1;
    }
    char *joined = calloc(1, len);
    if (joined == NULL) {
        fputs("herald retention: out of memory\n", stderr);
        return CLI_FAIL;
    }
    for (int i = 0; i < n; i++) {
        if (i > 0) strcat(joined, ";");
        strcat(joined, rules[i]);
    }
    struct herald_client c;
    if (cli_client_init(&c, url) != 0) {
        fprintf(stderr, "herald: %s\n", herald_errmsg(&c));
        free(joined);
        return CLI_USAGE;
    }
    char *text = NULL;
    int rv = n > 0 ? herald_retention_set(&c, joined, &text) : herald_retention_clear(&c, &text);
    free(joined);
    int rc = CLI_OK;
    json_t *r = rv == 0 ? json_loads(text, 0, NULL) : NULL;
    if (rv != 0) {
        fprintf(stderr, "herald retention: %s (%s)\n", herald_errmsg(&c), herald_strerror(rv));
        rc = CLI_FAIL;
    } else if (r == NULL) {
        fprintf(stderr, "herald retention: %s: the answer is not JSON\n", url);
        rc = CLI_FAIL;
    } else {
        rc = print_policy(url, r, as_json);
    }
    json_decref(r);
    herald_free(text);
    herald_client_close(&c);
    return rc;
}

int cli_retention(const char *url, int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(retention_help, stdout);
        return CLI_OK;
    }
    const char *op = argc >= 2 ? argv[1] : "";
    bool as_json = argc >= 3 && strcmp(argv[argc - 1], "--json") == 0;
    int n = argc - 2 - (as_json ? 1 : 0); /* arguments after the action */
    if (strcmp(op, "list") == 0 && n == 0) {
        return retention_list(url, as_json);
    }
    if (strcmp(op, "clear") == 0 && n == 0) {
        return retention_change(url, NULL, 0, as_json);
    }
    if (strcmp(op, "set") == 0 && n > 0) {
        return retention_change(url, argv + 2, n, as_json);
    }
    if (strcmp(op, "set") == 0) {
        return cli_usage_error("retention", "retention set needs RULES, e.g. "
                                            "herald retention set 'chat:*=age:7d' '*=none'");
    }
    fputs(retention_help, stderr);
    return CLI_USAGE;
}
