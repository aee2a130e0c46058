/* SPDX-License-Identifier: Apache-2.0 */
/* `herald bench`: closed-loop append load generator, entry point for the CLI. */
#ifndef HERALD_BENCH_H
#define HERALD_BENCH_H

/* Runs `herald bench` with argv[0] = "bench"; returns the exit status. */
int herald_bench_main(const char *url, const char *token, const char *ca_file, int argc,
                      char **argv);

#endif
