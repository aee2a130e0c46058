/* SPDX-License-Identifier: Apache-2.0 */
/* The option table, shared by the command line (options.c) and the config
 * file (config_file.c). Private to heraldd. */
#ifndef API_OPTIONS_TABLE_H
#define API_OPTIONS_TABLE_H

#include "options.h"

struct api_opt;

/* Parses arg into o. Writes a message without the option's name (the
 * caller puts "--name" or "FILE:LINE: name" before it) and returns -1 on a
 * bad value. */
typedef int (*api_opt_parse_fn)(struct api_options *o, const struct api_opt *opt,
                                const char *arg, char *err, size_t err_len);

enum api_opt_kind {
    API_OPT_VALUE,   /* --name ARG; key `name = ARG` */
    API_OPT_SWITCH,  /* --name; key `name = true|false` */
    API_OPT_CLI,     /* command line only (help, version, config) */
};

struct api_opt {
    const char *name;      /* flag without "--", and the config key */
    enum api_opt_kind kind;
    const char *arg;       /* what --help shows after the flag; NULL: none */
    api_opt_parse_fn parse;
    size_t offset;         /* the field of struct api_options it sets */
    uint64_t min, max;     /* bounds of a number */
    const char *help;      /* lines separated by \n */
};

/* The table holds at most this many options. */
#define API_OPTS_MAX 64

/* The option called name (no "--"), or NULL. */
const struct api_opt *api_opt_find(const char *name);
/* Its place in the table, below API_OPTS_MAX. */
size_t api_opt_index(const struct api_opt *opt);

#endif
