/* Calls a built NSS module's entry points directly (dlopen), as glibc would, against a live rosterd.
 *
 *   nss_direct MODULE.so USER GROUP     run every check below; exit 0 when all pass
 *   nss_direct MODULE.so --time USER    one getpwnam_r: prints "<status> <errno> <ms>"
 *   nss_direct MODULE.so --twice USER   --time, then again after a line arrives on stdin
 *   nss_direct MODULE.so --list passwd|group
 *                                       enumerate, growing the buffer from 1 byte after
 *                                       each ERANGE; print each name, then the end status
 *
 * USER must exist and be a member of GROUP (not its primary group). The socket
 * comes from ROSTERD_NSS_SOCKET, as in any process. Each check prints "ok: ..."
 * or "FAIL: ..."; the exit status is the number of failures (capped at 100).
 */
#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <shadow.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BIG_BUFFER_BYTES (1024 * 1024)
#define THREADS 8
#define LOOKUPS_PER_THREAD 300
#define MAX_ENTRIES 100000
#define FAST_FAILURE_MS 50

static nss_getpwnam_r *getpwnam_fn;
static nss_getpwuid_r *getpwuid_fn;
static nss_setpwent *setpwent_fn;
static nss_getpwent_r *getpwent_fn;
static nss_endpwent *endpwent_fn;
static nss_getgrnam_r *getgrnam_fn;
static nss_getgrgid_r *getgrgid_fn;
static nss_setgrent *setgrent_fn;
static nss_getgrent_r *getgrent_fn;
static nss_endgrent *endgrent_fn;
static nss_initgroups_dyn *initgroups_fn;
static nss_getspnam_r *getspnam_fn;

static int failures;

static void check(bool ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok)
        failures++;
    fflush(stdout);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void *symbol(void *module, const char *prefix, const char *function)
{
    char name[128];
    snprintf(name, sizeof name, "_nss_%s_%s", prefix, function);
    void *fn = dlsym(module, name);
    if (fn == NULL) {
        fprintf(stderr, "nss_direct: %s is not exported: %s\n", name, dlerror());
        exit(100);
    }
    return fn;
}

/* "…/libnss_roster.so.2" -> "roster" */
static void load(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char prefix[64];
    if (sscanf(base, "libnss_%63[^.].so.2", prefix) != 1) {
        fprintf(stderr, "nss_direct: %s is not named libnss_NAME.so.2\n", path);
        exit(100);
    }
    void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (module == NULL) {
        fprintf(stderr, "nss_direct: %s\n", dlerror());
        exit(100);
    }
    getpwnam_fn = (nss_getpwnam_r *)symbol(module, prefix, "getpwnam_r");
    getpwuid_fn = (nss_getpwuid_r *)symbol(module, prefix, "getpwuid_r");
    setpwent_fn = (nss_setpwent *)symbol(module, prefix, "setpwent");
    getpwent_fn = (nss_getpwent_r *)symbol(module, prefix, "getpwent_r");
    endpwent_fn = (nss_endpwent *)symbol(module, prefix, "endpwent");
    getgrnam_fn = (nss_getgrnam_r *)symbol(module, prefix, "getgrnam_r");
    getgrgid_fn = (nss_getgrgid_r *)symbol(module, prefix, "getgrgid_r");
    setgrent_fn = (nss_setgrent *)symbol(module, prefix, "setgrent");
    getgrent_fn = (nss_getgrent_r *)symbol(module, prefix, "getgrent_r");
    endgrent_fn = (nss_endgrent *)symbol(module, prefix, "endgrent");
    initgroups_fn = (nss_initgroups_dyn *)symbol(module, prefix, "initgroups_dyn");
    getspnam_fn = (nss_getspnam_r *)symbol(module, prefix, "getspnam_r");
}

/* ---- buffer sizes ----------------------------------------------------------- */

/* Calls a lookup with exact-size buffers (each its own allocation, `offset`
 * bytes in) to find the smallest that works; every smaller size must give
 * TRYAGAIN/ERANGE. Every size is tried when the answer is small, a binary
 * search otherwise. Returns that size (0 if none worked); `result` then holds
 * the answer, whose buffer the caller frees through *owned. */
typedef enum nss_status lookup_fn(const void *key, void *result, char *buf, size_t buflen,
                                  int *errnop);

#define EXHAUSTIVE_UP_TO_BYTES 2048
#define LARGEST_TRIED_BYTES (64 * 1024 * 1024)

/* 1: success (the buffer is kept in *owned), 0: ERANGE, -1: anything else. */
static int try_size(lookup_fn *fn, const void *key, void *result, size_t size, size_t offset,
                    char **owned, const char *what)
{
    char *block = malloc(size + offset + 1);
    int err = 0;
    enum nss_status status = fn(key, result, block + offset, size, &err);
    if (status == NSS_STATUS_SUCCESS) {
        free(*owned);
        *owned = block;
        return 1;
    }
    free(block);
    if (status == NSS_STATUS_TRYAGAIN && err == ERANGE)
        return 0;
    char message[256];
    snprintf(message, sizeof message, "%s with a %zu-byte buffer: status %d errno %d", what, size,
             status, err);
    check(false, message);
    return -1;
}

static size_t search_smallest_buffer(lookup_fn *fn, const void *key, void *result,
                                     size_t offset, char **owned, const char *what)
{
    size_t low = 0, high = 0; /* low fails (ERANGE) unless 0; high works */
    int rc = try_size(fn, key, result, 0, offset, owned, what);
    if (rc != 0)
        return 0; /* a zero-byte buffer can never hold a record; rc 1 is a bug too */
    for (high = 1; high <= LARGEST_TRIED_BYTES; high *= 2) {
        rc = try_size(fn, key, result, high, offset, owned, what);
        if (rc < 0)
            return 0;
        if (rc == 1)
            break;
        low = high;
    }
    if (rc != 1) {
        check(false, "no buffer size was enough");
        return 0;
    }
    if (high <= EXHAUSTIVE_UP_TO_BYTES) {
        for (size_t size = low + 1; size < high; size++) {
            rc = try_size(fn, key, result, size, offset, owned, what);
            if (rc < 0)
                return 0;
            if (rc == 1)
                return size;
        }
        return try_size(fn, key, result, high, offset, owned, what) == 1 ? high : 0;
    }
    while (high - low > 1) {
        size_t middle = low + (high - low) / 2;
        rc = try_size(fn, key, result, middle, offset, owned, what);
        if (rc < 0)
            return 0;
        if (rc == 1)
            high = middle;
        else
            low = middle;
    }
    if (try_size(fn, key, result, high - 1, offset, owned, what) != 0)
        return 0;
    return try_size(fn, key, result, high, offset, owned, what) == 1 ? high : 0;
}

/* The search above; *owned is NULL unless it found a size. */
static size_t smallest_buffer(lookup_fn *fn, const void *key, void *result, size_t offset,
                              char **owned, const char *what)
{
    *owned = NULL;
    size_t size = search_smallest_buffer(fn, key, result, offset, owned, what);
    if (size == 0) {
        free(*owned);
        *owned = NULL;
    }
    return size;
}

static enum nss_status by_pwnam(const void *key, void *r, char *b, size_t n, int *e)
{
    return getpwnam_fn(key, r, b, n, e);
}
static enum nss_status by_pwuid(const void *key, void *r, char *b, size_t n, int *e)
{
    return getpwuid_fn(*(const uid_t *)key, r, b, n, e);
}
static enum nss_status by_grnam(const void *key, void *r, char *b, size_t n, int *e)
{
    return getgrnam_fn(key, r, b, n, e);
}
static enum nss_status by_grgid(const void *key, void *r, char *b, size_t n, int *e)
{
    return getgrgid_fn(*(const gid_t *)key, r, b, n, e);
}
static enum nss_status by_spnam(const void *key, void *r, char *b, size_t n, int *e)
{
    return getspnam_fn(key, r, b, n, e);
}

static size_t passwd_bytes(const struct passwd *pw)
{
    return strlen(pw->pw_name) + strlen(pw->pw_passwd) + strlen(pw->pw_gecos) +
           strlen(pw->pw_dir) + strlen(pw->pw_shell) + 5;
}

/* ---- checks ------------------------------------------------------------------ */

static uid_t user_uid;
static gid_t user_gid;
static gid_t group_gid;

static void check_passwd(const char *user)
{
    struct passwd pw;
    char *owned = NULL;
    size_t size = smallest_buffer(by_pwnam, user, &pw, 0, &owned, "getpwnam_r");
    if (owned == NULL)
        return;
    check(strcmp(pw.pw_name, user) == 0, "getpwnam_r returns the user asked for");
    check(size == passwd_bytes(&pw), "getpwnam_r needs exactly its strings' bytes, no more");
    user_uid = pw.pw_uid;
    user_gid = pw.pw_gid;
    free(owned);

    owned = NULL;
    smallest_buffer(by_pwuid, &user_uid, &pw, 0, &owned, "getpwuid_r");
    if (owned != NULL) {
        check(strcmp(pw.pw_name, user) == 0 && pw.pw_uid == user_uid,
              "getpwuid_r returns the same user");
        free(owned);
    }

    char buf[1024];
    int err = 0;
    enum nss_status status = getpwnam_fn("no-such-user-at-all", &pw, buf, sizeof buf, &err);
    check(status == NSS_STATUS_NOTFOUND && err == ENOENT, "an unknown name is NOTFOUND/ENOENT");
    err = 0;
    status = getpwnam_fn("", &pw, buf, sizeof buf, &err);
    check(status == NSS_STATUS_NOTFOUND, "an empty name is NOTFOUND");
    char long_name[400];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    err = 0;
    status = getpwnam_fn(long_name, &pw, buf, sizeof buf, &err);
    check(status == NSS_STATUS_NOTFOUND, "a name longer than 255 bytes is NOTFOUND");
    err = 0;
    status = getpwuid_fn(4294967295u, &pw, buf, sizeof buf, &err);
    check(status == NSS_STATUS_NOTFOUND, "UID 4294967295 is NOTFOUND");
}

static void check_group(const char *group)
{
    struct group gr;
    for (size_t offset = 0; offset < sizeof(char *); offset++) {
        char *owned = NULL;
        smallest_buffer(by_grnam, group, &gr, offset, &owned, "getgrnam_r");
        if (owned == NULL)
            return;
        bool aligned = (uintptr_t)gr.gr_mem % _Alignof(char *) == 0;
        bool named = strcmp(gr.gr_name, group) == 0;
        group_gid = gr.gr_gid;
        free(owned);
        if (!aligned || !named) {
            check(false, "getgrnam_r in a misaligned buffer");
            return;
        }
    }
    check(true, "getgrnam_r: ERANGE below the needed size, aligned gr_mem at every offset");

    char *owned = NULL;
    smallest_buffer(by_grgid, &group_gid, &gr, 3, &owned, "getgrgid_r");
    if (owned != NULL) {
        size_t members = 0;
        while (gr.gr_mem[members] != NULL)
            members++;
        check(strcmp(gr.gr_name, group) == 0 && members >= 1, "getgrgid_r returns the group");
        free(owned);
    }
    char buf[256];
    int err = 0;
    check(getgrnam_fn("no-such-group-at-all", &gr, buf, sizeof buf, &err) == NSS_STATUS_NOTFOUND,
          "an unknown group is NOTFOUND");
}

static void check_initgroups(const char *user)
{
    long int start = 0, size = 1;
    gid_t *groups = malloc(sizeof *groups);
    int err = 0;
    enum nss_status status = initgroups_fn(user, group_gid, &start, &size, &groups, 0, &err);
    check(status == NSS_STATUS_SUCCESS, "initgroups_dyn succeeds");
    bool skipped = true;
    for (long int i = 0; i < start; i++)
        skipped = skipped && groups[i] != group_gid;
    check(skipped, "initgroups_dyn skips the gid passed as `group`");
    check(start <= size, "initgroups_dyn keeps start within size");
    free(groups);

    /* Without skipping GROUP it must appear, and the array grows from size 1. */
    start = 0;
    size = 1;
    groups = malloc(sizeof *groups);
    status = initgroups_fn(user, user_gid, &start, &size, &groups, 0, &err);
    bool found = false;
    for (long int i = 0; i < start; i++)
        found = found || groups[i] == group_gid;
    check(status == NSS_STATUS_SUCCESS && found, "initgroups_dyn lists the user's group");
    free(groups);

    /* A limit is never exceeded: one slot, already holding one gid. */
    start = 1;
    size = 1;
    groups = malloc(sizeof *groups);
    groups[0] = 4242;
    status = initgroups_fn(user, user_gid, &start, &size, &groups, 1, &err);
    check(status == NSS_STATUS_SUCCESS && start == 1 && size == 1 && groups[0] == 4242,
          "initgroups_dyn respects limit");
    free(groups);

    start = 0;
    size = 4;
    groups = malloc(4 * sizeof *groups);
    status = initgroups_fn("no-such-user-at-all", user_gid, &start, &size, &groups, 0, &err);
    check(status == NSS_STATUS_NOTFOUND && start == 0, "initgroups_dyn of an unknown user");
    free(groups);
}

static void check_shadow(const char *user)
{
    struct spwd sp;
    char *owned = NULL;
    if (geteuid() != 0) {
        char buf[256];
        int err = 0;
        enum nss_status status = getspnam_fn(user, &sp, buf, sizeof buf, &err);
        check(status == NSS_STATUS_UNAVAIL && err == EACCES, "getspnam_r is refused to non-root");
        return;
    }
    smallest_buffer(by_spnam, user, &sp, 0, &owned, "getspnam_r");
    if (owned == NULL)
        return;
    check(strcmp(sp.sp_namp, user) == 0 && sp.sp_flag == ~0UL &&
              (strcmp(sp.sp_pwdp, "*") == 0 || strcmp(sp.sp_pwdp, "!*") == 0),
          "getspnam_r fills struct spwd, sp_flag ~0UL");
    free(owned);
}

/* ---- enumeration --------------------------------------------------------------- */

static char *entries[2][MAX_ENTRIES];

/* Enumerates everything. With `grow`, each entry is first asked for with a
 * 1-byte buffer and then with buffers doubling from 16 bytes, as glibc's
 * getpwent does, so every entry is seen after at least one ERANGE. */
static size_t enumerate(bool passwd, bool grow, char **names, bool *clean)
{
    size_t count = 0;
    *clean = true;
    if (passwd)
        setpwent_fn(0);
    else
        setgrent_fn(0);
    for (;;) {
        union {
            struct passwd pw;
            struct group gr;
        } result;
        size_t size = grow ? 1 : BIG_BUFFER_BYTES;
        enum nss_status status;
        int err;
        for (;;) {
            char *buf = malloc(size);
            err = 0;
            status = passwd ? getpwent_fn(&result.pw, buf, size, &err)
                            : getgrent_fn(&result.gr, buf, size, &err);
            if (status == NSS_STATUS_SUCCESS && count < MAX_ENTRIES)
                names[count++] = strdup(passwd ? result.pw.pw_name : result.gr.gr_name);
            free(buf);
            if (status != NSS_STATUS_TRYAGAIN || err != ERANGE)
                break;
            size = size < 16 ? 16 : 2 * size;
        }
        if (status == NSS_STATUS_NOTFOUND)
            break;
        if (status != NSS_STATUS_SUCCESS) {
            *clean = false;
            break;
        }
    }
    if (*clean) {
        /* At the end it stays at the end; it does not start over. */
        char buf[4096];
        int err = 0;
        union {
            struct passwd pw;
            struct group gr;
        } result;
        enum nss_status again = passwd ? getpwent_fn(&result.pw, buf, sizeof buf, &err)
                                       : getgrent_fn(&result.gr, buf, sizeof buf, &err);
        *clean = again == NSS_STATUS_NOTFOUND;
    }
    if (passwd)
        endpwent_fn();
    else
        endgrent_fn();
    return count;
}

static void check_enumeration(bool passwd, const char *expected_name)
{
    const char *what = passwd ? "getpwent_r" : "getgrent_r";
    char message[256];
    bool clean_big, clean_small;
    size_t big = enumerate(passwd, false, entries[0], &clean_big);
    size_t small = enumerate(passwd, true, entries[1], &clean_small);
    snprintf(message, sizeof message, "%s enumerates to NOTFOUND and stays there (%zu entries)",
             what, big);
    check(clean_big && clean_small, message);
    bool same = big == small;
    bool seen = false;
    for (size_t i = 0; i < big && i < small; i++) {
        same = same && strcmp(entries[0][i], entries[1][i]) == 0;
        seen = seen || strcmp(entries[0][i], expected_name) == 0;
    }
    snprintf(message, sizeof message, "%s loses no entry after ERANGE (%zu vs %zu)", what, big,
             small);
    check(same, message);
    snprintf(message, sizeof message, "%s lists %s", what, expected_name);
    check(seen, message);
    for (int run = 0; run < 2; run++)
        for (size_t i = 0; i < (run ? small : big); i++)
            free(entries[run][i]);
}

/* ---- threads and fork ------------------------------------------------------- */

static const char *thread_user;
static const char *thread_group;

static void *lookups_in_a_thread(void *arg)
{
    intptr_t wrong = 0;
    size_t size = BIG_BUFFER_BYTES;
    char *buf = malloc(size);
    (void)arg;
    for (int i = 0; i < LOOKUPS_PER_THREAD; i++) {
        struct passwd pw;
        struct group gr;
        int err = 0;
        switch (i % 4) {
        case 0:
            wrong += getpwnam_fn(thread_user, &pw, buf, size, &err) != NSS_STATUS_SUCCESS ||
                     pw.pw_uid != user_uid;
            break;
        case 1:
            wrong += getpwuid_fn(user_uid, &pw, buf, size, &err) != NSS_STATUS_SUCCESS ||
                     strcmp(pw.pw_name, thread_user) != 0;
            break;
        case 2:
            wrong += getgrnam_fn(thread_group, &gr, buf, size, &err) != NSS_STATUS_SUCCESS ||
                     gr.gr_gid != group_gid;
            break;
        default:
            wrong += getpwnam_fn("no-such-user-at-all", &pw, buf, size, &err) !=
                     NSS_STATUS_NOTFOUND;
        }
    }
    free(buf);
    return (void *)wrong;
}

static void check_threads(const char *user, const char *group)
{
    pthread_t threads[THREADS];
    thread_user = user;
    thread_group = group;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, lookups_in_a_thread, NULL);
    intptr_t wrong = 0;
    for (int i = 0; i < THREADS; i++) {
        void *result;
        pthread_join(threads[i], &result);
        wrong += (intptr_t)result;
    }
    char message[128];
    snprintf(message, sizeof message, "%d threads x %d lookups at once: %ld wrong answers", THREADS,
             LOOKUPS_PER_THREAD, (long)wrong);
    check(wrong == 0, message);
}

static void check_fork(const char *user)
{
    struct passwd pw;
    char buf[4096];
    int err = 0;
    getpwnam_fn(user, &pw, buf, sizeof buf, &err); /* the parent now has a cached connection */
    pid_t child = fork();
    if (child == 0) {
        int ok = 0;
        for (int i = 0; i < 20; i++)
            ok += getpwnam_fn(user, &pw, buf, sizeof buf, &err) == NSS_STATUS_SUCCESS &&
                  strcmp(pw.pw_name, user) == 0;
        _exit(ok == 20 ? 0 : 1);
    }
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += getpwuid_fn(user_uid, &pw, buf, sizeof buf, &err) == NSS_STATUS_SUCCESS &&
              strcmp(pw.pw_name, user) == 0;
    int child_status = 0;
    waitpid(child, &child_status, 0);
    check(ok == 20 && WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0,
          "parent and forked child both look up over their own connections");
}

static void check_disabled(const char *user)
{
    struct passwd pw;
    char buf[4096];
    int err = 0;
    setenv("ROSTERD_NSS_DISABLE", "1", 1);
    enum nss_status status = getpwnam_fn(user, &pw, buf, sizeof buf, &err);
    unsetenv("ROSTERD_NSS_DISABLE");
    check(status == NSS_STATUS_UNAVAIL, "ROSTERD_NSS_DISABLE=1 answers UNAVAIL");
}

static int time_one_lookup(const char *user)
{
    struct passwd pw;
    char buf[4096];
    int err = 0;
    double started = now_ms();
    enum nss_status status = getpwnam_fn(user, &pw, buf, sizeof buf, &err);
    double elapsed = now_ms() - started;
    const char *name = status == NSS_STATUS_SUCCESS    ? "SUCCESS"
                       : status == NSS_STATUS_NOTFOUND ? "NOTFOUND"
                       : status == NSS_STATUS_UNAVAIL  ? "UNAVAIL"
                       : status == NSS_STATUS_TRYAGAIN ? "TRYAGAIN"
                                                       : "OTHER";
    printf("%s %d %.1f\n", name, err, elapsed);
    return 0;
}

static int list(bool passwd)
{
    bool clean;
    size_t count = enumerate(passwd, true, entries[0], &clean);
    for (size_t i = 0; i < count; i++) {
        printf("%s\n", entries[0][i]);
        free(entries[0][i]);
    }
    printf("%s\n", clean ? "END" : "FAILED");
    return clean ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[2], "--time") == 0) {
        load(argv[1]);
        return time_one_lookup(argv[3]);
    }
    if (argc == 4 && strcmp(argv[2], "--twice") == 0) {
        load(argv[1]);
        time_one_lookup(argv[3]);
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL)
            return 100;
        return time_one_lookup(argv[3]);
    }
    if (argc == 4 && strcmp(argv[2], "--list") == 0) {
        load(argv[1]);
        return list(strcmp(argv[3], "passwd") == 0);
    }
    if (argc != 4) {
        fprintf(stderr, "usage: nss_direct MODULE.so USER GROUP | MODULE.so --time USER\n");
        return 100;
    }
    const char *user = argv[2], *group = argv[3];
    load(argv[1]);
    check_passwd(user);
    check_group(group);
    check_initgroups(user);
    check_shadow(user);
    check_enumeration(true, user);
    check_enumeration(false, group);
    check_threads(user, group);
    check_fork(user);
    check_disabled(user);
    printf("%d failed\n", failures);
    return failures > 100 ? 100 : failures;
}
