#!/usr/bin/env python3
"""conn_client.py - TCP clients for bench/17_forward_conns.sh (127.0.0.1 only, stdlib only).

seq PORT [--count N] [--size B] [--deadline S]
    N times, one after the other: connect to 127.0.0.1:PORT, send B random bytes (default
    1024), read until the same B bytes are back (checked), close. Prints one JSON object:
    ok, errors, bad (echo differed), elapsed_s, conn_per_s. Stops at --deadline seconds.

held PORT --count N [--batch B] [--timeout S] [--pid-file F]
    Opens N connections (B connects in flight at a time), each sends one line
    ("hello I\\n") and waits for exactly that line back, and keeps the connection open.
    When every connection has its echo (or --timeout seconds passed), prints one JSON line
    {"event": "ready", "opened": .., "echoed": .., "failed": .., "open_s": ..} and waits for
    a line on stdin (the caller measures the forwarder's memory meanwhile), then closes all.
"""
import argparse
import json
import os
import selectors
import socket
import sys
import time


def seq(args):
    payload = os.urandom(args.size)
    ok = errors = bad = 0
    start = time.perf_counter()
    stop = start + args.deadline if args.deadline else None
    for _ in range(args.count):
        if stop and time.perf_counter() > stop:
            break
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=5)
            s.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            s.close()
            if bytes(got) == payload:
                ok += 1
            else:
                bad += 1
        except OSError:
            errors += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"ok": ok, "errors": errors, "bad": bad, "elapsed_s": round(elapsed, 3),
                      "conn_per_s": round(ok / elapsed, 1) if elapsed > 0 else 0}))


def held(args):
    sel = selectors.DefaultSelector()
    conns = {}
    pending = list(range(args.count))
    in_flight = 0
    opened = echoed = failed = 0
    start = time.perf_counter()
    stop = start + args.timeout
    while (pending or in_flight) and time.perf_counter() < stop:
        while pending and in_flight < args.batch:
            i = pending.pop()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", args.port))
            except BlockingIOError:
                pass
            except OSError:
                failed += 1
                s.close()
                continue
            line = b"hello %d\n" % i
            conns[s] = {"line": line, "sent": False, "got": b""}
            sel.register(s, selectors.EVENT_WRITE, s)
            in_flight += 1
        for key, _ in sel.select(timeout=0.5):
            s = key.data
            c = conns[s]
            if not c["sent"]:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed += 1
                    in_flight -= 1
                    sel.unregister(s)
                    s.close()
                    del conns[s]
                    continue
                opened += 1
                s.send(c["line"])
                c["sent"] = True
                sel.modify(s, selectors.EVENT_READ, s)
                continue
            try:
                chunk = s.recv(256)
            except OSError:
                chunk = b""
            if not chunk:
                failed += 1
                in_flight -= 1
                sel.unregister(s)
                s.close()
                del conns[s]
                continue
            c["got"] += chunk
            if len(c["got"]) >= len(c["line"]):
                if c["got"] == c["line"]:
                    echoed += 1
                else:
                    failed += 1
                in_flight -= 1
                sel.unregister(s)
    print(json.dumps({"event": "ready", "opened": opened, "echoed": echoed, "failed": failed,
                      "open_s": round(time.perf_counter() - start, 3)}), flush=True)
    sys.stdin.readline()
    for s in list(conns):
        s.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("seq")
    a.add_argument("port", type=int)
    a.add_argument("--count", type=int, default=2000)
    a.add_argument("--size", type=int, default=1024)
    a.add_argument("--deadline", type=float, default=60)
    b = sub.add_parser("held")
    b.add_argument("port", type=int)
    b.add_argument("--count", type=int, default=9900)
    b.add_argument("--batch", type=int, default=200)
    b.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    seq(args) if args.mode == "seq" else held(args)


if __name__ == "__main__":
    main()
