/* SPDX-License-Identifier: Apache-2.0 */
/* heraldd's options: one table drives the command line (getopt_long), the
 * config file (--config FILE, keys named like the flags) and --help. */
#ifndef API_OPTIONS_H
#define API_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct api_cors;
struct hd_retention;

enum api_log_format { API_LOG_TEXT, API_LOG_JSON };

struct api_options {
    const char *data_dir;
    const char *listen;
    const char *peer_listen;      /* NULL: the --listen port plus one */
    const char *bootstrap;        /* member list of a new cluster */
    const char *join;             /* cluster id to join as a new, empty node */
    const char *restore;          /* backup to start a new cluster from */
    bool id_given;
    uint64_t shards;              /* 0: as created, or the default */
    uint64_t node_id;
    uint64_t payload_max;
    uint64_t body_max;
    uint64_t connections_max;
    uint64_t dedup_window_s;
    uint64_t snapshot_every;      /* raft entries between snapshots; 0 = 4096 */
    uint64_t raft_log_memory;     /* bytes of Raft log in memory; 0 = 64 MiB */
    bool no_uring;
    bool delivery_thread;
    bool repair;                  /* --repair auto (default) or off */
    uint64_t disk_reserve;        /* --disk-reserve: bytes kept free; 0: none */
    struct api_cors *cors;        /* --cors-origins; NULL: no cross-origin access */
    const char *auth_file;        /* --auth-file; NULL: no tokens */
    bool insecure;                /* --insecure: open off loopback */
    struct hd_retention *retention; /* --retention rules, in order; NULL: none */
    bool retention_from_flags;    /* the command line's replace the file's */
    uint64_t retention_interval_s; /* --retention-interval */
    const char *tls_cert;         /* --tls-cert: the client port speaks TLS; NULL: plaintext */
    const char *tls_key;          /* --tls-key: its private key (both or neither) */
    const char *peer_tls_cert;    /* --peer-tls-cert: mutual TLS between nodes; NULL: off */
    const char *peer_tls_key;     /* --peer-tls-key (the three or none) */
    const char *peer_tls_ca;      /* --peer-tls-ca: the cluster CA peers must chain to */
    int log_level;                /* hd_log_level: 0 error .. 3 debug */
    enum api_log_format log_format;
    const char *config_path;      /* --config or --check-config FILE; NULL: none */
    bool check_config;            /* --check-config: validate and exit */
    /* Strings read from a config file (the command line's point into argv). */
    char **owned;
    size_t n_owned;
};

/* What main does after api_options_read(). */
enum api_options_verdict {
    API_OPTIONS_RUN,         /* options valid: start (or check) */
    API_OPTIONS_EXIT_OK,     /* --help or --version printed: exit 0 */
    API_OPTIONS_EXIT_USAGE,  /* bad flag, file or value, reported on stderr: exit 2 */
};

void api_options_defaults(struct api_options *o);

/* Reads the command line and, with --config/--check-config, the file: every
 * key of the file first, then every flag, so a flag overrides the file.
 * Errors name the flag, or the file, line and key; nothing is applied to
 * the process (log level included) until main takes the options. */
enum api_options_verdict api_options_read(int argc, char **argv, struct api_options *o);

/* Applies a config file's text (len bytes, any content) to o. file names
 * it in messages. Returns 0, or HD_EINVAL with "FILE:LINE: ..." in errmsg
 * (the first error; o may then hold some of the file's keys). */
int api_options_load_text(struct api_options *o, const char *text, size_t len, const char *file,
                          char *errmsg, size_t errmsg_len);

/* Frees what the options own (the CORS list, config-file strings). */
void api_options_free(struct api_options *o);

void api_options_usage(FILE *f);

#endif
