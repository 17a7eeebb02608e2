/* The C side of proto/nss-wire.md: its constants, frame headers and record decoders.
 *
 * daemon/rosterd/nss_wire.py is the Python side; both are checked against the
 * vectors in tests/wire_vectors/. A decoder takes a byte range (a reply payload
 * today, a memory-mapped snapshot later), never a socket: it reads integers
 * byte by byte (no alignment assumed), bounds every length by the bytes that
 * remain, rejects a NUL inside a string, and fills a caller's struct and buffer
 * the way glibc's reentrant lookups expect (nss(5), getpwnam_r(3)).
 *
 * Every record is read in two steps: wire_read_* checks the whole record and
 * notes where its fields are (a view into the range), then wire_fill_* copies a
 * view into the caller's buffer. So a malformed record is always WIRE_MALFORMED,
 * whatever the buffer size, and glibc never grows its buffer for garbage.
 */
#ifndef ROSTER_WIRE_H
#define ROSTER_WIRE_H

#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define WIRE_VERSION 1u
#define WIRE_HEADER_BYTES 8u
#define MAX_REQUEST_PAYLOAD_BYTES 1024u
#define MAX_REPLY_PAYLOAD_BYTES (16u * 1024u * 1024u)
#define MAX_NAME_BYTES 255u
#define WIRE_PAGE_HEAD_BYTES 12u

/* Request kinds, named after the libc call each serves. */
enum wire_kind {
    WIRE_GETPWNAM = 1,
    WIRE_GETPWUID = 2,
    WIRE_GETGRNAM = 3,
    WIRE_GETGRGID = 4,
    WIRE_INITGROUPS = 5,
    WIRE_GETSPNAM = 6,
    WIRE_GETPWENT = 7,
    WIRE_GETGRENT = 8,
    WIRE_PING = 9,
    WIRE_ACCOUNT = 10, /* not a libc call: pam_roster's one question */
};

/* Reply statuses. */
enum wire_status {
    WIRE_STATUS_OK = 0,
    WIRE_STATUS_NOT_FOUND = 1,
    WIRE_STATUS_BAD_REQUEST = 2,
    WIRE_STATUS_PERMISSION_DENIED = 3,
    WIRE_STATUS_UNSUPPORTED_VERSION = 4,
    WIRE_STATUS_TRY_AGAIN = 5,
};

/* Results of the decoders. */
enum wire_result {
    WIRE_OK = 0,
    WIRE_MALFORMED = -1,        /* the bytes do not follow proto/nss-wire.md */
    WIRE_BUFFER_TOO_SMALL = -2, /* the record is fine; the caller's buffer is not */
};

/* A byte range being read; `left` never exceeds what `next` may read. */
struct wire_cursor {
    const uint8_t *next;
    size_t left;
};

/* A `str` field: points into the range, not NUL-terminated, never contains NUL. */
struct wire_str {
    const uint8_t *bytes;
    size_t len;
};

struct wire_passwd_view {
    uint32_t uid;
    uint32_t gid;
    struct wire_str name, passwd, gecos, dir, shell;
};

struct wire_group_view {
    uint32_t gid;
    struct wire_str name, passwd;
    uint32_t member_count;
    struct wire_cursor members; /* member_count checked `str`s, exactly */
};

struct wire_shadow_view {
    struct wire_str name, passwd;
    int32_t lstchg, min, max, warn, inact, expire;
};

/* An ACCOUNT reply: whether the account may sign in, the host's home settings
 * (rosterd's [provisioning]) and the user's passwd record. */
struct wire_account_view {
    uint8_t active;     /* 0 or 1 */
    uint32_t home_mode; /* permission bits, at most 07777 */
    struct wire_str home_root, skel_dir;
    struct wire_passwd_view passwd;
};

static inline struct wire_cursor wire_cursor_of(const void *bytes, size_t len)
{
    struct wire_cursor cur = { (const uint8_t *)bytes, bytes != NULL ? len : 0 };
    return cur;
}

/* ---- integers, little-endian, any alignment ---------------------------- */

static inline uint16_t wire_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t wire_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t wire_get_u64(const uint8_t *p)
{
    return (uint64_t)wire_get_u32(p) | ((uint64_t)wire_get_u32(p + 4) << 32);
}

static inline void wire_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void wire_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wire_put_u64(uint8_t *p, uint64_t v)
{
    wire_put_u32(p, (uint32_t)v);
    wire_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline int wire_take_u32(struct wire_cursor *cur, uint32_t *out)
{
    if (cur->left < 4)
        return WIRE_MALFORMED;
    *out = wire_get_u32(cur->next);
    cur->next += 4;
    cur->left -= 4;
    return WIRE_OK;
}

static inline int wire_take_u64(struct wire_cursor *cur, uint64_t *out)
{
    if (cur->left < 8)
        return WIRE_MALFORMED;
    *out = wire_get_u64(cur->next);
    cur->next += 8;
    cur->left -= 8;
    return WIRE_OK;
}

static inline int wire_take_i32(struct wire_cursor *cur, int32_t *out)
{
    uint32_t raw;
    if (wire_take_u32(cur, &raw) != WIRE_OK)
        return WIRE_MALFORMED;
    /* Two's complement by value, without an implementation-defined cast. */
    *out = raw <= INT32_MAX ? (int32_t)raw : (int32_t)(raw - 0x80000000u) - INT32_MAX - 1;
    return WIRE_OK;
}

static inline int wire_take_str(struct wire_cursor *cur, struct wire_str *out)
{
    if (cur->left < 2)
        return WIRE_MALFORMED;
    size_t len = wire_get_u16(cur->next);
    if (cur->left - 2 < len)
        return WIRE_MALFORMED;
    const uint8_t *bytes = cur->next + 2;
    /* The buffer is handed to C code as a C string (proto/nss-wire.md). */
    if (len > 0 && memchr(bytes, '\0', len) != NULL)
        return WIRE_MALFORMED;
    out->bytes = bytes;
    out->len = len;
    cur->next += 2 + len;
    cur->left -= 2 + len;
    return WIRE_OK;
}

/* ---- frame headers ------------------------------------------------------ */

static inline void wire_put_request_header(uint8_t header[WIRE_HEADER_BYTES], uint16_t kind,
                                           uint32_t payload_bytes)
{
    wire_put_u16(header, (uint16_t)WIRE_VERSION);
    wire_put_u16(header + 2, kind);
    wire_put_u32(header + 4, payload_bytes);
}

/* Checks a reply header: version 1 and a payload within MAX_REPLY_PAYLOAD_BYTES. */
static inline int wire_parse_reply_header(const uint8_t header[WIRE_HEADER_BYTES], uint16_t *status,
                                          uint32_t *payload_bytes)
{
    if (wire_get_u16(header) != WIRE_VERSION)
        return WIRE_MALFORMED;
    uint32_t len = wire_get_u32(header + 4);
    if (len > MAX_REPLY_PAYLOAD_BYTES)
        return WIRE_MALFORMED;
    *status = wire_get_u16(header + 2);
    *payload_bytes = len;
    return WIRE_OK;
}

/* ---- records: read (check and locate) ----------------------------------- */

static inline int wire_read_passwd(struct wire_cursor *cur, struct wire_passwd_view *v)
{
    struct wire_cursor c = *cur;
    if (wire_take_u32(&c, &v->uid) || wire_take_u32(&c, &v->gid) || wire_take_str(&c, &v->name) ||
        wire_take_str(&c, &v->passwd) || wire_take_str(&c, &v->gecos) ||
        wire_take_str(&c, &v->dir) || wire_take_str(&c, &v->shell))
        return WIRE_MALFORMED;
    *cur = c;
    return WIRE_OK;
}

static inline int wire_read_group(struct wire_cursor *cur, struct wire_group_view *v)
{
    struct wire_cursor c = *cur;
    if (wire_take_u32(&c, &v->gid) || wire_take_str(&c, &v->name) ||
        wire_take_str(&c, &v->passwd) || wire_take_u32(&c, &v->member_count))
        return WIRE_MALFORMED;
    /* Each member takes at least its 2-byte length: reject an absurd count at once. */
    if (v->member_count > c.left / 2)
        return WIRE_MALFORMED;
    v->members = c;
    for (uint32_t i = 0; i < v->member_count; i++) {
        struct wire_str member;
        if (wire_take_str(&c, &member) != WIRE_OK)
            return WIRE_MALFORMED;
    }
    v->members.left = (size_t)(c.next - v->members.next);
    *cur = c;
    return WIRE_OK;
}

static inline int wire_read_shadow(struct wire_cursor *cur, struct wire_shadow_view *v)
{
    struct wire_cursor c = *cur;
    if (wire_take_str(&c, &v->name) || wire_take_str(&c, &v->passwd) ||
        wire_take_i32(&c, &v->lstchg) || wire_take_i32(&c, &v->min) ||
        wire_take_i32(&c, &v->max) || wire_take_i32(&c, &v->warn) ||
        wire_take_i32(&c, &v->inact) || wire_take_i32(&c, &v->expire))
        return WIRE_MALFORMED;
    *cur = c;
    return WIRE_OK;
}

/* A whole ACCOUNT payload: u8 active, u32 home_mode, str home_root, str
 * skel_dir, one passwd record, no trailing bytes. */
static inline int wire_read_account(const void *bytes, size_t len, struct wire_account_view *v)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    if (c.left < 1)
        return WIRE_MALFORMED;
    v->active = c.next[0];
    c.next++;
    c.left--;
    if (v->active > 1 || wire_take_u32(&c, &v->home_mode) || v->home_mode > 07777 ||
        wire_take_str(&c, &v->home_root) || wire_take_str(&c, &v->skel_dir) ||
        wire_read_passwd(&c, &v->passwd) || c.left != 0)
        return WIRE_MALFORMED;
    return WIRE_OK;
}

/* A page head: u32 count, u64 next_cursor. */
static inline int wire_read_page_head(struct wire_cursor *cur, uint32_t *count, uint64_t *next_cursor)
{
    struct wire_cursor c = *cur;
    if (wire_take_u32(&c, count) || wire_take_u64(&c, next_cursor))
        return WIRE_MALFORMED;
    *cur = c;
    return WIRE_OK;
}

/* An INITGROUPS payload: u32 count, then exactly count u32 GIDs. On success
 * `gids` points at the first GID; read the i-th with wire_get_u32(gids + 4 * i). */
static inline int wire_read_gid_list(const void *bytes, size_t len, uint32_t *count,
                                     const uint8_t **gids)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    if (wire_take_u32(&c, count) != WIRE_OK || c.left / 4 != *count || c.left % 4 != 0)
        return WIRE_MALFORMED;
    *gids = c.next;
    return WIRE_OK;
}

/* ---- records: fill the caller's buffer ---------------------------------- */

/* Hands out NUL-terminated copies from one caller buffer. */
struct wire_arena {
    char *next;
    size_t left;
};

static inline char *wire_arena_copy(struct wire_arena *arena, struct wire_str s)
{
    char *dst = arena->next;
    if (s.len > 0)
        memcpy(dst, s.bytes, s.len);
    dst[s.len] = '\0';
    arena->next += s.len + 1;
    arena->left -= s.len + 1;
    return dst;
}

/* Adds s.len + 1 to *total; returns nonzero on overflow. */
static inline int wire_add_str_bytes(size_t *total, struct wire_str s)
{
    return __builtin_add_overflow(*total, s.len + 1, total);
}

static inline int wire_fill_passwd(const struct wire_passwd_view *v, struct passwd *pw, char *buf,
                                   size_t buflen)
{
    size_t need = 0;
    const struct wire_str *fields[] = { &v->name, &v->passwd, &v->gecos, &v->dir, &v->shell };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (wire_add_str_bytes(&need, *fields[i]))
            return WIRE_BUFFER_TOO_SMALL;
    if (buf == NULL || need > buflen)
        return WIRE_BUFFER_TOO_SMALL;
    struct wire_arena arena = { buf, buflen };
    pw->pw_name = wire_arena_copy(&arena, v->name);
    pw->pw_passwd = wire_arena_copy(&arena, v->passwd);
    pw->pw_uid = (uid_t)v->uid;
    pw->pw_gid = (gid_t)v->gid;
    pw->pw_gecos = wire_arena_copy(&arena, v->gecos);
    pw->pw_dir = wire_arena_copy(&arena, v->dir);
    pw->pw_shell = wire_arena_copy(&arena, v->shell);
    return WIRE_OK;
}

/* gr_mem is an array of char * inside the caller's buffer: it goes first, at
 * the first suitably aligned address, and the strings follow it. */
static inline int wire_fill_group(const struct wire_group_view *v, struct group *gr, char *buf,
                                  size_t buflen)
{
    if (buf == NULL)
        return WIRE_BUFFER_TOO_SMALL;
    size_t pad = (size_t)(-(uintptr_t)buf) & (_Alignof(char *) - 1);
    size_t need = pad, array_bytes;
    if (__builtin_mul_overflow((size_t)v->member_count + 1, sizeof(char *), &array_bytes) ||
        __builtin_add_overflow(need, array_bytes, &need) || wire_add_str_bytes(&need, v->name) ||
        wire_add_str_bytes(&need, v->passwd))
        return WIRE_BUFFER_TOO_SMALL;
    struct wire_cursor c = v->members;
    for (uint32_t i = 0; i < v->member_count; i++) {
        struct wire_str member;
        if (wire_take_str(&c, &member) != WIRE_OK)
            return WIRE_MALFORMED; /* not reached for a view from wire_read_group */
        if (wire_add_str_bytes(&need, member))
            return WIRE_BUFFER_TOO_SMALL;
    }
    if (need > buflen)
        return WIRE_BUFFER_TOO_SMALL;

    char **members = (char **)(void *)(buf + pad);
    struct wire_arena arena = { buf + pad + array_bytes, buflen - pad - array_bytes };
    gr->gr_name = wire_arena_copy(&arena, v->name);
    gr->gr_passwd = wire_arena_copy(&arena, v->passwd);
    gr->gr_gid = (gid_t)v->gid;
    c = v->members;
    for (uint32_t i = 0; i < v->member_count; i++) {
        struct wire_str member;
        if (wire_take_str(&c, &member) != WIRE_OK)
            return WIRE_MALFORMED;
        members[i] = wire_arena_copy(&arena, member);
    }
    members[v->member_count] = NULL;
    gr->gr_mem = members;
    return WIRE_OK;
}

static inline int wire_fill_shadow(const struct wire_shadow_view *v, struct spwd *sp, char *buf,
                                   size_t buflen)
{
    size_t need = 0;
    if (wire_add_str_bytes(&need, v->name) || wire_add_str_bytes(&need, v->passwd) ||
        buf == NULL || need > buflen)
        return WIRE_BUFFER_TOO_SMALL;
    struct wire_arena arena = { buf, buflen };
    sp->sp_namp = wire_arena_copy(&arena, v->name);
    sp->sp_pwdp = wire_arena_copy(&arena, v->passwd);
    sp->sp_lstchg = v->lstchg;
    sp->sp_min = v->min;
    sp->sp_max = v->max;
    sp->sp_warn = v->warn;
    sp->sp_inact = v->inact;
    sp->sp_expire = v->expire;
    /* Not on the wire; ~0 is what shadow(5) files give for an empty field. */
    sp->sp_flag = ~0UL;
    return WIRE_OK;
}

/* ---- whole payloads: one record, no trailing bytes ---------------------- */

static inline int wire_decode_passwd(const void *bytes, size_t len, struct passwd *pw, char *buf,
                                     size_t buflen)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    struct wire_passwd_view v;
    if (wire_read_passwd(&c, &v) != WIRE_OK || c.left != 0)
        return WIRE_MALFORMED;
    return wire_fill_passwd(&v, pw, buf, buflen);
}

static inline int wire_decode_group(const void *bytes, size_t len, struct group *gr, char *buf,
                                    size_t buflen)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    struct wire_group_view v;
    if (wire_read_group(&c, &v) != WIRE_OK || c.left != 0)
        return WIRE_MALFORMED;
    return wire_fill_group(&v, gr, buf, buflen);
}

static inline int wire_decode_shadow(const void *bytes, size_t len, struct spwd *sp, char *buf,
                                     size_t buflen)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    struct wire_shadow_view v;
    if (wire_read_shadow(&c, &v) != WIRE_OK || c.left != 0)
        return WIRE_MALFORMED;
    return wire_fill_shadow(&v, sp, buf, buflen);
}

/* Checks a whole page of passwd (kind WIRE_GETPWENT) or group (WIRE_GETGRENT)
 * records: the head, every record, no trailing bytes. On success `records` is
 * the range of the records, to read one at a time with wire_read_passwd or
 * wire_read_group. */
static inline int wire_check_page(uint16_t kind, const void *bytes, size_t len, uint32_t *count,
                                  uint64_t *next_cursor, struct wire_cursor *records)
{
    struct wire_cursor c = wire_cursor_of(bytes, len);
    if (wire_read_page_head(&c, count, next_cursor) != WIRE_OK)
        return WIRE_MALFORMED;
    *records = c;
    for (uint32_t i = 0; i < *count; i++) {
        int rc;
        if (kind == WIRE_GETPWENT) {
            struct wire_passwd_view pv;
            rc = wire_read_passwd(&c, &pv);
        } else {
            struct wire_group_view gv;
            rc = wire_read_group(&c, &gv);
        }
        if (rc != WIRE_OK)
            return WIRE_MALFORMED;
    }
    return c.left == 0 ? WIRE_OK : WIRE_MALFORMED;
}

#endif /* ROSTER_WIRE_H */
