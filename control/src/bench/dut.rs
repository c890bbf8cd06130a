//! The devices under test: what each is, how it is set up between d0 and
//! d1 in the DUT namespace, and how it is torn down.
//!
//! | name | what forwards d0 ⇄ d1 |
//! |---|---|
//! | `direct` | nothing: g0's peer is s0 (calibration: generator + sink ceiling) |
//! | `xdp-redirect` | `xswitch_redirect.bpf.c`, XDP_REDIRECT via a devmap: the kernel limit for veth |
//! | `linux-bridge` | a Linux bridge with d0 and d1 as ports |
//! | `ovs-afxdp` | Open vSwitch 3.1 userspace datapath, `type=afxdp` ports |
//! | `ovs-system` | Open vSwitch 3.1 userspace datapath, netdev-linux ports |
//! | `xswitch` | `xswitch run --port d0 --port d1 --pmd-cpus LIST` |
//!
//! Processes (OVS, xswitch) run inside the DUT namespace through
//! `ip netns exec`, confined to the DUT CPUs with `taskset`, as children
//! killed by PID on drop. Programs and bridges live in the namespace and
//! vanish with it.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;
use xswitch_bpf::gen::netns::{ifindex_of, NetnsGuard};
use xswitch_bpf::gen::XdpRedirect;

use super::net::BenchNet;
use super::ovs::OvsDut;
use crate::topo::{unique_name, ChildGuard};

/// How long `xswitch run` may take to say it forwards.
const XSWITCH_STARTUP: Duration = Duration::from_secs(20);
/// How long `xswitch run` gets to exit after SIGTERM before SIGKILL.
const XSWITCH_STOP: Duration = Duration::from_secs(5);

/// A kind of device under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DutKind {
    /// No device: generator straight into the sink.
    Direct,
    /// Kernel XDP_REDIRECT through a devmap.
    XdpRedirect,
    /// The Linux bridge.
    LinuxBridge,
    /// Open vSwitch userspace datapath with AF_XDP ports.
    OvsAfxdp,
    /// Open vSwitch userspace datapath with netdev-linux ports.
    OvsSystem,
    /// This project.
    Xswitch,
}

impl DutKind {
    /// Every kind, in the default order of a run.
    pub const ALL: [DutKind; 6] = [
        DutKind::Direct,
        DutKind::XdpRedirect,
        DutKind::LinuxBridge,
        DutKind::OvsAfxdp,
        DutKind::OvsSystem,
        DutKind::Xswitch,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DutKind::Direct => "direct",
            DutKind::XdpRedirect => "xdp-redirect",
            DutKind::LinuxBridge => "linux-bridge",
            DutKind::OvsAfxdp => "ovs-afxdp",
            DutKind::OvsSystem => "ovs-system",
            DutKind::Xswitch => "xswitch",
        }
    }
}

impl fmt::Display for DutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DutKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DutKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = DutKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown device under test {s:?} (one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Why a DUT could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DutError {
    /// Not installed or not built: skipped with this note.
    Unavailable(String),
    /// Should have worked and did not.
    Failed(String),
}

impl fmt::Display for DutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DutError::Unavailable(s) => write!(f, "not available: {s}"),
            DutError::Failed(s) => f.write_str(s),
        }
    }
}

impl From<crate::topo::TopoError> for DutError {
    fn from(e: crate::topo::TopoError) -> Self {
        DutError::Failed(e.to_string())
    }
}

impl From<xswitch_bpf::gen::GenError> for DutError {
    fn from(e: xswitch_bpf::gen::GenError) -> Self {
        DutError::Failed(e.to_string())
    }
}

/// A running device under test; drop tears it down.
#[derive(Debug)]
pub enum Dut {
    /// Nothing to tear down.
    Direct,
    /// The devmap programs (detached on drop).
    XdpRedirect(XdpRedirect),
    /// The bridge lives in the namespace and goes with it.
    LinuxBridge,
    /// The private OVS daemons.
    Ovs(OvsDut),
    /// The `xswitch run` process.
    Xswitch(XswitchProcess),
}

/// Where the DUT runs and what it runs.
#[derive(Debug, Clone)]
pub struct DutPlacement<'a> {
    /// CPUs for the DUT's forwarding threads.
    pub cpus: &'a [usize],
    /// The `xswitch` binary to run (normally this very program).
    pub xswitch_exe: &'a Path,
}

impl Dut {
    /// Sets `kind` up between `net.d0` and `net.d1`.
    pub fn start(kind: DutKind, net: &BenchNet, at: &DutPlacement<'_>) -> Result<Dut, DutError> {
        let Some(ns) = net.dut.as_ref() else {
            return match kind {
                DutKind::Direct => Ok(Dut::Direct),
                _ => Err(DutError::Failed(format!("{kind} needs a DUT namespace"))),
            };
        };
        match kind {
            DutKind::Direct => Err(DutError::Failed(
                "direct runs without a DUT namespace".into(),
            )),
            DutKind::XdpRedirect => {
                let _in = NetnsGuard::enter(ns.name())?;
                let fwd = XdpRedirect::attach_pair(ifindex_of(&net.d0)?, ifindex_of(&net.d1)?)?;
                Ok(Dut::XdpRedirect(fwd))
            }
            DutKind::LinuxBridge => {
                ns.ip(&[
                    "link",
                    "add",
                    "br0",
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                    "forward_delay",
                    "0",
                ])?;
                for p in [&net.d0, &net.d1] {
                    ns.ip(&["link", "set", p, "master", "br0"])?;
                }
                ns.ip(&["link", "set", "br0", "up"])?;
                Ok(Dut::LinuxBridge)
            }
            DutKind::OvsAfxdp | DutKind::OvsSystem => Ok(Dut::Ovs(OvsDut::start(
                ns,
                [&net.d0, &net.d1],
                kind == DutKind::OvsAfxdp,
                at.cpus,
            )?)),
            DutKind::Xswitch => Ok(Dut::Xswitch(XswitchProcess::start(
                ns.name(),
                [&net.d0, &net.d1],
                at,
            )?)),
        }
    }
}

impl Dut {
    /// PIDs of the processes that do the forwarding (OVS daemons, `xswitch
    /// run`); empty for the in-kernel devices, whose work is softirq time.
    pub fn process_ids(&self) -> Vec<u32> {
        match self {
            Dut::Ovs(o) => o.pids(),
            Dut::Xswitch(x) => x.child.as_ref().map(|c| vec![c.id()]).unwrap_or_default(),
            Dut::Direct | Dut::XdpRedirect(_) | Dut::LinuxBridge => Vec::new(),
        }
    }
}

/// `xswitch run` inside the DUT namespace.
#[derive(Debug)]
pub struct XswitchProcess {
    child: Option<ChildGuard>,
    /// Its stderr lines, collected by a reader thread.
    log: mpsc::Receiver<String>,
}

impl XswitchProcess {
    fn start(
        ns: &str,
        ports: [&str; 2],
        at: &DutPlacement<'_>,
    ) -> Result<XswitchProcess, DutError> {
        let cpus = at
            .cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new("taskset")
            .args(["-c", &cpus, "ip", "netns", "exec", ns])
            .arg(at.xswitch_exe)
            .args([
                "run",
                "--port",
                ports[0],
                "--port",
                ports[1],
                "--pmd-cpus",
                &cpus,
                "--socket",
            ])
            // Its own management socket, never the default path of a
            // daemon the user may be running.
            .arg(std::env::temp_dir().join(format!("{}.sock", unique_name("xsbench"))))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DutError::Failed(format!("cannot start xswitch run: {e}")))?;
        let mut guard = ChildGuard::new(child);
        let stderr = guard.child_mut().stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = XswitchProcess {
            child: Some(guard),
            log: rx,
        };
        p.wait_ready()?;
        Ok(p)
    }

    /// Waits for `xswitch: forwarding between N ports` on stderr.
    fn wait_ready(&mut self) -> Result<(), DutError> {
        let deadline = Instant::now() + XSWITCH_STARTUP;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) if line.contains("forwarding between") => return Ok(()),
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) if left > Duration::ZERO => {}
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.child_mut().try_wait().ok().flatten());
                    let what = match status {
                        Some(st) => format!("exited ({st})"),
                        None if left == Duration::ZERO => {
                            format!("did not start within {XSWITCH_STARTUP:?}")
                        }
                        None => "closed its stderr".into(),
                    };
                    return Err(DutError::Failed(format!(
                        "xswitch run {what}: {}",
                        seen.join(" | ")
                    )));
                }
            }
        }
    }
}

impl Drop for XswitchProcess {
    fn drop(&mut self) {
        // SIGTERM first, so it detaches and prints its report as a user's
        // Ctrl-C would; the guard SIGKILLs whatever is left.
        if let Some(mut guard) = self.child.take() {
            let _ = crate::topo::output(&["kill", "-TERM", &guard.id().to_string()]);
            let deadline = Instant::now() + XSWITCH_STOP;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = guard.child_mut().try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for k in DutKind::ALL {
            assert_eq!(k.name().parse::<DutKind>().unwrap(), k);
        }
        let e = "ovs".parse::<DutKind>().unwrap_err();
        assert!(e.contains("ovs-afxdp") && e.contains("xswitch"), "{e}");
    }

    #[test]
    fn json_names_are_the_cli_names() {
        for k in DutKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
        }
    }
}
