/* SPDX-License-Identifier: Apache-2.0 */
/* herald bench statistics: error counters, latencies, answer verification. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_internal.h"

void bench_count_error(struct bench_result *res, const char *kind)
{
    for (int i = 0; i < res->error_kinds; i++) {
        if (strcmp(res->errors[i].kind, kind) == 0) {
            res->errors[i].count++;
            return;
        }
    }
    /* The table is bounded; kinds beyond it are lumped into "other". */
    int last = BENCH_ERROR_KINDS_MAX - 1;
    int i = res->error_kinds < last ? res->error_kinds : last;
    if (res->error_kinds <= last) {
        snprintf(res->errors[i].kind, sizeof res->errors[i].kind, "%s",
                 i == last ? "other" : kind);
        res->error_kinds++;
    }
    res->errors[i].count++;
}

void bench_count_failed(struct bench_result *res, const char *kind)
{
    res->failed++;
    bench_count_error(res, kind);
}

bool bench_record_latency(struct bench_result *res, uint64_t us)
{
    if (res->lat_len == res->lat_cap) {
        size_t cap = res->lat_cap ? res->lat_cap * 2 : 65536;
        uint64_t *p = realloc(res->lat_us, cap * sizeof *p);
        if (p == NULL) return false;
        res->lat_us = p;
        res->lat_cap = cap;
    }
    res->lat_us[res->lat_len++] = us;
    return true;
}

void bench_result_free(struct bench_result *res)
{
    free(res->lat_us);
    res->lat_us = NULL;
    free(res->channel_acked);
    res->channel_acked = NULL;
    res->lat_len = res->lat_cap = 0;
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, double q)
{
    if (n == 0) return 0;
    double rank = ceil(q * (double)n); /* nearest rank, 1-based */
    size_t idx = rank < 1 ? 0 : (size_t)rank - 1;
    return sorted[idx < n ? idx : n - 1];
}

const char *bench_check_answer(int status, const char *body, size_t len, char *buf, size_t size)
{
    if (status == 200) {
        /* Only a retry may be a duplicate, and the bench never retries: a
         * 200 means the server thinks a fresh nonce was seen before. */
        return "duplicate";
    }
    if (status != 201) {
        snprintf(buf, size, "%d", status);
        return buf;
    }
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *seq = json_object_get(root, "seq");
    json_t *dup = json_object_get(root, "duplicate");
    bool good = json_is_integer(seq) && json_integer_value(seq) > 0 &&
                json_is_string(json_object_get(root, "ts")) && !json_is_true(dup);
    json_decref(root);
    return good ? NULL : "bad_answer";
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void bench_result_json(json_t *run, struct bench_result *res)
{
    if (res->lat_len > 1) qsort(res->lat_us, res->lat_len, sizeof *res->lat_us, cmp_u64);
    const uint64_t *l = res->lat_us;
    size_t n = res->lat_len;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)l[i];
    static const struct {
        const char *key;
        double q;
    } qs[] = {{"p50_us", 0.50}, {"p90_us", 0.90}, {"p99_us", 0.99}, {"p99_9_us", 0.999}};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        json_object_set_new(run, qs[i].key,
                            json_integer((json_int_t)bench_percentile(l, n, qs[i].q)));
    }
    json_object_set_new(run, "max_us", json_integer((json_int_t)(n ? l[n - 1] : 0)));
    json_object_set_new(run, "mean_us", json_real(n ? sum / (double)n : 0.0));
    json_t *errors = json_object();
    for (int i = 0; i < res->error_kinds; i++) {
        json_object_set_new(errors, res->errors[i].kind,
                            json_integer((json_int_t)res->errors[i].count));
    }
    json_object_set_new(run, "errors", errors);
    json_object_set_new(run, "fatal", res->fatal[0] ? json_string(res->fatal) : json_null());
}

void bench_print_row_end(json_t *run)
{
    const char *key;
    json_t *count;
    const char *sep = "  errors: ";
    json_object_foreach(json_object_get(run, "errors"), key, count) {
        printf("%s%s=%" PRId64, sep, key, (int64_t)json_integer_value(count));
        sep = " ";
    }
    json_t *fatal = json_object_get(run, "fatal");
    if (json_is_string(fatal)) printf("  FAILED: %s", json_string_value(fatal));
    putchar('\n');
    fflush(stdout);
}
