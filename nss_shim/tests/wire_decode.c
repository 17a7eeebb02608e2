/* Decodes one wire vector (tests/wire_vectors/) with wire.h and prints it as getent would.
 *
 *   wire_decode KIND FILE          print the decoding, or "error" (exit 1) if rejected
 *   wire_decode --mutate KIND FILE decode every truncation and many corruptions of FILE
 *
 * KIND is passwd, group, shadow, initgroups, pwpage, grpage or account. Besides printing,
 * every accepted record is decoded again into every smaller buffer (each its own
 * exact-size allocation, so valgrind or ASan sees any overrun), which must give
 * WIRE_BUFFER_TOO_SMALL, and groups into misaligned buffers, whose gr_mem must
 * still be aligned. An inconsistency prints "inconsistent: ..." and exits 3.
 * --mutate prints nothing but a count; it exits 0 unless something is inconsistent
 * (a crash is the other way it can fail).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../wire.h"

#define MAX_VECTOR_BYTES (1024 * 1024)

static bool quiet; /* --mutate: check, do not print */

static void fail(const char *what)
{
    printf("inconsistent: %s\n", what);
    exit(3);
}

/* Decodes into a buffer of exactly buflen bytes placed `offset` bytes into an
 * allocation, so reads and writes past it are visible to memory checkers. */
typedef int fill_fn(const void *view, void *result, char *buf, size_t buflen);

static int fill_in_exact_buffer(fill_fn *fill, const void *view, void *result, size_t buflen,
                                size_t offset, char **owned)
{
    char *block = malloc(buflen + offset + 1);
    if (block == NULL)
        fail("out of memory");
    int rc = fill(view, result, block + offset, buflen);
    *owned = block;
    return rc;
}

/* Finds the smallest buffer that works and checks every smaller one fails cleanly. */
static void check_buffer_sizes(fill_fn *fill, const void *view, void *result, size_t offset)
{
    for (size_t buflen = 0;; buflen++) {
        char *owned;
        int rc = fill_in_exact_buffer(fill, view, result, buflen, offset, &owned);
        free(owned);
        if (rc == WIRE_OK)
            return;
        if (rc != WIRE_BUFFER_TOO_SMALL)
            fail("a checked record failed to fill");
        if (buflen > MAX_VECTOR_BYTES * 16)
            fail("no buffer size is big enough");
    }
}

static int fill_passwd(const void *view, void *result, char *buf, size_t buflen)
{
    return wire_fill_passwd(view, result, buf, buflen);
}

static int fill_group(const void *view, void *result, char *buf, size_t buflen)
{
    int rc = wire_fill_group(view, result, buf, buflen);
    if (rc == WIRE_OK && ((uintptr_t)((struct group *)result)->gr_mem % _Alignof(char *)) != 0)
        fail("gr_mem is misaligned");
    return rc;
}

static int fill_shadow(const void *view, void *result, char *buf, size_t buflen)
{
    return wire_fill_shadow(view, result, buf, buflen);
}

static void print_passwd(const struct passwd *pw)
{
    if (!quiet)
        printf("%s:%s:%u:%u:%s:%s:%s\n", pw->pw_name, pw->pw_passwd, (unsigned)pw->pw_uid,
               (unsigned)pw->pw_gid, pw->pw_gecos, pw->pw_dir, pw->pw_shell);
}

static void print_group(const struct group *gr)
{
    if (quiet)
        return;
    printf("%s:%s:%u:", gr->gr_name, gr->gr_passwd, (unsigned)gr->gr_gid);
    for (char **m = gr->gr_mem; *m != NULL; m++)
        printf("%s%s", m == gr->gr_mem ? "" : ",", *m);
    printf("\n");
}

/* shadow(5) as getent prints it: -1 and sp_flag ~0 are empty fields. */
static void print_day(long value)
{
    if (value != -1)
        printf("%ld", value);
    printf(":");
}

static void print_shadow(const struct spwd *sp)
{
    if (quiet)
        return;
    printf("%s:%s:", sp->sp_namp, sp->sp_pwdp);
    print_day(sp->sp_lstchg);
    print_day(sp->sp_min);
    print_day(sp->sp_max);
    print_day(sp->sp_warn);
    print_day(sp->sp_inact);
    print_day(sp->sp_expire);
    if (sp->sp_flag != ~0UL)
        printf("%lu", sp->sp_flag);
    printf("\n");
}

/* Fills a passwd view into a generous buffer, prints it, then checks all smaller sizes. */
static int emit_passwd(const struct wire_passwd_view *v)
{
    struct passwd pw;
    char *owned;
    if (fill_in_exact_buffer(fill_passwd, v, &pw, 64 * 1024 + 5 * 65536, 0, &owned) != WIRE_OK)
        fail("passwd did not fit a buffer of every field's maximum");
    print_passwd(&pw);
    free(owned);
    check_buffer_sizes(fill_passwd, v, &pw, 0);
    return 0;
}

static int emit_group(const struct wire_group_view *v)
{
    struct group gr;
    size_t big = (size_t)v->member_count * (sizeof(char *) + 65537) + 3 * 65537 + 16;
    char *owned;
    if (fill_in_exact_buffer(fill_group, v, &gr, big, 0, &owned) != WIRE_OK)
        fail("group did not fit a buffer of every field's maximum");
    print_group(&gr);
    free(owned);
    for (size_t offset = 0; offset < sizeof(char *); offset++)
        check_buffer_sizes(fill_group, v, &gr, offset);
    return 0;
}

static int decode(const char *kind, const uint8_t *bytes, size_t len)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    if (strcmp(kind, "passwd") == 0) {
        struct wire_passwd_view v;
        if (wire_read_passwd(&c, &v) != WIRE_OK || c.left != 0)
            return 1;
        return emit_passwd(&v);
    }
    if (strcmp(kind, "group") == 0) {
        struct wire_group_view v;
        if (wire_read_group(&c, &v) != WIRE_OK || c.left != 0)
            return 1;
        return emit_group(&v);
    }
    if (strcmp(kind, "shadow") == 0) {
        struct wire_shadow_view v;
        struct spwd sp;
        char *owned;
        if (wire_read_shadow(&c, &v) != WIRE_OK || c.left != 0)
            return 1;
        if (fill_in_exact_buffer(fill_shadow, &v, &sp, 2 * 65537, 0, &owned) != WIRE_OK)
            fail("shadow did not fit a buffer of every field's maximum");
        print_shadow(&sp);
        free(owned);
        check_buffer_sizes(fill_shadow, &v, &sp, 0);
        return 0;
    }
    if (strcmp(kind, "initgroups") == 0) {
        uint32_t count;
        const uint8_t *gids;
        if (wire_read_gid_list(bytes, len, &count, &gids) != WIRE_OK)
            return 1;
        for (uint32_t i = 0; i < count && !quiet; i++)
            printf("%s%" PRIu32, i ? " " : "", wire_get_u32(gids + 4 * (size_t)i));
        if (count > 0 && !quiet)
            printf("\n");
        return 0;
    }
    if (strcmp(kind, "account") == 0) {
        struct wire_account_view v;
        if (wire_read_account(bytes, len, &v) != WIRE_OK)
            return 1;
        if (!quiet)
            printf("active %u home_mode %04o home_root %.*s skel_dir %.*s\n", (unsigned)v.active,
                   (unsigned)v.home_mode, (int)v.home_root.len, (const char *)v.home_root.bytes,
                   (int)v.skel_dir.len, (const char *)v.skel_dir.bytes);
        return emit_passwd(&v.passwd);
    }
    if (strcmp(kind, "pwpage") == 0 || strcmp(kind, "grpage") == 0) {
        uint16_t page_kind = kind[0] == 'p' ? WIRE_GETPWENT : WIRE_GETGRENT;
        uint32_t count;
        uint64_t next_cursor;
        struct wire_cursor records;
        if (wire_check_page(page_kind, bytes, len, &count, &next_cursor, &records) != WIRE_OK)
            return 1;
        for (uint32_t i = 0; i < count; i++) {
            if (page_kind == WIRE_GETPWENT) {
                struct wire_passwd_view v;
                if (wire_read_passwd(&records, &v) != WIRE_OK)
                    fail("a checked page has a bad passwd record");
                emit_passwd(&v);
            } else {
                struct wire_group_view v;
                if (wire_read_group(&records, &v) != WIRE_OK)
                    fail("a checked page has a bad group record");
                emit_group(&v);
            }
        }
        if (records.left != 0)
            fail("a checked page has trailing bytes");
        if (!quiet)
            printf("next_cursor %" PRIu64 "\n", next_cursor);
        return 0;
    }
    fprintf(stderr, "wire_decode: unknown kind %s\n", kind);
    exit(2);
}

/* Decodes a private, exact-size copy, so an overread past the range is visible. */
static int decode_copy(const char *kind, const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        fail("out of memory");
    if (len > 0)
        memcpy(copy, bytes, len);
    int rc = decode(kind, len > 0 ? copy : NULL, len);
    free(copy);
    return rc;
}

static int mutate(const char *kind, const uint8_t *bytes, size_t len)
{
    static const uint8_t replacements[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    size_t runs = 0;
    quiet = true;
    for (size_t cut = 0; cut <= len; cut++, runs++)
        decode_copy(kind, bytes, cut);
    uint8_t *work = malloc(len > 0 ? len : 1);
    if (work == NULL)
        fail("out of memory");
    for (size_t i = 0; i < len; i++) {
        for (size_t r = 0; r < sizeof replacements; r++, runs++) {
            memcpy(work, bytes, len);
            work[i] = replacements[r];
            decode_copy(kind, work, len);
        }
    }
    free(work);
    printf("%zu variants decoded or rejected\n", runs);
    return 0;
}

int main(int argc, char **argv)
{
    bool mutating = argc == 4 && strcmp(argv[1], "--mutate") == 0;
    if (argc != 3 && !mutating) {
        fprintf(stderr, "usage: wire_decode [--mutate] KIND FILE\n");
        return 2;
    }
    const char *kind = argv[argc - 2];
    FILE *f = fopen(argv[argc - 1], "rb");
    if (f == NULL) {
        perror(argv[argc - 1]);
        return 2;
    }
    static uint8_t bytes[MAX_VECTOR_BYTES];
    size_t len = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    if (mutating)
        return mutate(kind, bytes, len);
    if (decode_copy(kind, bytes, len) != 0) {
        printf("error\n");
        return 1;
    }
    return 0;
}
