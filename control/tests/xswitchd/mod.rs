//! Test support for the daemon and CLI tests: a daemon (`xswitch run`) in
//! its own network namespace with its own management socket, CLI runs
//! against it with a timeout, and hosts in namespaces wired to it.
//!
//! Every process is a [`ChildGuard`] (killed by PID on drop), every
//! namespace and veth a guard from [`control::topo`]; a failing test
//! leaves nothing behind.
#![allow(dead_code)]

use control::topo::{self, unique_name, ChildGuard, Netns, Side, Veth, VethOpts};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const XSWITCH: &str = env!("CARGO_BIN_EXE_xswitch");
/// The subcommand that runs the daemon.
pub const RUN: &str = "run";
/// The line the daemon prints once it serves.
pub const READY: &str = "xswitch: forwarding between";
/// How long the daemon may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CLI call may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOut {
    /// Exit code (`None`: killed).
    pub code: Option<i32>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

/// Runs `xswitch ARGS --socket SOCKET` with a timeout.
pub fn cli_at(socket: &Path, args: &[&str]) -> CliOut {
    let mut c = Command::new(XSWITCH);
    c.args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = ChildGuard::new(c.spawn().expect("spawn xswitch"));
    let out = child
        .wait_timeout(CLI_TIMEOUT)
        .expect("xswitch CLI finished");
    CliOut {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh socket path for one daemon.
pub fn socket_for_test() -> PathBuf {
    std::env::temp_dir().join(format!("{}.sock", unique_name("xsd")))
}

/// A daemon running in a namespace.
pub struct Switchd {
    child: Option<ChildGuard>,
    /// Its management socket.
    pub socket: PathBuf,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Switchd {
    /// Spawns `xswitch run --socket S ARGS` in `sw` without waiting.
    pub fn spawn(sw: &Netns, socket: &Path, args: &[&str]) -> Switchd {
        let s = socket.to_string_lossy().into_owned();
        let mut argv = vec![XSWITCH, RUN, "--socket", s.as_str()];
        argv.extend_from_slice(args);
        let mut child = sw.spawn(&argv).expect("spawn daemon");
        let err = child.child_mut().stderr.take().expect("stderr piped");
        let (tx, rx) = channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Switchd {
            child: Some(child),
            socket: socket.to_path_buf(),
            lines: rx,
            stderr,
        }
    }

    /// Starts a daemon in `sw` on a fresh socket and waits until it serves.
    pub fn start(sw: &Netns, args: &[&str]) -> Switchd {
        let d = Switchd::spawn(sw, &socket_for_test(), args);
        d.wait_ready();
        d
    }

    /// Waits for the ready line; panics with the daemon's stderr if it
    /// does not come.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(READY) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no ready line after {START_TIMEOUT:?}: {}",
                        self.stderr_text()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("daemon exited before ready: {}", self.stderr_text())
                }
            }
        }
    }

    /// Everything the daemon wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> CliOut {
        cli_at(&self.socket, args)
    }

    /// Runs the CLI and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(
            o.code,
            Some(0),
            "xswitch {args:?} failed: {}\n--- daemon:\n{}",
            o.stderr,
            self.stderr_text()
        );
        o.stdout
    }

    /// Runs the CLI, insists on failure; returns the one-line error.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(o.code, Some(1), "xswitch {args:?} should fail: {o:?}");
        assert!(o.stdout.is_empty(), "{o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "one line: {:?}", o.stderr);
        o.stderr.trim_end().to_owned()
    }

    /// Stops the daemon with SIGTERM and returns its exit code and stdout.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("running");
        topo::run(&["kill", "-TERM", &child.id().to_string()]).unwrap();
        let out = child.wait_timeout(Duration::from_secs(20)).unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Waits for a daemon that is expected to exit by itself (a refused
    /// start); returns its exit code, with stderr fully read.
    pub fn wait_exit(mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("running");
        let out = child.wait_timeout(Duration::from_secs(20)).unwrap();
        // The reader thread sees EOF once the process is gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.lines.recv_timeout(Duration::from_millis(50)).is_ok()
            || Instant::now() < deadline
        {
            if matches!(
                self.lines.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Disconnected)
            ) {
                break;
            }
        }
        (out.status.code(), self.stderr_text())
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, ChildGuard::id)
    }
}

/// A host: a namespace holding one end of a veth whose other end is in
/// the switch's namespace.
pub struct Host {
    /// The veth (`a` in the host, `b` at the switch).
    pub veth: Veth,
    /// Its namespace.
    pub ns: Netns,
    /// Its IPv4 address.
    pub ip: String,
}

impl Host {
    /// Creates host `i` (address 10.198.0.i/24) wired into `sw`.
    pub fn create(sw: &Netns, i: u8) -> Host {
        let ns = Netns::create("h").unwrap();
        let veth =
            Veth::create("hv", Side::In(&ns), "sv", Side::In(sw), VethOpts::default()).unwrap();
        let ip = format!("10.198.0.{i}");
        Host::configure(&ns, veth.a(), &ip);
        Host { veth, ns, ip }
    }

    /// Addresses `ifname` in `ns` and turns tx checksum offload off (the
    /// switch sees raw bytes: hosts must finish their checksums, as with
    /// Open vSwitch's afxdp ports).
    pub fn configure(ns: &Netns, ifname: &str, ip: &str) {
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", ifname])
            .unwrap();
        ns.run(&["timeout", "10", "ethtool", "-K", ifname, "tx", "off"])
            .unwrap();
    }

    /// The switch-side interface.
    pub fn port(&self) -> &str {
        self.veth.b()
    }

    /// `ping -c COUNT` to `ip`; true when every reply came.
    pub fn ping(&self, ip: &str, count: u32) -> bool {
        let c = count.to_string();
        let o = self
            .ns
            .output(&[
                "timeout", "20", "ping", "-n", "-q", "-c", &c, "-i", "0.1", "-W", "2", ip,
            ])
            .unwrap();
        o.status.success()
    }
}

/// Polls `f` every millisecond until it returns true or `timeout` passes;
/// returns how long it took.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// True when this test can run here (root); otherwise says so.
pub fn privileged() -> bool {
    if topo::have_privileges() {
        true
    } else {
        eprintln!("skipped: needs root (network namespaces, XDP)");
        false
    }
}
