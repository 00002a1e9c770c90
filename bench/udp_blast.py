#!/usr/bin/env python3
"""udp_blast.py - UDP datagram sender, counting reader and checker for bench/04_udp.sh.

Stdlib only (sendmmsg through ctypes, Linux).

  udp_blast.py send HOST PORT [--size 64] [--count N] [--rate PPS] [--batch B]
      Sends COUNT datagrams of SIZE bytes from ONE connected socket (one source port, so
      `nc -u -l`, which connects to its first peer, accepts them all). Without --rate it
      sends as fast as it can (flood); with --rate it paces to PPS datagrams/s (bursts of at
      most --burst datagrams, sleeping in between: no busy-wait, so pacing costs no CPU the
      receiver could use). --batch B sends B datagrams per sendmmsg(2) call instead of one
      send(2) each: the flood goes ~1.5x faster (the loopback receive path, which runs in the
      sender's context, becomes the limit rather than Python). Prints one JSON line:
        {"sent", "errors", "errnos", "secs", "pps", "t_start", "t_end", ...}
      secs = first send to end of the last; t_start/t_end are the same instants as wall-clock
      time (time.time()). A send that fails (ECONNREFUSED after an ICMP port unreachable,
      ENOBUFS) counts in "errors", not "sent"; after --max-errors errors it gives up (exit 1).

  udp_blast.py count [--size SIZE]       (receiver stdout | udp_blast.py count)
      The counting reader: reads stdin to EOF and prints JSON {"bytes", "heads", "whole",
      "truncated", "t_first", "t_last"}. heads = datagrams whose start came out (b"NKUB"),
      whole = datagrams whose end came out (b"BUKN"), truncated = heads - whole; t_first /
      t_last = wall-clock time of the first / last read that returned data. A receiver that
      cuts datagrams short (OpenBSD nc does when its stdout backs up: read() into the room
      left in its 16 KiB buffer truncates the datagram) shows up as "truncated" instead of
      skewing a bytes / SIZE count. Valid for COUNT < 4,000,000 (seq bytes never spell a marker).

  udp_blast.py check FILE --size SIZE --count N
      Checks a receiver's output file record by record: every SIZE-byte record must be a
      whole datagram of this sender (markers, seq at both ends, fill intact), no duplicates.
      Prints JSON {"records", "good", "bad", "dups", "lost", "reordered", "tail_bytes",
      "ok"}; exit 0 if ok (no bad record, duplicate or partial record; loss is reported, not
      judged), else 1.

Datagram layout (SIZE >= 24): b"NKUB" + seq (u64 big-endian) + fill + seq (u64 BE) + b"BUKN",
fill a fixed A-Z pattern, so a truncated, merged or shifted datagram is detected.
"""
import argparse
import errno
import json
import os
import socket
import struct
import sys
import time

MAGIC = b"NKUB"
TAIL = b"BUKN"
HDR = struct.Struct(">4sQ")
SEQ = struct.Struct(">Q")
MIN_SIZE = HDR.size + SEQ.size + len(TAIL)


def fill(size):
    n = size - MIN_SIZE
    pat = bytes(range(0x41, 0x5B))  # A-Z
    return (pat * (n // len(pat) + 1))[:n]


def make_buf(size):
    buf = bytearray(MAGIC + bytes(8) + fill(size) + bytes(8) + TAIL)
    assert len(buf) == size
    return buf


class _Mmsg:
    """sendmmsg(2) through ctypes: BATCH datagrams per system call (Linux, glibc)."""

    def __init__(self, fd, size, batch):
        import ctypes
        import ctypes.util

        class iovec(ctypes.Structure):
            _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]

        class msghdr(ctypes.Structure):
            _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                        ("msg_iov", ctypes.POINTER(iovec)), ("msg_iovlen", ctypes.c_size_t),
                        ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                        ("msg_flags", ctypes.c_int)]

        class mmsghdr(ctypes.Structure):
            _fields_ = [("msg_hdr", msghdr), ("msg_len", ctypes.c_uint)]

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fn = libc.sendmmsg
        self.fn.argtypes = [ctypes.c_int, ctypes.POINTER(mmsghdr), ctypes.c_uint, ctypes.c_int]
        self.fn.restype = ctypes.c_int
        self.get_errno = ctypes.get_errno
        one = make_buf(size)
        self.buf = bytearray(bytes(one) * batch)  # BATCH datagrams back to back
        self._cbuf = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        base = ctypes.addressof(self._cbuf)
        self.iov = (iovec * batch)()
        self.msgs = (mmsghdr * batch)()
        for i in range(batch):
            self.iov[i].iov_base = base + i * size
            self.iov[i].iov_len = size
            self.msgs[i].msg_hdr.msg_iov = ctypes.pointer(self.iov[i])
            self.msgs[i].msg_hdr.msg_iovlen = 1
        self.ptrs = [ctypes.byref(self.msgs, i * ctypes.sizeof(mmsghdr)) for i in range(batch)]
        self.fd = fd
        self.cast = ctypes.cast
        self.ptype = ctypes.POINTER(mmsghdr)


def cmd_send(a):
    size = a.size
    tail = size - SEQ.size - len(TAIL)
    pack = SEQ.pack_into
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, a.sndbuf)
    s.connect((a.host, a.port))
    errnos = {}

    def note(e):
        k = errno.errorcode.get(e, str(e))
        errnos[k] = errnos.get(k, 0) + 1

    # send_batch(seq, k) sends datagrams seq .. seq+k-1; returns (sent, failed), sent + failed == k
    if a.batch > 1:
        mm = _Mmsg(s.fileno(), size, a.batch)
        mbuf, fn, fd, ptrs, cast, ptype = mm.buf, mm.fn, mm.fd, mm.ptrs, mm.cast, mm.ptype

        def send_batch(seq, k):
            for i in range(k):
                off = i * size
                pack(mbuf, off + 4, seq + i)
                pack(mbuf, off + tail, seq + i)
            ok = bad = 0
            while ok + bad < k:
                r = fn(fd, cast(ptrs[ok + bad], ptype), k - ok - bad, 0)
                if r < 0:  # the first unsent datagram failed: count it, go on with the next
                    note(mm.get_errno())
                    bad += 1
                else:
                    ok += r
            return ok, bad
    else:
        buf = make_buf(size)
        send = s.send

        def send_batch(seq, k):
            ok = bad = 0
            for i in range(seq, seq + k):
                pack(buf, 4, i)
                pack(buf, tail, i)
                try:
                    send(buf)
                    ok += 1
                except OSError as e:
                    note(e.errno)
                    bad += 1
            return ok, bad

    sent = errors = seq = 0
    count = a.count
    clock = time.perf_counter
    wall0 = time.time()
    t0 = clock()
    if a.rate:
        rate = float(a.rate)
        burst = max(1, a.batch if a.batch > 1 else a.burst)
        sleep = time.sleep
        while seq < count and errors < a.max_errors:
            now = clock()
            due = min(count, int((now - t0) * rate) + 1)  # datagrams that should be out by now
            n = due - seq
            if n <= 0:
                sleep(seq / rate - (now - t0))
                continue
            ok, bad = send_batch(seq, min(n, burst))
            sent += ok
            errors += bad
            seq += ok + bad
    else:
        step = max(1, a.batch)
        while seq < count and errors < a.max_errors:
            ok, bad = send_batch(seq, min(step, count - seq))
            sent += ok
            errors += bad
            seq += ok + bad
    secs = clock() - t0
    s.close()
    out = {"sent": sent, "errors": errors, "errnos": errnos, "secs": round(secs, 6),
           "t_start": round(wall0, 6), "t_end": round(wall0 + secs, 6),
           "pps": round(sent / secs, 1) if secs > 0 else 0, "rate": a.rate,
           "size": size, "count": count, "batch": a.batch}
    print(json.dumps(out), flush=True)
    return 1 if errors >= a.max_errors else 0


def cmd_check(a):
    size = a.size
    want_fill = bytes(fill(size))
    seen = bytearray(a.count) if a.count else None
    records = bad = dups = reordered = 0
    last = -1
    tail_bytes = 0
    first_bad = None
    with open(a.file, "rb") as f:
        while True:
            rec = f.read(size)
            if not rec:
                break
            if len(rec) < size:
                tail_bytes = len(rec)
                break
            records += 1
            magic, seq = HDR.unpack_from(rec, 0)
            (seq2,) = SEQ.unpack_from(rec, size - SEQ.size - len(TAIL))
            if magic != MAGIC or seq != seq2 or rec[-len(TAIL):] != TAIL \
                    or rec[HDR.size:size - SEQ.size - len(TAIL)] != want_fill \
                    or (a.count and seq >= a.count):
                bad += 1
                if first_bad is None:
                    first_bad = {"record": records - 1, "head": rec[:16].hex()}
                continue
            if seen is not None:
                if seen[seq]:
                    dups += 1
                    continue
                seen[seq] = 1
            if seq < last:
                reordered += 1
            last = seq
    good = records - bad - dups
    out = {"records": records, "bad": bad, "dups": dups, "reordered": reordered,
           "tail_bytes": tail_bytes, "good": good,
           "lost": (a.count - good) if a.count else None,
           "ok": bad == 0 and dups == 0 and tail_bytes == 0}
    if first_bad:
        out["first_bad"] = first_bad
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


def cmd_count(a):
    fd = sys.stdin.fileno()
    # Cheap reading: grow the pipe (F_SETPIPE_SZ, up to fs.pipe-max-size) and, while data
    # trickles in, nap a little between reads, so that the receiver writes into a roomy pipe
    # and the counter takes ~1000 reads/s instead of a wakeup per datagram.
    pipe_sz = 1 << 16
    try:
        import fcntl
        want = a.pipe_size
        try:
            with open("/proc/sys/fs/pipe-max-size") as f:
                want = min(want, int(f.read()))
        except OSError:
            pass
        pipe_sz = fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), want)
    except (OSError, ValueError, ImportError):
        pass
    nap = a.nap / 1000.0
    read = os.read
    sleep = time.sleep
    nbytes = heads = whole = 0
    carry = b""
    now = time.time
    t_first = t_last = None
    while True:
        chunk = read(fd, 1 << 20)
        if not chunk:
            break
        t_last = now()
        if t_first is None:
            t_first = t_last
        nbytes += len(chunk)
        data = carry + chunk  # carry (3 bytes) cannot hold a whole 4-byte magic on its own
        heads += data.count(MAGIC)
        whole += data.count(TAIL)
        carry = data[-3:]
        if nap and len(chunk) < pipe_sz // 2:
            sleep(nap)
    print(json.dumps({"bytes": nbytes, "heads": heads, "whole": whole,
                      "t_first": t_first and round(t_first, 6), "t_last": t_last and round(t_last, 6),
                      "truncated": max(0, heads - whole), "size": a.size,
                      "bytes_over_size": nbytes // a.size if a.size else None}), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send", help="send COUNT datagrams (flood, or paced with --rate)")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--size", type=int, default=64, help="datagram payload bytes (>= %d)" % MIN_SIZE)
    s.add_argument("--count", type=int, default=100000)
    s.add_argument("--rate", type=int, default=0, help="datagrams/s (0 = as fast as possible)")
    s.add_argument("--burst", type=int, default=32,
                   help="max datagrams back to back when paced (--batch > 1: the batch size)")
    s.add_argument("--batch", type=int, default=1,
                   help="datagrams per sendmmsg(2) call (1 = one send(2) per datagram)")
    s.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF (0 = system default)")
    s.add_argument("--max-errors", type=int, default=1000)
    c = sub.add_parser("check", help="check a receiver's output file")
    c.add_argument("file")
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--count", type=int, default=0, help="datagrams sent (for lost/dups)")
    k = sub.add_parser("count", help="count datagrams on stdin (the counting reader)")
    k.add_argument("--size", type=int, default=64)
    k.add_argument("--pipe-size", type=int, default=1 << 20, help="F_SETPIPE_SZ for a pipe on stdin")
    k.add_argument("--nap", type=float, default=1.0,
                   help="ms to sleep after a read that got less than half the pipe (0 = never)")
    a = p.parse_args()
    if a.size < MIN_SIZE:
        p.error("--size must be >= %d" % MIN_SIZE)
    try:
        return {"send": cmd_send, "check": cmd_check, "count": cmd_count}[a.cmd](a)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
