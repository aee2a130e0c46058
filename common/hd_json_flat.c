/* SPDX-License-Identifier: Apache-2.0 */
/* The in-place reader of flat JSON objects (hd_json_flat.h). */
#include <string.h>

#include "hd_json_flat.h"

#define FLAT_DIGITS_MAX 18 /* below 2^63: jansson's json_int_t holds it */

struct scan {
    const char *p;
    const char *end;
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

/* A string of printable ASCII without escapes. Escapes and other bytes
 * (which jansson decodes or checks as UTF-8) are left to jansson. */
static bool scan_plain_string(struct scan *sc, const char **s, size_t *len)
{
    if (!scan_byte(sc, '"')) {
        return false;
    }
    const char *start = sc->p;
    for (; sc->p < sc->end; sc->p++) {
        unsigned char c = (unsigned char)*sc->p;
        if (c == '"') {
            *s = start;
            *len = (size_t)(sc->p - start);
            sc->p++;
            return true;
        }
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return false;
        }
    }
    return false; /* unterminated */
}

/* 0, or [1-9][0-9]* of at most FLAT_DIGITS_MAX digits, not followed by
 * anything that would make it another number (".5", "e3"). */
static bool scan_uint(struct scan *sc, uint64_t *out)
{
    scan_ws(sc);
    const char *start = sc->p;
    uint64_t v = 0;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9') {
        v = v * 10 + (uint64_t)(*sc->p - '0');
        sc->p++;
    }
    size_t digits = (size_t)(sc->p - start);
    if (digits == 0 || digits > FLAT_DIGITS_MAX || (digits > 1 && *start == '0')) {
        return false;
    }
    if (sc->p < sc->end && (*sc->p == '.' || *sc->p == 'e' || *sc->p == 'E')) {
        return false;
    }
    *out = v;
    return true;
}

static bool scan_value(struct scan *sc, struct hd_json_flat_member *m)
{
    scan_ws(sc);
    if (sc->p < sc->end && *sc->p == '"') {
        return scan_plain_string(sc, &m->str, &m->str_len);
    }
    m->str = NULL;
    return scan_uint(sc, &m->num);
}

bool hd_json_flat_scan(const char *text, size_t len, struct hd_json_flat *out)
{
    struct scan sc = {text, text + len};
    out->n = 0;
    if (!scan_byte(&sc, '{')) {
        return false;
    }
    do {
        if (out->n == HD_JSON_FLAT_MAX) {
            return false;
        }
        struct hd_json_flat_member *m = &out->m[out->n];
        if (!scan_plain_string(&sc, &m->key, &m->key_len) || !scan_byte(&sc, ':') ||
            !scan_value(&sc, m)) {
            return false; /* also "{}": rare, and jansson's to answer */
        }
        for (size_t i = 0; i < out->n; i++) {
            if (out->m[i].key_len == m->key_len && memcmp(out->m[i].key, m->key, m->key_len) == 0) {
                return false; /* JSON_REJECT_DUPLICATES refuses it */
            }
        }
        out->n++;
    } while (scan_byte(&sc, ','));
    if (!scan_byte(&sc, '}')) {
        return false;
    }
    scan_ws(&sc);
    return sc.p == sc.end;
}

const struct hd_json_flat_member *hd_json_flat_get(const struct hd_json_flat *o, const char *key)
{
    size_t len = strlen(key);
    for (size_t i = 0; i < o->n; i++) {
        if (o->m[i].key_len == len && memcmp(o->m[i].key, key, len) == 0) {
            return &o->m[i];
        }
    }
    return NULL;
}

const struct hd_json_flat_member *hd_json_flat_str(const struct hd_json_flat *o, const char *key)
{
    const struct hd_json_flat_member *m = hd_json_flat_get(o, key);
    return m != NULL && m->str != NULL ? m : NULL;
}
