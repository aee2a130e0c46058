/* SPDX-License-Identifier: Apache-2.0 */
/* The herald CLI's subcommands and the helpers they share. */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit codes, listed in `herald --help`. */
enum {
    CLI_OK = 0,      /* success */
    CLI_FAIL = 1,    /* the request failed: server error, unreachable, bad answer */
    CLI_USAGE = 2,   /* bad command line */
    CLI_UNKNOWN = 3, /* append outcome unknown: retry with the same --nonce */
};

/* Each subcommand gets argv[0] = its name and the server URL to use. */
int cli_append(const char *url, int argc, char **argv);
int cli_read(const char *url, int argc, char **argv);
int cli_tail(const char *url, int argc, char **argv);
int cli_subscribe(const char *url, int argc, char **argv);
int cli_status(const char *url, int argc, char **argv);
int cli_cluster(const char *url, int argc, char **argv);
int cli_cluster_status(const char *url, int argc, char **argv); /* cli_status.c */

/* The token of --token or $HERALD_TOKEN (NULL: none), sent with every
 * request. */
extern const char *cli_token;
/* --ca-file FILE or $HERALD_CA_FILE: https trust store; NULL: the system's. */
extern const char *cli_ca_file;

/* herald token create: a new token and its auth-file line. */
int cli_token_cmd(int argc, char **argv);
int cli_channel(const char *url, int argc, char **argv);
int cli_backup(const char *url, int argc, char **argv);
int cli_retention(const char *url, int argc, char **argv);

/* Asks url for GET /v1/status (cli_status.c). On success *out holds the
 * parsed answer; otherwise err holds one line saying why. */
int cli_fetch_status(const char *url, json_t **out, char *err, size_t err_size);

/* herald_client_init with the command line's --token and --ca-file (every
 * command opens its client this way: cli_cmds.c). */
struct herald_client;
int cli_client_init(struct herald_client *c, const char *url);
/* The end of a command that asked for JSON: prints json_text (or why the
 * call failed, one line), frees it, closes c; returns the exit status. */
int cli_finish_json_call(struct herald_client *c, const char *cmd, int rv, char *json_text);

/* Parses a whole decimal uint64 ("12"); false on anything else. */
bool cli_parse_u64(const char *s, uint64_t *out);

/* Prints "herald: " + message to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
