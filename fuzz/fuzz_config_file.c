/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: heraldd's config file loader (heraldd/config_file.c, libinih
 * underneath) on arbitrary bytes as a file's content. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config_file.h"
#include "hd_assert.h"
#include "hd_error.h"
#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A file is accepted or refused with HD_EINVAL and a message that names the
 * file and a line of it; either way the options free cleanly. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_options o;
    api_options_defaults(&o);
    char errmsg[1024] = "";
    int rv = api_options_load_text(&o, (const char *)data, size, "fuzz.conf", errmsg,
                                   sizeof errmsg);
    HD_ASSERT(rv == 0 || rv == HD_EINVAL);
    if (rv != 0) {
        HD_ASSERT(strncmp(errmsg, "fuzz.conf:", 10) == 0);
        HD_ASSERT(errmsg[10] >= '1' && errmsg[10] <= '9');
    } else {
        HD_ASSERT(o.node_id >= 1 && o.node_id <= UINT32_MAX);
        HD_ASSERT(o.log_level >= 0 && o.log_level <= 3);
    }
    api_options_free(&o);
    return 0;
}
