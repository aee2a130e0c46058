/* SPDX-License-Identifier: Apache-2.0 */
/* herald: command-line client for heraldd; global options and dispatch. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "herald/herald.h"
#ifdef HERALD_HAVE_BENCH
#include "bench.h"
#endif

static const char main_help[] =
    "usage: herald [--server URL] COMMAND [ARGS...]\n"
    "\n"
    "Command-line client for a herald server (HTTP API v1).\n"
    "\n"
    "commands:\n"
    "  append CHANNEL TEXT   append one message, print its seq and ts\n"
    "  read CHANNEL          print stored messages, one JSON line each\n"
    "  tail CHANNEL          follow a channel, one JSON line per message\n"
    "  subscribe CHANNEL[:POS]...\n"
    "                        follow many channels over one WebSocket, one JSON\n"
    "                        line per message (POS: a seq or now)\n"
    "  status [--json]       the node, its shards (leader, term, commit, applied,\n"
    "                        lag) and peers as tables; --json: the raw JSON\n"
    "  cluster add-node ID ADDR | remove-node ID\n"
    "                        change the members of every shard (ADDR: the new\n"
    "                        node's peer address, host:port)\n"
    "  cluster status [--servers URL,...]\n"
    "                        every node's view of the cluster, one row each\n"
    "  token create NAME --scope SCOPE...\n"
    "                        make a new token: prints it once, and its line for\n"
    "                        heraldd --auth-file\n"
    "  channel info CHANNEL | trim CHANNEL BEFORE_SEQ | delete CHANNEL\n"
    "                        a channel's first/last seq and epoch; trim or delete\n"
    "                        it on every replica\n"
    "  retention list | set RULES... | clear\n"
    "                        the retention policy in effect; set or clear the\n"
    "                        cluster's (through Raft; else each node's --retention)\n"
    "  backup DIR            a backup of the node's state into DIR on the node's\n"
    "                        machine (heraldd --restore DIR starts a new cluster)\n"
    "  bench                 measure append throughput and latency; --fanout:\n"
    "                        delivery to many subscribers\n"
    "\n"
    "options:\n"
    "  --server URL   server to talk to (http://host[:port] or https://...); default:\n"
    "                 $HERALD_URL, else " HERALD_URL_DEFAULT ". Accepted before or\n"
    "                 after COMMAND.\n"
    "  --ca-file FILE https: trust the CA certificates in FILE (PEM) instead of the\n"
    "                 system's; default: $HERALD_CA_FILE. The server's certificate\n"
    "                 must also name the URL's host. Accepted before or after COMMAND.\n"
    "  --token TOKEN  send Authorization: Bearer TOKEN (heraldd --auth-file);\n"
    "                 default: $HERALD_TOKEN. Prefer the variable: arguments are\n"
    "                 visible to other users in ps. Accepted before or after COMMAND.\n"
    "  -h, --help     this text; `herald COMMAND --help` describes a command\n"
    "\n"
    "exit status: 0 success, 1 request failed (server error, server unreachable,\n"
    "malformed answer), 2 usage error, 3 append outcome unknown (retry with the\n"
    "same --nonce to learn it).\n";

bool cli_parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "herald%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try `herald%s%s --help`)\n", cmd ? " " : "", cmd ? cmd : "");
    return CLI_USAGE;
}

const char *cli_token;
const char *cli_ca_file;

/* Removes "--server URL" / "--server=URL" and "--token TOKEN" /
 * "--token=TOKEN" from anywhere before "--", so the options work both
 * before and after the command name. */
static int take_server_option(int *argc, char **argv, const char **url)
{
    int out = 1;
    bool literal = false;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!literal && strcmp(a, "--") == 0) literal = true;
        if (!literal && strcmp(a, "--server") == 0) {
            if (i + 1 >= *argc) return cli_usage_error(NULL, "--server needs a URL");
            *url = argv[++i];
        } else if (!literal && strncmp(a, "--server=", 9) == 0) {
            *url = a + 9;
        } else if (!literal && strcmp(a, "--token") == 0) {
            if (i + 1 >= *argc) return cli_usage_error(NULL, "--token needs a token");
            cli_token = argv[++i];
        } else if (!literal && strncmp(a, "--token=", 8) == 0) {
            cli_token = a + 8;
        } else if (!literal && strcmp(a, "--ca-file") == 0) {
            if (i + 1 >= *argc) return cli_usage_error(NULL, "--ca-file needs a file");
            cli_ca_file = argv[++i];
        } else if (!literal && strncmp(a, "--ca-file=", 10) == 0) {
            cli_ca_file = a + 10;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = getenv("HERALD_URL");
    if (url != NULL && *url == '\0') url = NULL;
    cli_token = getenv("HERALD_TOKEN");
    if (cli_token != NULL && *cli_token == '\0') cli_token = NULL;
    cli_ca_file = getenv("HERALD_CA_FILE");
    if (cli_ca_file != NULL && *cli_ca_file == '\0') cli_ca_file = NULL;
    if (take_server_option(&argc, argv, &url) != 0) return CLI_USAGE;
    if (url == NULL) url = HERALD_URL_DEFAULT;
    if (argc < 2) {
        fputs(main_help, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_help, stdout);
        return CLI_OK;
    }
    /* Subcommands see argv[0] = their own name. */
    argc -= 1;
    argv += 1;
    if (strcmp(cmd, "append") == 0) return cli_append(url, argc, argv);
    if (strcmp(cmd, "read") == 0) return cli_read(url, argc, argv);
    if (strcmp(cmd, "tail") == 0) return cli_tail(url, argc, argv);
    if (strcmp(cmd, "subscribe") == 0) return cli_subscribe(url, argc, argv);
    if (strcmp(cmd, "status") == 0) return cli_status(url, argc, argv);
    if (strcmp(cmd, "cluster") == 0) return cli_cluster(url, argc, argv);
    if (strcmp(cmd, "token") == 0) return cli_token_cmd(argc, argv);
    if (strcmp(cmd, "channel") == 0) return cli_channel(url, argc, argv);
    if (strcmp(cmd, "backup") == 0) return cli_backup(url, argc, argv);
    if (strcmp(cmd, "retention") == 0) return cli_retention(url, argc, argv);
#ifdef HERALD_HAVE_BENCH
    if (strcmp(cmd, "bench") == 0) {
        return herald_bench_main(url, cli_token, cli_ca_file, argc, argv);
    }
#endif
    return cli_usage_error(NULL, "unknown command \"%s\"", cmd);
}
