//! Unix domain socket addresses and listeners: paths, `@abstract` names, stale sockets, modes,
//! and removing the socket file on every exit.
//!
//! Listening on a path that exists is decided by what is there: a socket something still
//! listens on is "in use" (exit 1); a socket nobody answers on is stale and replaced; anything
//! else is never touched. `--mode` is applied through the umask around bind(2), so the file is
//! born with the asked permissions and never exists with wider ones (no bind-then-chmod
//! window). The socket file nk binds is removed at exit and on every signal that ends nk
//! (signals.rs), but only while it is still the file nk bound: its device and inode are
//! recorded right after bind(2) and compared with lstat(2) at removal, so a server whose path
//! was taken over (unlinked, then bound by another server) leaves the newcomer's socket alone.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::exit::{usage, UsageError};

/// The kernel's limit on a socket path (sun_path is 108 bytes with its terminating NUL).
pub const MAX_PATH: usize = 107;

/// Socket files nk has bound, to remove on exit.
static BOUND: Mutex<Vec<BoundFile>> = Mutex::new(Vec::new());

/// A socket file nk bound, and how to tell it from another one later bound at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BoundFile {
    path: PathBuf,
    /// (st_dev, st_ino) right after bind; `None` if lstat failed then, in which case the file
    /// cannot be told apart from a newcomer's and is never removed.
    identity: Option<(u64, u64)>,
}

impl BoundFile {
    /// Records `path` as just bound.
    fn just_bound(path: &Path) -> BoundFile {
        BoundFile {
            path: path.to_path_buf(),
            identity: std::fs::symlink_metadata(path)
                .ok()
                .map(|m| (m.dev(), m.ino())),
        }
    }

    /// Removes the file if it is still the socket nk bound. The lstat and the unlink are two
    /// steps (there is no unlink-by-inode), so a path replaced in between is the one case
    /// left; it needs another process to race a server's very exit.
    fn remove(&self) {
        let Some(identity) = self.identity else {
            return;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == identity => {
                let _ = std::fs::remove_file(&self.path);
            }
            Ok(_) => crate::info!(
                "leaving {}: it is no longer the socket this server bound",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

/// A Unix socket address: a filesystem path or a Linux abstract name (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    /// A path in the filesystem.
    Path(PathBuf),
    /// A name in the abstract namespace (no file; gone when the socket closes).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// Parses `PATH` or `@NAME`; empty or over-long ones are usage errors naming the limit.
    pub fn parse(text: &str) -> Result<UnixAddr> {
        if text.is_empty() {
            return Err(usage("invalid socket path \"\": empty"));
        }
        let (addr, len) = match text.strip_prefix('@') {
            Some("") => return Err(usage("invalid abstract name \"@\": empty")),
            Some(name) => (UnixAddr::Abstract(name.as_bytes().to_vec()), name.len()),
            None => (UnixAddr::Path(PathBuf::from(text)), text.len()),
        };
        if len > MAX_PATH {
            return Err(anyhow::Error::new(
                UsageError::new(format!(
                    "socket path is {len} bytes; the kernel's limit is {MAX_PATH}"
                ))
                .with_hint("use a shorter path, e.g. under /tmp, or an @abstract name"),
            ));
        }
        if text.contains('\0') {
            return Err(usage("invalid socket path: contains a NUL byte"));
        }
        Ok(addr)
    }

    /// The socket address.
    pub fn sockaddr(&self) -> Result<SockAddr> {
        let addr = match self {
            UnixAddr::Path(path) => SockAddr::unix(path),
            UnixAddr::Abstract(name) => {
                let mut bytes = vec![0u8];
                bytes.extend_from_slice(name);
                SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
            }
        };
        addr.with_context(|| format!("socket address {self}"))
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddr::Path(path) => write!(f, "{}", path.display()),
            UnixAddr::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

/// Stream (default), datagram or sequenced-packet sockets.
pub fn socket_type(dgram: bool, seqpacket: bool) -> Type {
    match (dgram, seqpacket) {
        (true, _) => Type::DGRAM,
        (_, true) => Type::SEQPACKET,
        _ => Type::STREAM,
    }
}

/// Connects to a listening socket. A datagram client first binds an autobound abstract address,
/// so the server has somewhere to reply (and nothing is left in the filesystem).
pub fn connect(addr: &UnixAddr, ty: Type) -> Result<Socket> {
    let socket = Socket::new(Domain::UNIX, ty, None).context("create Unix socket")?;
    if ty == Type::DGRAM {
        socket
            .bind(&SockAddr::unix("").context("autobind address")?)
            .context("bind an autobound address")?;
    }
    socket
        .connect(&addr.sockaddr()?)
        .with_context(|| format!("connect {addr}"))?;
    Ok(socket)
}

/// A bound socket file, removed when dropped (and at exit, on every signal that ends nk) if it
/// is still the one bound.
#[derive(Debug)]
pub struct BoundPath(Option<BoundFile>);

impl Drop for BoundPath {
    fn drop(&mut self) {
        if let Some(file) = self.0.take() {
            // Out of the list first, so a signal arriving meanwhile does not look at it twice.
            BOUND
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|f| f != &file);
            file.remove();
        }
    }
}

/// Removes every socket file nk bound that is still the one it bound (called on every way
/// out of the process).
pub fn remove_bound_paths() {
    let files: Vec<BoundFile> = BOUND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for file in files {
        file.remove();
    }
}

/// Binds (and for stream/seqpacket, listens on) `addr`, with `mode` for a path. `passcred`
/// (datagram servers with `--allow-uid`) sets SO_PASSCRED before bind, so that no datagram
/// can arrive without its sender's credentials.
pub fn listen(
    addr: &UnixAddr,
    ty: Type,
    mode: Option<u32>,
    backlog: i32,
    passcred: bool,
) -> Result<(Socket, BoundPath)> {
    let context = || format!("listen on {addr}");
    let socket = Socket::new(Domain::UNIX, ty, None).with_context(context)?;
    if passcred {
        set_passcred(&socket)
            .context("set SO_PASSCRED")
            .with_context(context)?;
    }
    let sockaddr = addr.sockaddr()?;
    let bound = match addr {
        UnixAddr::Path(path) => {
            clear_stale(path, ty).with_context(context)?;
            bind_with_mode(&socket, &sockaddr, mode).with_context(context)?;
            let file = BoundFile::just_bound(path);
            BOUND
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(file.clone());
            BoundPath(Some(file))
        }
        UnixAddr::Abstract(_) => {
            socket
                .bind(&sockaddr)
                .map_err(in_use)
                .with_context(context)?;
            BoundPath(None)
        }
    };
    if ty != Type::DGRAM {
        socket.listen(backlog).with_context(context)?;
    }
    Ok((socket, bound))
}

fn in_use(err: std::io::Error) -> anyhow::Error {
    if err.raw_os_error() == Some(libc::EADDRINUSE) {
        anyhow!("in use by another socket")
    } else {
        err.into()
    }
}

/// What is at `path` decides: nothing → fine; a live socket → in use; a stale socket → removed;
/// anything else → refused, untouched.
fn clear_stale(path: &Path, ty: Type) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_socket() {
        return Err(anyhow::Error::new(crate::exit::Hinted {
            message: "it exists and is not a socket; not touching it".to_string(),
            hint: "choose another path, or remove the file yourself".into(),
        }));
    }
    let probe = Socket::new(Domain::UNIX, ty, None)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Ok(()) => Err(anyhow!("in use: a live socket is listening there")),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ECONNREFUSED) | Some(libc::ENOENT)
            ) =>
        {
            crate::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            Ok(())
        }
        // A socket of another type (EPROTOTYPE) or one we may not reach: not ours to remove.
        Err(e) => Err(anyhow!("in use or not ours: {e}")),
    }
}

/// bind(2) with the umask set so that the socket file is created with exactly `mode`.
fn bind_with_mode(socket: &Socket, addr: &SockAddr, mode: Option<u32>) -> Result<()> {
    let Some(mode) = mode else {
        return socket.bind(addr).map_err(in_use);
    };
    let mask = (!mode & 0o777) as libc::mode_t;
    // SAFETY: umask only swaps the process's file-creation mask; restored right after bind.
    // nk binds before starting any thread that creates files, so nothing else sees the mask.
    let previous = unsafe { libc::umask(mask) };
    let result = socket.bind(addr);
    // SAFETY: restores the mask saved above.
    unsafe { libc::umask(previous) };
    result.map_err(in_use)
}

/// Whom a Unix listener serves: `--allow-uid`, checked on the peer's credentials as the
/// kernel recorded them (SO_PEERCRED at connect, SCM_CREDENTIALS per datagram), which the
/// peer cannot forge without privilege. Paths have permissions (`--mode`); abstract names
/// have none, so this is their only access control.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowUids(Vec<u32>);

impl AllowUids {
    /// The list of `--allow-uid` values; `None` when there were none (everyone is served).
    pub fn new(uids: &[u32]) -> Option<AllowUids> {
        (!uids.is_empty()).then(|| AllowUids(uids.to_vec()))
    }

    /// Whether a peer of `uid` is served.
    pub fn permits(&self, uid: u32) -> bool {
        self.0.contains(&uid)
    }
}

/// The credentials (pid, uid, gid) of a connected peer, as the kernel recorded them at
/// connect(2) time (SO_PEERCRED).
pub fn peer_cred(socket: &Socket) -> std::io::Result<libc::ucred> {
    // SAFETY: a zeroed ucred is a valid value (three integers).
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

/// SO_PASSCRED: every datagram received carries its sender's SCM_CREDENTIALS.
fn set_passcred(socket: &Socket) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: SO_PASSCRED reads one int from `on`.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Parses `--allow-uid`: a number, or a user name looked up with getpwnam_r (NSS, as `id`).
pub fn parse_uid(text: &str) -> Result<u32, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            // (uid_t)-1 is "no uid" to the kernel, never a peer's.
            Ok(uid) if uid != u32::MAX => Ok(uid),
            _ => Err(format!(
                "invalid uid \"{text}\": expected a number below 4294967295 or a user name"
            )),
        };
    }
    let name = std::ffi::CString::new(text)
        .map_err(|_| format!("invalid user name \"{text}\": contains a NUL byte"))?;
    if text.is_empty() {
        return Err("invalid uid \"\": expected a number or a user name".to_string());
    }
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: a zeroed passwd is a valid value (integers and null pointers).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: getpwnam_r writes into `pwd` and at most `buf.len()` bytes of `buf`, and
        // sets `result` to null or to `&pwd`; only the uid (no pointer into buf) is kept.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "look up user \"{text}\": {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if result.is_null() {
            return Err(format!(
                "no user named \"{text}\" (give a uid number or a user name from getent passwd)"
            ));
        }
        return Ok(pwd.pw_uid);
    }
}

/// Parses `--mode` as octal (`600`, `0660`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(format!(
            "invalid mode \"{text}\": expected octal permissions such as 600 or 660"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{classify, Status};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn paths_and_abstract_names_parse() {
        assert_eq!(
            UnixAddr::parse("/tmp/s").unwrap(),
            UnixAddr::Path("/tmp/s".into())
        );
        assert_eq!(
            UnixAddr::parse("@nk").unwrap(),
            UnixAddr::Abstract(b"nk".to_vec())
        );
        assert_eq!(UnixAddr::parse("@nk").unwrap().to_string(), "@nk");
        assert!(UnixAddr::parse(&"a".repeat(107)).is_ok());
        let err = UnixAddr::parse(&"a".repeat(108)).unwrap_err();
        assert_eq!(classify(&err), Status::Usage);
        assert!(format!("{err}").contains("107"));
        for bad in ["", "@"] {
            assert_eq!(classify(&UnixAddr::parse(bad).unwrap_err()), Status::Usage);
        }
    }

    #[test]
    fn uids_are_numbers_or_user_names() {
        assert_eq!(parse_uid("0"), Ok(0));
        assert_eq!(parse_uid("65534"), Ok(65534));
        assert_eq!(parse_uid("root"), Ok(0));
        for bad in [
            "",
            "-1",
            "4294967295",
            "99999999999",
            "no-such-user-nk",
            "a\0b",
        ] {
            assert!(parse_uid(bad).is_err(), "{bad:?}");
        }
        let allow = AllowUids::new(&[0, 7]).unwrap();
        assert!(allow.permits(7) && !allow.permits(65534));
        assert_eq!(AllowUids::new(&[]), None);
    }

    #[test]
    fn peer_credentials_are_the_connecting_process() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let cred = peer_cred(&Socket::from(std::os::fd::OwnedFd::from(a))).unwrap();
        drop(b);
        // SAFETY: getuid has no preconditions.
        assert_eq!(cred.uid, unsafe { libc::getuid() });
        assert_eq!(cred.pid as u32, std::process::id());
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        for bad in ["", "8", "1000", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stale_sockets_are_replaced_live_ones_and_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let addr = UnixAddr::Path(path.clone());
        let (live, bound) = listen(&addr, Type::STREAM, Some(0o600), 8, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(format!(
            "{:#}",
            listen(&addr, Type::STREAM, None, 8, false).unwrap_err()
        )
        .contains("in use"));
        drop(live);
        std::mem::forget(bound); // leave the file behind: a stale socket
        let (_again, bound) = listen(&addr, Type::STREAM, None, 8, false).unwrap();
        drop(bound);
        assert!(
            !path.exists(),
            "the socket file is removed when the listener ends"
        );
        std::fs::write(&path, b"data").unwrap();
        let err = listen(&addr, Type::STREAM, None, 8, false).unwrap_err();
        assert!(format!("{err:#}").contains("not a socket"));
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }
}
