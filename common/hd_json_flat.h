/* SPDX-License-Identifier: Apache-2.0 */
/* Reading the hot JSON shapes in place: a flat object of plain members. */
#ifndef HD_JSON_FLAT_H
#define HD_JSON_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Two JSON texts are read far more often than any other: an append's body
 * on the node ({"nonce","payload"}) and a "message" frame in the client
 * ({"type","channel","seq","ts","nonce","payload"}). jansson builds a tree,
 * a hash table and a copy of every string to read them; profiled, that was
 * a tenth of the node's CPU per append and half of a subscriber's per
 * message. This reader takes only the simplest form of such an object and
 * points into the text; for anything else it says no, and the caller parses
 * with jansson, which then gives every answer, error or not.
 *
 * What it takes: an object of at most HD_JSON_FLAT_MAX members with
 * distinct keys (jansson's JSON_REJECT_DUPLICATES), every key and string
 * value plain (printable ASCII, no backslash: JSON text that is its own
 * value), every other value an unsigned integer of at most 18 digits
 * without a leading zero (so jansson reads it exactly, as a json_int_t).
 * Whitespace as JSON allows. What it takes, jansson reads with the same
 * members and values.
 */

#define HD_JSON_FLAT_MAX 8

struct hd_json_flat_member {
    const char *key;
    size_t key_len;
    const char *str;     /* a string value's bytes (no quotes), or NULL */
    size_t str_len;
    uint64_t num;        /* an integer value, when str is NULL */
};

struct hd_json_flat {
    struct hd_json_flat_member m[HD_JSON_FLAT_MAX];
    size_t n;
};

/* Reads text as above into *out; false if it is not of that form. */
bool hd_json_flat_scan(const char *text, size_t len, struct hd_json_flat *out);

/* The member named key, or NULL. */
const struct hd_json_flat_member *hd_json_flat_get(const struct hd_json_flat *o, const char *key);

/* Its string value, or NULL if absent or not a string. */
const struct hd_json_flat_member *hd_json_flat_str(const struct hd_json_flat *o, const char *key);

#endif
