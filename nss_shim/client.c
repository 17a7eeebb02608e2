/* Sends one request to rosterd's nss.sock and reads its reply, within one deadline.
 *
 * Runs inside other people's processes (sshd, login, anything that calls
 * getpwnam), so it never blocks past REQUEST_DEADLINE_MS, never raises SIGPIPE,
 * never leaks a descriptor across exec, and survives fork and daemon restarts.
 * The connection-caching rules are those of proto/nss-wire.md, "Client behaviour".
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

/* The connection cached for this process, reused by whichever thread gets the
 * lock first; a thread that finds it busy opens a one-shot connection instead
 * of waiting, so a slow lookup never queues the others behind it. */
static pthread_mutex_t cached_lock = PTHREAD_MUTEX_INITIALIZER;
static int cached_fd = -1;
static pid_t cached_pid;     /* the process that opened cached_fd */
static uid_t cached_euid;    /* its effective uid then: what rosterd's SO_PEERCRED saw */
static dev_t cached_dev;     /* identity of the socket, to recognise it after fork */
static ino_t cached_ino;

/* ---- time ---------------------------------------------------------------- */

static int64_t monotonic_ms(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Milliseconds left before the deadline, for poll(); 0 once it has passed. */
static int ms_left(int64_t deadline_ms)
{
    int64_t left = deadline_ms - monotonic_ms();
    if (left <= 0)
        return 0;
    return left > REQUEST_DEADLINE_MS ? REQUEST_DEADLINE_MS : (int)left;
}

/* Waits for `events` on fd until the deadline: ROSTER_OK, ROSTER_TIMEOUT or ROSTER_IO_ERROR. */
static int wait_for(int fd, short events, int64_t deadline_ms, int *error_number)
{
    for (;;) {
        int timeout = ms_left(deadline_ms);
        if (timeout == 0) {
            *error_number = ETIMEDOUT;
            return ROSTER_TIMEOUT;
        }
        struct pollfd pfd = { .fd = fd, .events = events, .revents = 0 };
        int n = poll(&pfd, 1, timeout);
        if (n > 0) {
            /* POLLHUP/POLLERR: let the following recv/send report what happened. */
            return ROSTER_OK;
        }
        if (n == 0) {
            /* poll waited at least the time that was left. */
            *error_number = ETIMEDOUT;
            return ROSTER_TIMEOUT;
        }
        if (errno != EINTR) {
            *error_number = errno;
            return ROSTER_IO_ERROR;
        }
    }
}

/* ---- connect ------------------------------------------------------------- */

static const char *socket_path(void)
{
    /* secure_getenv: a setuid program must not be pointed at another socket. */
    const char *path = secure_getenv(NSS_SOCKET_ENV);
    return path != NULL && path[0] != '\0' ? path : DEFAULT_NSS_SOCKET_PATH;
}

static int open_connection(int64_t deadline_ms, int *fd_out, int *error_number)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    const char *path = socket_path();
    size_t path_len = strlen(path);
    if (path_len >= sizeof addr.sun_path) {
        *error_number = ENAMETOOLONG;
        return ROSTER_UNREACHABLE;
    }
    memcpy(addr.sun_path, path, path_len + 1);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *error_number = errno;
        return errno == ENOMEM || errno == ENOBUFS ? ROSTER_NO_MEMORY : ROSTER_IO_ERROR;
    }
    int rc = ROSTER_OK;
    if (connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno == EINPROGRESS || errno == EINTR) {
            /* Not expected for AF_UNIX on Linux, but allowed by POSIX: wait it out. */
            rc = wait_for(fd, POLLOUT, deadline_ms, error_number);
            int so_error = 0;
            socklen_t so_len = sizeof so_error;
            if (rc == ROSTER_OK &&
                (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0 || so_error != 0)) {
                *error_number = so_error != 0 ? so_error : errno;
                rc = ROSTER_UNREACHABLE;
            }
        } else if (errno == EAGAIN) {
            /* AF_UNIX: the listen backlog is full, a stuck or swamped daemon. */
            *error_number = EAGAIN;
            rc = ROSTER_TIMEOUT;
        } else {
            /* ENOENT, ECONNREFUSED, EACCES, ENOTDIR...: nobody to ask, fail at once. */
            *error_number = errno;
            rc = ROSTER_UNREACHABLE;
        }
    }
    if (rc != ROSTER_OK) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return ROSTER_OK;
}

/* ---- one exchange on an open connection ---------------------------------- */

static int send_all(int fd, const uint8_t *bytes, size_t len, int64_t deadline_ms, int *error_number)
{
    while (len > 0) {
        ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_for(fd, POLLOUT, deadline_ms, error_number);
            if (rc != ROSTER_OK)
                return rc;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        *error_number = n < 0 ? errno : EPIPE;
        return ROSTER_IO_ERROR;
    }
    return ROSTER_OK;
}

/* Reads exactly len bytes; *received counts every byte read, so the caller
 * knows whether the reply had begun when something failed. */
static int recv_all(int fd, uint8_t *bytes, size_t len, int64_t deadline_ms, size_t *received,
                    int *error_number)
{
    while (len > 0) {
        ssize_t n = recv(fd, bytes, len, MSG_DONTWAIT);
        if (n > 0) {
            bytes += n;
            len -= (size_t)n;
            *received += (size_t)n;
            continue;
        }
        if (n == 0) {
            *error_number = ECONNRESET; /* closed by the daemon */
            return ROSTER_IO_ERROR;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_for(fd, POLLIN, deadline_ms, error_number);
            if (rc != ROSTER_OK)
                return rc;
            continue;
        }
        if (errno == EINTR)
            continue;
        *error_number = errno;
        return ROSTER_IO_ERROR;
    }
    return ROSTER_OK;
}

static int exchange(int fd, const uint8_t *request, size_t request_len, int64_t deadline_ms,
                    struct roster_reply *out, size_t *received)
{
    int rc = send_all(fd, request, request_len, deadline_ms, &out->error_number);
    if (rc != ROSTER_OK)
        return rc;

    uint8_t header[WIRE_HEADER_BYTES];
    rc = recv_all(fd, header, sizeof header, deadline_ms, received, &out->error_number);
    if (rc != ROSTER_OK)
        return rc;
    uint16_t status;
    uint32_t payload_bytes;
    /* Checked before allocating anything: never trust a length from the wire. */
    if (wire_parse_reply_header(header, &status, &payload_bytes) != WIRE_OK) {
        out->error_number = EPROTO;
        return ROSTER_PROTOCOL;
    }
    uint8_t *payload = NULL;
    if (payload_bytes > 0) {
        payload = malloc(payload_bytes);
        if (payload == NULL) {
            out->error_number = ENOMEM;
            return ROSTER_NO_MEMORY;
        }
        rc = recv_all(fd, payload, payload_bytes, deadline_ms, received, &out->error_number);
        if (rc != ROSTER_OK) {
            free(payload);
            return rc;
        }
    }
    out->status = status;
    out->payload_bytes = payload_bytes;
    out->payload = payload;
    return ROSTER_OK;
}

/* Statuses after which the server keeps the connection open (proto/nss-wire.md, "Status"). */
static bool connection_stays_open(uint16_t status)
{
    return status == WIRE_STATUS_OK || status == WIRE_STATUS_NOT_FOUND ||
           status == WIRE_STATUS_PERMISSION_DENIED || status == WIRE_STATUS_TRY_AGAIN;
}

static void remember_connection(int fd)
{
    struct stat st;
    cached_fd = fd;
    cached_pid = getpid();
    cached_euid = geteuid();
    if (fstat(fd, &st) == 0) {
        cached_dev = st.st_dev;
        cached_ino = st.st_ino;
    } else {
        cached_dev = 0;
        cached_ino = 0;
    }
}

/* After fork the child has a copy of the parent's socket: sharing it would mix
 * up the two processes' replies. Close the copy if the descriptor still is that
 * socket; if the child has meanwhile closed it and reused the number for
 * something else, just forget it. */
static void forget_connection_after_fork(void)
{
    struct stat st;
    if (fstat(cached_fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == cached_dev &&
        st.st_ino == cached_ino)
        close(cached_fd);
    cached_fd = -1;
}

static void drop_cached_connection(void)
{
    if (cached_fd >= 0)
        close(cached_fd);
    cached_fd = -1;
}

/* One request over the cached connection; called with cached_lock held. */
static int request_on_cached(const uint8_t *request, size_t request_len, int64_t deadline_ms,
                             struct roster_reply *out)
{
    if (cached_fd >= 0 && cached_pid != getpid())
        forget_connection_after_fork();
    /* The daemon judges root-only kinds (GETSPNAM, ACCOUNT) by the credentials
     * taken at connect (SO_PEERCRED, socket(7)): after seteuid, reconnect. */
    if (cached_fd >= 0 && cached_euid != geteuid())
        drop_cached_connection();

    bool reused = cached_fd >= 0;
    if (!reused) {
        int fd;
        int rc = open_connection(deadline_ms, &fd, &out->error_number);
        if (rc != ROSTER_OK)
            return rc;
        remember_connection(fd);
    }
    size_t received = 0;
    int rc = exchange(cached_fd, request, request_len, deadline_ms, out, &received);
    if (rc == ROSTER_IO_ERROR && reused && received == 0) {
        /* The daemon restarted or closed the idle connection before this
         * request: no reply byte arrived, so asking again is safe. Once. */
        drop_cached_connection();
        int fd;
        out->error_number = 0;
        rc = open_connection(deadline_ms, &fd, &out->error_number);
        if (rc != ROSTER_OK)
            return rc;
        remember_connection(fd);
        rc = exchange(cached_fd, request, request_len, deadline_ms, out, &received);
    }
    if (rc != ROSTER_OK || !connection_stays_open(out->status))
        drop_cached_connection(); /* never reuse a connection in an unknown state */
    return rc;
}

static int request_on_one_shot(const uint8_t *request, size_t request_len, int64_t deadline_ms,
                               struct roster_reply *out)
{
    int fd;
    int rc = open_connection(deadline_ms, &fd, &out->error_number);
    if (rc != ROSTER_OK)
        return rc;
    size_t received = 0;
    rc = exchange(fd, request, request_len, deadline_ms, out, &received);
    close(fd);
    return rc;
}

static bool disabled_in_this_process(void)
{
    /* rosterd sets this in itself, so a lookup it makes can never recurse into it. */
    const char *value = getenv(NSS_DISABLE_ENV);
    return value != NULL && strcmp(value, "1") == 0;
}

int roster_request(uint16_t kind, const void *payload, size_t len, struct roster_reply *out)
{
    memset(out, 0, sizeof *out);
    if (disabled_in_this_process()) {
        out->error_number = ENOENT;
        return ROSTER_DISABLED;
    }
    if (len > MAX_REQUEST_PAYLOAD_BYTES || (len > 0 && payload == NULL)) {
        out->error_number = EINVAL;
        return ROSTER_BAD_REQUEST;
    }
    int64_t deadline_ms = monotonic_ms() + REQUEST_DEADLINE_MS;

    uint8_t request[WIRE_HEADER_BYTES + MAX_REQUEST_PAYLOAD_BYTES];
    wire_put_request_header(request, kind, (uint32_t)len);
    if (len > 0)
        memcpy(request + WIRE_HEADER_BYTES, payload, len);
    size_t request_len = WIRE_HEADER_BYTES + len;

    int rc;
    if (pthread_mutex_trylock(&cached_lock) == 0) {
        rc = request_on_cached(request, request_len, deadline_ms, out);
        pthread_mutex_unlock(&cached_lock);
    } else {
        rc = request_on_one_shot(request, request_len, deadline_ms, out);
    }
    if (rc != ROSTER_OK) {
        int error_number = out->error_number;
        roster_reply_free(out);
        out->error_number = error_number;
    }
    return rc;
}

void roster_reply_free(struct roster_reply *reply)
{
    if (reply == NULL)
        return;
    free(reply->payload);
    reply->payload = NULL;
    reply->payload_bytes = 0;
    reply->status = 0;
    reply->error_number = 0;
}
