/*
 * ceiling: the fastest server this machine and client allow, as a reference for lockd's numbers.
 *
 * A single-threaded epoll server that speaks baton's framing (u32 big-endian length + body, 17-byte
 * replies) and does nothing else: no state, no disk, no validation beyond the length limit. Every
 * ACQUIRE is granted with a fencing token one higher than the connection's last, and every other
 * command answers 0 with the token of the oldest unanswered grant on the connection. That is exactly
 * what lockload's acquire-then-release workload expects (it releases locks in the order they were
 * granted), so its checks stay clean and every server is measured by the same client in the same way.
 * Replies to everything one read brought in leave in one write.
 *
 *   gcc -O2 -Wall -o ceiling ceiling.c && ./ceiling --port 5699
 *
 * It prints "ceiling listening on 127.0.0.1:PORT" once ready (PORT 0 picks a free one) and runs until
 * SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BODY 1024
#define REPLY_BYTES 17
#define READ_BYTES 65536
#define GRANTS 4096 /* unanswered grants remembered per connection (a ring) */

typedef struct {
    int fd;
    uint8_t in[READ_BYTES + 4 + MAX_BODY];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_cap, out_sent;
    uint64_t last_token;
    uint64_t grants[GRANTS];
    unsigned grant_head, grant_count;
} conn_t;

static volatile sig_atomic_t stopping = 0;
static void on_signal(int sig) { (void)sig; stopping = 1; }

static void put_be64(uint8_t *b, uint64_t v) {
    for (int i = 7; i >= 0; i--) { b[i] = (uint8_t)v; v >>= 8; }
}

static int reserve_out(conn_t *c, size_t more) {
    if (c->out_len + more <= c->out_cap) return 0;
    size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
    while (cap < c->out_len + more) cap *= 2;
    uint8_t *grown = realloc(c->out, cap);
    if (!grown) return -1;
    c->out = grown;
    c->out_cap = cap;
    return 0;
}

static void answer(conn_t *c, uint8_t cmd) {
    uint64_t token;
    if (cmd == 1) {
        token = ++c->last_token;
        c->grants[(c->grant_head + c->grant_count) % GRANTS] = token;
        if (c->grant_count < GRANTS) c->grant_count++;
        else c->grant_head = (c->grant_head + 1) % GRANTS;
    } else if (c->grant_count > 0) {
        token = c->grants[c->grant_head];
        c->grant_head = (c->grant_head + 1) % GRANTS;
        c->grant_count--;
    } else {
        token = c->last_token;
    }
    uint8_t *r = c->out + c->out_len;
    r[0] = 0;
    put_be64(r + 1, token);
    put_be64(r + 9, 0);
    c->out_len += REPLY_BYTES;
}

/* Writes what is pending; 0 when all of it left, 1 when the socket is full, -1 on error. */
static int flush_out(conn_t *c) {
    while (c->out_sent < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_sent, c->out_len - c->out_sent);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) return 1;
            return -1;
        }
        c->out_sent += (size_t)n;
    }
    c->out_len = c->out_sent = 0;
    return 0;
}

static void close_conn(int ep, conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

/* Reads once, answers every whole frame; -1 when the connection should close. */
static int on_readable(conn_t *c) {
    ssize_t n = read(c->fd, c->in + c->in_len, READ_BYTES);
    if (n == 0) return -1;
    if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    c->in_len += (size_t)n;
    size_t at = 0;
    while (c->in_len - at >= 4) {
        uint32_t len = (uint32_t)c->in[at] << 24 | (uint32_t)c->in[at + 1] << 16 | (uint32_t)c->in[at + 2] << 8 | c->in[at + 3];
        if (len == 0 || len > MAX_BODY) return -1;
        if (c->in_len - at < 4 + (size_t)len) break;
        if (reserve_out(c, REPLY_BYTES) < 0) return -1;
        answer(c, c->in[at + 4]);
        at += 4 + len;
    }
    memmove(c->in, c->in + at, c->in_len - at);
    c->in_len -= at;
    return 0;
}

int main(int argc, char **argv) {
    int port = 5699;
    const char *host = "127.0.0.1";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else { fprintf(stderr, "usage: ceiling [--host 127.0.0.1] [--port 5699]\n"); return 2; }
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) { fprintf(stderr, "ceiling: bad host %s\n", host); return 2; }
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) { perror("ceiling: listen"); return 1; }
    socklen_t alen = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &alen);
    printf("ceiling listening on %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    while (!stopping) {
        int ready = epoll_wait(ep, events, 256, 200);
        for (int i = 0; i < ready; i++) {
            conn_t *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *fresh = calloc(1, sizeof *fresh);
                    if (!fresh) { close(fd); continue; }
                    fresh->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = fresh};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            int rc = 0;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) rc = on_readable(c);
            int flushed = rc < 0 ? -1 : flush_out(c);
            if (flushed < 0) { close_conn(ep, c); continue; }
            /* A full socket: stop reading until it drains, so the output stays bounded. */
            struct epoll_event cev = {.events = flushed == 1 ? EPOLLOUT : EPOLLIN, .data.ptr = c};
            if ((events[i].events & EPOLLOUT) || flushed == 1) epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        }
    }
    return 0;
}
