/* The floor for any lookup over a Unix socket: a minimal C server that answers
 * each 16-byte request with a 100-byte reply (about a passwd record's size),
 * and a client that times that exchange. Nothing rosterd does can be faster
 * than this on the same machine, because the cost is the kernel waking another
 * process and back.
 *
 *   echo_server serve SOCKET            prints "ready" once listening; runs until killed
 *   echo_server kept SOCKET N [THREADS]     one connection per thread, N exchanges each
 *   echo_server connect SOCKET N [THREADS]  connect, exchange, close, N times per thread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "timed_run.h"

#define REQUEST_BYTES 16
#define REPLY_BYTES 100
#define LISTEN_BACKLOG 128
#define WARMUP_CALLS 100

static struct sockaddr_un server_addr;

/* Reads or writes exactly `len` bytes; 0 on success, -1 on EOF or error. */
static int full_io(int fd, void *buf, size_t len, int writing)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char request[REQUEST_BYTES], reply[REPLY_BYTES];
    memset(reply, 'r', sizeof reply);
    while (full_io(fd, request, sizeof request, 0) == 0 &&
           full_io(fd, reply, sizeof reply, 1) == 0)
        ;
    close(fd);
    return NULL;
}

/* A thread per connection: the simplest server that lets two clients be
 * answered at once on two cores, so the two-thread floor is not a queue. */
static int serve(void)
{
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 ||
        listen(listener, LISTEN_BACKLOG) != 0) {
        perror("echo_server: listen");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("echo_server: accept");
            return 1;
        }
        pthread_t thread;
        if (pthread_create(&thread, NULL, serve_connection, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(thread);
    }
}

static int connect_server(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int exchange(int fd)
{
    char request[REQUEST_BYTES] = "0123456789abcde";
    char reply[REPLY_BYTES];
    return full_io(fd, request, sizeof request, 1) != 0 || full_io(fd, reply, sizeof reply, 0) != 0;
}

/* Kept mode: each thread's context is its open connection. */
static int kept_call(void *ctx, size_t iteration)
{
    (void)iteration;
    return exchange(*(int *)ctx);
}

static int connect_call(void *ctx, size_t iteration)
{
    (void)ctx;
    (void)iteration;
    int fd = connect_server();
    if (fd < 0)
        return 1;
    int failed = exchange(fd);
    close(fd);
    return failed;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_server serve SOCKET | kept SOCKET N [THREADS] | "
                    "connect SOCKET N [THREADS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3 || strlen(argv[2]) >= sizeof server_addr.sun_path)
        usage();
    server_addr.sun_family = AF_UNIX;
    strcpy(server_addr.sun_path, argv[2]);
    if (strcmp(argv[1], "serve") == 0)
        return serve();

    int kept = strcmp(argv[1], "kept") == 0;
    if ((!kept && strcmp(argv[1], "connect") != 0) || argc < 4)
        usage();
    size_t iterations = strtoul(argv[3], NULL, 10);
    unsigned threads = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 1;
    if (iterations == 0 || threads < 1 || threads > MAX_THREADS)
        usage();

    int fds[MAX_THREADS];
    void *ctx[MAX_THREADS] = {0};
    for (unsigned t = 0; kept && t < threads; t++) {
        if ((fds[t] = connect_server()) < 0) {
            perror("echo_server: connect");
            return 1;
        }
        ctx[t] = &fds[t];
    }
    struct run_result result;
    if (run_timed(threads, iterations, WARMUP_CALLS, kept ? kept_call : connect_call, ctx,
                  &result) != 0) {
        perror("echo_server");
        return 1;
    }
    print_result_json(kept ? "floor-kept" : "floor-connect", threads, iterations, &result);
    return 0;
}
