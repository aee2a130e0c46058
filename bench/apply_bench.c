/* SPDX-License-Identifier: Apache-2.0 */
/*
 * herald-apply-bench: the CPU of applying appends to state, alone.
 *
 * Opens a fresh state store (RocksDB, as heraldd opens it) and applies
 * entries of appends to it, as a replica does once Raft commits them: no
 * HTTP, no Raft, no WAL. Prints the CPU per append of the applying thread
 * and of the whole process (RocksDB's flush and compaction threads too).
 * On a noisy machine this isolates the state machine's share of an
 * append's cost (README: Server CPU per append), so that changes to it
 * can be compared in one run.
 *
 * usage: herald-apply-bench [--appends N] [--per-entry K] [--channels C]
 *                           [--payload BYTES] [--shards S] [--random-nonces]
 *                           [--dir DIR]
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "entry.h"
#include "hd_alloc.h"
#include "hd_malloc_policy.h"
#include "herald/herald.h"
#include "log.h"

struct apply_bench_config {
    unsigned long appends;
    unsigned per_entry;
    unsigned long channels;
    size_t payload;
    unsigned shards;
    int random_nonces;
    const char *dir;
};

static double apply_bench_clock(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double apply_bench_process_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int apply_bench_unlink(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

static int apply_bench_usage(FILE *f, int rc)
{
    fprintf(f,
            "usage: herald-apply-bench [--appends N] [--per-entry K] [--channels C]\n"
            "                          [--payload BYTES] [--shards S] [--random-nonces]\n"
            "                          [--dir DIR]\n"
            "Applies N appends (default 1000000) in entries of K (default 8) over C\n"
            "channels (default 16) of S shards (default 16) to a fresh state store in\n"
            "DIR (new or empty; default a new directory under $TMPDIR or /tmp,\n"
            "removed after), and\n"
            "prints the CPU per append of the applying thread and of the process.\n"
            "Nonces are libherald's (time-ordered) unless --random-nonces.\n");
    return rc;
}

static int apply_bench_parse(int argc, char **argv, struct apply_bench_config *c)
{
    static const struct option longopts[] = {
        {"appends", required_argument, NULL, 'n'},  {"per-entry", required_argument, NULL, 'k'},
        {"channels", required_argument, NULL, 'c'}, {"payload", required_argument, NULL, 'p'},
        {"shards", required_argument, NULL, 's'},   {"random-nonces", no_argument, NULL, 'r'},
        {"dir", required_argument, NULL, 'd'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *c = (struct apply_bench_config){.appends = 1000000, .per_entry = 8, .channels = 16,
                                     .payload = 200, .shards = 16};
    int opt;
    int which = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &which)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (opt != 'r' && opt != 'd' && opt != 'h') {
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || v == 0) {
                fprintf(stderr, "herald-apply-bench: --%s wants a positive integer, not '%s'\n",
                        longopts[which].name, optarg);
                return -1;
            }
        }
        switch (opt) {
        case 'n': c->appends = v; break;
        case 'k':
            if (v > LOG_ENTRY_APPENDS_MAX) {
                fprintf(stderr, "herald-apply-bench: --per-entry is at most %u\n",
                        LOG_ENTRY_APPENDS_MAX);
                return -1;
            }
            c->per_entry = (unsigned)v;
            break;
        case 'c': c->channels = v; break;
        case 'p':
            if (v > (1u << 20)) {
                fprintf(stderr, "herald-apply-bench: --payload is at most 1048576\n");
                return -1;
            }
            c->payload = v;
            break;
        case 's':
            if (v > 1024) {
                fprintf(stderr, "herald-apply-bench: --shards is at most 1024\n");
                return -1;
            }
            c->shards = (unsigned)v;
            break;
        case 'r': c->random_nonces = 1; break;
        case 'd': c->dir = optarg; break;
        case 'h': return 1;
        default: return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "herald-apply-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* The nonces, made before the clock starts (libherald's take a getrandom
 * each): time-ordered as libherald makes them, or 32 random hex digits. */
static char *apply_bench_nonces(const struct apply_bench_config *c)
{
    char *all = hd_malloc(c->appends * HERALD_NONCE_HEX_LEN);
    char one[HERALD_NONCE_HEX_LEN + 1];
    uint64_t x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
    for (unsigned long i = 0; i < c->appends; i++) {
        if (c->random_nonces) {
            for (int d = 0; d < HERALD_NONCE_HEX_LEN; d++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                one[d] = "0123456789abcdef"[x & 15];
            }
        } else if (herald_nonce_generate(one, sizeof one) != 0) {
            fprintf(stderr, "herald-apply-bench: no random bytes for nonces\n");
            exit(1);
        }
        memcpy(all + i * HERALD_NONCE_HEX_LEN, one, HERALD_NONCE_HEX_LEN);
    }
    return all;
}

/* Applies the appends in turns of per_entry, append i to channel
 * i % channels: as the node's loop does with a turn's appends, each turn
 * makes one entry per shard its appends belong to, applied at the shard's
 * next index. */
static int apply_bench_run(struct log_store *ls, const struct apply_bench_config *c,
                           const char *nonces, unsigned long *entries)
{
    uint8_t *payload = hd_malloc(c->payload);
    memset(payload, 'x', c->payload);
    char (*names)[32] = hd_malloc(c->channels * sizeof *names);
    unsigned *shard_of = hd_malloc(c->channels * sizeof *shard_of);
    for (unsigned long ch = 0; ch < c->channels; ch++) {
        snprintf(names[ch], sizeof names[ch], "bench-%lu", ch + 1);
        shard_of[ch] = log_shard_of(c->shards, names[ch], strlen(names[ch]));
    }
    struct log_append *batch = hd_malloc(c->per_entry * sizeof *batch);
    struct log_result *results = hd_malloc(c->per_entry * sizeof *results);
    uint64_t *index = hd_calloc(c->shards, sizeof *index);
    size_t buf_cap = 0;
    uint8_t *buf = NULL;
    int rv = 0;

    for (unsigned long i = 0; i < c->appends && rv == 0;) {
        /* One turn: per_entry appends, one entry per shard they touch. */
        unsigned long turn = c->appends - i < c->per_entry ? c->appends - i : c->per_entry;
        for (unsigned s = 0; s < c->shards && rv == 0; s++) {
            size_t n = 0;
            for (unsigned long j = 0; j < turn; j++) {
                unsigned long ch = (i + j) % c->channels;
                if (shard_of[ch] != s) {
                    continue;
                }
                batch[n++] = (struct log_append){
                    .channel = names[ch], .channel_len = strlen(names[ch]),
                    .nonce = nonces + (i + j) * HERALD_NONCE_HEX_LEN,
                    .nonce_len = HERALD_NONCE_HEX_LEN,
                    .payload = payload, .payload_len = c->payload};
            }
            if (n == 0) {
                continue;
            }
            size_t len = log_entry_size(batch, n);
            if (len > buf_cap) {
                buf = hd_realloc(buf, len);
                buf_cap = len;
            }
            struct log_entry_header h = {.stamp_us = (uint64_t)(apply_bench_clock(CLOCK_REALTIME) * 1e6),
                                         .proposer = 1, .proposal = *entries + 1,
                                         .count = (uint32_t)n};
            log_entry_encode(buf, &h, batch, n);
            rv = log_apply(ls, (uint16_t)s, ++index[s], buf, len, results, c->per_entry);
            (*entries)++;
        }
        i += turn;
    }
    hd_free(buf);
    hd_free(index);
    hd_free(results);
    hd_free(batch);
    hd_free(shard_of);
    hd_free(names);
    hd_free(payload);
    return rv;
}

int main(int argc, char **argv)
{
    hd_malloc_policy(); /* allocate as heraldd does */
    struct apply_bench_config c;
    int p = apply_bench_parse(argc, argv, &c);
    if (p != 0) {
        return apply_bench_usage(p > 0 ? stdout : stderr, p > 0 ? 0 : 2);
    }
    char tmpl[4096];
    const char *dir = c.dir;
    if (dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        int n = snprintf(tmpl, sizeof tmpl, "%s/herald-apply-bench.XXXXXX", tmp ? tmp : "/tmp");
        if (n < 0 || (size_t)n >= sizeof tmpl) {
            fprintf(stderr, "herald-apply-bench: $TMPDIR is too long; give --dir\n");
            return 1;
        }
        if (mkdtemp(tmpl) == NULL) {
            fprintf(stderr, "herald-apply-bench: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
        dir = tmpl;
    }
    char *nonces = apply_bench_nonces(&c);
    struct log_options lo = {.dir = dir, .n_shards = c.shards};
    struct log_store *ls = NULL;
    char err[256] = "";
    if (log_store_open(&ls, &lo, err, sizeof err) != 0) {
        fprintf(stderr, "herald-apply-bench: open %s: %s\n", dir, err);
        return 1;
    }
    double wall0 = apply_bench_clock(CLOCK_MONOTONIC);
    double thread0 = apply_bench_clock(CLOCK_THREAD_CPUTIME_ID);
    double process0 = apply_bench_process_cpu();
    unsigned long entries = 0;
    int rv = apply_bench_run(ls, &c, nonces, &entries);
    double wall = apply_bench_clock(CLOCK_MONOTONIC) - wall0;
    double thread = apply_bench_clock(CLOCK_THREAD_CPUTIME_ID) - thread0;
    double process = apply_bench_process_cpu() - process0;
    log_store_close(ls);
    hd_free(nonces);
    if (c.dir == NULL) {
        if (nftw(dir, apply_bench_unlink, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            fprintf(stderr, "herald-apply-bench: could not remove %s\n", dir);
        }
    }
    if (rv != 0) {
        fprintf(stderr, "herald-apply-bench: apply failed: %d\n", rv);
        return 1;
    }
    printf("appends %lu entries %lu channels %lu nonces %s seconds %.2f "
           "thread_cpu_us_per_append %.2f process_cpu_us_per_append %.2f\n",
           c.appends, entries, c.channels, c.random_nonces ? "random" : "time-ordered", wall,
           thread * 1e6 / (double)c.appends, process * 1e6 / (double)c.appends);
    return 0;
}
