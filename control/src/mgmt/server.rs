//! The management socket's server side: bind (with the one-daemon check),
//! accept loop, one thread per connection.

use super::protocol::{Reply, Request, Response};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest request line accepted (a flow file of some 100,000 flows).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// How long the accept loop waits before it looks at the stop flag.
pub const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Connections served at once; one more is answered with an error and
/// closed (a runaway client cannot exhaust the daemon's threads).
pub const MAX_CONNECTIONS: usize = 64;

/// What answers requests (the daemon).
pub trait Handler: Send + Sync + 'static {
    /// Carries out `req`; `Err` is the one-line error for the client.
    fn handle(&self, req: Request) -> Result<Reply, String>;
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A live daemon answered on the path.
    #[error("another xswitch daemon is listening on {}", .0.display())]
    InUse(PathBuf),
    /// The path is something other than a socket.
    #[error("{} exists and is not a socket (remove it or choose another --socket)", .0.display())]
    NotASocket(PathBuf),
    /// A file-system or socket call failed.
    #[error("management socket {}: {op}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// A listening management socket (see the module docs). Dropping it stops
/// the accept loop and removes the socket file.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for Server {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server").field("path", &self.path).finish()
    }
}

/// Makes `path` free to bind: refuses a live daemon or a non-socket,
/// removes a stale socket.
fn claim(path: &Path) -> Result<(), ServerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Io {
                path: path.into(),
                op: "stat",
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.into()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ServerError::InUse(path.into())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale management socket");
            std::fs::remove_file(path).map_err(|source| ServerError::Io {
                path: path.into(),
                op: "remove stale socket",
                source,
            })
        }
        Err(source) => Err(ServerError::Io {
            path: path.into(),
            op: "connect (checking for another daemon)",
            source,
        }),
    }
}

impl Server {
    /// Binds `path` (creating its directory), sets mode 0600 and starts the
    /// accept loop, which hands every request to `handler`.
    pub fn start(path: &Path, handler: Arc<dyn Handler>) -> Result<Server, ServerError> {
        let io_err = |op: &'static str| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { path, op, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err("create directory"))?;
        }
        claim(path)?;
        let listener = UnixListener::bind(path).map_err(io_err("bind"))?;
        // Root only. Between bind and chmod the file carries the umask's
        // mode; the directory (root's /run) already keeps others out.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod 0600"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("set_nonblocking"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("xswitch-mgmt".into())
            .spawn(move || accept_loop(&listener, &stop2, &handler))
            .map_err(io_err("spawn accept thread"))?;
        tracing::info!(path = %path.display(), "management socket listening");
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting (within [`ACCEPT_POLL`]) and removes the socket file.
    /// Connections already open finish their current request.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts a connection thread while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, handler: &Arc<dyn Handler>) {
    let live = Arc::new(AtomicUsize::new(0));
    let timeout = PollTimeout::try_from(ACCEPT_POLL.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    while !stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = poll(&mut fds, timeout) {
            if e != nix::errno::Errno::EINTR {
                tracing::error!(error = %e, "management socket: poll failed");
                std::thread::sleep(ACCEPT_POLL);
            }
            continue;
        }
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                        live.fetch_sub(1, Ordering::AcqRel);
                        let mut line = Response::error(format!(
                            "too many management connections (at most {MAX_CONNECTIONS}); try again"
                        ))
                        .to_line();
                        line.push('\n');
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(line.as_bytes());
                        continue;
                    }
                    let slot = Slot(live.clone());
                    let h = handler.clone();
                    let spawned = std::thread::Builder::new()
                        .name("xswitch-mgmt-conn".into())
                        .spawn(move || {
                            let _slot = slot;
                            serve_connection(stream, &*h);
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "management socket: cannot start a connection thread");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "management socket: accept failed");
                    break;
                }
            }
        }
    }
}

/// Reads one line of at most `MAX_REQUEST_BYTES`: `Ok(None)` at end of
/// stream, `Err` for an over-long line or a read error.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<Option<()>, String> {
    buf.clear();
    let n = r
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| format!("reading the request: {e}"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "request longer than {MAX_REQUEST_BYTES} bytes (send large flow files in parts)"
        ));
    }
    Ok(Some(()))
}

/// Answers one request line.
pub(crate) fn answer(handler: &dyn Handler, line: &[u8]) -> Response {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t.trim(),
        Err(_) => return Response::error("bad request: not UTF-8"),
    };
    match serde_json::from_str::<Request>(text) {
        Ok(req) => {
            let name = req.name();
            let r = handler.handle(req);
            if let Err(e) = &r {
                tracing::debug!(cmd = name, error = %e, "request refused");
            }
            Response::from_result(r)
        }
        Err(e) => Response::error(format!("bad request: {e}")),
    }
}

fn serve_connection(stream: UnixStream, handler: &dyn Handler) {
    // The listener is non-blocking; the connection must not be.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(mut w) = stream.try_clone() else {
        return;
    };
    let mut r = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        let (resp, close) = match read_line(&mut r, &mut buf) {
            Ok(None) => return,
            Ok(Some(())) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Some(())) => (answer(handler, &buf), false),
            Err(e) => (Response::error(e), true),
        };
        let mut line = resp.to_line();
        line.push('\n');
        if w.write_all(line.as_bytes())
            .and_then(|()| w.flush())
            .is_err()
            || close
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, req: Request) -> Result<Reply, String> {
            match req {
                Request::Ping => Ok(Reply::new(&"pong", "pong")),
                Request::PortDel { port } => Err(format!("no port {port}\nsecond line")),
                other => Ok(Reply::new(&other.name(), "")),
            }
        }
    }

    #[test]
    fn a_request_that_is_not_json_gets_an_error_response() {
        let r = answer(&Echo, b"hello\n");
        assert!(!r.ok);
        assert!(r.error.unwrap().starts_with("bad request"));
    }

    #[test]
    fn an_unknown_command_gets_an_error_response() {
        let r = answer(&Echo, br#"{"cmd":"reboot"}"#);
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("reboot"));
    }

    #[test]
    fn handler_errors_are_one_line() {
        let r = answer(&Echo, br#"{"cmd":"port_del","port":"x"}"#);
        assert_eq!(r.error.as_deref(), Some("no port x; second line"));
    }

    #[test]
    fn an_over_long_line_is_refused() {
        let big = vec![b'a'; MAX_REQUEST_BYTES + 10];
        let mut r = io::Cursor::new(big);
        let mut buf = Vec::new();
        assert!(read_line(&mut r, &mut buf).unwrap_err().contains("longer"));
    }

    fn temp_sock(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xswitch-test-{}-{tag}.sock", std::process::id()))
    }

    #[test]
    fn a_second_server_on_a_live_path_is_refused_and_a_stale_one_replaced() {
        let p = temp_sock("live");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(&p, Arc::new(Echo)).unwrap();
        let e = Server::start(&p, Arc::new(Echo)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("another xswitch daemon is listening on {}", p.display())
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        s.stop();
        assert!(!p.exists(), "socket removed on stop");
        // A stale socket: bound, then its listener dropped without unlink.
        drop(UnixListener::bind(&p).unwrap());
        assert!(p.exists());
        let s = Server::start(&p, Arc::new(Echo)).unwrap();
        s.stop();
    }

    #[test]
    fn requests_round_trip_and_connections_beyond_the_cap_are_refused() {
        let p = temp_sock("cap");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(&p, Arc::new(Echo)).unwrap();
        let mut c = super::super::Client::connect(&p).unwrap();
        assert_eq!(c.request(&Request::Ping).unwrap().text, "pong");
        // A bad line on the same connection gets an error, the next request
        // still works.
        let mut raw = UnixStream::connect(&p).unwrap();
        raw.write_all(b"{not json}\n{\"cmd\":\"ping\"}\n").unwrap();
        let mut r = BufReader::new(raw.try_clone().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(
            l.contains("\"ok\":false") && l.contains("bad request"),
            "{l}"
        );
        l.clear();
        r.read_line(&mut l).unwrap();
        assert!(l.contains("\"ok\":true"), "{l}");
        // Two connections are open (c, raw); fill up to the cap with
        // connections that each got an answer (so each is counted).
        let held: Vec<super::super::Client> = (2..MAX_CONNECTIONS)
            .map(|_| {
                let mut k = super::super::Client::connect(&p).unwrap();
                k.request(&Request::Ping).unwrap();
                k
            })
            .collect();
        let mut over = super::super::Client::connect(&p).unwrap();
        let e = over.request(&Request::Ping).unwrap_err();
        assert!(
            e.to_string().starts_with("too many management connections"),
            "{e}"
        );
        drop(held);
        // `held`'s streams were each a live connection until dropped; a new
        // one once they are gone is served again.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut k = super::super::Client::connect(&p).unwrap();
            match k.request(&Request::Ping) {
                Ok(_) => break,
                Err(e) => {
                    assert!(e.to_string().contains("too many"), "{e}");
                    assert!(std::time::Instant::now() < deadline, "cap never released");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        s.stop();
    }

    #[test]
    fn a_regular_file_at_the_path_is_not_replaced() {
        let p = temp_sock("file");
        std::fs::write(&p, b"keep me").unwrap();
        let e = Server::start(&p, Arc::new(Echo)).unwrap_err();
        assert!(matches!(e, ServerError::NotASocket(_)), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"keep me");
        std::fs::remove_file(&p).unwrap();
    }
}
