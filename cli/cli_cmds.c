/* SPDX-License-Identifier: Apache-2.0 */
/* herald CLI subcommands append, read, tail, subscribe and cluster, over libherald. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "herald/herald.h"

static const char append_help[] =
    "usage: herald append CHANNEL TEXT [--nonce NONCE] [--servers URL,URL...]\n"
    "\n"
    "Appends TEXT (or, if TEXT is \"-\", all of standard input) as one message to\n"
    "CHANNEL and prints {\"channel\",\"seq\",\"ts\",\"nonce\",\"duplicate\",\"attempts\"}.\n"
    "Without --nonce a random 128-bit nonce is generated. On 503, timeouts and\n"
    "connection errors the append is retried with the same nonce for up to 10 s;\n"
    "if the outcome is still unknown the exit status is 3 and the nonce is printed\n"
    "on stderr: run again with --nonce NONCE to learn the outcome safely.\n"
    "\n"
    "  --nonce NONCE  idempotency key, 1-128 bytes\n"
    "  --server URL   server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n"
    "  --servers LIST comma-separated URLs of the cluster's nodes: the append goes\n"
    "                 to the one leading CHANNEL's shard (GET /v1/shards), so no\n"
    "                 follower forwards it; a node that cannot be reached passes\n"
    "                 it on to the next, with the same nonce\n";

static const char read_help[] =
    "usage: herald read CHANNEL [--after-seq N | --after-ts T] [--limit L]\n"
    "\n"
    "Prints the stored messages of CHANNEL after seq N (default 0: from the start)\n"
    "or after timestamp T (\"SECONDS[.MICROS]\"), one JSON object per line:\n"
    "{\"channel\",\"seq\",\"ts\",\"nonce\",\"payload\"} (\"payload_b64\" instead of\n"
    "\"payload\" when the payload is not UTF-8). One request: at most L messages\n"
    "(default: the server's limit); continue with --after-seq set to the last seq.\n"
    "\n"
    "  --after-seq N  only messages with seq > N\n"
    "  --after-ts T   only messages with ts > T\n"
    "  --limit L      at most L messages\n"
    "  --server URL   server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n";

static const char tail_help[] =
    "usage: herald tail CHANNEL [--after-seq N]\n"
    "\n"
    "Prints every message of CHANNEL after seq N (default 0: from the start), one\n"
    "JSON line each as for `herald read`, then follows new messages as they commit,\n"
    "forever. A dropped connection is resumed from the last printed seq, without\n"
    "gaps or repeats; a server that skips or repeats a seq is reported (exit 1).\n"
    "Ctrl-C (SIGINT) or SIGTERM exits with status 0.\n"
    "\n"
    "  --after-seq N  start after seq N\n"
    "  --server URL   server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n";

static const char subscribe_help[] =
    "usage: herald subscribe CHANNEL[:POS]... [--from now|0|SEQ]\n"
    "\n"
    "Follows many channels over one WebSocket (GET /v1/subscribe) and prints every\n"
    "message, one JSON line each as for `herald tail` ({\"channel\",\"seq\",\"ts\",\n"
    "\"nonce\",\"payload\"}); channels interleave, each in seq order. POS is where\n"
    "that channel starts: a seq (print what comes after it; 0 is the whole history),\n"
    "SEQ@EPOCH (a seq kept from an epoch, as `herald channel info` shows it: if the\n"
    "channel was deleted since, it is reported gone) or \"now\" (only what commits\n"
    "from now on); without one, --from applies. A dropped connection is resumed\n"
    "from each channel's last printed seq, without gaps or repeats; a server that\n"
    "skips or repeats a seq is reported (exit 1).\n"
    "Refused channels, and channels a trim or delete ended (gone), are reported\n"
    "on stderr. Ctrl-C (SIGINT) or SIGTERM exits 0.\n"
    "\n"
    "  --from now|0|SEQ  default position, default 0\n"
    "  --server URL      server (default $HERALD_URL or " HERALD_URL_DEFAULT ")\n";

int cli_client_init(struct herald_client *c, const char *url)
{
    int rv = herald_client_init(c, url);
    if (rv == 0) {
        c->token = cli_token;
        c->ca_file = cli_ca_file;
    }
    return rv;
}

int cli_finish_json_call(struct herald_client *c, const char *cmd, int rv, char *json_text)
{
    int rc = CLI_OK;
    if (rv != 0) {
        fprintf(stderr, "herald %s: %s (%s)\n", cmd, herald_errmsg(c), herald_strerror(rv));
        rc = CLI_FAIL;
    } else {
        puts(json_text);
    }
    herald_free(json_text);
    herald_client_close(c);
    return rc;
}

/* Opens a client or reports why not. */
static int open_client(struct herald_client *c, const char *url)
{
    if (cli_client_init(c, url) != 0) {
        fprintf(stderr, "herald: %s\n", herald_errmsg(c));
        return CLI_USAGE;
    }
    return 0;
}

static int report_failure(struct herald_client *c, const char *cmd, int rv)
{
    fprintf(stderr, "herald %s: %s (%s)\n", cmd, herald_errmsg(c), herald_strerror(rv));
    return CLI_FAIL;
}

static int print_message_cb(void *arg, const struct herald_message *msg)
{
    (void)arg;
    char *line = NULL;
    if (herald_message_to_json(msg, &line) != 0) return 1;
    fputs(line, stdout);
    fputc('\n', stdout);
    herald_free(line);
    /* Flushed per line: consumers read as messages arrive, and an
     * interrupted tail has printed everything it received. */
    return fflush(stdout) != 0;
}

/* Reads all of stdin for `herald append CHANNEL -` into *data (hd_alloc,
 * NUL-terminated, also when empty) and *len. */
static int read_stdin(char **data, size_t *len)
{
    enum { CHUNK = 65536 };
    size_t cap = 0, n = 0;
    for (;;) {
        if (hd_reserve((void **)data, &cap, n + CHUNK + 1, 1, CHUNK + 1) != 0) return HD_ENOMEM;
        size_t got = fread(*data + n, 1, CHUNK, stdin);
        n += got;
        if (got == 0) break;
    }
    (*data)[n] = '\0';
    *len = n;
    return ferror(stdin) ? HD_EIO : 0;
}

static int append_print(const char *channel, const struct herald_append_result *res)
{
    char ts[HERALD_TS_STR_MAX];
    herald_ts_format(res->ts_us, ts, sizeof ts);
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:b, s:i}", "channel", channel, "seq",
                          (json_int_t)res->seq, "ts", ts, "nonce", res->nonce, "duplicate",
                          res->duplicate, "attempts", res->attempts);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) return CLI_FAIL;
    puts(text);
    free(text);
    return CLI_OK;
}

/* The nodes of --servers, split in place into urls (at most
 * HERALD_ROUTER_MAX); their count, or -1. */
static int split_servers(char *list, const char **urls)
{
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == HERALD_ROUTER_MAX) return -1;
        urls[n++] = tok;
    }
    return n > 0 ? n : -1;
}

/* One append, to url or (servers != NULL) to the leader of its shard among
 * the servers; *errmsg and *http_status say how the last request went. */
static int append_once(const char *url, char *servers, const char *channel,
                       const void *payload, size_t len, const char *nonce,
                       struct herald_append_result *res, char *errmsg, size_t size,
                       int *http_status)
{
    int rv;
    if (servers != NULL) {
        const char *urls[HERALD_ROUTER_MAX];
        int n = split_servers(servers, urls);
        if (n < 0) {
            snprintf(errmsg, size, "--servers wants 1-%d URLs", HERALD_ROUTER_MAX);
            return HD_EINVAL;
        }
        struct herald_router r;
        if ((rv = herald_router_init(&r, urls, n)) == 0) {
            r.token = cli_token;
            r.ca_file = cli_ca_file;
            rv = herald_router_append(&r, channel, payload, len, nonce, res);
            *http_status = r.last >= 0 ? r.nodes[r.last].http_status : 0;
        }
        snprintf(errmsg, size, "%s", herald_router_errmsg(&r));
        herald_router_close(&r);
        return rv;
    }
    struct herald_client c;
    if ((rv = cli_client_init(&c, url)) != 0) {
        snprintf(errmsg, size, "%s", herald_errmsg(&c));
        return rv;
    }
    rv = herald_append(&c, channel, payload, len, nonce, res);
    *http_status = c.http_status;
    snprintf(errmsg, size, "%s", herald_errmsg(&c));
    herald_client_close(&c);
    return rv;
}

int cli_append(const char *url, int argc, char **argv)
{
    static const struct option opts[] = {{"nonce", required_argument, NULL, 'n'},
                                         {"servers", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *nonce = NULL;
    char *servers = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(append_help, stdout), CLI_OK;
        if (ch == 'n') nonce = optarg;
        if (ch == 's') servers = optarg;
        if (ch == '?') return cli_usage_error("append", "bad option");
    }
    if (argc - optind != 2) return cli_usage_error("append", "need CHANNEL and TEXT");
    const char *channel = argv[optind];
    const char *text = argv[optind + 1];
    char *input = NULL;
    const void *payload = text;
    size_t len = strlen(text);
    if (strcmp(text, "-") == 0) {
        if (read_stdin(&input, &len) != 0) {
            hd_free(input);
            fprintf(stderr, "herald append: cannot read standard input\n");
            return CLI_FAIL;
        }
        payload = input;
    }
    struct herald_append_result res;
    char err[512];
    int http_status = 0, rc;
    int rv = append_once(url, servers, channel, payload, len, nonce, &res, err, sizeof err,
                         &http_status);
    if (rv == HD_EINVAL && http_status == 0) {
        rc = cli_usage_error("append", "%s", err);
    } else if (rv == HD_EUNKNOWN) {
        fprintf(stderr, "herald append: %s\nherald append: outcome unknown; retry with "
                        "--nonce %s\n", err, res.nonce);
        rc = CLI_UNKNOWN;
    } else if (rv != 0) {
        fprintf(stderr, "herald append: %s (%s)\n", err, herald_strerror(rv));
        rc = CLI_FAIL;
    } else {
        rc = append_print(channel, &res);
    }
    hd_free(input);
    return rc;
}

int cli_read(const char *url, int argc, char **argv)
{
    static const struct option opts[] = {{"after-seq", required_argument, NULL, 's'},
                                         {"after-ts", required_argument, NULL, 't'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    uint64_t after_seq = 0, after_ts = 0, limit = 0;
    bool by_ts = false, by_seq = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(read_help, stdout), CLI_OK;
        if (ch == 's' && !(by_seq = cli_parse_u64(optarg, &after_seq))) {
            return cli_usage_error("read", "--after-seq wants a number, not \"%s\"", optarg);
        }
        if (ch == 't' && !(by_ts = herald_ts_parse(optarg, strlen(optarg), &after_ts) == 0)) {
            return cli_usage_error("read", "--after-ts wants SECONDS[.MICROS], not \"%s\"",
                                   optarg);
        }
        if (ch == 'l' && (!cli_parse_u64(optarg, &limit) || limit == 0 || limit > 1000000)) {
            return cli_usage_error("read", "--limit wants a number 1-1000000");
        }
        if (ch == '?') return cli_usage_error("read", "bad option");
    }
    if (by_ts && by_seq) return cli_usage_error("read", "--after-seq or --after-ts, not both");
    if (argc - optind != 1) return cli_usage_error("read", "need exactly one CHANNEL");
    struct herald_client c;
    int rc = open_client(&c, url);
    if (rc != 0) return rc;
    int rv = by_ts ? herald_read_after_ts(&c, argv[optind], after_ts, (unsigned)limit, NULL,
                                          print_message_cb, NULL)
                   : herald_read(&c, argv[optind], after_seq, (unsigned)limit, NULL,
                                 print_message_cb, NULL);
    if (rv == HD_EINVAL && c.http_status == 0) {
        rc = cli_usage_error("read", "%s", herald_errmsg(&c));
    } else if (rv < 0) {
        rc = report_failure(&c, "read", rv);
    }
    herald_client_close(&c);
    return rc;
}

/* Ctrl-C ends a tail successfully. Every printed line was already flushed,
 * so leaving at once from the handler loses nothing. */
static void tail_signal_handler(int sig)
{
    (void)sig;
    _exit(CLI_OK);
}

int cli_tail(const char *url, int argc, char **argv)
{
    static const struct option opts[] = {{"after-seq", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    uint64_t after_seq = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(tail_help, stdout), CLI_OK;
        if (ch == 's' && !cli_parse_u64(optarg, &after_seq)) {
            return cli_usage_error("tail", "--after-seq wants a number, not \"%s\"", optarg);
        }
        if (ch == '?') return cli_usage_error("tail", "bad option");
    }
    if (argc - optind != 1) return cli_usage_error("tail", "need exactly one CHANNEL");
    struct herald_client c;
    int rc = open_client(&c, url);
    if (rc != 0) return rc;
    struct sigaction sa = {.sa_handler = tail_signal_handler};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rv = herald_tail(&c, argv[optind], after_seq, print_message_cb, NULL);
    if (rv == HD_EINVAL && c.http_status == 0) {
        rc = cli_usage_error("tail", "%s", herald_errmsg(&c));
    } else if (rv < 0) {
        rc = report_failure(&c, "tail", rv);
    } else {
        rc = CLI_FAIL; /* only a failed write to stdout stops a tail */
        fprintf(stderr, "herald tail: cannot write to standard output\n");
    }
    herald_client_close(&c);
    return rc;
}

/* "now" or a whole decimal seq. */
static bool parse_position(const char *s, uint64_t *pos)
{
    if (strcmp(s, "now") == 0) {
        *pos = HERALD_SUB_NOW;
        return true;
    }
    return cli_parse_u64(s, pos) && *pos != HERALD_SUB_NOW;
}

/* SEQ@EPOCH: a seq of that epoch of the channel. */
static bool parse_epoch_position(char *s, uint64_t *pos, uint64_t *epoch)
{
    char *at = strchr(s, '@');
    if (at == NULL) return false;
    *at = '\0';
    bool ok = cli_parse_u64(s, pos) && *pos != HERALD_SUB_NOW && cli_parse_u64(at + 1, epoch);
    *at = '@';
    return ok;
}

/* CHANNEL[:POS]: channel ids may hold ':' (but never '@'), so only a last
 * part that is a position is taken as one. */
static int add_channel_arg(struct herald_sub *s, char *arg, uint64_t dflt)
{
    uint64_t pos = dflt, epoch = 0;
    char *colon = strrchr(arg, ':');
    bool with_epoch = colon != NULL && parse_epoch_position(colon + 1, &pos, &epoch);
    if (colon != NULL && (with_epoch || parse_position(colon + 1, &pos))) *colon = '\0';
    int rv = with_epoch ? herald_sub_add_epoch(s, arg, pos, epoch) : herald_sub_add(s, arg, pos);
    if (rv == HD_EEXIST) return 0; /* named twice: once is enough */
    if (rv != 0) return cli_usage_error("subscribe", "%s: %s", arg, herald_sub_errmsg(s));
    return 0;
}

static int subscribe_event_cb(void *arg, const struct herald_sub_event *ev)
{
    (void)arg;
    if (ev->type == HERALD_SUB_ERROR) {
        fprintf(stderr, "herald subscribe: %s%s%s: %s\n", ev->channel ? ev->channel : "",
                ev->channel ? ": " : "", ev->code, ev->message ? ev->message : "");
    } else if (ev->type == HERALD_SUB_GONE) {
        fprintf(stderr,
                "herald subscribe: %s: gone (trimmed or deleted; first seq now %" PRIu64
                ", epoch %" PRIu64 "); no longer subscribed\n",
                ev->channel, ev->seq, ev->epoch);
    }
    return 0;
}

int cli_subscribe(const char *url, int argc, char **argv)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
    uint64_t from = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'h') return fputs(subscribe_help, stdout), CLI_OK;
        if (ch == 'f' && !parse_position(optarg, &from)) {
            return cli_usage_error("subscribe", "--from wants now or a seq, not \"%s\"", optarg);
        }
        if (ch == '?') return cli_usage_error("subscribe", "bad option");
    }
    if (optind == argc) return cli_usage_error("subscribe", "need at least one CHANNEL");
    struct herald_client c;
    struct herald_sub *s = NULL;
    int rc = open_client(&c, url);
    if (rc != 0) return rc;
    if (herald_sub_open(&s, &c, print_message_cb, subscribe_event_cb, NULL) != 0) {
        fprintf(stderr, "herald subscribe: out of memory\n");
        return CLI_FAIL;
    }
    for (int i = optind; rc == 0 && i < argc; i++) rc = add_channel_arg(s, argv[i], from);
    if (rc == 0) {
        struct sigaction sa = {.sa_handler = tail_signal_handler};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        int rv = herald_sub_run(s, -1);
        rc = CLI_FAIL;
        if (rv < 0) {
            fprintf(stderr, "herald subscribe: %s (%s)\n", herald_sub_errmsg(s),
                    herald_strerror(rv));
        } else { /* only a failed write to stdout stops it */
            fprintf(stderr, "herald subscribe: cannot write to standard output\n");
        }
    }
    herald_sub_close(s);
    herald_client_close(&c);
    return rc;
}

static const char cluster_help[] =
    "usage: herald cluster add-node ID PEER_ADDR [--timeout SECONDS]\n"
    "       herald cluster remove-node ID [--timeout SECONDS]\n"
    "       herald cluster status [--servers URL[,URL...]] [--json]\n"
    "\n"
    "add-node makes node ID (started with `heraldd --id ID --join CLUSTER_ID\n"
    "--peer-listen PEER_ADDR`; CLUSTER_ID is in `herald status`) a voter of every\n"
    "shard, one shard at a time; it copies each shard's state first. A node left\n"
    "at PEER_ADDR in some shard by an unfinished change is replaced there.\n"
    "remove-node takes node ID out of every shard. Both print every shard's\n"
    "result; they stop with the shard that could not change (no quorum, or\n"
    "--timeout passed, default 300) and can be run again to finish.\n"
    "status shows every node's view of the cluster (`herald cluster status --help`).\n";

int cli_cluster(const char *url, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(cluster_help, stdout);
        return CLI_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "status") == 0) {
        return cli_cluster_status(url, argc - 1, argv + 1);
    }
    unsigned long long timeout_s = 0;
    char *end = NULL;
    if (argc >= 4 && strcmp(argv[argc - 2], "--timeout") == 0) {
        timeout_s = strtoull(argv[argc - 1], &end, 10);
        if (end == argv[argc - 1] || *end != '\0' || timeout_s == 0 || timeout_s > 86400) {
            fprintf(stderr, "herald cluster: --timeout must be 1-86400 seconds\n");
            return CLI_USAGE;
        }
        argc -= 2;
    }
    bool add = argc == 4 && strcmp(argv[1], "add-node") == 0;
    bool remove = argc == 3 && strcmp(argv[1], "remove-node") == 0;
    end = NULL;
    unsigned long long id = argc >= 3 ? strtoull(argv[2], &end, 10) : 0;
    if ((!add && !remove) || id == 0 || end == NULL || *end != '\0') {
        fputs(cluster_help, stderr);
        return CLI_USAGE;
    }
    struct herald_client c;
    int rc = open_client(&c, url);
    if (rc != 0) return rc;
    char *text = NULL;
    int rv = herald_cluster_change(&c, add, id, add ? argv[3] : NULL, (unsigned)timeout_s, &text);
    if (rv != 0) {
        rc = report_failure(&c, "cluster", rv);
    } else {
        puts(text);
    }
    herald_free(text);
    herald_client_close(&c);
    return rc;
}
