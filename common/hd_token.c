/* SPDX-License-Identifier: Apache-2.0 */
/* Access tokens: auth-file parsing, hashing, constant-time lookup, the scope rule. */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hd_alloc.h"
#include "hd_error.h"
#include "hd_token.h"
#include "hd_ts.h"

/* An auth file larger than this is surely not one. */
#define HD_TOKEN_FILE_MAX (4u << 20)

static const struct {
    const char *name;
    unsigned scope;
    bool channels;
} hd__scopes[] = {
    {"append", HD_SCOPE_APPEND, true},   {"read", HD_SCOPE_READ, true},
    {"subscribe", HD_SCOPE_SUBSCRIBE, true}, {"admin", HD_SCOPE_ADMIN, false},
    {"status", HD_SCOPE_STATUS, false},
};

static bool hd__name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

static bool hd__name_valid(const char *name, size_t len)
{
    if (len == 0 || len > HD_TOKEN_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!hd__name_char(name[i])) {
            return false;
        }
    }
    return true;
}

int hd_grant_parse(const char *text, size_t len, struct hd_grant *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof hd__scopes / sizeof hd__scopes[0]; i++) {
        size_t n = strlen(hd__scopes[i].name);
        if (len < n || memcmp(text, hd__scopes[i].name, n) != 0) {
            continue;
        }
        if (!hd__scopes[i].channels) {
            if (len != n) {
                return HD_EINVAL;
            }
            out->scope = hd__scopes[i].scope;
            return 0;
        }
        if (len < n + 2 || text[n] != ':') {
            return HD_EINVAL; /* a channel scope needs its pattern */
        }
        if (hd_pattern_parse(text + n + 1, len - n - 1, out) != 0) {
            return HD_EINVAL;
        }
        out->scope = hd__scopes[i].scope;
        return 0;
    }
    return HD_EINVAL;
}

int hd_pattern_parse(const char *pat, size_t pat_len, struct hd_grant *out)
{
    memset(out, 0, sizeof *out);
    if (pat_len == 0) {
        return HD_EINVAL;
    }
    if (pat[pat_len - 1] == '*') {
        out->prefix = true;
        pat_len--;
        /* "*" alone is every channel; otherwise the prefix follows the channel rules */
        if (pat_len > 0 && !hd_channel_valid(pat, pat_len)) {
            return HD_EINVAL;
        }
    } else if (!hd_channel_valid(pat, pat_len)) {
        return HD_EINVAL;
    }
    memcpy(out->pattern, pat, pat_len);
    out->pattern[pat_len] = '\0';
    out->pattern_len = pat_len;
    return 0;
}

bool hd_grant_matches(const struct hd_grant *g, const char *channel, size_t len)
{
    if (g->prefix) {
        return len >= g->pattern_len && memcmp(channel, g->pattern, g->pattern_len) == 0;
    }
    return len == g->pattern_len && memcmp(channel, g->pattern, len) == 0;
}

bool hd_token_allows(const struct hd_token *t, unsigned scope, const char *channel, size_t len)
{
    if ((t->scopes & scope) == 0) {
        return false;
    }
    if (scope == HD_SCOPE_ADMIN || scope == HD_SCOPE_STATUS) {
        return true;
    }
    for (size_t i = 0; i < t->n_grants; i++) {
        if (t->grants[i].scope == scope && hd_grant_matches(&t->grants[i], channel, len)) {
            return true;
        }
    }
    return false;
}

/* A plain SHA-256 is the right hash here, unlike for passwords: a token is
 * 256 random bits, so there is no dictionary to try and nothing a slow or
 * salted hash would add; the hash only keeps the file from being a list of
 * working credentials. */
void hd_token_hash(const char *token, size_t len, uint8_t out[HD_TOKEN_HASH_BYTES])
{
    unsigned int n = 0;
    EVP_Digest(token, len, out, &n, EVP_sha256(), NULL);
}

const struct hd_token *hd_token_set_find(const struct hd_token_set *set, const char *token,
                                         size_t len)
{
    if (set == NULL) {
        return NULL;
    }
    uint8_t h[HD_TOKEN_HASH_BYTES];
    hd_token_hash(token, len, h);
    const struct hd_token *found = NULL;
    for (size_t i = 0; i < set->n; i++) {
        /* no early exit: every entry costs the same */
        if (CRYPTO_memcmp(h, set->tokens[i].hash, sizeof h) == 0) {
            found = &set->tokens[i];
        }
    }
    return found;
}

const struct hd_token *hd_token_set_named(const struct hd_token_set *set, const char *name)
{
    for (size_t i = 0; set != NULL && i < set->n; i++) {
        if (strcmp(set->tokens[i].name, name) == 0) {
            return &set->tokens[i];
        }
    }
    return NULL;
}

void hd_token_set_free(struct hd_token_set *set)
{
    if (set == NULL) {
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        hd_free(set->tokens[i].grants);
    }
    hd_free(set->tokens);
    hd_free(set);
}

static int hd__hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

static bool hd__is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* The next field of [*p, end): its start and length; false at the end
 * (then an empty field at end, so that the outputs are always set). */
static bool hd__field(const char **p, const char *end, const char **f, size_t *flen)
{
    while (*p < end && hd__is_space(**p)) {
        (*p)++;
    }
    *f = *p;
    *flen = 0;
    if (*p == end) {
        return false;
    }
    while (*p < end && !hd__is_space(**p)) {
        (*p)++;
    }
    *flen = (size_t)(*p - *f);
    return true;
}

/* Parses "limit:KIND=N" into t. */
static int hd__parse_limit(const char *f, size_t flen, struct hd_token *t, char *why,
                           size_t why_len)
{
    static const struct {
        const char *kind;
        size_t off;
    } kinds[] = {{"limit:appends=", offsetof(struct hd_token, appends_per_s)},
                 {"limit:bytes=", offsetof(struct hd_token, bytes_per_s)},
                 {"limit:streams=", offsetof(struct hd_token, streams_max)},
                 {"limit:channels=", offsetof(struct hd_token, channels_per_s)}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].kind);
        if (flen <= n || memcmp(f, kinds[i].kind, n) != 0) {
            continue;
        }
        uint64_t *slot = (uint64_t *)((char *)t + kinds[i].off);
        uint64_t v = 0;
        if (hd_u64_parse(f + n, flen - n, &v) != 0 || v == 0 || v > 1000000000000ull) {
            snprintf(why, why_len, "token '%s': '%.*s' needs a number from 1 to 10^12",
                     t->name, (int)(flen > 80 ? 80 : flen), f);
            return HD_EINVAL;
        }
        if (*slot != 0) {
            snprintf(why, why_len, "token '%s': %.*s is given twice", t->name, (int)(n - 1), f);
            return HD_EINVAL;
        }
        *slot = v;
        return 0;
    }
    snprintf(why, why_len, "token '%s': '%.*s' is not a limit (limit:appends=N, "
             "limit:bytes=N, limit:streams=N, limit:channels=N)", t->name,
             (int)(flen > 80 ? 80 : flen), f);
    return HD_EINVAL;
}

/* Parses one non-blank, non-comment line into t (grants allocated). */
static int hd__parse_line(const char *line, size_t len, struct hd_token *t, char *why,
                          size_t why_len)
{
    const char *p = line, *end = line + len, *f;
    size_t flen;
    memset(t, 0, sizeof *t);
    hd__field(&p, end, &f, &flen);
    if (!hd__name_valid(f, flen)) {
        snprintf(why, why_len, "the name must be 1-%u characters of [A-Za-z0-9._-]",
                 HD_TOKEN_NAME_MAX);
        return HD_EINVAL;
    }
    memcpy(t->name, f, flen);
    t->name[flen] = '\0';
    if (!hd__field(&p, end, &f, &flen) || flen != 7 + 2 * HD_TOKEN_HASH_BYTES ||
        memcmp(f, "sha256:", 7) != 0) {
        snprintf(why, why_len, "token '%s': the second field must be sha256: and 64 lowercase "
                 "hex digits (herald token create prints the line)", t->name);
        return HD_EINVAL;
    }
    for (size_t i = 0; i < HD_TOKEN_HASH_BYTES; i++) {
        int hi = hd__hex_digit(f[7 + 2 * i]), lo = hd__hex_digit(f[8 + 2 * i]);
        if (hi < 0 || lo < 0) {
            snprintf(why, why_len, "token '%s': the hash must be 64 lowercase hex digits",
                     t->name);
            return HD_EINVAL;
        }
        t->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t cap = 0;
    while (hd__field(&p, end, &f, &flen)) {
        if (flen > 6 && memcmp(f, "limit:", 6) == 0) {
            int rv = hd__parse_limit(f, flen, t, why, why_len);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        struct hd_grant g;
        if (hd_grant_parse(f, flen, &g) != 0) {
            snprintf(why, why_len, "token '%s': '%.*s' is not a scope (append:PATTERN, "
                     "read:PATTERN, subscribe:PATTERN, admin or status; PATTERN is a channel, "
                     "a prefix ending in '*', or '*')", t->name, (int)(flen > 140 ? 140 : flen),
                     f);
            return HD_EINVAL;
        }
        if (t->n_grants == cap) {
            cap = cap ? cap * 2 : 4;
            struct hd_grant *grown = hd_realloc(t->grants, cap * sizeof *grown);
            if (grown == NULL) {
                return HD_ENOMEM;
            }
            t->grants = grown;
        }
        t->grants[t->n_grants++] = g;
        t->scopes |= g.scope;
    }
    if (t->n_grants == 0) {
        snprintf(why, why_len, "token '%s' has no scope", t->name);
        return HD_EINVAL;
    }
    return 0;
}

int hd_token_set_parse(const char *text, size_t len, struct hd_token_set **out, char *errmsg,
                       size_t errmsg_len)
{
    struct hd_token_set *set = hd_calloc(1, sizeof *set);
    if (set == NULL) {
        return HD_ENOMEM;
    }
    size_t cap = 0, lineno = 0;
    const char *p = text, *end = text + len;
    int rv = 0;
    char why[512] = "";
    while (p < end && rv == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        const char *line = p;
        p = nl ? nl + 1 : end;
        lineno++;
        const char *q = line;
        while (q < line_end && hd__is_space(*q)) {
            q++;
        }
        if (q == line_end || *q == '#') {
            continue;
        }
        if (memchr(line, '\0', (size_t)(line_end - line)) != NULL) {
            snprintf(why, sizeof why, "a NUL byte");
            rv = HD_EINVAL;
            break;
        }
        if (set->n == cap) {
            cap = cap ? cap * 2 : 8;
            struct hd_token *grown = hd_realloc(set->tokens, cap * sizeof *grown);
            if (grown == NULL) {
                rv = HD_ENOMEM;
                break;
            }
            set->tokens = grown;
        }
        struct hd_token *t = &set->tokens[set->n];
        rv = hd__parse_line(q, (size_t)(line_end - q), t, why, sizeof why);
        if (rv != 0) {
            hd_free(t->grants);
            break;
        }
        set->n++;
        for (size_t i = 0; i + 1 < set->n; i++) {
            if (strcmp(set->tokens[i].name, t->name) == 0) {
                snprintf(why, sizeof why, "the name '%s' is used twice", t->name);
                rv = HD_EINVAL;
            } else if (memcmp(set->tokens[i].hash, t->hash, sizeof t->hash) == 0) {
                snprintf(why, sizeof why, "tokens '%s' and '%s' have the same hash",
                         set->tokens[i].name, t->name);
                rv = HD_EINVAL;
            }
        }
    }
    if (rv != 0) {
        if (rv == HD_ENOMEM) {
            snprintf(why, sizeof why, "out of memory");
        }
        snprintf(errmsg, errmsg_len, "line %zu: %s", lineno, why);
        hd_token_set_free(set);
        return rv;
    }
    *out = set;
    return 0;
}

int hd_token_set_load(const char *path, struct hd_token_set **out, char *errmsg,
                      size_t errmsg_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errmsg, errmsg_len, "auth file %s: %s", path, strerror(errno));
        return hd_from_errno(errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > HD_TOKEN_FILE_MAX) {
        snprintf(errmsg, errmsg_len, "auth file %s: not a regular file of at most %u bytes",
                 path, HD_TOKEN_FILE_MAX);
        close(fd);
        return HD_EINVAL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = hd_malloc(size + 1);
    if (buf == NULL) {
        close(fd);
        return HD_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    char why[600] = "";
    int rv = hd_token_set_parse(buf, got, out, why, sizeof why);
    hd_free(buf);
    if (rv != 0) {
        snprintf(errmsg, errmsg_len, "auth file %s %s", path, why);
    }
    return rv;
}

int hd_token_generate(char *out, size_t out_len)
{
    uint8_t raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return hd_from_errno(errno);
        }
        got += (size_t)n;
    }
    if (out_len < 3 + 2 * sizeof raw + 1) {
        return HD_ETOOBIG;
    }
    memcpy(out, "hd_", 3);
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(out + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int hd_token_line(const char *name, const char *token, const char *const *scopes,
                  size_t n_scopes, char *out, size_t out_len, char *errmsg, size_t errmsg_len)
{
    if (!hd__name_valid(name, strlen(name))) {
        snprintf(errmsg, errmsg_len, "the name must be 1-%u characters of [A-Za-z0-9._-]",
                 HD_TOKEN_NAME_MAX);
        return HD_EINVAL;
    }
    if (n_scopes == 0) {
        snprintf(errmsg, errmsg_len, "give at least one --scope");
        return HD_EINVAL;
    }
    uint8_t h[HD_TOKEN_HASH_BYTES];
    hd_token_hash(token, strlen(token), h);
    size_t at = (size_t)snprintf(out, out_len, "%s sha256:", name);
    for (size_t i = 0; i < sizeof h && at < out_len; i++) {
        at += (size_t)snprintf(out + at, out_len - at, "%02x", h[i]);
    }
    struct hd_token limits = {0};
    size_t grants = 0;
    snprintf(limits.name, sizeof limits.name, "%s", name);
    for (size_t i = 0; i < n_scopes && at < out_len; i++) {
        struct hd_grant g;
        size_t len = strlen(scopes[i]);
        char why[300];
        if (len > 6 && memcmp(scopes[i], "limit:", 6) == 0) {
            if (hd__parse_limit(scopes[i], len, &limits, why, sizeof why) != 0) {
                snprintf(errmsg, errmsg_len, "%s", why);
                return HD_EINVAL;
            }
        } else if (hd_grant_parse(scopes[i], len, &g) == 0) {
            grants++;
        } else {
            snprintf(errmsg, errmsg_len, "'%s' is not a scope (append:PATTERN, read:PATTERN, "
                     "subscribe:PATTERN, admin or status) or a limit (limit:appends=N, "
                     "limit:bytes=N, limit:streams=N, limit:channels=N)", scopes[i]);
            return HD_EINVAL;
        }
        at += (size_t)snprintf(out + at, out_len - at, " %s", scopes[i]);
    }
    if (at >= out_len) {
        return HD_ETOOBIG;
    }
    if (grants == 0) {
        snprintf(errmsg, errmsg_len, "give at least one scope besides limits");
        return HD_EINVAL;
    }
    return 0;
}
