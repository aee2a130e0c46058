/* SPDX-License-Identifier: Apache-2.0 */
/* herald status and herald cluster status: tables by default, --json for
 * scripts. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "herald/herald.h"
#include "status_format.h"

static const char status_help[] =
    "usage: herald status [--json] [--rates]\n"
    "\n"
    "Shows the server's GET /v1/status: the node, its append counters and disk\n"
    "use, every shard (state, leader, term, commit and applied index, lag =\n"
    "commit - applied, last index, queued appends, members) and its peers\n"
    "(connection, replication lag in entries, frames).\n"
    "\n"
    "  --json         print the raw JSON answer instead, for scripts\n"
    "  --rates        ask twice, one second apart, and add append, delivery and\n"
    "                 request rates\n"
    "  --server URL   server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n";

static const char cluster_status_help[] =
    "usage: herald cluster status [--servers URL[,URL...]] [--json]\n"
    "\n"
    "Asks every node for its GET /v1/status and prints one row per node: its\n"
    "id, whether it answered, how many shards it leads, the leader it sees for\n"
    "every shard, and how many of its peers are connected. Shards on which the\n"
    "nodes disagree (leader or term) are named below the table, and a warning\n"
    "follows if the nodes' retention policies differ (/v1/status retention.hash).\n"
    "\n"
    "A node knows its peers' Raft addresses, not their HTTP URLs, so the nodes\n"
    "asked are --server and those listed in --servers; members of the cluster\n"
    "that no URL answered for are listed as not asked.\n"
    "\n"
    "  --servers LIST  comma-separated HTTP URLs of the cluster's nodes\n"
    "  --json          print [{\"url\",\"status\"|\"error\"}...] instead\n"
    "\n"
    "exit status: 0 every node listed in status answered, 1 otherwise.\n";

int cli_fetch_status(const char *url, json_t **out, char *err, size_t err_size)
{
    *out = NULL;
    struct herald_client c;
    if (cli_client_init(&c, url) != 0) {
        snprintf(err, err_size, "%s", herald_errmsg(&c));
        return CLI_USAGE;
    }
    char *text = NULL;
    int rv = herald_status(&c, &text);
    if (rv != 0) {
        snprintf(err, err_size, "%s (%s)", herald_errmsg(&c), herald_strerror(rv));
    } else {
        json_error_t je;
        *out = json_loads(text, 0, &je);
        if (*out == NULL) snprintf(err, err_size, "%s: malformed answer: %s", url, je.text);
    }
    herald_free(text);
    herald_client_close(&c);
    return *out != NULL ? CLI_OK : CLI_FAIL;
}

int cli_status(const char *url, int argc, char **argv)
{
    enum { OPT_JSON = 1000, OPT_RATES };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"rates", no_argument, NULL, OPT_RATES},
                                         {0}};
    bool as_json = false, rates = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(status_help, stdout), CLI_OK;
        if (ch == OPT_JSON) as_json = true;
        if (ch == OPT_RATES) rates = true;
        if (ch == '?') return cli_usage_error("status", "bad option");
    }
    if (argc != optind) return cli_usage_error("status", "takes no arguments");
    if (as_json && rates) return cli_usage_error("status", "--rates is for the tables, not --json");
    char err[600];
    json_t *st = NULL, *prev = NULL;
    int rc = cli_fetch_status(url, &st, err, sizeof err);
    if (rc == CLI_OK && rates) {
        prev = st;
        sleep(1);
        rc = cli_fetch_status(url, &st, err, sizeof err);
    }
    if (rc != CLI_OK) {
        fprintf(stderr, "herald status: %s\n", err);
    } else if (as_json) {
        char *text = json_dumps(st, JSON_PRESERVE_ORDER);
        if (text != NULL) puts(text);
        free(text);
        rc = text != NULL ? CLI_OK : CLI_FAIL;
    } else if (cli_status_print(stdout, st, prev) != 0) {
        fprintf(stderr, "herald status: %s: the answer is not a node status\n", url);
        rc = CLI_FAIL;
    }
    json_decref(prev);
    json_decref(st);
    return rc;
}

/* Adds the ids of every shard member in st to ids (no repeats). */
static size_t member_ids(const json_t *st, long long *ids, size_t n, size_t max)
{
    size_t i, k;
    const json_t *sh, *m;
    json_array_foreach(json_object_get(st, "shards"), i, sh) {
        json_array_foreach(json_object_get(sh, "members"), k, m) {
            long long id = json_integer_value(json_object_get(m, "id"));
            bool seen = false;
            for (size_t j = 0; j < n; j++) seen |= ids[j] == id;
            if (!seen && n < max) ids[n++] = id;
        }
    }
    return n;
}

int cli_cluster_status(const char *url, int argc, char **argv)
{
    enum { OPT_JSON = 1000, OPT_SERVERS };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"servers", required_argument, NULL, OPT_SERVERS},
                                         {0}};
    bool as_json = false;
    const char *servers = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(cluster_status_help, stdout), CLI_OK;
        if (ch == OPT_JSON) as_json = true;
        if (ch == OPT_SERVERS) servers = optarg;
        if (ch == '?') return cli_usage_error("cluster status", "bad option");
    }
    if (argc != optind) return cli_usage_error("cluster status", "takes no arguments");
    enum { NODES_MAX = 64 };
    const char *urls[NODES_MAX];
    size_t n = 0;
    urls[n++] = url;
    char *list = servers != NULL ? strdup(servers) : NULL;
    if (servers != NULL && list == NULL) return CLI_FAIL;
    for (char *save = NULL, *u = list != NULL ? strtok_r(list, ",", &save) : NULL; u != NULL;
         u = strtok_r(NULL, ",", &save)) {
        bool dup = false;
        for (size_t k = 0; k < n; k++) dup |= strcmp(urls[k], u) == 0;
        if (dup) continue;
        if (n == NODES_MAX) {
            free(list);
            return cli_usage_error("cluster status", "at most %d servers", NODES_MAX);
        }
        urls[n++] = u;
    }
    struct cli_node_view views[NODES_MAX];
    json_t *answers[NODES_MAX] = {0};
    char errs[NODES_MAX][600];
    long long members[256];
    size_t n_members = 0;
    for (size_t k = 0; k < n; k++) {
        cli_fetch_status(urls[k], &answers[k], errs[k], sizeof errs[k]);
        views[k] = (struct cli_node_view){.url = urls[k], .st = answers[k]};
        if (answers[k] != NULL) n_members = member_ids(answers[k], members, n_members, 256);
    }
    /* Members no URL answered for. */
    size_t not_asked = 0;
    char missing[1024] = "";
    for (size_t j = 0; j < n_members; j++) {
        bool answered = false;
        for (size_t k = 0; k < n; k++) {
            answered |= answers[k] != NULL &&
                        json_integer_value(json_object_get(answers[k], "node_id")) == members[j];
        }
        if (!answered) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof missing - len, "%s%lld", not_asked ? ", " : "",
                     members[j]);
            not_asked++;
        }
    }
    int failed = 0;
    for (size_t k = 0; k < n; k++) failed += answers[k] == NULL;
    if (as_json) {
        json_t *arr = json_array();
        for (size_t k = 0; k < n; k++) {
            json_array_append_new(arr, answers[k] != NULL
                                           ? json_pack("{s:s, s:O}", "url", urls[k], "status",
                                                       answers[k])
                                           : json_pack("{s:s, s:s}", "url", urls[k], "error",
                                                       errs[k]));
        }
        char *text = json_dumps(arr, JSON_PRESERVE_ORDER);
        if (text != NULL) puts(text);
        free(text);
        json_decref(arr);
    } else {
        cli_cluster_print(stdout, views, n);
    }
    for (size_t k = 0; k < n; k++) {
        if (answers[k] == NULL) fprintf(stderr, "herald cluster status: %s\n", errs[k]);
    }
    if (not_asked > 0) {
        fprintf(stderr, "herald cluster status: member%s %s not asked (add %s URL%s to "
                        "--servers)\n",
                not_asked > 1 ? "s" : "", missing, not_asked > 1 ? "their" : "its",
                not_asked > 1 ? "s" : "");
    }
    for (size_t k = 0; k < n; k++) json_decref(answers[k]);
    free(list);
    return failed == 0 && not_asked == 0 ? CLI_OK : CLI_FAIL;
}
