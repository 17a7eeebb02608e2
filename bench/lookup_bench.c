/* Times glibc user and group lookups through whatever nsswitch.conf names, the
 * way a program would make them: the reentrant _r calls, one call per timed
 * sample. bench/run.py runs it inside a mount namespace per NSS source.
 *
 *   lookup_bench -k KIND -f KEYFILE -n ITERATIONS [-t THREADS] [-w WARMUP]
 *   lookup_bench -k enumerate
 *
 * KIND is getpwnam, getpwuid, getgrnam, initgroups (getgrouplist) or miss
 * (getpwnam of a name that must not exist). KEYFILE holds one key a line: a
 * name, a UID for getpwuid, "NAME GID" for initgroups. Thread t uses the keys
 * on lines t, t+THREADS, t+2*THREADS, ... in turn, so threads never share a
 * key. Each thread makes WARMUP untimed calls, then ITERATIONS timed ones.
 * Prints one JSON line (see timed_run.c); a "failure" is a hit that was not
 * found, or a miss that was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "timed_run.h"

#define INITIAL_BUFFER_BYTES 4096
#define MAX_BUFFER_BYTES (64u << 20)
#define INITIAL_GROUP_LIST 256

struct keys {
    char **lines;
    size_t count;
};

struct thread_state {
    const struct keys *keys;
    unsigned thread, threads;
    size_t own_keys; /* how many lines belong to this thread */
    char *buf;
    size_t buf_bytes;
    gid_t *group_list;
    int group_list_len;
};

typedef int (*lookup_fn)(struct thread_state *s, const char *key);

static const char *key_for(const struct thread_state *s, size_t iteration)
{
    size_t slot = iteration % s->own_keys;
    return s->keys->lines[s->thread + slot * s->threads];
}

/* glibc asks for a bigger buffer with ERANGE (getpwnam_r(3)); grow and retry. */
static int grow_buffer(struct thread_state *s)
{
    if (s->buf_bytes >= MAX_BUFFER_BYTES)
        return -1;
    char *bigger = realloc(s->buf, s->buf_bytes * 2);
    if (bigger == NULL)
        return -1;
    s->buf = bigger;
    s->buf_bytes *= 2;
    return 0;
}

static int lookup_pwnam(struct thread_state *s, const char *key)
{
    struct passwd pw, *found;
    int err;
    while ((err = getpwnam_r(key, &pw, s->buf, s->buf_bytes, &found)) == ERANGE)
        if (grow_buffer(s) != 0)
            return 1;
    return err != 0 || found == NULL;
}

static int lookup_miss(struct thread_state *s, const char *key)
{
    struct passwd pw, *found;
    int err;
    while ((err = getpwnam_r(key, &pw, s->buf, s->buf_bytes, &found)) == ERANGE)
        if (grow_buffer(s) != 0)
            return 1;
    return err != 0 || found != NULL;
}

static int lookup_pwuid(struct thread_state *s, const char *key)
{
    struct passwd pw, *found;
    uid_t uid = (uid_t)strtoul(key, NULL, 10);
    int err;
    while ((err = getpwuid_r(uid, &pw, s->buf, s->buf_bytes, &found)) == ERANGE)
        if (grow_buffer(s) != 0)
            return 1;
    return err != 0 || found == NULL;
}

static int lookup_grnam(struct thread_state *s, const char *key)
{
    struct group gr, *found;
    int err;
    while ((err = getgrnam_r(key, &gr, s->buf, s->buf_bytes, &found)) == ERANGE)
        if (grow_buffer(s) != 0)
            return 1;
    return err != 0 || found == NULL;
}

/* getgrouplist(3) is what initgroups(3) calls to collect the groups; it takes
 * the user's primary GID, which the key line carries after the name. A user
 * the bench seeds is in a few groups, so more than the primary one counts as
 * found. */
static int lookup_initgroups(struct thread_state *s, const char *key)
{
    char name[256];
    unsigned long gid;
    if (sscanf(key, "%255s %lu", name, &gid) != 2)
        return 1;
    int n = s->group_list_len;
    while (getgrouplist(name, (gid_t)gid, s->group_list, &n) == -1) {
        gid_t *bigger = realloc(s->group_list, (size_t)n * sizeof *bigger);
        if (bigger == NULL)
            return 1;
        s->group_list = bigger;
        s->group_list_len = n;
    }
    return n < 2;
}

static lookup_fn lookup_by_kind(const char *kind)
{
    static const struct {
        const char *kind;
        lookup_fn fn;
    } table[] = {
        {"getpwnam", lookup_pwnam},     {"getpwuid", lookup_pwuid},
        {"getgrnam", lookup_grnam},     {"initgroups", lookup_initgroups},
        {"miss", lookup_miss},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(kind, table[i].kind) == 0)
            return table[i].fn;
    return NULL;
}

static lookup_fn chosen_lookup;

static int timed_lookup(void *ctx, size_t iteration)
{
    struct thread_state *s = ctx;
    return chosen_lookup(s, key_for(s, iteration));
}

static int read_keys(const char *path, struct keys *out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t cap = 1024;
    out->count = 0;
    out->lines = malloc(cap * sizeof *out->lines);
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while (out->lines != NULL && (len = getline(&line, &line_cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (out->count == cap) {
            cap *= 2;
            char **bigger = realloc(out->lines, cap * sizeof *bigger);
            if (bigger == NULL)
                break;
            out->lines = bigger;
        }
        out->lines[out->count] = strdup(line);
        if (out->lines[out->count] == NULL)
            break;
        out->count++;
    }
    free(line);
    fclose(f);
    return out->lines == NULL ? -1 : 0;
}

/* setpwent/getpwent_r/endpwent over every user every source in nsswitch.conf
 * offers, as `getent passwd` does; prints the count and the wall time. */
static int enumerate(void)
{
    size_t buf_bytes = INITIAL_BUFFER_BYTES;
    char *buf = malloc(buf_bytes);
    struct passwd pw, *found;
    size_t count = 0;
    int err = 0;
    if (buf == NULL)
        return 1;
    uint64_t start = monotonic_ns();
    setpwent();
    for (;;) {
        err = getpwent_r(&pw, buf, buf_bytes, &found);
        if (err == ERANGE && buf_bytes < MAX_BUFFER_BYTES) {
            char *bigger = realloc(buf, buf_bytes * 2);
            if (bigger == NULL)
                break;
            buf = bigger;
            buf_bytes *= 2;
            continue;
        }
        if (err != 0 || found == NULL)
            break;
        count++;
    }
    endpwent();
    double total_ms = (double)(monotonic_ns() - start) / 1e6;
    free(buf);
    printf("{\"kind\": \"enumerate\", \"count\": %zu, \"total_ms\": %.1f, \"end\": \"%s\"}\n",
           count, total_ms, err == ENOENT ? "ENOENT" : strerror(err));
    return err == ENOENT ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: lookup_bench -k getpwnam|getpwuid|getgrnam|initgroups|miss "
                    "-f KEYFILE -n ITERATIONS [-t THREADS] [-w WARMUP]\n"
                    "       lookup_bench -k enumerate\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *kind = NULL, *key_path = NULL;
    size_t iterations = 0, warmup = 0;
    unsigned threads = 1;
    int opt;
    while ((opt = getopt(argc, argv, "k:f:n:t:w:")) != -1) {
        switch (opt) {
        case 'k': kind = optarg; break;
        case 'f': key_path = optarg; break;
        case 'n': iterations = strtoul(optarg, NULL, 10); break;
        case 't': threads = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': warmup = strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (kind == NULL)
        usage();
    if (strcmp(kind, "enumerate") == 0)
        return enumerate();
    chosen_lookup = lookup_by_kind(kind);
    if (chosen_lookup == NULL || key_path == NULL || iterations == 0 || threads < 1 ||
        threads > MAX_THREADS)
        usage();

    struct keys keys;
    if (read_keys(key_path, &keys) != 0 || keys.count < threads) {
        fprintf(stderr, "lookup_bench: %s: cannot read at least %u keys\n", key_path, threads);
        return 1;
    }
    struct thread_state states[MAX_THREADS];
    void *ctx[MAX_THREADS];
    for (unsigned t = 0; t < threads; t++) {
        states[t] = (struct thread_state){
            .keys = &keys, .thread = t, .threads = threads,
            .own_keys = (keys.count - t + threads - 1) / threads,
            .buf = malloc(INITIAL_BUFFER_BYTES), .buf_bytes = INITIAL_BUFFER_BYTES,
            .group_list = malloc(INITIAL_GROUP_LIST * sizeof(gid_t)),
            .group_list_len = INITIAL_GROUP_LIST,
        };
        if (states[t].buf == NULL || states[t].group_list == NULL) {
            fprintf(stderr, "lookup_bench: out of memory\n");
            return 1;
        }
        ctx[t] = &states[t];
    }
    struct run_result result;
    if (run_timed(threads, iterations, warmup, timed_lookup, ctx, &result) != 0) {
        perror("lookup_bench");
        return 1;
    }
    print_result_json(kind, threads, iterations, &result);
    return 0;
}
