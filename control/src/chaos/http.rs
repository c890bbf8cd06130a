//! A tiny HTTP/1.1 server and a many-connection HTTP load generator, each
//! running inside a named network namespace — the two ends of the upstream
//! OVS soft-lockup reproducer (an HTTP server in one namespace, ~3,000
//! parallel requests from the namespace being deleted).
//!
//! # What
//! * [`HttpServer::start_in`]: a listener in namespace `netns` answering
//!   `GET /` with `200` and a [`BODY_LEN`]-byte body (several packets per
//!   response at MTU 1500), `404`/`400` to anything else, counting the
//!   `200`s it finished sending. Stops and joins on drop.
//! * [`HttpLoad::start_in`]: `parallel` clients in namespace `netns` that
//!   keep issuing `GET /` until stopped, counting requests that succeeded,
//!   failed, timed out, and were cut short by the stop.
//!
//! # How: readiness loops, not a thread per connection
//! Both ends are `poll(2)` loops over non-blocking sockets: the server is
//! one thread, the load [`LoadConfig::workers`] threads (default 2, one
//! per core) each owning `parallel / workers` connection slots. A thread
//! per connection (3,000 threads of 64 KiB stacks) also works, but on this
//! 2-core machine it cost more CPU per request and made the stop wait for
//! 3,000 joins; the figures are in the `measured` note below.
//!
//! Each request is a fresh TCP connection, as each `curl` of the reproducer
//! is: connect, send `GET / HTTP/1.1` with `Connection: close`, read the
//! response to end of stream. The server closes first; the client then
//! closes with a reset (`SO_LINGER` 0), so no socket of the client lingers
//! in LAST_ACK or TIME_WAIT: the ephemeral ports never run out, and the
//! namespace holds no orphaned socket that would outlive the load. A
//! response counts as `ok` only if its status is 200 and exactly
//! `Content-Length` body bytes arrived.
//!
//! # Namespaces
//! A socket lives in the network namespace of the thread that creates it.
//! Every worker enters `netns` (`setns`, through [`NetnsGuard`]) before it
//! makes a socket and stays there until it exits. `ip netns del` only
//! removes the name: the namespace — and a veth inside it — live on until
//! the last thread and socket in them are gone, which is when
//! [`HttpLoad::stop`] returns: every connection is closed with a reset,
//! so no orphaned socket keeps the namespace alive after the stop.
//!
//! # Invariants
//! * Nothing blocks: every socket is non-blocking, every `poll` waits at
//!   most [`POLL_INTERVAL_MS`], every request has a deadline
//!   ([`LoadConfig::request_timeout`]; the server drops a connection idle
//!   for [`SERVER_IDLE_TIMEOUT`]). So [`HttpLoad::stop`] and the server's
//!   drop return within a poll interval plus the time to close the sockets,
//!   also after the namespace was deleted or the link vanished under them.
//! * Every request a client starts ends in exactly one counter: `ok`,
//!   `failed` (connect/socket error, reset, malformed or short response),
//!   `timed_out`, or `aborted` (still in flight when stopped).
//! * After a failure a slot waits [`RETRY_BACKOFF`] before reconnecting,
//!   so an unreachable server costs a few hundred attempts per second per
//!   slot group, not a busy loop.
//!
//! # Locking
//! None shared on the request path: each worker owns its slots; counters
//! are per-worker locals flushed to shared atomics once per poll round.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
use xswitch_bpf::gen::netns::NetnsGuard;

/// Body length of the server's `200` response: 8 KiB, six full-size
/// segments at MTU 1500, so every response is a burst the switch must
/// forward towards the client.
pub const BODY_LEN: usize = 8 * 1024;

/// Default per-request deadline (connect to end of response).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait of one `poll` round; bounds how late a stop is noticed.
pub const POLL_INTERVAL_MS: u16 = 10;

/// The server drops a connection that made no progress for this long.
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause of a client slot after a failed request before it reconnects.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// Listen backlog asked for (the kernel caps it at `net.core.somaxconn`).
const LISTEN_BACKLOG: i32 = 4096;

/// Longest request head the server accepts.
const MAX_REQUEST_HEAD: usize = 512;

/// Longest response head the client accepts.
const MAX_RESPONSE_HEAD: usize = 256;

/// Connections the server accepts per poll round (fairness with reads).
const ACCEPT_BATCH: usize = 512;

/// What every client sends.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: xswitch-chaos\r\nConnection: close\r\n\r\n";

fn enter_netns(netns: &str) -> io::Result<NetnsGuard> {
    NetnsGuard::enter(netns)
        .map_err(|e| io::Error::other(format!("cannot enter network namespace {netns}: {e}")))
}

fn with_context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Makes sure this process may hold `needed` open files: raises the soft
/// `RLIMIT_NOFILE` to the hard limit (with `prlimit`, util-linux) when it
/// is lower, or fails with a one-line error naming both numbers. The load
/// needs one descriptor per parallel request, the server one per open
/// connection.
pub fn ensure_fd_limit(needed: u64) -> io::Result<()> {
    let (soft, hard) = nofile_limits()?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(io::Error::other(format!(
            "open-file limit {hard} (hard) is below the {needed} sockets needed; raise it (ulimit -Hn)"
        )));
    }
    let pid = std::process::id().to_string();
    let limit = format!("--nofile={hard}:{hard}");
    crate::topo::run(&["prlimit", "--pid", &pid, &limit])
        .map_err(|e| io::Error::other(format!("cannot raise the open-file limit: {e}")))?;
    let (soft, _) = nofile_limits()?;
    if soft < needed {
        return Err(io::Error::other(format!(
            "open-file limit is still {soft} after prlimit; {needed} needed"
        )));
    }
    Ok(())
}

/// (soft, hard) `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
fn nofile_limits() -> io::Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits")?;
    parse_nofile_limits(&text)
        .ok_or_else(|| io::Error::other("no \"Max open files\" line in /proc/self/limits"))
}

fn parse_nofile_limits(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line["Max open files".len()..].split_whitespace().map(|w| {
        if w == "unlimited" {
            Some(u64::MAX)
        } else {
            w.parse().ok()
        }
    });
    Some((nums.next()??, nums.next()??))
}

/// Position just past the `\r\n\r\n` that ends an HTTP head, if present.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Status code and `Content-Length` of a response head (the bytes up to
/// and including the blank line); `None` if it is not an HTTP/1.x status
/// line.
fn parse_response_head(head: &[u8]) -> Option<(u16, Option<usize>)> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let rest = status_line.strip_prefix("HTTP/1.")?;
    let code: u16 = rest.get(2..5)?.parse().ok()?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse().ok()?);
            }
        }
    }
    Some((code, length))
}

/// What the server answers to a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    NotFound,
    BadRequest,
}

fn route(head: &[u8]) -> Answer {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let mut parts = head[..line_end].split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(b"GET"), Some(b"/"), Some(v)) if v.starts_with(b"HTTP/1.") => Answer::Ok,
        (Some(b"GET"), Some(_), Some(v)) if v.starts_with(b"HTTP/1.") => Answer::NotFound,
        _ => Answer::BadRequest,
    }
}

/// The three responses, rendered once per server.
struct Responses {
    ok: Vec<u8>,
    not_found: Vec<u8>,
    bad_request: Vec<u8>,
}

impl Responses {
    fn new() -> Self {
        let render = |status: &str, body: &[u8]| {
            let mut v = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            v.extend_from_slice(body);
            v
        };
        let body: Vec<u8> = (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect();
        Responses {
            ok: render("200 OK", &body),
            not_found: render("404 Not Found", b"not found\n"),
            bad_request: render("400 Bad Request", b"bad request\n"),
        }
    }

    fn bytes(&self, a: Answer) -> &[u8] {
        match a {
            Answer::Ok => &self.ok,
            Answer::NotFound => &self.not_found,
            Answer::BadRequest => &self.bad_request,
        }
    }
}

/// Closes `stream` with a reset (`SO_LINGER` 0): no orphaned socket is
/// left to finish a FIN handshake, holding its namespace alive.
fn close_with_reset(stream: TcpStream) {
    let _ = socket::setsockopt(
        &stream,
        sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    );
    drop(stream);
}

/// What the server counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerCounts {
    /// `200` responses sent to the end.
    pub served: u64,
    /// `404`/`400` responses sent.
    pub rejected: u64,
    /// Connections that ended in an error, a reset or the idle timeout
    /// before their response was out.
    pub errors: u64,
}

#[derive(Default)]
struct ServerShared {
    stop: AtomicBool,
    served: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
}

/// The HTTP server; stops and joins its thread on drop.
pub struct HttpServer {
    addr: SocketAddrV4,
    shared: Arc<ServerShared>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts the server on `addr` inside namespace `netns` (as `ip netns`
    /// names it). Returns once it listens, or with the error that stopped
    /// it (unknown namespace, address not assigned there, port in use).
    pub fn start_in(netns: &str, addr: SocketAddrV4) -> io::Result<HttpServer> {
        let shared = Arc::new(ServerShared::default());
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let ns = netns.to_string();
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("chaos-http-srv".into())
            .spawn(move || {
                let started = enter_netns(&ns).and_then(|guard| {
                    let listener = listen(addr)
                        .map_err(|e| with_context(e, format!("listen on {addr} in netns {ns}")))?;
                    Ok((guard, listener))
                });
                match started {
                    Ok((_guard, listener)) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(&listener, &sh);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(HttpServer {
                addr,
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("HTTP server thread died while starting"))
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// `200` responses sent so far.
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// All counters so far.
    pub fn counts(&self) -> ServerCounts {
        ServerCounts {
            served: self.shared.served.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            errors: self.shared.errors.load(Ordering::Relaxed),
        }
    }

    /// Stops the server, closes every connection and returns its counts.
    pub fn stop(mut self) -> ServerCounts {
        self.halt();
        self.counts()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn listen(addr: SocketAddrV4) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    // std listens with a small backlog; 3,000 clients connect at once, so
    // widen it (listen(2) on a listening socket updates the backlog).
    let backlog = Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN);
    socket::listen(&listener, backlog).map_err(io::Error::from)?;
    Ok(listener)
}

/// One accepted connection.
struct ServerConn {
    stream: TcpStream,
    head: [u8; MAX_REQUEST_HEAD],
    head_len: usize,
    /// Set once the request head is complete.
    answer: Option<Answer>,
    written: usize,
    deadline: Instant,
}

/// What became of a server connection after a round.
enum ConnStep {
    Open,
    Done,
    Failed,
}

impl ServerConn {
    fn interest(&self) -> PollFlags {
        if self.answer.is_some() {
            PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    }

    fn advance(&mut self, responses: &Responses, now: Instant) -> ConnStep {
        self.deadline = now + SERVER_IDLE_TIMEOUT;
        if self.answer.is_none() {
            loop {
                if self.head_len == self.head.len() {
                    self.answer = Some(Answer::BadRequest);
                    break;
                }
                match self.stream.read(&mut self.head[self.head_len..]) {
                    Ok(0) => return ConnStep::Failed,
                    Ok(n) => {
                        self.head_len += n;
                        if let Some(end) = head_end(&self.head[..self.head_len]) {
                            self.answer = Some(route(&self.head[..end]));
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return ConnStep::Open,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return ConnStep::Failed,
                }
            }
        }
        let Some(answer) = self.answer else {
            return ConnStep::Open;
        };
        let bytes = responses.bytes(answer);
        while self.written < bytes.len() {
            match self.stream.write(&bytes[self.written..]) {
                Ok(0) => return ConnStep::Failed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ConnStep::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return ConnStep::Failed,
            }
        }
        ConnStep::Done
    }
}

fn serve(listener: &TcpListener, shared: &ServerShared) {
    let responses = Responses::new();
    let mut conns: Vec<ServerConn> = Vec::new();
    let mut revents: Vec<PollFlags> = Vec::new();
    while !shared.stop.load(Ordering::Acquire) {
        {
            let mut fds = Vec::with_capacity(conns.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            fds.extend(
                conns
                    .iter()
                    .map(|c| PollFd::new(c.stream.as_fd(), c.interest())),
            );
            match poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => {
                    // Out of memory for the poll table: back off briefly.
                    std::thread::sleep(Duration::from_millis(u64::from(POLL_INTERVAL_MS)));
                    continue;
                }
            }
            revents.clear();
            revents.extend(
                fds.iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty())),
            );
        }
        let now = Instant::now();
        // Reverse order: swap_remove(i) moves an already visited slot to i.
        for i in (0..conns.len()).rev() {
            let step = if revents[i + 1].is_empty() {
                if now < conns[i].deadline {
                    ConnStep::Open
                } else {
                    ConnStep::Failed
                }
            } else {
                conns[i].advance(&responses, now)
            };
            match step {
                ConnStep::Open => {}
                ConnStep::Done => {
                    let c = conns.swap_remove(i);
                    let counter = if c.answer == Some(Answer::Ok) {
                        &shared.served
                    } else {
                        &shared.rejected
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    // A plain close: the FIN follows the queued response.
                    drop(c);
                }
                ConnStep::Failed => {
                    let c = conns.swap_remove(i);
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    close_with_reset(c.stream);
                }
            }
        }
        if revents[0].intersects(PollFlags::POLLIN) {
            for _ in 0..ACCEPT_BATCH {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        conns.push(ServerConn {
                            stream,
                            head: [0; MAX_REQUEST_HEAD],
                            head_len: 0,
                            answer: None,
                            written: 0,
                            deadline: now + SERVER_IDLE_TIMEOUT,
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ECONNABORTED, EMFILE, ...: try again next round.
                    Err(_) => break,
                }
            }
        }
    }
    for c in conns {
        close_with_reset(c.stream);
    }
}

/// How a load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadConfig {
    /// Requests in flight at any time (one connection each).
    pub parallel: usize,
    /// Threads sharing the connections (at least 1, at most `parallel`).
    pub workers: usize,
    /// Deadline of one request, connect to end of response.
    pub request_timeout: Duration,
}

impl LoadConfig {
    /// `parallel` requests on two workers (one per core of the machines we
    /// run on) with [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(parallel: usize) -> Self {
        LoadConfig {
            parallel,
            workers: 2,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What a load counted. Every request started ends in exactly one of
/// `ok`, `failed`, `timed_out`, `aborted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    /// Complete `200` responses with the announced body length.
    pub ok: u64,
    /// Socket/connect errors, resets, malformed or short responses.
    pub failed: u64,
    /// Requests that passed their deadline.
    pub timed_out: u64,
    /// Requests in flight when the load was stopped.
    pub aborted: u64,
    /// Response bytes received (heads and bodies).
    pub bytes: u64,
}

impl LoadCounts {
    /// Requests that did not succeed, whatever the reason (`aborted`
    /// excluded: those were cut by the stop, not by the network).
    pub fn not_ok(&self) -> u64 {
        self.failed + self.timed_out
    }

    /// Adds `o` to these counts (totals over cycles).
    pub fn add(&mut self, o: &LoadCounts) {
        self.ok += o.ok;
        self.failed += o.failed;
        self.timed_out += o.timed_out;
        self.aborted += o.aborted;
        self.bytes += o.bytes;
    }
}

/// A finished load.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LoadReport {
    /// The counters.
    pub counts: LoadCounts,
    /// From start to stop.
    pub elapsed: Duration,
    /// How long `stop` took (signal, close every socket, join).
    pub stop_took: Duration,
}

impl LoadReport {
    /// Successful requests per second over the whole run.
    pub fn ok_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.counts.ok as f64 / s
        } else {
            0.0
        }
    }
}

#[derive(Default)]
struct LoadShared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    aborted: AtomicU64,
    bytes: AtomicU64,
}

impl LoadShared {
    fn flush(&self, local: &mut LoadCounts) {
        for (counter, v) in [
            (&self.ok, local.ok),
            (&self.failed, local.failed),
            (&self.timed_out, local.timed_out),
            (&self.aborted, local.aborted),
            (&self.bytes, local.bytes),
        ] {
            if v != 0 {
                counter.fetch_add(v, Ordering::Relaxed);
            }
        }
        *local = LoadCounts::default();
    }

    fn snapshot(&self) -> LoadCounts {
        LoadCounts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A running HTTP load; stopped (bounded) on [`HttpLoad::stop`] or drop.
pub struct HttpLoad {
    target: SocketAddrV4,
    config: LoadConfig,
    shared: Arc<LoadShared>,
    workers: Vec<JoinHandle<()>>,
    started: Instant,
}

impl HttpLoad {
    /// Starts `parallel` concurrent clients of `target` inside namespace
    /// `netns` (see [`LoadConfig::new`]). Returns once every worker is in
    /// the namespace, or with the reason one could not get there.
    pub fn start_in(netns: &str, target: SocketAddrV4, parallel: usize) -> io::Result<HttpLoad> {
        Self::start_with(netns, target, LoadConfig::new(parallel))
    }

    /// Like [`HttpLoad::start_in`] with every knob given.
    pub fn start_with(
        netns: &str,
        target: SocketAddrV4,
        config: LoadConfig,
    ) -> io::Result<HttpLoad> {
        if config.parallel == 0 {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "HTTP load: parallel must be at least 1",
            ));
        }
        ensure_fd_limit(config.parallel as u64 + 256)?;
        let workers = config.workers.clamp(1, config.parallel);
        let config = LoadConfig { workers, ..config };
        let shared = Arc::new(LoadShared::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            // Slots split as evenly as possible: the first `rem` get one more.
            let slots = config.parallel / workers + usize::from(w < config.parallel % workers);
            let ns = netns.to_string();
            let sh = Arc::clone(&shared);
            let ready = ready_tx.clone();
            let timeout = config.request_timeout;
            let spawned = std::thread::Builder::new()
                .name(format!("chaos-http-load{w}"))
                .spawn(move || match enter_netns(&ns) {
                    Ok(_guard) => {
                        let _ = ready.send(Ok(()));
                        drive(target, slots, timeout, &sh);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    stop_and_join(&shared, &mut handles);
                    return Err(with_context(e, "spawn HTTP load worker".into()));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..workers {
            let outcome = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("HTTP load worker died while starting")));
            if let Err(e) = outcome {
                stop_and_join(&shared, &mut handles);
                return Err(e);
            }
        }
        Ok(HttpLoad {
            target,
            config,
            shared,
            workers: handles,
            started: Instant::now(),
        })
    }

    /// The server it loads.
    pub fn target(&self) -> SocketAddrV4 {
        self.target
    }

    /// The configuration it runs with (workers clamped).
    pub fn config(&self) -> LoadConfig {
        self.config
    }

    /// Counters so far (flushed by the workers every poll round).
    pub fn counts(&self) -> LoadCounts {
        self.shared.snapshot()
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops every client, resets every open connection and joins the
    /// workers. Returns within a poll interval plus the close time, also
    /// when the namespace was deleted under the load.
    pub fn stop(mut self) -> LoadReport {
        let elapsed = self.started.elapsed();
        let t = Instant::now();
        stop_and_join(&self.shared, &mut self.workers);
        LoadReport {
            counts: self.shared.snapshot(),
            elapsed,
            stop_took: t.elapsed(),
        }
    }
}

impl Drop for HttpLoad {
    fn drop(&mut self) {
        stop_and_join(&self.shared, &mut self.workers);
    }
}

fn stop_and_join(shared: &LoadShared, handles: &mut Vec<JoinHandle<()>>) {
    shared.stop.store(true, Ordering::Release);
    for h in handles.drain(..) {
        let _ = h.join();
    }
}

/// Where a client slot is in its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection; start one at this instant.
    Idle(Instant),
    Connecting,
    Sending,
    Receiving,
}

/// One of a worker's `parallel` request slots.
struct Slot {
    phase: Phase,
    stream: Option<TcpStream>,
    deadline: Instant,
    sent: usize,
    response: Response,
}

/// The response read so far.
struct Response {
    head: [u8; MAX_RESPONSE_HEAD],
    head_len: usize,
    /// Status and Content-Length, once the head is complete.
    parsed: Option<(u16, Option<usize>)>,
    body: usize,
}

impl Response {
    fn new() -> Self {
        Response {
            head: [0; MAX_RESPONSE_HEAD],
            head_len: 0,
            parsed: None,
            body: 0,
        }
    }

    fn clear(&mut self) {
        self.head_len = 0;
        self.parsed = None;
        self.body = 0;
    }

    /// Complete: status 200 and exactly the announced body.
    fn complete(&self) -> bool {
        matches!(self.parsed, Some((200, Some(len))) if len == self.body)
    }

    /// Accounts response bytes; false if the response is malformed.
    fn take(&mut self, data: &[u8]) -> bool {
        if self.parsed.is_some() {
            self.body += data.len();
            return true;
        }
        let room = self.head.len() - self.head_len;
        let n = data.len().min(room);
        let before = self.head_len;
        self.head[before..before + n].copy_from_slice(&data[..n]);
        self.head_len += n;
        match head_end(&self.head[..self.head_len]) {
            Some(end) => {
                let Some(parsed) = parse_response_head(&self.head[..end]) else {
                    return false;
                };
                self.parsed = Some(parsed);
                // Body bytes: everything received so far past the head.
                self.body = before + data.len() - end;
                true
            }
            None => self.head_len < self.head.len(),
        }
    }
}

/// How a slot's request ended.
enum Outcome {
    Pending,
    Ok,
    Failed,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Slot {
            phase: Phase::Idle(now),
            stream: None,
            deadline: now,
            sent: 0,
            response: Response::new(),
        }
    }

    fn interest(&self) -> PollFlags {
        match self.phase {
            Phase::Connecting | Phase::Sending => PollFlags::POLLOUT,
            Phase::Receiving => PollFlags::POLLIN,
            Phase::Idle(_) => PollFlags::empty(),
        }
    }

    /// Opens a new connection; an immediate failure is returned as such.
    fn start(&mut self, target: &SockaddrIn, now: Instant, timeout: Duration) -> Outcome {
        self.sent = 0;
        self.response.clear();
        self.deadline = now + timeout;
        let fd = match socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        ) {
            Ok(fd) => fd,
            Err(_) => return Outcome::Failed,
        };
        let connected = socket::connect(fd.as_raw_fd(), target);
        self.stream = Some(TcpStream::from(fd));
        match connected {
            Ok(()) => {
                self.phase = Phase::Sending;
                Outcome::Pending
            }
            Err(Errno::EINPROGRESS) => {
                self.phase = Phase::Connecting;
                Outcome::Pending
            }
            // ENETUNREACH once the route is gone, EADDRNOTAVAIL, ...
            Err(_) => Outcome::Failed,
        }
    }

    /// Moves the request on after `poll` reported readiness.
    fn advance(&mut self, scratch: &mut [u8], counts: &mut LoadCounts) -> Outcome {
        let Some(stream) = self.stream.as_mut() else {
            return Outcome::Failed;
        };
        if self.phase == Phase::Connecting {
            match socket::getsockopt(&*stream, sockopt::SocketError) {
                Ok(0) => self.phase = Phase::Sending,
                _ => return Outcome::Failed,
            }
        }
        if self.phase == Phase::Sending {
            while self.sent < REQUEST.len() {
                match stream.write(&REQUEST[self.sent..]) {
                    Ok(0) => return Outcome::Failed,
                    Ok(n) => self.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Pending,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Outcome::Failed,
                }
            }
            self.phase = Phase::Receiving;
        }
        loop {
            match stream.read(scratch) {
                Ok(0) if self.response.complete() => return Outcome::Ok,
                Ok(0) => return Outcome::Failed,
                Ok(n) => {
                    counts.bytes += n as u64;
                    if !self.response.take(&scratch[..n]) {
                        return Outcome::Failed;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Outcome::Pending,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Failed,
            }
        }
    }

    /// Ends the current request (closing with a reset, see
    /// [`close_with_reset`]); the slot starts again at `next`.
    fn finish(&mut self, next: Instant) {
        if let Some(s) = self.stream.take() {
            close_with_reset(s);
        }
        self.phase = Phase::Idle(next);
    }
}

/// One worker: `slots` requests in flight until `shared.stop`.
fn drive(target: SocketAddrV4, slots: usize, timeout: Duration, shared: &LoadShared) {
    let addr = SockaddrIn::from(target);
    let start = Instant::now();
    let mut slots: Vec<Slot> = (0..slots).map(|_| Slot::new(start)).collect();
    let mut scratch = vec![0u8; 64 * 1024];
    let mut counts = LoadCounts::default();
    let mut polled: Vec<usize> = Vec::with_capacity(slots.len());
    let mut revents: Vec<PollFlags> = Vec::with_capacity(slots.len());
    while !shared.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        for s in &mut slots {
            match s.phase {
                Phase::Idle(at) if now >= at => {
                    if let Outcome::Failed = s.start(&addr, now, timeout) {
                        counts.failed += 1;
                        s.finish(now + RETRY_BACKOFF);
                    }
                }
                Phase::Idle(_) => {}
                _ if now >= s.deadline => {
                    counts.timed_out += 1;
                    s.finish(now);
                }
                _ => {}
            }
        }
        polled.clear();
        revents.clear();
        {
            let mut fds = Vec::with_capacity(slots.len());
            for (i, s) in slots.iter().enumerate() {
                if let (Some(stream), false) = (&s.stream, matches!(s.phase, Phase::Idle(_))) {
                    fds.push(PollFd::new(stream.as_fd(), s.interest()));
                    polled.push(i);
                }
            }
            if fds.is_empty() {
                // Every slot is backing off: nothing to wait on but time.
                std::thread::sleep(
                    RETRY_BACKOFF.min(Duration::from_millis(u64::from(POLL_INTERVAL_MS))),
                );
            } else {
                match poll(&mut fds, PollTimeout::from(POLL_INTERVAL_MS)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(u64::from(POLL_INTERVAL_MS)))
                    }
                }
                revents.extend(
                    fds.iter()
                        .map(|f| f.revents().unwrap_or(PollFlags::empty())),
                );
            }
        }
        let now = Instant::now();
        for (&i, ev) in polled.iter().zip(&revents) {
            if ev.is_empty() {
                continue;
            }
            let s = &mut slots[i];
            match s.advance(&mut scratch, &mut counts) {
                Outcome::Pending => {}
                Outcome::Ok => {
                    counts.ok += 1;
                    // The server has closed its side; a reset (not a FIN)
                    // leaves no orphaned LAST_ACK socket behind, which
                    // would keep a deleted namespace alive until its FIN
                    // handshake ends (seconds, if the path is gone).
                    s.finish(now);
                }
                Outcome::Failed => {
                    counts.failed += 1;
                    s.finish(now + RETRY_BACKOFF);
                }
            }
        }
        shared.flush(&mut counts);
    }
    for s in &mut slots {
        if !matches!(s.phase, Phase::Idle(_)) {
            counts.aborted += 1;
        }
        s.finish(start);
    }
    shared.flush(&mut counts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_head_gives_status_and_length() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-LENGTH: 8192\r\n\r\n";
        assert_eq!(head_end(head), Some(head.len()));
        assert_eq!(parse_response_head(head), Some((200, Some(8192))));
        assert_eq!(
            parse_response_head(b"HTTP/1.0 404 Not Found\r\n\r\n"),
            Some((404, None))
        );
        assert_eq!(parse_response_head(b"SSH-2.0-x\r\n\r\n"), None);
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            None
        );
    }

    #[test]
    fn server_routes_get_slash_and_refuses_the_rest() {
        assert_eq!(route(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Answer::Ok);
        assert_eq!(route(b"GET /x HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(route(b"POST / HTTP/1.1\r\n\r\n"), Answer::BadRequest);
        assert_eq!(route(b"garbage\r\n\r\n"), Answer::BadRequest);
    }

    #[test]
    fn client_counts_a_response_split_across_reads() {
        let r = Responses::new();
        let bytes = r.bytes(Answer::Ok);
        let mut resp = Response::new();
        // Split inside the head, then at odd places in the body.
        for chunk in bytes.chunks(37) {
            assert!(resp.take(chunk));
            assert!(!resp.complete() || resp.body == BODY_LEN);
        }
        assert_eq!(resp.parsed, Some((200, Some(BODY_LEN))));
        assert_eq!(resp.body, BODY_LEN);
        assert!(resp.complete());
        // One byte too many is not a complete response.
        assert!(resp.take(b"x"));
        assert!(!resp.complete());
    }

    #[test]
    fn client_rejects_a_head_that_never_ends() {
        let mut resp = Response::new();
        let junk = [b'x'; MAX_RESPONSE_HEAD];
        assert!(!resp.take(&junk));
    }

    #[test]
    fn nofile_limits_parse_numbers_and_unlimited() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(parse_nofile_limits(text), Some((1024, 524288)));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_limits(text), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_nofile_limits("nothing here"), None);
    }

    #[test]
    fn unknown_namespace_is_a_one_line_error() {
        let addr = SocketAddrV4::new([127, 0, 0, 1].into(), 1);
        let e = HttpServer::start_in("xswitch-no-such-ns", addr)
            .err()
            .expect("must fail");
        assert!(e.to_string().contains("xswitch-no-such-ns"), "{e}");
        let e = HttpLoad::start_in("xswitch-no-such-ns", addr, 4)
            .err()
            .expect("must fail");
        assert!(e.to_string().contains("xswitch-no-such-ns"), "{e}");
    }
}
