/* SPDX-License-Identifier: Apache-2.0 */
/* herald token create: a new random token, shown once, and its hashed line for --auth-file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "hd_error.h"
#include "hd_token.h"

static const char token_help[] =
    "usage: herald token create NAME --scope SCOPE [--scope SCOPE...]\n"
    "\n"
    "Makes a new random token (256 bits from getrandom). Prints the token once\n"
    "on the first line (give it to the client; it is not stored anywhere), then\n"
    "the line to add to heraldd's --auth-file (NAME, the token's SHA-256, the\n"
    "scopes); send heraldd SIGHUP to load it.\n"
    "\n"
    "  NAME            1-64 characters of [A-Za-z0-9._-]; logs and metrics show it\n"
    "  --scope SCOPE   append:PATTERN, read:PATTERN, subscribe:PATTERN, admin or\n"
    "                  status. PATTERN is a channel, a prefix ending in '*'\n"
    "                  (team-42:*), or '*' for every channel. admin: membership\n"
    "                  changes; status: /v1/status and /metrics. Limits go the\n"
    "                  same way: limit:appends=N, limit:bytes=N (per second),\n"
    "                  limit:streams=N (open tails and WebSockets)\n";

#define CLI_SCOPES_MAX 64

int cli_token_cmd(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(token_help, stdout);
        return CLI_OK;
    }
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        return cli_usage_error("token", "the only subcommand is: create NAME --scope SCOPE...");
    }
    const char *name = NULL;
    const char *scopes[CLI_SCOPES_MAX];
    size_t n = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *scope = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(token_help, stdout);
            return CLI_OK;
        } else if (strcmp(a, "--scope") == 0) {
            if (i + 1 >= argc) return cli_usage_error("token", "--scope needs a scope");
            scope = argv[++i];
        } else if (strncmp(a, "--scope=", 8) == 0) {
            scope = a + 8;
        } else if (a[0] == '-') {
            return cli_usage_error("token", "unknown option %s", a);
        } else if (name == NULL) {
            name = a;
        } else {
            return cli_usage_error("token", "one NAME only (got \"%s\" and \"%s\")", name, a);
        }
        if (scope != NULL) {
            if (n == CLI_SCOPES_MAX) return cli_usage_error("token", "too many scopes");
            scopes[n++] = scope;
        }
    }
    if (name == NULL) return cli_usage_error("token", "give the token a NAME");
    char token[HD_TOKEN_TEXT_MAX], line[HD_TOKEN_TEXT_MAX * 2 + CLI_SCOPES_MAX * 160];
    char errmsg[300] = "";
    int rv = hd_token_generate(token, sizeof token);
    if (rv != 0) {
        fprintf(stderr, "herald token: no random bytes: %s\n", hd_strerror(rv));
        return CLI_FAIL;
    }
    rv = hd_token_line(name, token, scopes, n, line, sizeof line, errmsg, sizeof errmsg);
    if (rv != 0) {
        return cli_usage_error("token", "%s", errmsg[0] ? errmsg : hd_strerror(rv));
    }
    printf("%s\n%s\n", token, line);
    fprintf(stderr, "herald token: the first line is the token, shown only now; add the second "
                    "to the --auth-file and send heraldd SIGHUP\n");
    return CLI_OK;
}
