/* pam_roster.so: refuses deactivated rosterd accounts and makes their homes on first session.
 *
 * One question to rosterd (ACCOUNT, proto/nss-wire.md) over the NSS module's
 * socket client (nss_shim/client.c, linked in, not copied) gives whether the
 * account is active, the host's home settings and the passwd entry.
 *
 *   account  managed and active: PAM_SUCCESS; managed and deactivated:
 *            PAM_PERM_DENIED plus one line to the person; not managed:
 *            PAM_IGNORE; rosterd unreachable: `unreachable=ignore|deny`.
 *   session  open: a missing home under home_root is built under a hidden
 *            temporary name, filled from the skeleton, owned by the user and
 *            renamed into place with RENAME_NOREPLACE, so nobody ever sees a
 *            half-made home; an existing home is never touched.
 *
 * Runs inside sshd, su and login: it never exits, aborts or prints to stdout,
 * keeps no global state of its own (the socket client has its own lock), and
 * bounds the skeleton it copies (depth, entries, bytes). See pam/README.md.
 */
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_AUTH
#define PAM_SM_PASSWORD

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "client.h"
#include "wire.h"

#define PAM_ENTRY __attribute__((visibility("default")))

/* What the person is told when a deactivated account is refused (one line). */
#define DEACTIVATED_MESSAGE \
    "Your account has been deactivated by your organisation; ask your administrator."

/* Bounds on the skeleton copy: a skeleton is a handful of dotfiles, and a
 * login must not stall on a huge or runaway tree. */
#define MAX_SKEL_DEPTH 16
#define MAX_SKEL_ENTRIES 4096
#define MAX_SKEL_BYTES (64ull * 1024 * 1024)
#define COPY_CHUNK_BYTES 65536
#define TEMP_NAME_ATTEMPTS 16
#define DEFAULT_HOME_MODE 0700

enum unreachable_policy { UNREACHABLE_IGNORE, UNREACHABLE_DENY };

struct options {
    enum unreachable_policy unreachable;
    const char *skel;  /* skel=DIR, overrides rosterd's skel_dir */
    long mode;         /* mode= or umask=, overrides home_mode; -1 when unset */
    bool debug;
};

/* The answer to ACCOUNT, copied out of the reply as C strings. */
struct account {
    bool active;
    mode_t home_mode;
    uid_t uid;
    gid_t gid;
    char home[PATH_MAX];
    char home_root[PATH_MAX];
    char skel[PATH_MAX];
};

enum lookup { MANAGED, NOT_MANAGED, NOT_ASKED, UNREACHABLE };

/* ---- options -------------------------------------------------------------- */

static bool parse_octal(const char *text, long max, long *out)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 8);
    if (errno != 0 || end == text || *end != '\0' || value < 0 || value > max)
        return false;
    *out = value;
    return true;
}

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *opt)
{
    /* ignore: a rosterd that is down must never lock out root or local users;
     * its own users cannot log in then anyway, since NSS cannot resolve them. */
    opt->unreachable = UNREACHABLE_IGNORE;
    opt->skel = NULL;
    opt->mode = -1;
    opt->debug = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        long value;
        if (strcmp(arg, "unreachable=ignore") == 0)
            opt->unreachable = UNREACHABLE_IGNORE;
        else if (strcmp(arg, "unreachable=deny") == 0)
            opt->unreachable = UNREACHABLE_DENY;
        else if (strncmp(arg, "skel=", 5) == 0 && arg[5] == '/')
            opt->skel = arg + 5;
        else if (strncmp(arg, "mode=", 5) == 0 && parse_octal(arg + 5, 07777, &value))
            opt->mode = value;
        else if (strncmp(arg, "umask=", 6) == 0 && parse_octal(arg + 6, 0777, &value))
            opt->mode = 0777 & ~value; /* as pam_mkhomedir: the home gets 0777 & ~umask */
        else if (strcmp(arg, "debug") == 0)
            opt->debug = true;
        else
            pam_syslog(pamh, LOG_ERR, "unknown or malformed option \"%s\" ignored", arg);
    }
}

/* ---- asking rosterd --------------------------------------------------------- */

static bool copy_wire_str(char *dst, size_t size, struct wire_str s)
{
    if (s.len >= size)
        return false;
    if (s.len > 0)
        memcpy(dst, s.bytes, s.len);
    dst[s.len] = '\0';
    return true;
}

static enum lookup ask_rosterd(pam_handle_t *pamh, const char *user, struct account *acct)
{
    size_t len = strlen(user);
    if (len == 0 || len > MAX_NAME_BYTES)
        return NOT_MANAGED; /* no rosterd name is empty or this long */
    struct roster_reply reply;
    int rc = roster_request(WIRE_ACCOUNT, user, len, &reply);
    enum lookup result;
    if (rc == ROSTER_DISABLED) {
        result = NOT_ASKED;
    } else if (rc != ROSTER_OK) {
        errno = reply.error_number;
        pam_syslog(pamh, LOG_WARNING, "cannot ask rosterd about %s: %m", user);
        result = UNREACHABLE;
    } else if (reply.status == WIRE_STATUS_NOT_FOUND) {
        result = NOT_MANAGED;
    } else if (reply.status == WIRE_STATUS_PERMISSION_DENIED) {
        /* Only root may ask (proto/nss-wire.md). A service running its account
         * step unprivileged (a screen locker) cannot learn the answer: that is
         * the unreachable case, and the `unreachable=` option decides. */
        pam_syslog(pamh, LOG_INFO, "rosterd answers ACCOUNT to root only (euid %u); %s not "
                   "checked", (unsigned)geteuid(), user);
        result = UNREACHABLE;
    } else if (reply.status != WIRE_STATUS_OK) {
        pam_syslog(pamh, LOG_WARNING, "rosterd answered status %u about %s", reply.status, user);
        result = UNREACHABLE;
    } else {
        struct wire_account_view v;
        if (wire_read_account(reply.payload, reply.payload_bytes, &v) != WIRE_OK ||
            v.passwd.name.len != len || memcmp(v.passwd.name.bytes, user, len) != 0 ||
            !copy_wire_str(acct->home, sizeof acct->home, v.passwd.dir) ||
            !copy_wire_str(acct->home_root, sizeof acct->home_root, v.home_root) ||
            !copy_wire_str(acct->skel, sizeof acct->skel, v.skel_dir)) {
            pam_syslog(pamh, LOG_ERR, "rosterd's reply about %s is malformed", user);
            result = UNREACHABLE;
        } else {
            acct->active = v.active == 1;
            acct->home_mode = (mode_t)v.home_mode;
            acct->uid = (uid_t)v.passwd.uid;
            acct->gid = (gid_t)v.passwd.gid;
            result = MANAGED;
        }
    }
    roster_reply_free(&reply);
    return result;
}

/* The user's name, or NULL (with the PAM code in *rc). */
static const char *get_user(pam_handle_t *pamh, int *rc)
{
    const char *user = NULL;
    *rc = pam_get_user(pamh, &user, NULL);
    if (*rc != PAM_SUCCESS || user == NULL || user[0] == '\0') {
        pam_syslog(pamh, LOG_ERR, "cannot determine the user's name");
        *rc = PAM_USER_UNKNOWN;
        return NULL;
    }
    return user;
}

/* ---- account ---------------------------------------------------------------- */

PAM_ENTRY int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    struct options opt;
    parse_options(pamh, argc, argv, &opt);
    int rc;
    const char *user = get_user(pamh, &rc);
    if (user == NULL)
        return rc;
    struct account *acct = calloc(1, sizeof *acct);
    if (acct == NULL)
        return PAM_BUF_ERR;
    switch (ask_rosterd(pamh, user, acct)) {
    case MANAGED:
        if (acct->active) {
            if (opt.debug)
                pam_syslog(pamh, LOG_DEBUG, "%s is an active rosterd account", user);
            rc = PAM_SUCCESS;
        } else {
            pam_syslog(pamh, LOG_NOTICE, "refused %s: the account is deactivated in rosterd",
                       user);
            if (!(flags & PAM_SILENT))
                pam_error(pamh, "%s", DEACTIVATED_MESSAGE);
            rc = PAM_PERM_DENIED;
        }
        break;
    case NOT_MANAGED:
    case NOT_ASKED:
        rc = PAM_IGNORE;
        break;
    case UNREACHABLE:
    default:
        if (opt.unreachable == UNREACHABLE_DENY) {
            pam_syslog(pamh, LOG_ERR, "refused %s: rosterd cannot be reached (unreachable=deny)",
                       user);
            rc = PAM_AUTHINFO_UNAVAIL;
        } else {
            rc = PAM_IGNORE;
        }
        break;
    }
    free(acct);
    return rc;
}

/* ---- paths ------------------------------------------------------------------- */

/* Checks, by the text alone, that home is root + "/" + one or more plain
 * components (none empty, ".", ".." or longer than NAME_MAX) and returns the
 * part after root. Symlinks are dealt with while walking it (walk_parents). */
static const char *relative_home(const char *root, const char *home)
{
    size_t root_len = strlen(root);
    while (root_len > 1 && root[root_len - 1] == '/')
        root_len--;
    if (root[0] != '/' || root_len <= 1 || strncmp(home, root, root_len) != 0 ||
        home[root_len] != '/')
        return NULL;
    const char *rel = home + root_len + 1;
    const char *part = rel;
    for (;;) {
        const char *slash = strchr(part, '/');
        size_t part_len = slash != NULL ? (size_t)(slash - part) : strlen(part);
        if (part_len == 0 || part_len > NAME_MAX || (part_len == 1 && part[0] == '.') ||
            (part_len == 2 && part[0] == '.' && part[1] == '.'))
            return NULL;
        if (slash == NULL)
            return rel;
        part = slash + 1;
    }
}

/* mkdir -p for home_root itself (the administrator's configured directory). */
static int make_root(const char *root)
{
    char path[PATH_MAX];
    size_t len = strlen(root);
    if (len >= sizeof path)
        return -1;
    memcpy(path, root, len + 1);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = saved;
            if (saved == '\0')
                return 0;
        }
    }
}

/* Opens the directory that is to hold the home, creating missing parents
 * (root-owned, 0755). Every component below home_root is opened with
 * O_NOFOLLOW: a symlink anywhere under home_root is refused, so no path from
 * the store can lead out of it. Returns the parent's fd and points *last at
 * the home's own name, or returns -1 with a reason in *why. */
static int walk_parents(pam_handle_t *pamh, const struct account *acct, const char **last,
                        char *rel_copy, size_t rel_size, const char **why)
{
    const char *rel = relative_home(acct->home_root, acct->home);
    if (rel == NULL) {
        *why = "it does not lie under home_root";
        return -1;
    }
    if (strlen(rel) >= rel_size) {
        *why = "the path is too long";
        return -1;
    }
    strcpy(rel_copy, rel);
    char *real_root = realpath(acct->home_root, NULL);
    if (real_root == NULL && errno == ENOENT && make_root(acct->home_root) == 0)
        real_root = realpath(acct->home_root, NULL);
    if (real_root == NULL) {
        *why = "home_root cannot be resolved or created";
        return -1;
    }
    int fd = open(real_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(real_root);
    if (fd < 0) {
        *why = "home_root cannot be opened";
        return -1;
    }
    char *part = rel_copy;
    for (;;) {
        char *slash = strchr(part, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, part, 0755) != 0 && errno != EEXIST) {
                *why = "a parent directory cannot be created";
                close(fd);
                return -1;
            }
            next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next >= 0) {
                struct stat st;
                /* Ours only if we just made it (root-owned): set 0755 whatever the umask. */
                if (fstat(next, &st) == 0 && st.st_uid == 0)
                    (void)fchmod(next, 0755);
                pam_syslog(pamh, LOG_INFO, "created parent directory %s under %s", part,
                           acct->home_root);
            }
        }
        if (next < 0) {
            *why = errno == ELOOP || errno == ENOTDIR
                       ? "a parent is a symlink or not a directory (refused: it could lead "
                         "out of home_root)"
                       : "a parent directory cannot be opened";
            close(fd);
            return -1;
        }
        close(fd);
        fd = next;
        part = slash + 1;
    }
    *last = part;
    return fd;
}

/* ---- the skeleton copy ---------------------------------------------------- */

struct copy {
    pam_handle_t *pamh;
    uid_t uid;
    gid_t gid;
    size_t entries;
    unsigned long long bytes;
    const char *failed_at; /* the entry name when something failed */
};

static int copy_file_data(struct copy *cp, int src, int dst)
{
    char *buf = malloc(COPY_CHUNK_BYTES);
    if (buf == NULL)
        return -1;
    int rc = 0;
    for (;;) {
        ssize_t n = read(src, buf, COPY_CHUNK_BYTES);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        cp->bytes += (unsigned long long)n;
        if (cp->bytes > MAX_SKEL_BYTES) {
            errno = EFBIG;
            rc = -1;
            break;
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(dst, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            done += w;
        }
        if (rc != 0)
            break;
    }
    free(buf);
    return rc;
}

/* Permission bits worth carrying over: never set-id bits on a user's file. */
static mode_t copied_mode(mode_t mode)
{
    return mode & 01777;
}

static int copy_tree(struct copy *cp, int src_dir, int dst_dir, int depth);

static int copy_entry(struct copy *cp, int src_dir, int dst_dir, const char *name, int depth)
{
    struct stat st;
    cp->failed_at = name;
    if (++cp->entries > MAX_SKEL_ENTRIES) {
        errno = EFBIG;
        return -1;
    }
    if (fstatat(src_dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (S_ISLNK(st.st_mode)) {
        /* Copied as a symlink, never followed: a skeleton link to /etc/shadow
         * must not become a copy of it. */
        char target[PATH_MAX];
        ssize_t n = readlinkat(src_dir, name, target, sizeof target);
        if (n < 0)
            return -1;
        if ((size_t)n >= sizeof target) {
            errno = ENAMETOOLONG;
            return -1;
        }
        target[n] = '\0';
        if (symlinkat(target, dst_dir, name) != 0 ||
            fchownat(dst_dir, name, cp->uid, cp->gid, AT_SYMLINK_NOFOLLOW) != 0)
            return -1;
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        if (depth >= MAX_SKEL_DEPTH) {
            errno = ELOOP;
            return -1;
        }
        if (mkdirat(dst_dir, name, 0700) != 0)
            return -1;
        int dst = openat(dst_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dst < 0)
            return -1;
        int src = openat(src_dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = src < 0 ? -1 : copy_tree(cp, src, dst, depth + 1); /* closes src */
        if (rc == 0 && (fchown(dst, cp->uid, cp->gid) != 0 ||
                        fchmod(dst, copied_mode(st.st_mode)) != 0 || fsync(dst) != 0))
            rc = -1;
        int saved = errno;
        close(dst);
        errno = saved;
        return rc;
    }
    if (S_ISREG(st.st_mode)) {
        int src = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (src < 0)
            return -1;
        int dst = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         0600);
        int rc = dst < 0 ? -1 : copy_file_data(cp, src, dst);
        if (rc == 0 && (fchown(dst, cp->uid, cp->gid) != 0 ||
                        fchmod(dst, copied_mode(st.st_mode)) != 0 || fsync(dst) != 0))
            rc = -1;
        int saved = errno;
        close(src);
        if (dst >= 0)
            close(dst);
        errno = saved;
        return rc;
    }
    /* Devices, FIFOs and sockets have no place in a home skeleton. */
    pam_syslog(cp->pamh, LOG_WARNING, "skeleton entry %s is not a file, directory or symlink; "
               "not copied", name);
    return 0;
}

/* Copies every entry of src_dir (dotfiles included) into dst_dir. Takes
 * ownership of src_dir (closed on return), not of dst_dir. */
static int copy_tree(struct copy *cp, int src_dir, int dst_dir, int depth)
{
    DIR *dir = fdopendir(src_dir);
    if (dir == NULL) {
        int saved = errno;
        close(src_dir);
        errno = saved;
        return -1;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(dir);
        if (entry == NULL) {
            if (errno != 0)
                rc = -1;
            break;
        }
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (copy_entry(cp, dirfd(dir), dst_dir, entry->d_name, depth) != 0) {
            rc = -1;
            break;
        }
    }
    int saved = errno;
    closedir(dir);
    errno = saved;
    return rc;
}

/* Removes a tree this module made (a temporary home), never following a
 * symlink; best effort, bounded by depth. */
static void remove_tree(int parent, const char *name, int depth)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return;
    if (S_ISDIR(st.st_mode) && depth <= MAX_SKEL_DEPTH + 1) {
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (dir == NULL && fd >= 0)
            close(fd);
        if (dir != NULL) {
            struct dirent *entry;
            while ((entry = readdir(dir)) != NULL)
                if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
                    remove_tree(dirfd(dir), entry->d_name, depth + 1);
            closedir(dir);
        }
        (void)unlinkat(parent, name, AT_REMOVEDIR);
    } else {
        (void)unlinkat(parent, name, 0);
    }
}

/* Makes a fresh, root-only directory ".NAME.XXXXXX" in parent (mkdtemp(3)'s
 * idea, relative to a directory fd). */
static int make_temp_dir(int parent, const char *name, char *out, size_t size)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS; attempt++) {
        unsigned char random_bytes[6];
        if (getrandom(random_bytes, sizeof random_bytes, GRND_NONBLOCK) != sizeof random_bytes) {
            /* Early boot without entropy: uniqueness is what matters here. */
            unsigned long long mix = (unsigned long long)getpid() * 2654435761u + (unsigned)attempt;
            for (size_t i = 0; i < sizeof random_bytes; i++)
                random_bytes[i] = (unsigned char)(mix >> (8 * i));
        }
        char suffix[sizeof random_bytes + 1];
        for (size_t i = 0; i < sizeof random_bytes; i++)
            suffix[i] = alphabet[random_bytes[i] % (sizeof alphabet - 1)];
        suffix[sizeof random_bytes] = '\0';
        int n = snprintf(out, size, ".%s.%s", name, suffix);
        if (n < 0 || (size_t)n >= size || (size_t)n > NAME_MAX) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (mkdirat(parent, out, 0700) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

enum home_result { HOME_MADE, HOME_EXISTS, HOME_REFUSED, HOME_FAILED };

/* Builds the home under a temporary name in its parent and renames it into place. */
static enum home_result make_home(pam_handle_t *pamh, const struct account *acct,
                                  const char *user)
{
    char rel[PATH_MAX];
    const char *why = NULL;
    const char *name = NULL;
    int parent = walk_parents(pamh, acct, &name, rel, sizeof rel, &why);
    if (parent < 0) {
        pam_syslog(pamh, LOG_ERR, "not creating home %s for %s: %s (home_root %s)", acct->home,
                   user, why, acct->home_root);
        return HOME_REFUSED;
    }
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        close(parent);
        return HOME_EXISTS;
    }
    char temp[NAME_MAX + 1];
    if (make_temp_dir(parent, name, temp, sizeof temp) != 0) {
        pam_syslog(pamh, LOG_ERR, "cannot create a temporary home beside %s for %s: %m",
                   acct->home, user);
        close(parent);
        return HOME_FAILED;
    }
    enum home_result result = HOME_FAILED;
    const char *step = "open the temporary home";
    int home = openat(parent, temp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct copy cp = { pamh, acct->uid, acct->gid, 0, 0, NULL };
    if (home >= 0 && acct->skel[0] != '\0') {
        step = "copy the skeleton";
        int skel = open(acct->skel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (skel < 0 && errno == ENOENT) {
            pam_syslog(pamh, LOG_WARNING, "skeleton %s does not exist; %s gets an empty home",
                       acct->skel, user);
        } else if (skel < 0 || copy_tree(&cp, skel, home, 0) != 0) {
            goto out;
        }
        cp.failed_at = NULL;
    }
    if (home >= 0) {
        step = "set the home's owner and mode";
        if (fchown(home, acct->uid, acct->gid) != 0 || fchmod(home, acct->home_mode) != 0 ||
            fsync(home) != 0)
            goto out;
        step = "rename the temporary home into place";
        /* RENAME_NOREPLACE: rename(2) alone would replace an empty directory
         * another session has just made. */
        if (renameat2(parent, temp, parent, name, RENAME_NOREPLACE) == 0) {
            (void)fsync(parent);
            result = HOME_MADE;
        } else if (errno == EEXIST || errno == ENOTEMPTY) {
            result = HOME_EXISTS; /* a concurrent session won; its home is complete */
        }
    }
out:
    if (result == HOME_FAILED) {
        if (cp.failed_at != NULL)
            pam_syslog(pamh, LOG_ERR, "cannot create home %s for %s: cannot %s (at %s): %m",
                       acct->home, user, step, cp.failed_at);
        else
            pam_syslog(pamh, LOG_ERR, "cannot create home %s for %s: cannot %s: %m",
                       acct->home, user, step);
    }
    if (result != HOME_MADE) {
        if (home >= 0) {
            /* Shut the user out of the leftover before removing it; a failure
             * here changes nothing, as remove_tree below takes it away anyway.
             * (A (void) cast does not silence warn_unused_result under
             * _FORTIFY_SOURCE, which dpkg-buildflags turns on.) */
            if (fchown(home, 0, 0) != 0) {
                /* nothing more to do */
            }
            (void)fchmod(home, 0700);
        }
        remove_tree(parent, temp, 0);
    }
    if (home >= 0)
        close(home);
    close(parent);
    return result;
}

/* ---- session ----------------------------------------------------------------- */

PAM_ENTRY int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct options opt;
    parse_options(pamh, argc, argv, &opt);
    int rc;
    const char *user = get_user(pamh, &rc);
    if (user == NULL)
        return PAM_SESSION_ERR;
    struct account *acct = calloc(1, sizeof *acct);
    if (acct == NULL)
        return PAM_BUF_ERR;
    switch (ask_rosterd(pamh, user, acct)) {
    case NOT_MANAGED:
    case NOT_ASKED:
        rc = PAM_IGNORE;
        goto done;
    case UNREACHABLE:
        rc = opt.unreachable == UNREACHABLE_DENY ? PAM_SESSION_ERR : PAM_IGNORE;
        goto done;
    case MANAGED:
    default:
        break;
    }
    if (!acct->active) {
        /* The account step refuses this person; a stack without one must not
         * get a fresh home for them either. */
        pam_syslog(pamh, LOG_NOTICE, "no session for %s: the account is deactivated in rosterd",
                   user);
        rc = PAM_SESSION_ERR;
        goto done;
    }
    struct stat st;
    if (lstat(acct->home, &st) == 0) {
        rc = PAM_SUCCESS; /* an existing home is never touched */
        goto done;
    }
    if (opt.skel != NULL) {
        if (strlen(opt.skel) >= sizeof acct->skel) {
            rc = PAM_SESSION_ERR;
            goto done;
        }
        strcpy(acct->skel, opt.skel);
    }
    if (opt.mode >= 0)
        acct->home_mode = (mode_t)opt.mode;
    if (acct->home_mode > 07777)
        acct->home_mode = DEFAULT_HOME_MODE;
    switch (make_home(pamh, acct, user)) {
    case HOME_MADE:
        pam_syslog(pamh, LOG_NOTICE, "created home %s for %s (mode %04o, skeleton %s)",
                   acct->home, user, (unsigned)acct->home_mode,
                   acct->skel[0] != '\0' ? acct->skel : "none");
        rc = PAM_SUCCESS;
        break;
    case HOME_EXISTS:
        rc = PAM_SUCCESS;
        break;
    case HOME_REFUSED:
    case HOME_FAILED:
    default:
        rc = PAM_SESSION_ERR;
        break;
    }
done:
    free(acct);
    return rc;
}

PAM_ENTRY int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh, (void)flags, (void)argc, (void)argv;
    return PAM_SUCCESS;
}

/* rosterd holds no passwords: authentication is someone else's module. */
PAM_ENTRY int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh, (void)flags, (void)argc, (void)argv;
    return PAM_IGNORE;
}

PAM_ENTRY int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh, (void)flags, (void)argc, (void)argv;
    return PAM_IGNORE;
}

PAM_ENTRY int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh, (void)flags, (void)argc, (void)argv;
    return PAM_IGNORE;
}
