/* SPDX-License-Identifier: Apache-2.0 */
/* A channel as a whole: its info, trim, delete (GET|DELETE /v1/channels/{ch}, POST .../trim). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"
#include "hd_alloc.h"
#include "hd_error.h"
#include "herald/herald.h"

/* Sends one request about the channel and hands back a 200's body. Not
 * retried: a delete sent twice deletes twice. */
static int herald__channel_call(struct herald_client *c, const char *method, const char *channel,
                                const char *suffix, const char *body, char **json_text)
{
    *json_text = NULL;
    int rv = herald__channel_check(c, channel);
    if (rv != 0) {
        return rv;
    }
    char target[200];
    snprintf(target, sizeof target, "/v1/channels/%s%s", channel, suffix);
    return herald__json_call(c, method, target, body, herald__now_ms() + 60000, json_text);
}

int herald_channel_info(struct herald_client *c, const char *channel, char **json_text)
{
    return herald__channel_call(c, "GET", channel, "", NULL, json_text);
}

int herald_channel_trim(struct herald_client *c, const char *channel, uint64_t before_seq,
                        char **json_text)
{
    if (before_seq == 0) {
        *json_text = NULL;
        return herald__fail(c, HD_EINVAL, "before_seq must be at least 1");
    }
    char body[48];
    snprintf(body, sizeof body, "{\"before_seq\":%" PRIu64 "}", before_seq);
    return herald__channel_call(c, "POST", channel, "/trim", body, json_text);
}

int herald_channel_delete(struct herald_client *c, const char *channel, char **json_text)
{
    return herald__channel_call(c, "DELETE", channel, "", NULL, json_text);
}
