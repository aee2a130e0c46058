/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd's config file: INI read by Debian's libinih, one `key = value`
 * per line at the top level (no sections), every key an option's name from
 * the option table, a switch taking true or false. Comments are whole lines
 * starting with # or ;. Unknown keys, any [section], a key given twice, an
 * empty or bad value and a line that is none of these are errors naming
 * the file, the line and the key. */
#ifndef API_CONFIG_FILE_H
#define API_CONFIG_FILE_H

#include <stddef.h>

#include "options.h"

/* The longest line a config file may have, in bytes (newline excluded). */
#define API_CONFIG_LINE_MAX 8192
/* The largest config file read, in bytes. */
#define API_CONFIG_FILE_MAX (1u << 20)

/* Reads path and applies it to o (api_options_load_text). */
int api_options_load_file(struct api_options *o, const char *path, char *errmsg,
                          size_t errmsg_len);

#endif
