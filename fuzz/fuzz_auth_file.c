/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the auth file (common/hd_token.c): a whole file's text, and
 * each scope the parsed tokens hold checked against a channel. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hd_assert.h"
#include "hd_error.h"
#include "hd_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hd_token_set *set = NULL;
    char errmsg[700] = "";
    int rv = hd_token_set_parse((const char *)data, size, &set, errmsg, sizeof errmsg);
    HD_ASSERT(rv == 0 || rv == HD_EINVAL || rv == HD_ENOMEM);
    if (rv != 0) {
        /* a refusal always says where */
        HD_ASSERT(strncmp(errmsg, "line ", 5) == 0);
        HD_ASSERT(set == NULL);
        return 0;
    }
    for (size_t i = 0; i < set->n; i++) {
        const struct hd_token *t = &set->tokens[i];
        HD_ASSERT(t->n_grants > 0 && t->name[0] != '\0');
        HD_ASSERT(hd_token_set_named(set, t->name) == t);
        for (size_t j = 0; j < t->n_grants; j++) {
            const struct hd_grant *g = &t->grants[j];
            HD_ASSERT(t->scopes & g->scope);
            if (g->pattern_len > 0) {
                /* a grant covers its own pattern */
                HD_ASSERT(hd_token_allows(t, g->scope, g->pattern, g->pattern_len));
            }
        }
    }
    hd_token_set_free(set);
    return 0;
}
