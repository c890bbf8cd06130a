//! The switch daemon under test, as a child process in the switch
//! namespace: start (wait for the ready line), talk to it through its
//! management socket in-process ([`crate::mgmt::Client`]), SIGKILL and
//! restart it, stop it with SIGTERM and collect its final report.
//!
//! # Invariants
//! * Always a private socket path (never the default one), unique to this
//!   process and start.
//! * The child is owned by a [`ChildGuard`]: killed by PID on drop,
//!   whatever happened. A daemon that does not exit within
//!   [`STOP_TIMEOUT`] of SIGTERM (a stuck PMD in the legacy build) is
//!   SIGKILLed and reported as such.
//! * Its stderr is read by a thread that keeps only the last
//!   [`LOG_LINES`] lines (long runs stay bounded in memory); its stdout
//!   (the final report) by another.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::mgmt::{Client, PortRow, Reply, Request};
use crate::topo::ChildGuard;

use super::scenario::ChaosError;

/// The daemon subcommand (the hidden `daemon` was the daemon until `run`
/// took over; one place to change if it moves again).
pub const DAEMON_SUBCOMMAND: &str = "run";
/// How long the daemon may take to print its ready line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it gets to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(8);
/// The daemon's log filter (its `RUST_LOG`) comes from this variable;
/// default `warn`.
pub const LOG_ENV: &str = "XSWITCH_CHAOS_LOG";
/// Stderr lines kept for the report.
pub const LOG_LINES: usize = 40;

static STARTS: AtomicU32 = AtomicU32::new(0);

struct Running {
    guard: ChildGuard,
    log: Arc<Mutex<VecDeque<String>>>,
    stdout: Option<JoinHandle<String>>,
}

/// How a stop went.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Exited by itself with status 0 after SIGTERM.
    pub clean: bool,
    /// What happened ("exit status: 0", "killed after 8 s", ...).
    pub status: String,
    /// The final `stats --json` report it printed, if any.
    pub report: Option<serde_json::Value>,
    /// The last lines of its stderr.
    pub log_tail: Vec<String>,
}

/// The daemon process (module docs).
pub struct SwitchProcess {
    exe: PathBuf,
    netns: String,
    ports: Vec<String>,
    pmd_cpu: usize,
    socket: PathBuf,
    run: Mutex<Option<Running>>,
}

impl core::fmt::Debug for SwitchProcess {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SwitchProcess")
            .field("netns", &self.netns)
            .field("socket", &self.socket)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl SwitchProcess {
    /// Starts `exe daemon --port P... --pmd-cpus CPU --socket S
    /// --json-stats` in namespace `netns` and waits for its ready line.
    pub fn start(
        exe: &Path,
        netns: &str,
        ports: &[&str],
        pmd_cpu: usize,
    ) -> Result<SwitchProcess, ChaosError> {
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let socket =
            std::env::temp_dir().join(format!("xswitch-chaos-{}-{n}.sock", std::process::id()));
        let p = SwitchProcess {
            exe: exe.to_path_buf(),
            netns: netns.to_string(),
            ports: ports.iter().map(|s| s.to_string()).collect(),
            pmd_cpu,
            socket,
            run: Mutex::new(None),
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&self) -> Result<(), ChaosError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(&self.exe)
            .arg(DAEMON_SUBCOMMAND);
        for p in &self.ports {
            cmd.args(["--port", p]);
        }
        cmd.args(["--pmd-cpus", &self.pmd_cpu.to_string(), "--socket"])
            .arg(&self.socket)
            .arg("--json-stats")
            .env(
                "RUST_LOG",
                std::env::var(LOG_ENV).unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("XSWITCH_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| ChaosError::Daemon(format!("cannot start {}: {e}", self.exe.display())))?;
        let mut guard = ChildGuard::new(child);
        let stderr = guard.child_mut().stderr.take().expect("piped stderr");
        let mut stdout = guard.child_mut().stdout.take().expect("piped stdout");
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES)));
        let (ready_tx, ready_rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("forwarding between") {
                    let _ = ready_tx.send(());
                }
                let mut l = log2.lock().unwrap_or_else(|e| e.into_inner());
                if l.len() == LOG_LINES {
                    l.pop_front();
                }
                l.push_back(line);
            }
        });
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let mut running = Running {
            guard,
            log,
            stdout: Some(out),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => break,
                Err(_) => {
                    if let Ok(Some(st)) = running.guard.child_mut().try_wait() {
                        return Err(ChaosError::Daemon(format!(
                            "exited at start ({st}): {}",
                            tail(&running.log).join(" | ")
                        )));
                    }
                    if Instant::now() >= deadline {
                        return Err(ChaosError::Daemon(format!(
                            "no ready line within {START_TIMEOUT:?}: {}",
                            tail(&running.log).join(" | ")
                        )));
                    }
                }
            }
        }
        *self.lock() = Some(running);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The daemon's PID (`None` when not running).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(|r| r.guard.id())
    }

    /// True while the process exists and has not exited.
    pub fn alive(&self) -> bool {
        match self.lock().as_mut() {
            Some(r) => matches!(r.guard.child_mut().try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The management socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// One request on a fresh connection.
    pub fn request(&self, req: &Request) -> Result<Reply, ChaosError> {
        Ok(Client::connect(&self.socket)?.request(req)?)
    }

    /// `port list`.
    pub fn port_list(&self) -> Result<Vec<PortRow>, ChaosError> {
        let r = self.request(&Request::PortList)?;
        serde_json::from_value(r.result)
            .map_err(|e| ChaosError::Daemon(format!("unreadable port list: {e}")))
    }

    /// `stats --json`.
    pub fn stats(&self) -> Result<serde_json::Value, ChaosError> {
        Ok(self.request(&Request::Stats)?.result)
    }

    /// Resident set size (`VmRSS` of /proc/PID/status), KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.pid()?;
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// SIGKILL, reaped. Returns false if it was not running.
    pub fn kill_hard(&self) -> bool {
        let r = self.lock().take();
        match r {
            Some(mut r) => {
                let _ = r.guard.child_mut().kill();
                let _ = r.guard.child_mut().wait();
                true
            }
            None => false,
        }
    }

    /// Starts the daemon again with the same ports (after [`kill_hard`]).
    ///
    /// [`kill_hard`]: SwitchProcess::kill_hard
    pub fn restart(&self) -> Result<(), ChaosError> {
        self.kill_hard();
        self.spawn()
    }

    /// SIGTERM, then up to [`STOP_TIMEOUT`] for a clean exit (SIGKILL
    /// after that); the final report it printed, if any.
    pub fn stop(&self) -> Stopped {
        let Some(mut r) = self.lock().take() else {
            return Stopped {
                clean: false,
                status: "not running".into(),
                report: None,
                log_tail: Vec::new(),
            };
        };
        let pid = r.guard.id().to_string();
        let _ = crate::topo::output(&["kill", "-TERM", &pid]);
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = r.guard.child_mut().try_wait() {
                status = Some(st);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (clean, status) = match status {
            Some(st) => (st.success(), format!("{st}")),
            None => {
                let _ = r.guard.child_mut().kill();
                let _ = r.guard.child_mut().wait();
                (
                    false,
                    format!("still running {STOP_TIMEOUT:?} after SIGTERM: killed"),
                )
            }
        };
        let out = r
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let report = serde_json::from_str(out.trim()).ok();
        Stopped {
            clean,
            status,
            report,
            log_tail: tail(&r.log),
        }
    }
}

fn tail(log: &Mutex<VecDeque<String>>) -> Vec<String> {
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

impl Drop for SwitchProcess {
    fn drop(&mut self) {
        // The guard SIGKILLs by PID; the socket file is the daemon's to
        // remove, but a killed one cannot.
        self.kill_hard();
        let _ = std::fs::remove_file(&self.socket);
    }
}
