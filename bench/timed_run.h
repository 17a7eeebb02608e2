/* Runs one call many times in 1..N threads, timing each call, and summarises
 * the latencies; shared by lookup_bench.c and echo_server.c so both sides of a
 * comparison are measured by the same code. */
#ifndef BENCH_TIMED_RUN_H
#define BENCH_TIMED_RUN_H

#include <stddef.h>
#include <stdint.h>

#define MAX_THREADS 16

/* One call under test. Returns 0 when it gave the expected answer, anything
 * else when not (counted as a failure, still timed). `thread_ctx` is that
 * thread's own context; `iteration` counts from 0 within the thread. */
typedef int (*timed_call)(void *thread_ctx, size_t iteration);

struct run_result {
    size_t samples;  /* threads x iterations */
    size_t failures; /* calls that returned nonzero */
    double median_us;
    double p99_us;
    double max_us;
};

uint64_t monotonic_ns(void);

/* Starts `threads` threads that each make `warmup` untimed calls, wait for one
 * another, then make `iterations` calls timed one by one with CLOCK_MONOTONIC.
 * thread_ctx[t] is handed to thread t. Returns 0, or -1 with errno set. */
int run_timed(unsigned threads, size_t iterations, size_t warmup, timed_call call,
              void *const *thread_ctx, struct run_result *out);

/* Prints one JSON object on a line of stdout, the form bench/run.py parses. */
void print_result_json(const char *kind, unsigned threads, size_t iterations,
                       const struct run_result *result);

#endif /* BENCH_TIMED_RUN_H */
