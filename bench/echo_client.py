#!/usr/bin/env python3
"""echo_client.py - TCP clients for bench/02_echo_many.sh (127.0.0.1 only, stdlib only).

seq HOST PORT [--count N] [--timeout S] [--lat-out FILE] [--max-errors E] [--deadline S]
    N times, one after the other: socket.create_connection, sendall(b"ping\\n"), recv until
    the 5 echoed bytes are in, close. Each connection is timed with time.perf_counter (connect
    to close). Prints one JSON object: ok, errors, elapsed_s, conn_per_s, p50_ms, p99_ms, ...
    --lat-out writes the latencies (ms) of the good connections, one per line. Gives up after
    --max-errors failed connections, or --deadline seconds (0 = none), whichever comes first
    (the rest are counted as "not_attempted"; "stopped" says why), and still prints its JSON.

held HOST PORT --expect LINE [--count N] [--batch B] [--rate R] [--timeout S] [--wait S]
                                       [--cmd-timeout S]
    Opens N connections, B at a time (non-blocking connects, the next batch starts when every
    connect of this one has finished; --rate caps connects per second, 0 = no cap). Each
    sends one line ("hello I\\n") as soon as it is connected. Then, on stdout, one JSON line per
    event, and commands on stdin, one per line:
      {"event": "ready", "opened": .., "connect_failed": .., "open_s": .., ...}
      stdin "go"      -> the broadcast is being sent now: from here each connection has --wait
                         seconds to receive exactly LINE + "\\n"
      {"event": "result", "received": .., "missing": .., "extra": .., ...}
      stdin "close"   -> close every connection (stdin EOF does too)
      {"event": "closed", ...}
    Data that arrives before "go" is kept and counted too (a server that echoes would show up
    in "extra"). --timeout bounds each batch of connects, --cmd-timeout each wait for stdin.
"""
import argparse
import errno
import json
import os
import selectors
import socket
import sys
import time


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------- seq
def run_seq(a):
    msg = b"ping\n"
    lat = []
    errors = 0
    samples = []
    cc = socket.create_connection
    pc = time.perf_counter
    addr = (a.host, a.port)
    to = a.timeout
    n_done = 0
    t_start = pc()
    t_stop = t_start + a.deadline if a.deadline > 0 else None
    stopped = None
    for i in range(a.count):
        if errors >= a.max_errors:
            stopped = "gave up after %d failed connections" % errors
            break
        if t_stop is not None and pc() >= t_stop:
            stopped = "deadline of %ss reached" % a.deadline
            break
        n_done += 1
        t0 = pc()
        buf = b""
        err = None
        phase = "connect"
        try:
            s = cc(addr, timeout=to)
            try:
                phase = "send"
                s.sendall(msg)
                phase = "recv"
                while len(buf) < 5:
                    d = s.recv(64)
                    if not d:
                        break
                    buf += d
            finally:
                s.close()
        except OSError as e:
            err = "%s %s: %s" % (phase, type(e).__name__, e)
            if buf:
                err += " (after %r)" % (buf,)
        t1 = pc()
        if err is None and buf != msg:
            err = "bad echo %r%s" % (buf, "" if buf else " (EOF before any byte)")
        if err is None:
            lat.append((t1 - t0) * 1000.0)
        else:
            errors += 1
            if len(samples) < 5:
                samples.append("conn %d: %s" % (i, err))
    elapsed = pc() - t_start
    if a.lat_out:
        with open(a.lat_out, "w") as f:
            f.write("".join("%.4f\n" % v for v in lat))
    s_lat = sorted(lat)
    out({
        "mode": "seq", "count": a.count, "ok": len(lat), "errors": errors,
        "not_attempted": a.count - n_done, "stopped": stopped, "error_samples": samples,
        "elapsed_s": round(elapsed, 4),
        "conn_per_s": round(len(lat) / elapsed, 1) if elapsed > 0 else None,
        "p50_ms": pct(s_lat, 50), "p99_ms": pct(s_lat, 99),
        "max_ms": s_lat[-1] if s_lat else None,
    })
    return 0 if errors == 0 and len(lat) == a.count else 1


# ------------------------------------------------------------------------------------ held
class Conn:
    __slots__ = ("i", "sock", "buf", "state", "t_done", "err")

    def __init__(self, i, sock):
        self.i = i
        self.sock = sock
        self.buf = b""
        self.state = "connecting"  # connecting | open | eof | error
        self.t_done = None  # when the expected line was complete
        self.err = None


def run_held(a):
    expect = a.expect.encode() + b"\n"
    sel = selectors.DefaultSelector()  # epoll: no FD_SETSIZE limit
    conns = []
    connect_failed = 0
    fail_samples = []
    unexpected_pre_go = 0
    stdin_fd = sys.stdin.fileno()
    go_time = None

    def fail(c, why):
        nonlocal connect_failed
        if c.state == "connecting":
            connect_failed += 1
            if len(fail_samples) < 5:
                fail_samples.append("conn %d: %s" % (c.i, why))
        c.state = "error"
        c.err = why
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def on_readable(c):
        try:
            d = c.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            fail(c, "recv: %s" % e)
            return
        if not d:
            c.state = "eof"
            sel.unregister(c.sock)
            return
        c.buf += d
        if c.t_done is None and c.buf[:len(expect)] == expect:
            c.t_done = time.perf_counter()

    def on_connected(c):
        e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e:
            fail(c, "connect: %s" % os.strerror(e))
            return
        c.state = "open"
        try:
            c.sock.send(b"hello %d\n" % c.i)  # tiny: fits a fresh socket's buffer at once
        except OSError as e:
            fail(c, "send: %s" % e)
            return
        sel.modify(c.sock, selectors.EVENT_READ, c)

    def pump(timeout):
        for key, ev in sel.select(timeout):
            c = key.data
            if c.state == "connecting":
                on_connected(c)
            elif c.state == "open":
                on_readable(c)

    # ---- open, batch by batch
    t0 = time.perf_counter()
    min_gap = 1.0 / a.rate if a.rate > 0 else 0.0
    t_next = t0
    i = 0
    while i < a.count:
        batch = []
        for _ in range(min(a.batch, a.count - i)):
            if min_gap:
                now = time.perf_counter()
                if now < t_next:
                    time.sleep(t_next - now)
                t_next = max(t_next, time.perf_counter()) + min_gap
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            c = Conn(i, s)
            i += 1
            conns.append(c)
            batch.append(c)
            r = s.connect_ex((a.host, a.port))
            if r in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE, c)
            else:
                c.state = "connecting"
                fail(c, "connect: %s" % os.strerror(r))
        deadline = time.perf_counter() + a.timeout
        while any(c.state == "connecting" for c in batch):
            left = deadline - time.perf_counter()
            if left <= 0:
                for c in batch:
                    if c.state == "connecting":
                        fail(c, "connect: no answer within %ss" % a.timeout)
                break
            pump(min(left, 0.5))
    open_s = time.perf_counter() - t0
    opened = sum(1 for c in conns if c.state in ("open", "eof"))
    # Let any immediate reply (or reset) arrive before reporting.
    t_end = time.perf_counter() + 0.2
    while time.perf_counter() < t_end:
        pump(0.05)
    out({"event": "ready", "count": a.count, "opened": opened, "connect_failed": connect_failed,
         "fail_samples": fail_samples, "open_s": round(open_s, 3),
         "closed_by_server": sum(1 for c in conns if c.state == "eof"),
         "errors": sum(1 for c in conns if c.state == "error")})

    def read_cmd(deadline):
        """Serve sockets until a line arrives on stdin (or EOF / deadline) -> the line."""
        sel.register(stdin_fd, selectors.EVENT_READ, None)
        line = None
        try:
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return "timeout"
                for key, ev in sel.select(min(left, 0.5)):
                    if key.data is None:
                        b = os.read(stdin_fd, 256)
                        return b.decode(errors="replace").strip() if b else "eof"
                    c = key.data
                    if c.state == "open":
                        on_readable(c)
        finally:
            sel.unregister(stdin_fd)
        return line

    cmd = read_cmd(time.perf_counter() + a.cmd_timeout)
    # Received before "go": should be nothing (the server has nothing to send yet).
    unexpected_pre_go = sum(1 for c in conns if c.buf)
    if cmd == "go":
        go_time = time.perf_counter()
        deadline = go_time + a.wait

        def pending():
            return [c for c in conns if c.state == "open" and c.t_done is None]

        while pending():
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            pump(min(left, 0.2))
        # Give duplicates / extra bytes a moment to show up.
        t_end = time.perf_counter() + 0.3
        while time.perf_counter() < t_end:
            pump(0.05)
    got = [c for c in conns if c.t_done is not None]
    lat = sorted((c.t_done - go_time) * 1000.0 for c in got) if go_time else []
    extra = [c for c in conns if len(c.buf) > (len(expect) if c.t_done else 0)]
    wrong = [c for c in conns if c.buf and c.t_done is None]
    out({"event": "result", "cmd": cmd, "count": a.count, "opened": opened,
         "received": len(got), "missing": a.count - len(got),
         "extra": len(extra), "wrong_data": len(wrong), "data_before_go": unexpected_pre_go,
         "closed_by_server": sum(1 for c in conns if c.state == "eof"),
         "errors": sum(1 for c in conns if c.state == "error" and c.err and
                       not c.err.startswith("connect")),
         "samples_wrong": [repr(c.buf[:40]) for c in (wrong or extra)[:3]],
         "bcast_p50_ms": pct(lat, 50), "bcast_max_ms": lat[-1] if lat else None})
    if cmd == "go":
        cmd = read_cmd(time.perf_counter() + a.cmd_timeout)
    for c in conns:
        if c.state in ("open", "eof", "connecting"):
            c.sock.close()
    out({"event": "closed", "cmd": cmd})
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["seq", "held"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--lat-out")
    p.add_argument("--max-errors", type=int, default=10)
    p.add_argument("--deadline", type=float, default=0.0)
    p.add_argument("--expect", default="broadcast")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--wait", type=float, default=10.0)
    p.add_argument("--cmd-timeout", type=float, default=60.0)
    a = p.parse_args()
    if a.host not in ("127.0.0.1", "localhost"):
        p.error("127.0.0.1 only")
    return run_seq(a) if a.mode == "seq" else run_held(a)


if __name__ == "__main__":
    sys.exit(main())
