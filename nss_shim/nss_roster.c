/* The glibc NSS entry points of libnss_roster.so.2 (and libnss_pwb.so.2), over client.c and wire.h.
 *
 * The same source builds both modules: NSS_MODULE_NAME (roster or pwb) names
 * the exported symbols, _nss_<name>_<function>, as glibc looks them up for a
 * `passwd: files <name>` line in nsswitch.conf (nss(5); glibc manual, "NSS
 * Modules Interface"). Every result goes through nss_status_of(), the one
 * place that decides what glibc is told.
 */
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <shadow.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "wire.h"

#ifndef NSS_MODULE_NAME
#error "build with -DNSS_MODULE_NAME=roster (or pwb)"
#endif

#define NSS_PASTE(module, function) _nss_##module##_##function
#define NSS_EXPAND(module, function) NSS_PASTE(module, function)
#define NSS_SYMBOL(function) NSS_EXPAND(NSS_MODULE_NAME, function)
/* Declares an entry point with glibc's own type from <nss.h>, so a wrong
 * prototype fails to compile, and exports it (everything else is hidden). */
#define NSS_EXPORT(function) \
    extern nss_##function NSS_SYMBOL(function) __attribute__((visibility("default")))

NSS_EXPORT(getpwnam_r);
NSS_EXPORT(getpwuid_r);
NSS_EXPORT(setpwent);
NSS_EXPORT(getpwent_r);
NSS_EXPORT(endpwent);
NSS_EXPORT(getgrnam_r);
NSS_EXPORT(getgrgid_r);
NSS_EXPORT(setgrent);
NSS_EXPORT(getgrent_r);
NSS_EXPORT(endgrent);
NSS_EXPORT(initgroups_dyn);
NSS_EXPORT(getspnam_r);

/* What glibc is told, from the client's result, the daemon's reply status and
 * the decoder's result (each consulted only when the one before it is OK).
 * glibc's conventions (manual, "NSS Modules Interface"): TRYAGAIN with ERANGE
 * makes the caller retry with a bigger buffer, so it is reserved for exactly
 * that; NOTFOUND with ENOENT is an ordinary miss; UNAVAIL means this source
 * could not answer, and glibc moves on to the next one. */
static enum nss_status nss_status_of(int client_rc, const struct roster_reply *reply, int decode_rc,
                                     int *errnop)
{
    switch (client_rc) {
    case ROSTER_OK:
        break;
    case ROSTER_NO_MEMORY:
        *errnop = ENOMEM;
        return NSS_STATUS_TRYAGAIN;
    case ROSTER_DISABLED:
        *errnop = ENOENT;
        return NSS_STATUS_UNAVAIL;
    default: /* unreachable, timed out, I/O error, garbage header */
        *errnop = reply->error_number != 0 && reply->error_number != ERANGE ? reply->error_number
                                                                             : ENOENT;
        return NSS_STATUS_UNAVAIL;
    }
    switch (reply->status) {
    case WIRE_STATUS_OK:
        break;
    case WIRE_STATUS_NOT_FOUND:
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    case WIRE_STATUS_PERMISSION_DENIED: /* getspnam as non-root, as /etc/shadow would */
        *errnop = EACCES;
        return NSS_STATUS_UNAVAIL;
    case WIRE_STATUS_TRY_AGAIN:
        *errnop = EAGAIN;
        return NSS_STATUS_TRYAGAIN;
    default: /* BAD_REQUEST, UNSUPPORTED_VERSION, or a status this version does not know */
        *errnop = EPROTO;
        return NSS_STATUS_UNAVAIL;
    }
    switch (decode_rc) {
    case WIRE_OK:
        return NSS_STATUS_SUCCESS;
    case WIRE_BUFFER_TOO_SMALL:
        *errnop = ERANGE;
        return NSS_STATUS_TRYAGAIN;
    default:
        *errnop = EPROTO;
        return NSS_STATUS_UNAVAIL;
    }
}

/* ---- single lookups -------------------------------------------------------- */

typedef int decode_fn(const void *bytes, size_t len, void *result, char *buf, size_t buflen);

static int decode_passwd(const void *bytes, size_t len, void *result, char *buf, size_t buflen)
{
    return wire_decode_passwd(bytes, len, result, buf, buflen);
}

static int decode_group(const void *bytes, size_t len, void *result, char *buf, size_t buflen)
{
    return wire_decode_group(bytes, len, result, buf, buflen);
}

static int decode_shadow(const void *bytes, size_t len, void *result, char *buf, size_t buflen)
{
    return wire_decode_shadow(bytes, len, result, buf, buflen);
}

static enum nss_status lookup(uint16_t kind, const void *key, size_t key_len, decode_fn *decode,
                              void *result, char *buf, size_t buflen, int *errnop)
{
    struct roster_reply reply;
    int rc = roster_request(kind, key, key_len, &reply);
    int decode_rc = WIRE_OK;
    if (rc == ROSTER_OK && reply.status == WIRE_STATUS_OK)
        decode_rc = decode(reply.payload, reply.payload_bytes, result, buf, buflen);
    enum nss_status status = nss_status_of(rc, &reply, decode_rc, errnop);
    roster_reply_free(&reply);
    return status;
}

/* The daemon holds no name outside 1-MAX_NAME_BYTES bytes, so those are misses without asking. */
static bool name_can_exist(const char *name, size_t *len)
{
    if (name == NULL)
        return false;
    *len = strnlen(name, MAX_NAME_BYTES + 1);
    return *len >= 1 && *len <= MAX_NAME_BYTES;
}

static enum nss_status lookup_by_name(uint16_t kind, const char *name, decode_fn *decode,
                                      void *result, char *buf, size_t buflen, int *errnop)
{
    size_t len;
    if (!name_can_exist(name, &len)) {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    return lookup(kind, name, len, decode, result, buf, buflen, errnop);
}

static enum nss_status lookup_by_id(uint16_t kind, uint32_t id, decode_fn *decode, void *result,
                                    char *buf, size_t buflen, int *errnop)
{
    uint8_t key[4];
    wire_put_u32(key, id);
    return lookup(kind, key, sizeof key, decode, result, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(getpwnam_r)(const char *name, struct passwd *pw, char *buf,
                                       size_t buflen, int *errnop)
{
    return lookup_by_name(WIRE_GETPWNAM, name, decode_passwd, pw, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(getpwuid_r)(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
                                       int *errnop)
{
    return lookup_by_id(WIRE_GETPWUID, uid, decode_passwd, pw, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(getgrnam_r)(const char *name, struct group *gr, char *buf,
                                       size_t buflen, int *errnop)
{
    return lookup_by_name(WIRE_GETGRNAM, name, decode_group, gr, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(getgrgid_r)(gid_t gid, struct group *gr, char *buf, size_t buflen,
                                       int *errnop)
{
    return lookup_by_id(WIRE_GETGRGID, gid, decode_group, gr, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(getspnam_r)(const char *name, struct spwd *sp, char *buf,
                                       size_t buflen, int *errnop)
{
    return lookup_by_name(WIRE_GETSPNAM, name, decode_shadow, sp, buf, buflen, errnop);
}

/* ---- initgroups ------------------------------------------------------------ */

/* Appends gid to glibc's growing array, as nss_files' initgroups_dyn does:
 * doubles it with realloc when full, never past `limit` when limit > 0.
 * Returns false only when realloc fails. */
static bool append_gid(gid_t gid, long int *start, long int *size, gid_t **groupsp, long int limit)
{
    for (long int i = 0; i < *start; i++)
        if ((*groupsp)[i] == gid)
            return true; /* already listed (by us or an earlier module) */
    if (*start >= *size) {
        if (limit > 0 && *size >= limit)
            return true; /* full: the caller asked for no more */
        long int new_size = *size > 0 ? 2 * *size : 16;
        if (limit > 0 && new_size > limit)
            new_size = limit;
        gid_t *grown = realloc(*groupsp, (size_t)new_size * sizeof **groupsp);
        if (grown == NULL)
            return false;
        *groupsp = grown;
        *size = new_size;
    }
    (*groupsp)[(*start)++] = gid;
    return true;
}

enum nss_status NSS_SYMBOL(initgroups_dyn)(const char *user, gid_t group, long int *start,
                                           long int *size, gid_t **groupsp, long int limit,
                                           int *errnop)
{
    size_t len;
    if (!name_can_exist(user, &len)) {
        *errnop = ENOENT;
        return NSS_STATUS_NOTFOUND;
    }
    struct roster_reply reply;
    int rc = roster_request(WIRE_INITGROUPS, user, len, &reply);
    uint32_t count = 0;
    const uint8_t *gids = NULL;
    int decode_rc = WIRE_OK;
    if (rc == ROSTER_OK && reply.status == WIRE_STATUS_OK)
        decode_rc = wire_read_gid_list(reply.payload, reply.payload_bytes, &count, &gids);
    enum nss_status status = nss_status_of(rc, &reply, decode_rc, errnop);
    for (uint32_t i = 0; status == NSS_STATUS_SUCCESS && i < count; i++) {
        gid_t gid = wire_get_u32(gids + 4 * (size_t)i);
        /* `group` is the primary group, which glibc's initgroups adds itself. */
        if (gid == group)
            continue;
        if (!append_gid(gid, start, size, groupsp, limit)) {
            *errnop = ENOMEM;
            status = NSS_STATUS_TRYAGAIN;
        }
    }
    roster_reply_free(&reply);
    return status;
}

/* ---- enumeration: setpwent/getpwent_r/endpwent and the group ones --------- */

/* Process-wide, as glibc's getpwent is: the current page, the records of it
 * not yet returned, and the cursor of the next page. */
struct enumeration {
    pthread_mutex_t lock;
    uint16_t kind;              /* WIRE_GETPWENT or WIRE_GETGRENT */
    bool started;               /* a page has been fetched since set*ent */
    struct roster_reply page;   /* owns the bytes `records` points into */
    struct wire_cursor records; /* checked records not yet returned */
    uint32_t records_left;
    uint64_t next_cursor;       /* 0 after the last page */
};

static struct enumeration passwd_enumeration = { .lock = PTHREAD_MUTEX_INITIALIZER,
                                                 .kind = WIRE_GETPWENT };
static struct enumeration group_enumeration = { .lock = PTHREAD_MUTEX_INITIALIZER,
                                                .kind = WIRE_GETGRENT };

static enum nss_status enumeration_restart(struct enumeration *e)
{
    pthread_mutex_lock(&e->lock);
    roster_reply_free(&e->page);
    e->started = false;
    e->records = wire_cursor_of(NULL, 0);
    e->records_left = 0;
    e->next_cursor = 0;
    pthread_mutex_unlock(&e->lock);
    return NSS_STATUS_SUCCESS;
}

/* Makes sure a record is waiting in e->records, fetching pages as needed;
 * called with e->lock held. A failed fetch changes nothing, so a later call
 * asks for the same page again instead of starting over. */
static enum nss_status enumeration_fill_page(struct enumeration *e, int *errnop)
{
    while (e->records_left == 0) {
        if (e->started && e->next_cursor == 0) {
            *errnop = ENOENT;
            return NSS_STATUS_NOTFOUND;
        }
        uint8_t cursor[8];
        wire_put_u64(cursor, e->started ? e->next_cursor : 0);
        struct roster_reply reply;
        int rc = roster_request(e->kind, cursor, sizeof cursor, &reply);
        uint32_t count = 0;
        uint64_t next_cursor = 0;
        struct wire_cursor records = wire_cursor_of(NULL, 0);
        int decode_rc = WIRE_OK;
        if (rc == ROSTER_OK && reply.status == WIRE_STATUS_OK) {
            decode_rc = wire_check_page(e->kind, reply.payload, reply.payload_bytes, &count,
                                        &next_cursor, &records);
            /* A page holds at least one record while any remain (proto/nss-wire.md):
             * an empty page pointing further would make this loop endless. */
            if (decode_rc == WIRE_OK && count == 0 && next_cursor != 0)
                decode_rc = WIRE_MALFORMED;
        }
        enum nss_status status = nss_status_of(rc, &reply, decode_rc, errnop);
        if (status == NSS_STATUS_NOTFOUND) {
            e->started = true; /* nothing more: the end, not a reason to start over */
            e->next_cursor = 0;
        }
        if (status != NSS_STATUS_SUCCESS) {
            roster_reply_free(&reply);
            return status;
        }
        roster_reply_free(&e->page);
        e->page = reply;
        e->records = records;
        e->records_left = count;
        e->next_cursor = next_cursor;
        e->started = true;
    }
    return NSS_STATUS_SUCCESS;
}

/* Returns the next record; on ERANGE the record stays next, so glibc's retry
 * with a bigger buffer gets it (glibc manual, "NSS Modules Interface"). */
static enum nss_status enumeration_next(struct enumeration *e, void *result, char *buf,
                                        size_t buflen, int *errnop)
{
    pthread_mutex_lock(&e->lock);
    enum nss_status status = enumeration_fill_page(e, errnop);
    if (status == NSS_STATUS_SUCCESS) {
        struct wire_cursor after = e->records;
        int rc;
        if (e->kind == WIRE_GETPWENT) {
            struct wire_passwd_view v;
            rc = wire_read_passwd(&after, &v);
            if (rc == WIRE_OK)
                rc = wire_fill_passwd(&v, result, buf, buflen);
        } else {
            struct wire_group_view v;
            rc = wire_read_group(&after, &v);
            if (rc == WIRE_OK)
                rc = wire_fill_group(&v, result, buf, buflen);
        }
        status = nss_status_of(ROSTER_OK, &e->page, rc, errnop);
        if (status == NSS_STATUS_SUCCESS) {
            e->records = after;
            e->records_left--;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return status;
}

enum nss_status NSS_SYMBOL(setpwent)(int stayopen)
{
    (void)stayopen; /* connections are cached anyway */
    return enumeration_restart(&passwd_enumeration);
}

enum nss_status NSS_SYMBOL(getpwent_r)(struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
    return enumeration_next(&passwd_enumeration, pw, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(endpwent)(void)
{
    return enumeration_restart(&passwd_enumeration);
}

enum nss_status NSS_SYMBOL(setgrent)(int stayopen)
{
    (void)stayopen;
    return enumeration_restart(&group_enumeration);
}

enum nss_status NSS_SYMBOL(getgrent_r)(struct group *gr, char *buf, size_t buflen, int *errnop)
{
    return enumeration_next(&group_enumeration, gr, buf, buflen, errnop);
}

enum nss_status NSS_SYMBOL(endgrent)(void)
{
    return enumeration_restart(&group_enumeration);
}
