/* SPDX-License-Identifier: Apache-2.0 */
/* One scenario: setup, steps of faults and appends with checks, heal, final checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd_assert.h"
#include "sim.h"

/* Fixture time allowed for the healed cluster to agree on everything. */
#define SIM_CONVERGE_MS 120000u

static void sim__checks(struct sim *s)
{
    sim_alloc_pause(true);
    sim_cons_check(s);
    sim_log_check(s);
    sim_alloc_pause(false);
}

static void sim__steps(struct sim *s)
{
    for (s->step = 0; s->step < s->p.steps && !s->violated; s->step++) {
        sim_cluster_shuffle_timeouts(s);
        sim_fault_step(s);
        sim_client_step(s);
        sim_cluster_advance(s, 10 + sim_below(&s->rng, 300));
        sim__checks(s);
    }
}

static void sim__teardown_checks(struct sim *s)
{
    s->in_teardown = true;
    sim_heal_all(s);
    if (!sim_cluster_converge(s, SIM_CONVERGE_MS)) {
        sim_fail(s, "the healed cluster did not converge within %u ms of fixture time",
                 SIM_CONVERGE_MS);
        return;
    }
    sim_alloc_pause(true);
    sim_final_check(s);
}

static void sim__free(struct sim *s)
{
    while (s->props != NULL) {
        struct sim_prop *p = s->props;
        s->props = p->next_all;
        free(p);
    }
    for (unsigned i = 0; i < s->n_nonces; i++) {
        free(s->nonces[i].payload);
    }
    sim_model_close(&s->model);
    free(s->slots);
    free(s);
}

static void sim__report(const struct sim *s)
{
    if (s->violated) {
        printf("herald_sim: INVARIANT VIOLATED seed=%llu step=%u%s: %s\n"
               "herald_sim: replay with: herald_sim --seed %llu -v\n",
               (unsigned long long)s->seed, s->step, s->in_teardown ? " (teardown)" : "",
               s->violation, (unsigned long long)s->seed);
    } else if (s->verbose) {
        printf("herald_sim: seed=%llu ok: %u servers, %u channels, %u steps, window %s, "
               "%u nonces, %lu acked appends (%lu duplicates), %lu unknown, %lu crashes, "
               "%lu store reopens, %lu pauses, %lu partitions, %lu clock steps, %lu io faults, %lu apply errors, "
               "%lu leader bounces, %lu trims and %lu deletes acked, "
               "committed up to %llu, fixture time %llu ms\n",
               (unsigned long long)s->seed, s->p.n_servers, s->p.n_channels, s->p.steps,
               s->p.short_window ? "3 s" : "24 h", s->n_nonces, s->n_acked, s->n_dup_acked,
               s->n_unknown, s->n_crashes, s->n_reopens, s->n_pauses, s->n_partitions, s->n_clock_steps,
               s->n_io_faults, s->n_apply_errors, s->n_bounces, s->n_trims, s->n_deletes,
               (unsigned long long)s->model.last_index,
               (unsigned long long)s->f.time);
    }
}

int sim_run_one(struct sim_stores *st, uint64_t seed, const struct sim_opts *o)
{
    struct sim *s = calloc(1, sizeof *s);
    HD_ASSERT(s != NULL);
    s->seed = seed;
    s->rng.s = seed;
    s->cmd_rng.s = seed ^ 0x636f6d6d616e6473ull; /* "commands" */
    s->no_commands = o->no_commands;
    s->stores = st;
    s->verbose = o->verbose;
    s->reset_proposals = o->reset_proposals;
    s->small = o->small;
    sim_params_draw(s, o->small);
    sim_names_draw(s);
    sim_alloc_pause(true);
    int code = SIM_EXIT_OK;
    if (sim_cluster_setup(s) != 0) {
        fprintf(stderr, "herald_sim: seed=%llu: setup failed\n", (unsigned long long)seed);
        code = SIM_EXIT_SETUP;
    } else {
        sim_alloc_pause(false);
        sim__steps(s);
        if (!s->violated) {
            sim__teardown_checks(s);
        }
    }
    sim_alloc_pause(true);
    if (s->violated && s->verbose) {
        sim_cluster_dump(s);
    }
    sim_cluster_teardown(s);
    if (code == SIM_EXIT_OK && s->violated) {
        code = SIM_EXIT_VIOLATION;
    }
    sim__report(s);
    sim__free(s);
    return code;
}
