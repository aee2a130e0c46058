/* SPDX-License-Identifier: Apache-2.0 */
/* herald channel info|trim|delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "herald/herald.h"

static const char channel_help[] =
    "usage: herald channel info CHANNEL\n"
    "       herald channel trim CHANNEL BEFORE_SEQ\n"
    "       herald channel delete CHANNEL\n"
    "\n"
    "info prints {channel, first_seq, last_seq, epoch, retention}: messages\n"
    "first_seq..last_seq are stored; epoch counts the channel's deletes; retention\n"
    "is the rule of the asked node's --retention policy that applies (null: none;\n"
    "`herald cluster status` warns if the nodes' policies differ).\n"
    "trim removes the messages below BEFORE_SEQ on every replica (the last message\n"
    "always stays); reads from below answer 410 gone.\n"
    "delete removes the channel's messages and dedup keys; the next append starts\n"
    "at seq 1 under the next epoch.\n"
    "Any node takes trim and delete: it forwards them to the channel's shard\n"
    "leader and answers once it applied them itself. With no leader (an election\n"
    "under way) the answer is 503 unavailable: run the command again.\n";

int cli_channel(const char *url, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(channel_help, stdout);
        return CLI_OK;
    }
    const char *op = argc >= 2 ? argv[1] : "";
    bool info = argc == 3 && strcmp(op, "info") == 0;
    bool del = argc == 3 && strcmp(op, "delete") == 0;
    bool trim = argc == 4 && strcmp(op, "trim") == 0;
    unsigned long long before = 0;
    if (trim) {
        char *end = NULL;
        before = strtoull(argv[3], &end, 10);
        if (end == argv[3] || *end != '\0' || before == 0 || argv[3][0] == '-') {
            return cli_usage_error("channel", "BEFORE_SEQ must be a seq >= 1");
        }
    }
    if (!info && !del && !trim) {
        fputs(channel_help, stderr);
        return CLI_USAGE;
    }
    struct herald_client c;
    if (cli_client_init(&c, url) != 0) {
        fprintf(stderr, "herald: %s\n", herald_errmsg(&c));
        return CLI_USAGE;
    }
    char *text = NULL;
    int rv = info ? herald_channel_info(&c, argv[2], &text)
             : del ? herald_channel_delete(&c, argv[2], &text)
                   : herald_channel_trim(&c, argv[2], before, &text);
    return cli_finish_json_call(&c, "channel", rv, text);
}
