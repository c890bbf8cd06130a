//! The management socket's server side: bind (with the one-daemon check),
//! one poller thread and a fixed pool of worker threads.
//!
//! # Threads
//! Every thread is started with the server; none is created per
//! connection.
//! * `xswitch-accept`, the acceptor: blocks on the listener and hands
//!   each new connection to the poller.
//! * `xswitch-mgmt`, the poller: one `poll(2)` over a waker and every
//!   connection that has no request in flight. It admits new connections
//!   (at most [`MAX_CONNECTIONS`] live; one more is answered with an error
//!   and closed), reads what arrived without blocking (`MSG_DONTWAIT`) into
//!   the connection's buffer, cuts it into lines, closes connections idle
//!   for [`IDLE_TIMEOUT`], and hands a connection with a complete line to
//!   the general lane. It never waits for a handler.
//! * `xswitch-mgmt-wN` ([`GENERAL_WORKERS`] threads), the general lane:
//!   parses the line and answers it, except port changes.
//! * `xswitch-mgmt-port`, the port lane: `port_add` and `port_del`. They
//!   take tens of milliseconds (XDP attach, sockets, UMEM, RCU waits in
//!   the kernel) and serialise on the daemon's `config` lock anyway, so
//!   one thread loses no parallelism and a burst of them never occupies
//!   the workers that flow installs need.
//!
//! The poller and the general lane run at real-time priority, the port
//! lane niced ([`super::priority`] says why and what bounds it).
//!
//! # Why a separate acceptor
//! A client's `connect` wakes whoever polls the listener. When that was
//! the real-time poller, it preempted a client on the same CPU before the
//! client had written its request; once the poller slept, the CPU often
//! went back to the thread the client had itself displaced (the port
//! lane populating a UMEM, the reclaimer closing an AF_XDP socket), which
//! the client cannot preempt inside the kernel before the next tick
//! (`PREEMPT_NONE`, 4 ms at HZ 250). Traced with `perf record -e
//! sched:sched_switch -g`. A normal-priority acceptor leaves the client
//! on its CPU more often; the poller is woken once the request is there.
//! Measured in the 100-port churn figure (`tests/daemon.rs`), `flow add`
//! round trips on a new connection slower than 600 µs: 11-21 in 1000 (mean
//! 15, 7 runs) before, 7-12 (mean 10, 9 runs) after. The rest of that
//! tail is the same kernel effect at the client's other system calls.
//!
//! # Invariants
//! * A connection is owned by exactly one thread at a time: the poller
//!   (idle) or one worker (a request in flight). So its requests are
//!   answered one at a time, in order; lines pipelined behind a request
//!   stay in its buffer and are served after it.
//! * Every connection a worker takes goes back to the poller, or is
//!   reported closed to it, on every path (a panicking handler included):
//!   the poller's live count is exact, so the cap is released as soon as
//!   a client goes.
//! * A worker writes the answer blocking, with [`WRITE_TIMEOUT`]: a client
//!   that does not read its answer is dropped rather than holding a
//!   worker.
//!
//! # Why no thread per connection
//! Creating a thread maps its stack and its malloc arena (`mmap`,
//! `mprotect`: the process's `mmap_lock` taken for writing). While a port
//! is added, its UMEM is being populated under that lock held for reading,
//! and a queued writer blocks every later taker: measured (perf sched,
//! `mmap_lock` tracepoints) as 3-18 ms stalls of `flow add` on a fresh
//! connection during port churn. A fixed pool never maps a stack after
//! start-up; the daemon's malloc settings (`daemon/heap.rs`) keep the
//! allocator from taking that lock too.
//!
//! # Locking
//! None here beyond the general lane's shared queue: the handler (the
//! daemon) takes its own locks.

use super::priority;
use super::protocol::{Reply, Request, Response};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, send, MsgFlags};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest request line accepted (a flow file of some 100,000 flows).
pub const MAX_REQUEST_BYTES: usize = 16 << 20;
/// How long the poller waits before it looks at the stop flag and the
/// idle timers.
pub const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A client that does not take its answer within this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is answered with an error and
/// closed (a runaway client cannot exhaust the daemon's memory).
pub const MAX_CONNECTIONS: usize = 64;
/// Threads of the general lane (everything but port changes).
pub const GENERAL_WORKERS: usize = 2;
/// Bytes read from a connection per `recv`.
const READ_CHUNK: usize = 64 << 10;

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
/// the poller and removes the socket file.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The poller and the acceptor.
    threads: Vec<JoinHandle<()>>,
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

/// How a [`Server`] places its threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// CPUs the port lane is confined to (empty: not confined); see
    /// `dataplane::affinity`.
    pub port_lane_cpus: Vec<usize>,
}

impl Server {
    /// Binds `path` (creating its directory), sets mode 0600 and starts the
    /// poller and the workers, which hand every request to `handler`.
    pub fn start(path: &Path, handler: Arc<dyn Handler>) -> Result<Server, ServerError> {
        Server::start_with(path, handler, ServerOptions::default())
    }

    /// [`Server::start`] with its threads placed as `options` say.
    pub fn start_with(
        path: &Path,
        handler: Arc<dyn Handler>,
        options: ServerOptions,
    ) -> Result<Server, ServerError> {
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
        let (wake_rx, wake_tx) = UnixStream::pair().map_err(io_err("waker socketpair"))?;
        wake_rx
            .set_nonblocking(true)
            .map_err(io_err("set_nonblocking"))?;
        let waker = Arc::new(wake_tx);
        let (back_tx, back_rx) = channel::<Back>();
        let (general_tx, general_rx) = channel::<Job>();
        let (port_tx, port_rx) = channel::<Job>();
        let general_rx = Arc::new(Mutex::new(general_rx));
        // Workers first: if one cannot start, nothing is listening yet and
        // those started exit when the channels drop.
        let lane = |rx: Receiver<Job>| {
            let (h, back, waker) = (handler.clone(), back_tx.clone(), waker.clone());
            move || port_lane(&rx, &*h, &back, &waker)
        };
        dataplane::affinity::spawn_confined(
            "xswitch-mgmt-port",
            options.port_lane_cpus.clone(),
            lane(port_rx),
        )
        .map_err(io_err("spawn the port worker"))?;
        for i in 0..GENERAL_WORKERS {
            let w = Worker {
                handler: handler.clone(),
                back: back_tx.clone(),
                waker: waker.clone(),
                port_lane: port_tx.clone(),
            };
            let rx = general_rx.clone();
            std::thread::Builder::new()
                .name(format!("xswitch-mgmt-w{i}"))
                .spawn(move || w.run(&rx))
                .map_err(io_err("spawn a worker"))?;
        }
        drop(port_tx);
        let stop = Arc::new(AtomicBool::new(false));
        let mut poller = Poller {
            wake: wake_rx,
            back: back_rx,
            general: general_tx,
            idle: Vec::new(),
            live: 0,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        };
        let stop2 = stop.clone();
        let poller = std::thread::Builder::new()
            .name("xswitch-mgmt".into())
            .spawn(move || poller.run(&stop2))
            .map_err(io_err("spawn the poller"))?;
        let mut server = Server {
            path: path.to_path_buf(),
            stop: stop.clone(),
            threads: vec![poller],
        };
        // On failure `server` drops: the poller stops, the socket goes.
        let acceptor = std::thread::Builder::new()
            .name("xswitch-accept".into())
            .spawn(move || acceptor(&listener, &back_tx, &waker, &stop))
            .map_err(io_err("spawn the acceptor"))?;
        server.threads.push(acceptor);
        tracing::info!(path = %path.display(), workers = GENERAL_WORKERS + 1, "management socket listening");
        Ok(server)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting (within [`ACCEPT_POLL`]) and removes the socket file.
    /// Requests in flight finish; idle connections are closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if self.threads.is_empty() {
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One client connection and what it sent that is not answered yet.
struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// The first `scanned` bytes of `buf` hold no newline.
    scanned: usize,
    /// Last byte received or answer sent.
    last: Instant,
    /// The client shut its side: serve what is buffered, then close.
    eof: bool,
}

/// What the poller does next with a connection.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// A request of this many bytes (newline included) is at the front.
    Serve(usize),
    /// Nothing complete yet.
    Wait,
    /// The front line is longer than [`MAX_REQUEST_BYTES`].
    TooLong,
    /// The client has gone and nothing is left to answer.
    Close,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            scanned: 0,
            last: Instant::now(),
            eof: false,
        }
    }

    /// Looks for the next request line, dropping blank lines before it.
    fn next(&mut self) -> Next {
        loop {
            let from = self.scanned;
            match self.buf[from..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let end = from + i + 1;
                    if end - 1 > MAX_REQUEST_BYTES {
                        return Next::TooLong;
                    }
                    if self.buf[..end].iter().all(u8::is_ascii_whitespace) {
                        self.consume(end);
                        continue;
                    }
                    return Next::Serve(end);
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.buf.len() > MAX_REQUEST_BYTES {
                        return Next::TooLong;
                    }
                    if !self.eof {
                        return Next::Wait;
                    }
                    // A last request without its newline is still answered.
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return Next::Close;
                    }
                    return Next::Serve(self.buf.len());
                }
            }
        }
    }

    /// Drops the first `n` bytes (an answered or blank line).
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.scanned = 0;
    }

    /// Best-effort short write from the poller (refusals): never blocks.
    fn say(&self, resp: Response) {
        let mut line = resp.to_line();
        line.push('\n');
        let _ = send(
            self.stream.as_raw_fd(),
            line.as_bytes(),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        );
    }
}

/// A connection with a request at the front of its buffer.
struct Job {
    conn: Conn,
    /// The request's length in `conn.buf`.
    len: usize,
    /// Already parsed (port-lane jobs).
    req: Option<Request>,
}

/// What the other threads hand to the poller.
enum Back {
    /// A new connection from the acceptor.
    Accepted(UnixStream),
    /// Answered by a worker; poll it again.
    Conn(Conn),
    /// Gone (write failed, client finished): one fewer live connection.
    Closed,
}

struct Poller {
    wake: UnixStream,
    back: Receiver<Back>,
    general: Sender<Job>,
    idle: Vec<Conn>,
    /// Connections open: idle plus in flight.
    live: usize,
    scratch: Box<[u8]>,
}

impl Poller {
    fn run(&mut self, stop: &AtomicBool) {
        priority::enter_realtime();
        let timeout =
            PollTimeout::try_from(ACCEPT_POLL.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        let mut ready = Vec::new();
        while !stop.load(Ordering::Acquire) {
            self.take_back();
            let woken = {
                let mut fds = Vec::with_capacity(1 + self.idle.len());
                fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
                fds.extend(
                    self.idle
                        .iter()
                        .map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)),
                );
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "management socket: poll failed");
                        std::thread::sleep(ACCEPT_POLL);
                        continue;
                    }
                }
                let any = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                ready.clear();
                ready.extend(fds[1..].iter().map(any));
                any(&fds[0])
            };
            if woken {
                self.drain_waker();
            }
            // Back to front so that removals keep the earlier indices.
            let now = Instant::now();
            for i in (0..self.idle.len()).rev() {
                if ready[i] {
                    let mut c = self.idle.swap_remove(i);
                    self.read(&mut c);
                    self.advance(c);
                } else if now.duration_since(self.idle[i].last) >= IDLE_TIMEOUT {
                    self.idle.swap_remove(i);
                    self.live -= 1;
                }
            }
        }
    }

    /// Connections accepted or answered since the last look.
    fn take_back(&mut self) {
        while let Ok(b) = self.back.try_recv() {
            match b {
                Back::Accepted(stream) => self.admit(stream),
                Back::Conn(c) => self.advance(c),
                Back::Closed => self.live -= 1,
            }
        }
    }

    fn drain_waker(&mut self) {
        let mut b = [0u8; 64];
        while matches!(recv(self.wake.as_raw_fd(), &mut b, MsgFlags::MSG_DONTWAIT), Ok(n) if n > 0)
        {
        }
    }

    /// Reads what has arrived, up to one line past what is buffered.
    fn read(&mut self, c: &mut Conn) {
        loop {
            match recv(
                c.stream.as_raw_fd(),
                &mut self.scratch,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => {
                    c.eof = true;
                    return;
                }
                Ok(n) => {
                    c.last = Instant::now();
                    let seen = c.buf.len();
                    c.buf.extend_from_slice(&self.scratch[..n]);
                    if c.buf[seen..].contains(&b'\n') || c.buf.len() > MAX_REQUEST_BYTES {
                        return;
                    }
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // Reset by the peer: nothing more will come or go.
                    c.eof = true;
                    c.buf.clear();
                    c.scanned = 0;
                    return;
                }
            }
        }
    }

    /// Serves, parks or closes `c` according to its buffer.
    fn advance(&mut self, mut c: Conn) {
        match c.next() {
            Next::Serve(len) => {
                if let Err(e) = self.general.send(Job {
                    conn: c,
                    len,
                    req: None,
                }) {
                    // The workers are gone (stopping): close.
                    drop(e);
                    self.live -= 1;
                }
            }
            Next::Wait => self.idle.push(c),
            Next::TooLong => {
                // The rest of the stream cannot be framed: answer and close.
                c.say(Response::error(format!(
                    "request longer than {MAX_REQUEST_BYTES} bytes (send large flow files in parts)"
                )));
                self.live -= 1;
            }
            Next::Close => self.live -= 1,
        }
    }

    /// Takes in a connection from the acceptor: refused beyond the cap,
    /// else read (its request has usually arrived already) and served or
    /// parked.
    fn admit(&mut self, stream: UnixStream) {
        let mut c = Conn::new(stream);
        if self.live >= MAX_CONNECTIONS {
            c.say(Response::error(format!(
                "too many management connections (at most {MAX_CONNECTIONS}); try again"
            )));
            return;
        }
        // Answers are written blocking, bounded in time; reads use
        // MSG_DONTWAIT, so the socket itself stays blocking.
        if c.stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
            return;
        }
        self.live += 1;
        self.read(&mut c);
        self.advance(c);
    }
}

/// The acceptor thread: takes connections off the listener and hands them
/// to the poller. It stays at normal priority (module docs, "Why a
/// separate acceptor").
fn acceptor(listener: &UnixListener, back: &Sender<Back>, waker: &UnixStream, stop: &AtomicBool) {
    let timeout = PollTimeout::try_from(ACCEPT_POLL.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    while !stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "management socket: poll failed");
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if !hand_back(back, waker, Back::Accepted(stream)) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "management socket: accept failed");
                    break;
                }
            }
        }
    }
}

/// Parses one request line: the request, or the error response for it.
fn parse(line: &[u8]) -> Result<Request, Response> {
    let text = std::str::from_utf8(line)
        .map_err(|_| Response::error("bad request: not UTF-8"))?
        .trim();
    serde_json::from_str::<Request>(text).map_err(|e| Response::error(format!("bad request: {e}")))
}

/// Runs `req` through `handler`; a panicking handler is an error answer,
/// not a lost worker.
fn run(handler: &dyn Handler, req: Request) -> Response {
    let name = req.name();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(req)))
        .unwrap_or_else(|_| Err(format!("internal error while handling {name}")));
    if let Err(e) = &r {
        tracing::debug!(cmd = name, error = %e, "request refused");
    }
    Response::from_result(r)
}

/// Answers one request line.
#[cfg(test)]
pub(crate) fn answer(handler: &dyn Handler, line: &[u8]) -> Response {
    match parse(line) {
        Ok(req) => run(handler, req),
        Err(resp) => resp,
    }
}

/// Writes `resp` for the request at the front of `conn` and gives the
/// connection back to the poller (or reports it closed), waking it.
fn reply(mut job: Job, resp: Response, back: &Sender<Back>, waker: &UnixStream) {
    let mut line = resp.to_line();
    line.push('\n');
    job.conn.consume(job.len);
    let written = (&job.conn.stream).write_all(line.as_bytes()).is_ok();
    job.conn.last = Instant::now();
    let b = if written {
        Back::Conn(job.conn)
    } else {
        Back::Closed
    };
    hand_back(back, waker, b);
}

/// Queues `b` for the poller and wakes it; false when the poller is gone.
fn hand_back(back: &Sender<Back>, waker: &UnixStream, b: Back) -> bool {
    if back.send(b).is_err() {
        return false;
    }
    // A full waker buffer already means a pending wake-up.
    let _ = send(
        waker.as_raw_fd(),
        &[1],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    );
    true
}

/// A thread of the general lane.
struct Worker {
    handler: Arc<dyn Handler>,
    back: Sender<Back>,
    waker: Arc<UnixStream>,
    port_lane: Sender<Job>,
}

impl Worker {
    fn run(self, jobs: &Mutex<Receiver<Job>>) {
        let realtime = priority::enter_realtime();
        loop {
            // The lock is held only while waiting for the next job.
            let job = match jobs.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok(mut job) = job else { return };
            let resp = match parse(&job.conn.buf[..job.len]) {
                Err(resp) => resp,
                Ok(req @ (Request::PortAdd { .. } | Request::PortDel { .. })) => {
                    job.req = Some(req);
                    match self.port_lane.send(job) {
                        Ok(()) => continue,
                        Err(e) => {
                            let job = e.0;
                            reply(
                                job,
                                Response::error("the daemon is stopping"),
                                &self.back,
                                &self.waker,
                            );
                            continue;
                        }
                    }
                }
                Ok(req) => {
                    let _bulk = priority::NormalPriority::enter(
                        realtime && !priority::is_brief(&req, job.len),
                    );
                    run(&*self.handler, req)
                }
            };
            reply(job, resp, &self.back, &self.waker);
        }
    }
}

/// The port lane: port changes, one at a time, at a lower CPU priority.
fn port_lane(jobs: &Receiver<Job>, handler: &dyn Handler, back: &Sender<Back>, waker: &UnixStream) {
    priority::lower_to_port_lane();
    while let Ok(mut job) = jobs.recv() {
        let resp = match job.req.take() {
            Some(req) => run(handler, req),
            None => match parse(&job.conn.buf[..job.len]) {
                Ok(req) => run(handler, req),
                Err(resp) => resp,
            },
        };
        reply(job, resp, back, waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

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

    fn conn_with(bytes: &[u8], eof: bool) -> (Conn, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let mut c = Conn::new(a);
        c.buf.extend_from_slice(bytes);
        c.eof = eof;
        (c, b)
    }

    #[test]
    fn an_over_long_line_is_refused() {
        let (mut c, _peer) = conn_with(&vec![b'a'; MAX_REQUEST_BYTES + 10], false);
        assert_eq!(c.next(), Next::TooLong);
        let mut long = vec![b'a'; MAX_REQUEST_BYTES + 1];
        long.push(b'\n');
        let (mut c, _peer) = conn_with(&long, false);
        assert_eq!(c.next(), Next::TooLong);
        // Exactly the limit, newline not counted, is accepted.
        let mut max = vec![b'a'; MAX_REQUEST_BYTES];
        max.push(b'\n');
        let (mut c, _peer) = conn_with(&max, false);
        assert_eq!(c.next(), Next::Serve(MAX_REQUEST_BYTES + 1));
    }

    #[test]
    fn pipelined_lines_come_out_in_order_and_blank_lines_are_skipped() {
        let (mut c, _peer) = conn_with(
            b"\n  \n{\"cmd\":\"ping\"}\n\n{\"cmd\":\"stats\"}\n{\"cm",
            false,
        );
        let Next::Serve(n) = c.next() else { panic!() };
        assert_eq!(&c.buf[..n], b"{\"cmd\":\"ping\"}\n");
        c.consume(n);
        let Next::Serve(n) = c.next() else { panic!() };
        assert_eq!(&c.buf[..n], b"{\"cmd\":\"stats\"}\n");
        c.consume(n);
        assert_eq!(c.next(), Next::Wait);
        // The client shuts its side: the unterminated rest is the last
        // request; after it, the connection closes.
        c.eof = true;
        assert_eq!(c.next(), Next::Serve(4));
        c.consume(4);
        assert_eq!(c.next(), Next::Close);
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

    /// The calling thread's nice value (field 19 of its stat line).
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        after_comm.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// Answers with the name, id and nice value of the thread that ran
    /// the handler;
    /// port changes sleep for `slow`; `trace` panics.
    struct Recorder {
        slow: Duration,
    }
    impl Handler for Recorder {
        fn handle(&self, req: Request) -> Result<Reply, String> {
            if let Request::PortAdd { .. } = req {
                std::thread::sleep(self.slow);
            }
            if let Request::Trace { .. } = req {
                panic!("handler bug");
            }
            let t = std::thread::current();
            let who = format!(
                "{}/{:?}/policy={}/nice={}",
                t.name().unwrap_or("?"),
                t.id(),
                priority::current_policy(),
                nice()
            );
            Ok(Reply::new(&who, who.clone()))
        }
    }

    #[test]
    fn connections_are_served_by_the_fixed_pool_not_a_thread_each() {
        let p = temp_sock("pool");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(
            &p,
            Arc::new(Recorder {
                slow: Duration::ZERO,
            }),
        )
        .unwrap();
        let mut general = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut c = super::super::Client::connect(&p).unwrap();
            general.insert(c.request(&Request::Ping).unwrap().text);
        }
        assert!(
            general.len() <= GENERAL_WORKERS
                && general.iter().all(|w| w.starts_with("xswitch-mgmt-w")),
            "50 connections answered by {general:?}"
        );
        let mut c = super::super::Client::connect(&p).unwrap();
        let port = c
            .request(&Request::PortAdd {
                ifname: "x".into(),
                mode: None,
                ofport: None,
            })
            .unwrap()
            .text;
        assert!(port.starts_with("xswitch-mgmt-port/"), "{port}");
        // The port lane runs niced below the general lane.
        let nice_of = |who: &str| -> i32 { who.rsplit("nice=").next().unwrap().parse().unwrap() };
        let general_nice = nice_of(general.iter().next().unwrap());
        assert_eq!(
            nice_of(&port),
            (general_nice + priority::PORT_LANE_NICE).min(19),
            "{port} vs {general:?}"
        );
        // With the privilege, brief requests are answered in real time and
        // bulk ones (stats) at normal priority, by the same workers.
        let policy_of = |who: &str| -> i32 {
            let p = who.split("policy=").nth(1).unwrap();
            p[..p.find('/').unwrap()].parse().unwrap()
        };
        let ping = c.request(&Request::Ping).unwrap().text;
        let stats = c.request(&Request::Stats).unwrap().text;
        if std::thread::spawn(priority::enter_realtime).join().unwrap() {
            assert_eq!(policy_of(&ping), nix::libc::SCHED_FIFO, "{ping}");
        }
        assert_eq!(policy_of(&stats), nix::libc::SCHED_OTHER, "{stats}");
        assert_eq!(policy_of(&port), nix::libc::SCHED_OTHER, "{port}");
        s.stop();
    }

    /// Scheduling policies of this process's threads named `name`.
    fn policies_of_threads(name: &str) -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                let tid: i32 = e.file_name().to_str()?.parse().ok()?;
                (comm.trim() == name).then(|| priority::policy_of(tid))
            })
            .filter(|&p| p >= 0)
            .collect()
    }

    #[test]
    fn the_acceptor_runs_at_normal_priority_and_the_poller_in_real_time() {
        let p = temp_sock("acc");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(&p, Arc::new(Echo)).unwrap();
        // Served through the acceptor.
        let mut c = super::super::Client::connect(&p).unwrap();
        assert_eq!(c.request(&Request::Ping).unwrap().text, "pong");
        let acceptors = policies_of_threads("xswitch-accept");
        assert!(!acceptors.is_empty(), "no acceptor thread");
        assert!(
            acceptors.iter().all(|&p| p == nix::libc::SCHED_OTHER),
            "{acceptors:?}"
        );
        if std::thread::spawn(priority::enter_realtime).join().unwrap() {
            // Other tests' servers start concurrently: a poller may be
            // caught in the microseconds before it enters real time.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let pollers = policies_of_threads("xswitch-mgmt");
                if !pollers.is_empty() && pollers.iter().all(|&p| p == nix::libc::SCHED_FIFO) {
                    break;
                }
                assert!(Instant::now() < deadline, "pollers {pollers:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        s.stop();
        assert!(!p.exists(), "socket removed once both threads stopped");
        assert!(
            super::super::Client::connect(&p).is_err(),
            "nothing accepts after stop"
        );
    }

    #[test]
    fn a_slow_port_change_does_not_hold_up_other_requests() {
        let p = temp_sock("slow");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(
            &p,
            Arc::new(Recorder {
                slow: Duration::from_millis(400),
            }),
        )
        .unwrap();
        // More port changes in flight than there are general workers.
        let adders: Vec<_> = (0..GENERAL_WORKERS + 1)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut c = super::super::Client::connect(&p).unwrap();
                    c.request(&Request::PortAdd {
                        ifname: "x".into(),
                        mode: None,
                        ofport: None,
                    })
                    .unwrap();
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        let mut c = super::super::Client::connect(&p).unwrap();
        let t = Instant::now();
        c.request(&Request::Ping).unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(200),
            "ping waited {took:?} behind port changes"
        );
        for a in adders {
            a.join().unwrap();
        }
        s.stop();
    }

    #[test]
    fn a_panicking_handler_answers_an_error_and_the_worker_survives() {
        let p = temp_sock("panic");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(
            &p,
            Arc::new(Recorder {
                slow: Duration::ZERO,
            }),
        )
        .unwrap();
        let mut c = super::super::Client::connect(&p).unwrap();
        for _ in 0..2 * GENERAL_WORKERS {
            let e = c.request(&Request::Trace { flow: "x".into() }).unwrap_err();
            assert_eq!(e.to_string(), "internal error while handling trace");
        }
        assert!(c.request(&Request::Ping).is_ok());
        s.stop();
    }

    #[test]
    fn an_over_long_request_on_the_wire_gets_an_error_and_the_connection_closes() {
        let p = temp_sock("long");
        let _ = std::fs::remove_file(&p);
        let s = Server::start(&p, Arc::new(Echo)).unwrap();
        let raw = UnixStream::connect(&p).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = raw.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            // The server may close before taking it all.
            let _ = w.write_all(&vec![b'a'; MAX_REQUEST_BYTES + 100]);
        });
        let mut r = BufReader::new(raw);
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert!(l.contains("request longer than"), "{l}");
        l.clear();
        assert_eq!(r.read_line(&mut l).unwrap(), 0, "closed after the error");
        writer.join().unwrap();
        s.stop();
    }
}
