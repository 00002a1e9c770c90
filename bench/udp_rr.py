#!/usr/bin/env python3
"""udp_rr.py - UDP request/response client and echo server for bench/14_forward_udp.sh.

Stdlib only.

  udp_rr.py echo HOST PORT
      An echo server: one socket, every datagram sent back to its sender, until killed.

  udp_rr.py client HOST PORT [--clients K] [--size 64] [--secs 3] [--timeout 1]
      K client sockets (K source ports, so K sessions through a forwarder), each with one
      request in flight: send SIZE bytes (a per-client id and a sequence number, then fill),
      wait for the reply, check that it is the request, byte for byte, send the next. Runs
      for SECS seconds, then prints one JSON line:
        {"round_trips", "secs", "rps", "bad", "lost", "clients", "size"}
      bad = replies that were not the request in flight (wrong bytes, wrong size, another
      client's); lost = requests with no reply within TIMEOUT seconds (a new one is sent).
      Exit 0 when bad == lost == 0 and at least one round trip was made, else 1.
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

HEAD = struct.Struct(">IQ")  # client id, sequence number


def echo(args):
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.host, args.port))
    recvfrom, sendto = s.recvfrom, s.sendto
    while True:
        data, peer = recvfrom(65536)
        sendto(data, peer)


def request(client, seq, size):
    head = HEAD.pack(client, seq)
    return head + bytes((seq + i) & 0xFF for i in range(size - len(head)))


def client(args):
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    size = max(args.size, HEAD.size)
    ep = select.epoll()
    socks, inflight, sent_at = {}, {}, {}
    for c in range(args.clients):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.connect((args.host, args.port))
        s.setblocking(False)
        socks[s.fileno()] = (c, s)
        ep.register(s.fileno(), select.EPOLLIN)
    # Requests are built ahead (a small ring per client), so the timed loop only sends,
    # receives and compares.
    ring = 64
    prebuilt = [[request(c, q, size) for q in range(ring)] for c in range(args.clients)]
    seqs = [0] * args.clients
    done = bad = lost = 0
    t0 = time.monotonic()
    end = t0 + args.secs
    for fd, (c, s) in socks.items():
        inflight[c] = prebuilt[c][0]
        sent_at[c] = t0
        s.send(inflight[c])
    now = t0
    while now < end:
        events = ep.poll(min(args.timeout, max(end - now, 0.001)))
        now = time.monotonic()
        for fd, _ in events:
            c, s = socks[fd]
            while True:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    print("udp_rr: connection refused (ICMP port unreachable)", file=sys.stderr)
                    return 1
                if data != inflight[c]:
                    bad += 1
                    continue
                done += 1
                seqs[c] += 1
                inflight[c] = prebuilt[c][seqs[c] % ring]
                sent_at[c] = now
                s.send(inflight[c])
        for c, at in sent_at.items():
            if now - at >= args.timeout:
                lost += 1
                seqs[c] += 1
                inflight[c] = prebuilt[c][seqs[c] % ring]
                sent_at[c] = now
                for _, (cc, s) in socks.items():
                    if cc == c:
                        s.send(inflight[c])
    secs = time.monotonic() - t0
    print(json.dumps({"round_trips": done, "secs": round(secs, 3),
                      "rps": round(done / secs), "bad": bad, "lost": lost,
                      "clients": args.clients, "size": size}))
    return 0 if done > 0 and bad == 0 and lost == 0 else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("host")
    e.add_argument("port", type=int)
    c = sub.add_parser("client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--clients", type=int, default=1)
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--secs", type=float, default=3.0)
    c.add_argument("--timeout", type=float, default=1.0)
    args = p.parse_args()
    if args.cmd == "echo":
        try:
            echo(args)
        except KeyboardInterrupt:
            pass
        return 0
    return client(args)


if __name__ == "__main__":
    sys.exit(main())
