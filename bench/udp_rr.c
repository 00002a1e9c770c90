/* udp_rr.c - UDP request/response client and echo server for bench/14_forward_udp.sh.
 *
 * The same protocol and output as udp_rr.py, in C: the Python client and echo cost ~70 us per
 * round trip here, so with them the figure measured Python, not the forwarder (no forwarder:
 * 13k round trips/s with Python, ~60k with this). The bench compiles it with cc -O2.
 *
 *   udp_rr echo HOST PORT
 *       One socket; every datagram is sent back to its sender, until killed.
 *   udp_rr client HOST PORT CLIENTS SIZE SECS TIMEOUT
 *       CLIENTS sockets (source ports), each with one request in flight: SIZE bytes (client id,
 *       sequence number, then a fill derived from both); the reply must be the request byte for
 *       byte, then the next one is sent. After SECS seconds prints one JSON line:
 *       {"round_trips", "secs", "rps", "bad", "lost", "clients", "size"}
 *       bad = replies that were not the request in flight; lost = no reply within TIMEOUT s.
 *       Exit 0 when bad == lost == 0 and at least one round trip was made, else 1.
 * IPv4 literals only (the bench runs on 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 1024
#define MAX_SIZE 65507

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in address(const char *host, const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "udp_rr: not an IPv4 address: %s\n", host);
        exit(2);
    }
    return a;
}

static int echo(const char *host, const char *port) {
    struct sockaddr_in a = address(host, port);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    int rcv = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("udp_rr: bind");
        return 1;
    }
    static char buf[65536];
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
        if (n >= 0)
            sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&peer, len);
    }
}

struct client {
    int fd;
    uint64_t seq;
    double sent_at;
    unsigned char req[MAX_SIZE];
};

static void build(struct client *c, uint32_t id, size_t size) {
    uint32_t nid = htonl(id);
    memcpy(c->req, &nid, 4);
    for (int i = 0; i < 8; i++)
        c->req[4 + i] = (unsigned char)(c->seq >> (56 - 8 * i));
    for (size_t i = 12; i < size; i++)
        c->req[i] = (unsigned char)(c->seq + i);
}

static int client(const char *host, const char *port, int clients, size_t size, double secs,
                  double timeout) {
    struct sockaddr_in a = address(host, port);
    if (clients < 1 || clients > MAX_CLIENTS || size < 12 || size > MAX_SIZE) {
        fprintf(stderr, "udp_rr: CLIENTS 1..%d, SIZE 12..%d\n", MAX_CLIENTS, MAX_SIZE);
        return 2;
    }
    struct client *cs = calloc((size_t)clients, sizeof *cs);
    int ep = epoll_create1(0);
    for (int c = 0; c < clients; c++) {
        cs[c].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (connect(cs[c].fd, (struct sockaddr *)&a, sizeof a) != 0) {
            perror("udp_rr: connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)c};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[c].fd, &ev);
    }
    static unsigned char buf[65536];
    uint64_t done = 0, bad = 0, lost = 0;
    double t0 = now(), end = t0 + secs, t = t0;
    for (int c = 0; c < clients; c++) {
        build(&cs[c], (uint32_t)c, size);
        cs[c].sent_at = t0;
        send(cs[c].fd, cs[c].req, size, 0);
    }
    struct epoll_event evs[64];
    while (t < end) {
        double left = end - t < timeout ? end - t : timeout;
        int n = epoll_wait(ep, evs, 64, (int)(left * 1000) + 1);
        t = now();
        for (int i = 0; i < n; i++) {
            struct client *c = &cs[evs[i].data.u32];
            for (;;) {
                ssize_t got = recv(c->fd, buf, sizeof buf, 0);
                if (got < 0) {
                    if (errno == ECONNREFUSED) {
                        fprintf(stderr, "udp_rr: connection refused (ICMP port unreachable)\n");
                        return 1;
                    }
                    break;
                }
                if ((size_t)got != size || memcmp(buf, c->req, size) != 0) {
                    bad++;
                    continue;
                }
                done++;
                c->seq++;
                build(c, evs[i].data.u32, size);
                c->sent_at = t;
                send(c->fd, c->req, size, 0);
            }
        }
        for (int k = 0; k < clients; k++) {
            if (t - cs[k].sent_at >= timeout) {
                lost++;
                cs[k].seq++;
                build(&cs[k], (uint32_t)k, size);
                cs[k].sent_at = t;
                send(cs[k].fd, cs[k].req, size, 0);
            }
        }
    }
    double took = now() - t0;
    printf("{\"round_trips\": %llu, \"secs\": %.3f, \"rps\": %.0f, \"bad\": %llu, \"lost\": %llu, "
           "\"clients\": %d, \"size\": %zu}\n",
           (unsigned long long)done, took, done / took, (unsigned long long)bad,
           (unsigned long long)lost, clients, size);
    return done > 0 && bad == 0 && lost == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "echo") == 0)
        return echo(argv[2], argv[3]);
    if (argc == 8 && strcmp(argv[1], "client") == 0)
        return client(argv[2], argv[3], atoi(argv[4]), (size_t)atoi(argv[5]), atof(argv[6]),
                      atof(argv[7]));
    fprintf(stderr, "usage: udp_rr echo HOST PORT | udp_rr client HOST PORT CLIENTS SIZE SECS "
                    "TIMEOUT\n");
    return 2;
}
