/* SPDX-License-Identifier: Apache-2.0 */
/* The hot append's JSON (append_json.h). Profiled at 256 in flight, jansson
 * took about a tenth of the node's CPU: a tree, a hash table and a string
 * copy per member to read three strings, and another tree plus a dump to
 * write four members. Here the body is read in place and the answer printed
 * straight into a buffer; anything unusual goes back to jansson. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "append_json.h"
#include "hd_assert.h"
#include "hd_ids.h"
#include "hd_ts.h"

/* Members of a body this path takes: the three it knows, and a few others
 * (which it must still read, to refuse duplicates as jansson does). */
#define SCAN_MEMBERS_MAX 8

struct scan {
    const char *p;
    const char *end;
};

struct scan_string {
    const char *s;
    size_t len;
};

static void scan_ws(struct scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r')) {
        sc->p++;
    }
}

static bool scan_byte(struct scan *sc, char c)
{
    scan_ws(sc);
    if (sc->p < sc->end && *sc->p == c) {
        sc->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes: JSON text that is its own
 * value, so it may be used where it lies. Escapes and other bytes (which
 * jansson decodes or checks as UTF-8) are left to jansson. */
static bool scan_plain_string(struct scan *sc, struct scan_string *out)
{
    if (!scan_byte(sc, '"')) {
        return false;
    }
    const char *start = sc->p;
    for (; sc->p < sc->end; sc->p++) {
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            out->s = start;
            out->len = (size_t)(sc->p - start);
            sc->p++;
            return true;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return false;
        }
    }
    return false; /* unterminated */
}

static bool same(const struct scan_string *a, const char *lit)
{
    size_t n = strlen(lit);
    return a->len == n && memcmp(a->s, lit, n) == 0;
}

bool api_append_json_scan(const char *body, size_t len, struct api_append_input *out)
{
    struct scan sc = {body, body + len};
    struct scan_string keys[SCAN_MEMBERS_MAX];
    const struct scan_string *nonce = NULL, *payload = NULL, *payload_b64 = NULL;
    struct scan_string values[SCAN_MEMBERS_MAX];
    size_t n = 0;
    if (!scan_byte(&sc, '{')) {
        return false;
    }
    do {
        if (n == SCAN_MEMBERS_MAX || !scan_plain_string(&sc, &keys[n]) || !scan_byte(&sc, ':') ||
            !scan_plain_string(&sc, &values[n])) {
            return false; /* also "{}": no nonce, jansson's answer */
        }
        for (size_t i = 0; i < n; i++) {
            if (keys[i].len == keys[n].len && memcmp(keys[i].s, keys[n].s, keys[n].len) == 0) {
                return false; /* JSON_REJECT_DUPLICATES refuses it */
            }
        }
        if (same(&keys[n], "nonce")) {
            nonce = &values[n];
        } else if (same(&keys[n], "payload")) {
            payload = &values[n];
        } else if (same(&keys[n], "payload_b64")) {
            payload_b64 = &values[n];
        }
        n++;
    } while (scan_byte(&sc, ','));
    if (!scan_byte(&sc, '}')) {
        return false;
    }
    scan_ws(&sc);
    if (sc.p != sc.end || nonce == NULL || (payload == NULL) == (payload_b64 == NULL)) {
        return false;
    }
    const struct scan_string *p = payload != NULL ? payload : payload_b64;
    *out = (struct api_append_input){nonce->s, nonce->len, p->s, p->len, payload_b64 != NULL};
    return true;
}

size_t api_append_json_answer(char *buf, const char *channel, size_t channel_len, uint64_t seq,
                              uint64_t ts_us, bool duplicate)
{
    HD_ASSERT(hd_channel_valid(channel, channel_len)); /* nothing to escape */
    char ts[HD_TS_STR_MAX];
    int ts_len = hd_ts_format(ts_us, ts, sizeof ts);
    HD_ASSERT(ts_len > 0);
    int n = snprintf(buf, API_APPEND_ANSWER_MAX,
                     "{\"channel\":\"%.*s\",\"seq\":%" PRIu64 ",\"ts\":\"%s\",\"duplicate\":%s}",
                     (int)channel_len, channel, seq, ts, duplicate ? "true" : "false");
    HD_ASSERT(n > 0 && n < API_APPEND_ANSWER_MAX); /* 128-byte channel, 20-digit seq fit */
    return (size_t)n;
}
