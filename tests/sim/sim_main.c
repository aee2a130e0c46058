/* SPDX-License-Identifier: Apache-2.0 */
/* herald_sim: runs seeded cluster scenarios, replays one, or sweeps allocation failures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hd_util.h"
#include "sim.h"

static void sim__usage(void)
{
    fprintf(stderr,
            "usage: herald_sim [--seed N | --seeds A..B | --first A --count N] [-v]\n"
            "                  [--keep-going] [--herald-proposal-ids] [--no-commands]\n"
            "                  [--alloc-sweep [--seed N] [--max K]] [--dir D]\n"
            "  --seed N       run (replay) the one scenario of seed N\n"
            "  --seeds A..B   run seeds A to B inclusive (default 1..100)\n"
            "  --alloc-sweep  run a small scenario once per allocation, failing it\n"
            "  --dir D        where the RocksDB stores go (default $TMPDIR or /tmp)\n"
            "  --keep-going   run every seed, report each violation\n"
            "  --herald-proposal-ids  proposal ids restart at 1 after a crash, as in\n"
            "                 herald's proposer.c (README: known bug)\n"
            "  --no-commands  no trims or deletes: each seed replays the scenario it\n"
            "                 did before the sim issued them\n"
            "exit: 0 all held, 2 an invariant was violated, 1 setup or usage error\n");
}

struct sim_args {
    uint64_t first;
    uint64_t last;
    bool sweep;
    long sweep_max;
    bool verbose;
    bool keep_going;
    bool reset_proposals;
    bool no_commands;
    const char *dir;
};

static bool sim__u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return end != s && *end == '\0';
}

static bool sim__range(const char *s, struct sim_args *a)
{
    const char *dots = strstr(s, "..");
    if (dots == NULL) {
        return false;
    }
    char lo[32];
    size_t n = (size_t)(dots - s);
    if (n == 0 || n >= sizeof lo) {
        return false;
    }
    memcpy(lo, s, n);
    lo[n] = '\0';
    return sim__u64(lo, &a->first) && sim__u64(dots + 2, &a->last) && a->first <= a->last;
}

static bool sim__parse(int argc, char **argv, struct sim_args *a)
{
    uint64_t count = 0, v = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "-v") == 0) {
            a->verbose = true;
            continue;
        } else if (strcmp(o, "--keep-going") == 0) {
            a->keep_going = true;
            continue;
        } else if (strcmp(o, "--herald-proposal-ids") == 0) {
            a->reset_proposals = true;
            continue;
        } else if (strcmp(o, "--no-commands") == 0) {
            a->no_commands = true;
            continue;
        } else if (strcmp(o, "--alloc-sweep") == 0) {
            a->sweep = true;
            continue;
        } else if (next == NULL) {
            return false;
        } else if (strcmp(o, "--seed") == 0 && sim__u64(next, &v)) {
            a->first = a->last = v;
        } else if (strcmp(o, "--seeds") == 0 && sim__range(next, a)) {
        } else if (strcmp(o, "--first") == 0 && sim__u64(next, &v)) {
            a->first = v;
        } else if (strcmp(o, "--count") == 0 && sim__u64(next, &count) && count > 0) {
        } else if (strcmp(o, "--max") == 0 && sim__u64(next, &v) && v > 0) {
            a->sweep_max = (long)v;
        } else if (strcmp(o, "--dir") == 0) {
            a->dir = next;
        } else {
            return false;
        }
        i++;
    }
    if (count > 0) {
        a->last = a->first + count - 1;
    }
    return true;
}

static double sim__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int sim__seeds(struct sim_stores *st, const struct sim_args *a)
{
    double t0 = sim__now();
    uint64_t failed = 0;
    int worst = SIM_EXIT_OK;
    for (uint64_t seed = a->first; seed <= a->last; seed++) {
        struct sim_opts o = {a->verbose, false, a->reset_proposals, a->no_commands};
        int code = sim_run_one(st, seed, &o);
        if (code != SIM_EXIT_OK) {
            failed++;
            worst = code > worst ? code : worst;
            if (!a->keep_going) {
                return code;
            }
        }
        if (seed == UINT64_MAX) {
            break;
        }
    }
    uint64_t n = a->last - a->first + 1;
    printf("herald_sim: seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64 " passed, %" PRIu64
           " failed (%.1f s)\n", a->first, a->last, n - failed, failed, sim__now() - t0);
    return worst;
}

/* Fails the k-th herald allocation for k = 1..K in the same small
 * scenario: each run must end with every invariant held, and the failure
 * must have come back as HD_ENOMEM from some herald call. */
static int sim__sweep(struct sim_stores *st, const struct sim_args *a)
{
    double t0 = sim__now();
    struct sim_opts o = {a->verbose, true, a->reset_proposals, a->no_commands};
    sim_alloc_install();
    sim_alloc_arm(0);
    sim_stores_reset(st);
    int code = sim_run_one(st, a->first, &o);
    long total = sim_alloc_count();
    if (code != SIM_EXIT_OK || total == 0) {
        fprintf(stderr, "herald_sim: sweep seed %" PRIu64 ": %s\n", a->first,
                code != SIM_EXIT_OK ? "the scenario fails without faults" : "no allocation");
        return code != SIM_EXIT_OK ? code : SIM_EXIT_SETUP;
    }
    long n = total < a->sweep_max ? total : a->sweep_max;
    for (long k = 1; k <= n; k++) {
        sim_alloc_arm(k);
        sim_stores_reset(st);
        code = sim_run_one(st, a->first, &o);
        if (code == SIM_EXIT_OK && sim_alloc_injected() && !sim_alloc_reported()) {
            printf("herald_sim: INVARIANT VIOLATED seed=%" PRIu64 " alloc=%ld: the failed "
                   "allocation was reported by no herald call\n", a->first, k);
            code = SIM_EXIT_VIOLATION;
        }
        if (code != SIM_EXIT_OK) {
            printf("herald_sim: replay with: herald_sim --alloc-sweep --seed %" PRIu64
                   " (failing allocation %ld of %ld)\n", a->first, k, total);
            return code;
        }
        if (!sim_alloc_injected()) {
            /* The runs are identical up to the k-th allocation. */
            printf("herald_sim: sweep seed %" PRIu64 ": allocation %ld of %ld never came: "
                   "the run is not deterministic\n", a->first, k, total);
            return SIM_EXIT_SETUP;
        }
    }
    printf("herald_sim: alloc sweep seed %" PRIu64 ": failed allocation k of %ld for "
           "k = 1..%ld, every run held (%.1f s)\n", a->first, total, n, sim__now() - t0);
    return SIM_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct sim_args a = {.first = 1, .last = 100, .sweep_max = 400};
    if (!sim__parse(argc, argv, &a)) {
        sim__usage();
        return SIM_EXIT_SETUP;
    }
    if (a.dir == NULL) {
        a.dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a crash must not eat the report */
    hd_log_level = a.verbose ? 1 : -1; /* apply errors are the sim's to report */
    struct sim_stores st;
    if (sim_stores_open(&st, a.dir) != 0) {
        return SIM_EXIT_SETUP;
    }
    int code = a.sweep ? sim__sweep(&st, &a) : sim__seeds(&st, &a);
    sim_stores_close(&st);
    return code;
}
