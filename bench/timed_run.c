/* Threads, per-call timing and the median/p99 summary (see timed_run.h). */
#define _GNU_SOURCE
#include "timed_run.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct worker {
    pthread_t thread;
    pthread_barrier_t *start_line;
    timed_call call;
    void *ctx;
    size_t iterations;
    size_t warmup;
    uint64_t *samples_ns; /* this worker's slice of the shared sample array */
    size_t failures;
};

uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    for (size_t i = 0; i < w->warmup; i++)
        (void)w->call(w->ctx, i);
    /* All threads start timing together, so two-thread figures measure
     * contention rather than one thread finishing before the other starts. */
    pthread_barrier_wait(w->start_line);
    for (size_t i = 0; i < w->iterations; i++) {
        uint64_t start = monotonic_ns();
        int failed = w->call(w->ctx, w->warmup + i);
        w->samples_ns[i] = monotonic_ns() - start;
        if (failed)
            w->failures++;
    }
    return NULL;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static double percentile_us(const uint64_t *sorted, size_t n, double fraction)
{
    size_t rank = (size_t)(fraction * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / 1000.0;
}

int run_timed(unsigned threads, size_t iterations, size_t warmup, timed_call call,
              void *const *thread_ctx, struct run_result *out)
{
    if (threads < 1 || threads > MAX_THREADS || iterations < 1) {
        errno = EINVAL;
        return -1;
    }
    size_t total = (size_t)threads * iterations;
    uint64_t *samples = calloc(total, sizeof *samples);
    struct worker workers[MAX_THREADS];
    pthread_barrier_t start_line;
    if (samples == NULL)
        return -1;
    pthread_barrier_init(&start_line, NULL, threads);
    for (unsigned t = 0; t < threads; t++) {
        workers[t] = (struct worker){
            .start_line = &start_line, .call = call, .ctx = thread_ctx[t],
            .iterations = iterations, .warmup = warmup,
            .samples_ns = samples + (size_t)t * iterations,
        };
        int err = pthread_create(&workers[t].thread, NULL, work, &workers[t]);
        if (err != 0) {
            /* The barrier would never open for the threads already started. */
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            exit(1);
        }
    }
    *out = (struct run_result){.samples = total};
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(workers[t].thread, NULL);
        out->failures += workers[t].failures;
    }
    pthread_barrier_destroy(&start_line);
    qsort(samples, total, sizeof *samples, compare_u64);
    out->median_us = percentile_us(samples, total, 0.50);
    out->p99_us = percentile_us(samples, total, 0.99);
    out->max_us = (double)samples[total - 1] / 1000.0;
    free(samples);
    return 0;
}

void print_result_json(const char *kind, unsigned threads, size_t iterations,
                       const struct run_result *r)
{
    printf("{\"kind\": \"%s\", \"threads\": %u, \"iterations\": %zu, \"samples\": %zu, "
           "\"failures\": %zu, \"median_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f}\n",
           kind, threads, iterations, r->samples, r->failures, r->median_us, r->p99_us,
           r->max_us);
    fflush(stdout);
}
