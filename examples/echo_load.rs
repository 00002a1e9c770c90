//! Load client for `bench/09_services.sh`: drives RFC 862 echo servers (nk's, xinetd's, socat,
//! ncat) over 127.0.0.1 with the same fast client for every server.
//!
//! It exists because `bench/echo_client.py` tops out at about 3,000 connections per second: a
//! Python client would measure itself, not nk's server. This one is plain std + libc (libc to
//! raise `RLIMIT_NOFILE`, to pick a loopback source address, and for poll(2) and non-blocking
//! peeks in the UDP mode), single-threaded, and prints one line of `key=value` figures on
//! stdout that the script parses.
//!
//! ```text
//! echo_load seq  ADDR [--secs S] [--count N] [--msg TEXT] [--srcs K] [--timeout S]
//!     Connect, send TEXT (default "ping\n"), read until it is back, close; one after the
//!     other, for S seconds (default 2) or N connections, whichever comes first. --srcs K
//!     spreads the connections over the source addresses 127.0.0.1 .. 127.0.0.K (default 1):
//!     the client closes first, so every connection leaves a TIME_WAIT socket behind, and at
//!     tens of thousands per second one source address runs out of ports.
//!     -> ok= fail= secs= rate= p50_ms= p99_ms= max_ms= err=
//! echo_load held ADDR --conns N [--timeout S] [--hold-max S]
//!     Raise the soft fd limit to the hard one; open N connections (sequential connects);
//!     then write one line on each, then read every echo back, in order, all within S seconds
//!     (default 30) of the first write. Prints its line, then holds every connection open
//!     until stdin reaches EOF (or --hold-max seconds, default 60), so that the server's memory
//!     can be read while they are held.
//!     -> opened= echoed= open_secs= echo_secs= total_secs= nofile= err=
//! echo_load udp  ADDR [--secs S] [--count N] [--size B] [--timeout S] [--spin]
//!     One connected UDP socket: send a datagram of B bytes (default 64) holding a sequence
//!     number, wait up to S seconds (default 0.005) for the same bytes back, repeat. A reply
//!     that times out counts as lost and the next datagram goes out; a lost reply that turns
//!     up later after all (or within 200 ms of the end) also counts as late, so never = lost -
//!     late were never answered. net_rate leaves out the time spent waiting for lost replies
//!     (xinetd drops a datagram that arrives while it finishes the previous one, so its raw
//!     rate would depend on the timeout). --spin busy-polls for the reply instead of sleeping
//!     in poll(2), so the client's own wakeup is not part of the round trip.
//!     -> ok= lost= late= never= secs= rate= lost_wait_secs= net_rate= p50_ms= p99_ms= max_ms= err=
//! ```
//! Exit status: 0 when every exchange succeeded (udp: every datagram answered, late or not),
//! 1 otherwise, 2 on a usage error.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::exit;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Opts {
    mode: String,
    addr: SocketAddr,
    secs: f64,
    count: u64,
    msg: Vec<u8>,
    srcs: u8,
    timeout: f64,
    conns: usize,
    hold_max: f64,
    size: usize,
    spin: bool,
}

fn usage(why: &str) -> ! {
    eprintln!("echo_load: {why}");
    eprintln!("usage: echo_load seq|held|udp ADDR [--secs S] [--count N] [--msg TEXT] [--srcs K]");
    eprintln!("                 [--timeout S] [--conns N] [--hold-max S] [--size B] [--spin]");
    exit(2)
}

fn parse() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage("no mode"));
    if !matches!(mode.as_str(), "seq" | "held" | "udp") {
        usage(&format!("unknown mode {mode:?}"));
    }
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| usage("no ADDR"))
        .parse()
        .unwrap_or_else(|e| usage(&format!("ADDR: {e}")));
    let mut o = Opts {
        timeout: match mode.as_str() {
            "udp" => 0.005,
            "held" => 30.0,
            _ => 5.0,
        },
        mode,
        addr,
        secs: 2.0,
        count: u64::MAX,
        msg: b"ping\n".to_vec(),
        srcs: 1,
        conns: 0,
        hold_max: 60.0,
        size: 64,
        spin: false,
    };
    while let Some(flag) = args.next() {
        if flag == "--spin" {
            o.spin = true;
            continue;
        }
        let val = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: &str| -> f64 {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .unwrap_or_else(|| usage(&format!("{flag}: bad number {v:?}")))
        };
        match flag.as_str() {
            "--secs" => o.secs = num(&val),
            "--count" => o.count = num(&val) as u64,
            "--msg" => o.msg = val.replace("\\n", "\n").into_bytes(),
            "--srcs" => o.srcs = (num(&val) as u8).max(1),
            "--timeout" => o.timeout = num(&val),
            "--conns" => o.conns = num(&val) as usize,
            "--hold-max" => o.hold_max = num(&val),
            "--size" => o.size = (num(&val) as usize).clamp(16, 65507),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if o.msg.is_empty() {
        usage("--msg must not be empty");
    }
    o
}

/// Nearest-rank percentile (milliseconds) of ascending durations in nanoseconds.
fn pct_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// `err=` value: the first error seen, spaces replaced so the line stays `key=value`.
fn err_field(e: &Option<String>) -> String {
    e.as_deref()
        .unwrap_or("none")
        .replace(char::is_whitespace, "_")
}

/// A TCP connection to `dst` from source address `src` (any port): socket, `IP_BIND_ADDRESS_NO_PORT`
/// (the port is then chosen at connect time, per destination, as without a bind), bind, connect.
fn connect_from(src: Ipv4Addr, dst: &SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        return TcpStream::connect(dst);
    };
    let sin = |a: &SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2) call with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket we just created and own; the TcpStream closes it on every path.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let s = sin(&SocketAddrV4::new(src, 0));
    // SAFETY: s is a valid sockaddr_in that lives across the call; len is its size.
    if unsafe { libc::bind(fd, (&s as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let d = sin(dst);
    loop {
        // SAFETY: as for bind above; the socket is blocking, so connect returns when done.
        if unsafe { libc::connect(fd, (&d as *const libc::sockaddr_in).cast(), len) } == 0 {
            return Ok(stream);
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One connect + send + read the echo + close. Returns the connection's time in nanoseconds.
fn one_seq(o: &Opts, src: Ipv4Addr, buf: &mut [u8]) -> io::Result<u64> {
    let t0 = Instant::now();
    let mut s = if o.srcs > 1 {
        connect_from(src, &o.addr)?
    } else {
        TcpStream::connect(o.addr)?
    };
    s.set_read_timeout(Some(Duration::from_secs_f64(o.timeout.max(0.001))))?;
    s.write_all(&o.msg)?;
    let n = o.msg.len();
    let mut got = 0;
    while got < n {
        match s.read(&mut buf[got..n]) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("closed after {got} of {n} bytes"),
                ))
            }
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if buf[..n] != o.msg[..] {
        return Err(io::Error::new(ErrorKind::InvalidData, "echo differs"));
    }
    drop(s);
    Ok(t0.elapsed().as_nanos() as u64)
}

fn run_seq(o: &Opts) -> bool {
    let mut buf = vec![0u8; o.msg.len()];
    let mut lat = Vec::with_capacity(1 << 16);
    let (mut fail, mut first_err) = (0u64, None);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.secs);
    let mut i: u64 = 0;
    while i < o.count && Instant::now() < end {
        let src = Ipv4Addr::new(127, 0, 0, 1 + (i % u64::from(o.srcs)) as u8);
        match one_seq(o, src, &mut buf) {
            Ok(ns) => lat.push(ns),
            Err(e) => {
                fail += 1;
                first_err.get_or_insert_with(|| format!("conn {i}: {e}"));
                if fail >= 100 {
                    break;
                }
            }
        }
        i += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "ok={} fail={} secs={:.6} rate={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} err={}",
        lat.len(),
        fail,
        secs,
        lat.len() as f64 / secs,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 99.0),
        pct_ms(&lat, 100.0),
        err_field(&first_err)
    );
    fail == 0 && !lat.is_empty()
}

/// Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid, writable rlimit for getrlimit to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 0;
    }
    if r.rlim_cur < r.rlim_max {
        let want = libc::rlimit {
            rlim_cur: r.rlim_max,
            rlim_max: r.rlim_max,
        };
        // SAFETY: want is a valid rlimit that lives across the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    r.rlim_cur
}

fn run_held(o: &Opts) -> bool {
    let limit = raise_nofile();
    if (limit as usize) < o.conns + 16 {
        eprintln!(
            "echo_load: fd limit {limit} is too low for {} connections",
            o.conns
        );
    }
    let mut first_err: Option<String> = None;
    let mut conns: Vec<TcpStream> = Vec::with_capacity(o.conns);
    let t0 = Instant::now();
    for i in 0..o.conns {
        match TcpStream::connect(o.addr) {
            Ok(s) => conns.push(s),
            Err(e) => {
                first_err = Some(format!("connect {i}: {e}"));
                break;
            }
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    // Every connection writes its line first, then the echoes are read back in order: the
    // server has them all in flight at once.
    let t1 = Instant::now();
    let deadline = t1 + Duration::from_secs_f64(o.timeout);
    let mut written = vec![false; conns.len()];
    for (i, s) in conns.iter_mut().enumerate() {
        let line = format!("held {i:05}\n");
        match s.write_all(line.as_bytes()) {
            Ok(()) => written[i] = true,
            Err(e) => {
                first_err.get_or_insert_with(|| format!("write {i}: {e}"));
            }
        }
    }
    let mut echoed = 0usize;
    let mut buf = [0u8; 64];
    'conns: for (i, s) in conns.iter_mut().enumerate() {
        if !written[i] {
            continue;
        }
        let want = format!("held {i:05}\n");
        let mut got = 0;
        while got < want.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                first_err
                    .get_or_insert_with(|| format!("echo {i}: not back within {}s", o.timeout));
                break 'conns;
            }
            if let Err(e) = s.set_read_timeout(Some(left)) {
                first_err.get_or_insert_with(|| format!("echo {i}: {e}"));
                continue 'conns;
            }
            match s.read(&mut buf[got..want.len()]) {
                Ok(0) => {
                    first_err.get_or_insert_with(|| format!("echo {i}: closed after {got} bytes"));
                    continue 'conns;
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    first_err.get_or_insert_with(|| format!("echo {i}: {e}"));
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                        break 'conns;
                    }
                    continue 'conns;
                }
            }
        }
        if buf[..want.len()] == *want.as_bytes() {
            echoed += 1;
        } else {
            first_err.get_or_insert_with(|| format!("echo {i}: differs"));
        }
    }
    let echo_secs = t1.elapsed().as_secs_f64();
    println!(
        "opened={} echoed={} open_secs={:.6} echo_secs={:.6} total_secs={:.6} nofile={} err={}",
        conns.len(),
        echoed,
        open_secs,
        echo_secs,
        t0.elapsed().as_secs_f64(),
        limit,
        err_field(&first_err)
    );
    let _ = io::stdout().flush();
    // Hold them until stdin reaches EOF (or --hold-max): a helper thread reads stdin, the
    // main thread waits for it with a bound.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs_f64(o.hold_max));
    drop(conns);
    echoed == o.conns
}

/// Wait up to `left` (millisecond steps, rounded up: poll(2)'s timer is precise, unlike
/// SO_RCVTIMEO's) until `sock` has a datagram to read.
fn readable(sock: &UdpSocket, left: Duration) -> io::Result<bool> {
    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: pfd is one valid pollfd that lives across the call, and nfds is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// As `readable`, but busy-polls (MSG_PEEK | MSG_DONTWAIT) instead of sleeping, so the client
/// never needs a wakeup: only the server's wakeup and work remain in each round trip.
fn spin_readable(sock: &UdpSocket, left: Duration) -> io::Result<bool> {
    let end = Instant::now() + left;
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: byte is a live, writable 1-byte buffer; the flags make the call non-blocking.
        let rc = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                byte.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if rc >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
            return Err(e);
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        std::hint::spin_loop();
    }
}

fn run_udp(o: &Opts) -> bool {
    let bind: SocketAddr = if o.addr.is_ipv4() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let sock = UdpSocket::bind(bind).and_then(|s| s.connect(o.addr).map(|()| s));
    let sock = match sock {
        Ok(s) => s,
        Err(e) => {
            println!("ok=0 lost=0 late=0 never=0 secs=0 rate=0 lost_wait_secs=0 net_rate=0 p50_ms=0 p99_ms=0 max_ms=0 err=socket:_{e}");
            return false;
        }
    };
    let mut out = vec![b'u'; o.size];
    let mut inb = vec![0u8; o.size + 1];
    let mut lat = Vec::with_capacity(1 << 16);
    let (mut lost, mut late, mut first_err) = (0u64, 0u64, None);
    let mut lost_wait = Duration::ZERO; // time spent waiting for replies that never came
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(o.secs);
    let mut seq: u64 = 0;
    while seq < o.count && Instant::now() < end {
        out[..8].copy_from_slice(&seq.to_be_bytes());
        let ts = Instant::now();
        if let Err(e) = sock.send(&out) {
            first_err.get_or_insert_with(|| format!("send {seq}: {e}"));
            lost += 1;
            if lost >= 100 {
                break;
            }
            seq += 1;
            continue;
        }
        let wait = Duration::from_secs_f64(o.timeout);
        loop {
            let left = wait.saturating_sub(ts.elapsed());
            let ready = if o.spin {
                spin_readable(&sock, left)
            } else {
                readable(&sock, left)
            };
            match ready {
                Ok(true) => {}
                Ok(false) => {
                    first_err.get_or_insert_with(|| format!("reply {seq}: none within {wait:?}"));
                    lost += 1;
                    lost_wait += ts.elapsed();
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert_with(|| format!("poll: {e}"));
                    lost += 1;
                    break;
                }
            }
            match sock.recv(&mut inb) {
                // A late reply to an earlier datagram (already counted as lost): keep waiting.
                Ok(n) if n == o.size && inb[..8] != out[..8] => late += 1,
                Ok(n) if n == o.size && inb[..n] == out[..] => {
                    lat.push(ts.elapsed().as_nanos() as u64);
                    break;
                }
                Ok(n) => {
                    first_err.get_or_insert_with(|| format!("reply {seq}: {n} bytes, differs"));
                    lost += 1;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    first_err.get_or_insert_with(|| format!("reply {seq}: {e}"));
                    lost += 1;
                    lost_wait += ts.elapsed();
                    break;
                }
            }
        }
        if lost >= 100 && lat.is_empty() {
            break;
        }
        seq += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Replies still on their way count as late, not as never answered.
    if lost > late
        && sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .is_ok()
    {
        while late < lost {
            match sock.recv(&mut inb) {
                Ok(n) if n == o.size => late += 1,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
    let never = lost.saturating_sub(late);
    let busy = (secs - lost_wait.as_secs_f64()).max(1e-9);
    lat.sort_unstable();
    println!(
        "ok={} lost={} late={} never={} secs={:.6} rate={:.1} lost_wait_secs={:.6} net_rate={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} err={}",
        lat.len(),
        lost,
        late,
        never,
        secs,
        lat.len() as f64 / secs,
        lost_wait.as_secs_f64(),
        lat.len() as f64 / busy,
        pct_ms(&lat, 50.0),
        pct_ms(&lat, 99.0),
        pct_ms(&lat, 100.0),
        err_field(&first_err)
    );
    never == 0 && !lat.is_empty()
}

fn main() {
    let o = parse();
    let ok = match o.mode.as_str() {
        "seq" => run_seq(&o),
        "held" => run_held(&o),
        _ => run_udp(&o),
    };
    exit(if ok { 0 } else { 1 })
}
