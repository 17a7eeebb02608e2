/* The socket client of proto/nss-wire.md, shared by the NSS module and pam_roster.so.
 *
 * One call sends one request to rosterd's nss.sock and returns its reply,
 * within REQUEST_DEADLINE_MS for connect, send and receive together. It is
 * thread-safe, never blocks past the deadline, never raises SIGPIPE, never
 * prints, exits or aborts, and allocates at most MAX_REPLY_PAYLOAD_BYTES for a
 * reply (checked before allocating).
 */
#ifndef ROSTER_CLIENT_H
#define ROSTER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* One deadline for the whole exchange (proto/nss-wire.md, "Client behaviour"). */
#define REQUEST_DEADLINE_MS 100

#define DEFAULT_NSS_SOCKET_PATH "/run/rosterd/nss.sock"
#define NSS_SOCKET_ENV "ROSTERD_NSS_SOCKET"   /* read with secure_getenv */
#define NSS_DISABLE_ENV "ROSTERD_NSS_DISABLE" /* "1" inside rosterd itself */

/* What roster_request returns. Only ROSTER_OK fills a reply. */
enum roster_result {
    ROSTER_OK = 0,           /* a well-formed reply header and payload arrived; see status */
    ROSTER_DISABLED = -1,    /* ROSTERD_NSS_DISABLE=1: this is rosterd's own process */
    ROSTER_UNREACHABLE = -2, /* no socket, connection refused, or the socket path is unusable */
    ROSTER_TIMEOUT = -3,     /* REQUEST_DEADLINE_MS passed (a stuck or overloaded daemon) */
    ROSTER_IO_ERROR = -4,    /* the connection failed or closed mid-exchange */
    ROSTER_PROTOCOL = -5,    /* the reply header is not version 1 or announces too much */
    ROSTER_NO_MEMORY = -6,
    ROSTER_BAD_REQUEST = -7, /* the caller's payload exceeds MAX_REQUEST_PAYLOAD_BYTES */
};

struct roster_reply {
    uint16_t status;        /* enum wire_status in wire.h */
    uint32_t payload_bytes; /* at most MAX_REPLY_PAYLOAD_BYTES */
    uint8_t *payload;       /* malloc'ed, NULL when payload_bytes is 0 */
    int error_number;       /* the errno behind a failed request, else 0 */
};

/* Sends one request of `kind` (enum wire_kind) with `len` payload bytes and
 * waits for its reply. Always initialises *out, so roster_reply_free(out) is
 * safe after any result. Returns an enum roster_result. */
int roster_request(uint16_t kind, const void *payload, size_t len, struct roster_reply *out);

/* Frees the payload of a reply and empties it; safe to call twice. */
void roster_reply_free(struct roster_reply *reply);

#endif /* ROSTER_CLIENT_H */
