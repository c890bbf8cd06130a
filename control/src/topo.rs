//! Test and harness topologies: network namespaces, veth pairs and child
//! processes that clean up after themselves.
//!
//! # What
//! The integration tests, `xswitch demo`, `xswitch bench` and `xswitch chaos`
//! all build the same kind of world: a few network namespaces, veth pairs
//! between them, and programs (the switch, ping, iperf3, an HTTP server)
//! running inside. This module creates those with iproute2 and gives each a
//! guard that removes it on drop — also when a test panics — so no run leaves
//! a namespace, an interface or a process behind.
//!
//! # Invariants
//! * Every name is unique to this process and call (`prefix`, pid, counter),
//!   and at most 15 bytes, the kernel's interface-name limit; two test
//!   binaries running at once never collide.
//! * [`Netns`] deletes its namespace on drop; the interfaces in it go with
//!   it. [`Veth`] deletes its pair on drop (deleting either end removes
//!   both), ignoring "already gone": a test may have deleted it on purpose.
//! * [`ChildGuard`] kills (SIGKILL) and reaps the process it started, by
//!   PID, on drop. Nothing here ever kills by name.
//! * Commands that fail report the command line and its stderr; nothing
//!   panics on a failed `ip` call.

use std::fmt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A command that failed, with what it printed.
#[derive(Debug)]
pub struct TopoError {
    /// The command line.
    pub cmd: String,
    /// Why: the exit status and stderr, or the spawn error.
    pub detail: String,
}

impl fmt::Display for TopoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed: {}", self.cmd, self.detail)
    }
}

impl std::error::Error for TopoError {}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other call in any process on this machine returns while this
/// process lives: `prefix` (cut to 5 bytes), the pid in base 36 and a
/// per-process counter; at most 15 bytes.
pub fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(5)
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{}", base36(std::process::id()), base36(n));
    debug_assert!(name.len() <= 15);
    name
}

fn base36(mut v: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn render(args: &[&str]) -> String {
    args.join(" ")
}

/// Runs `args[0] args[1..]`, returning stdout; a non-zero exit is an error
/// carrying stderr.
pub fn run(args: &[&str]) -> Result<String, TopoError> {
    let out = output(args)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TopoError {
            cmd: render(args),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Runs `args` and returns its output whatever the exit status.
pub fn output(args: &[&str]) -> Result<Output, TopoError> {
    let (prog, rest) = args.split_first().ok_or_else(|| TopoError {
        cmd: String::new(),
        detail: "empty command".into(),
    })?;
    Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TopoError {
            cmd: render(args),
            detail: e.to_string(),
        })
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<String, TopoError> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    run(&v)
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `unique_name(prefix)` with its loopback up.
    pub fn create(prefix: &str) -> Result<Netns, TopoError> {
        let name = unique_name(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The argument vector that runs `args` inside this namespace.
    pub fn command_line<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["ip", "netns", "exec", self.name.as_str()];
        v.extend_from_slice(args);
        v
    }

    /// Runs `args` inside the namespace; stdout, or an error with stderr.
    pub fn run(&self, args: &[&str]) -> Result<String, TopoError> {
        run(&self.command_line(args))
    }

    /// Runs `args` inside the namespace, whatever its exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output, TopoError> {
        output(&self.command_line(args))
    }

    /// Runs `ip args...` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<String, TopoError> {
        let mut v = vec!["ip"];
        v.extend_from_slice(args);
        self.run(&v)
    }

    /// Adds a veth pair under the given names: `name` here, `peer` in
    /// `peer_ns`, `queues` rx and tx queues on each end, both down. No
    /// guard: for harnesses that delete and re-create an interface under a
    /// fixed name (the namespaces' guards remove what is left).
    pub fn add_veth(
        &self,
        name: &str,
        peer: &str,
        peer_ns: &Netns,
        queues: u32,
    ) -> Result<(), TopoError> {
        let q = queues.max(1).to_string();
        self.ip(&[
            "link",
            "add",
            name,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "netns",
            peer_ns.name(),
        ])
        .map(drop)
    }

    /// A [`Command`] that runs `args` inside the namespace (for spawning
    /// with custom stdio; wrap the child in a [`ChildGuard`]).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str()]).args(args);
        c
    }

    /// Starts `args` inside the namespace with stdout/stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard, TopoError> {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TopoError {
                cmd: render(&self.command_line(args)),
                detail: e.to_string(),
            })?;
        Ok(ChildGuard::new(child))
    }

    /// Reads a counter of `ifname` from sysfs as seen inside the namespace
    /// (`statistics/rx_packets`, `mtu`, ...).
    pub fn sysfs_u64(&self, ifname: &str, file: &str) -> Result<u64, TopoError> {
        let path = format!("/sys/class/net/{ifname}/{file}");
        let s = self.run(&["cat", &path])?;
        s.trim().parse().map_err(|_| TopoError {
            cmd: format!("cat {path}"),
            detail: format!("not a number: {s:?}"),
        })
    }

    /// Deletes the namespace now (the drop becomes a no-op). Interfaces in
    /// it are destroyed by the kernel; processes in it keep running until
    /// their guards kill them.
    pub fn delete(mut self) -> Result<(), TopoError> {
        let name = std::mem::take(&mut self.name);
        ip(&["netns", "del", &name]).map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = ip(&["netns", "del", &self.name]);
        }
    }
}

/// Where one end of a veth pair lives.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// The namespace this process runs in.
    Here,
    /// A namespace made by [`Netns::create`].
    In(&'a Netns),
}

impl Side<'_> {
    fn ns_name(&self) -> Option<&str> {
        match self {
            Side::Here => None,
            Side::In(ns) => Some(ns.name()),
        }
    }
}

/// A veth pair; deleted on drop unless already gone.
#[derive(Debug)]
pub struct Veth {
    a: String,
    a_ns: Option<String>,
    b: String,
}

/// How a veth pair is made.
#[derive(Debug, Clone, Copy)]
pub struct VethOpts {
    /// Rx and tx queues on each end (veth's `numrxqueues`/`numtxqueues`).
    pub queues: u32,
    /// MTU of both ends; `None` keeps the kernel's default (1500).
    pub mtu: Option<u32>,
}

impl Default for VethOpts {
    fn default() -> Self {
        VethOpts {
            queues: 1,
            mtu: None,
        }
    }
}

impl Veth {
    /// Creates a pair named `unique_name(prefix_a)` / `unique_name(prefix_b)`
    /// with end A in `a` and end B in `b`, both set up.
    pub fn create(
        prefix_a: &str,
        a: Side<'_>,
        prefix_b: &str,
        b: Side<'_>,
        opts: VethOpts,
    ) -> Result<Veth, TopoError> {
        let a_name = unique_name(prefix_a);
        let b_name = unique_name(prefix_b);
        let q = opts.queues.max(1).to_string();
        let mut args = vec![
            "link",
            "add",
            a_name.as_str(),
            "numrxqueues",
            q.as_str(),
            "numtxqueues",
            q.as_str(),
        ];
        if let Some(ns) = a.ns_name() {
            args.extend_from_slice(&["netns", ns]);
        }
        args.extend_from_slice(&[
            "type",
            "veth",
            "peer",
            "name",
            b_name.as_str(),
            "numrxqueues",
            q.as_str(),
            "numtxqueues",
            q.as_str(),
        ]);
        if let Some(ns) = b.ns_name() {
            args.extend_from_slice(&["netns", ns]);
        }
        ip(&args)?;
        let veth = Veth {
            a: a_name,
            a_ns: a.ns_name().map(str::to_owned),
            b: b_name,
        };
        for (name, side) in [(&veth.a, a), (&veth.b, b)] {
            let mtu = opts.mtu.map(|m| m.to_string());
            let mut set = vec!["link", "set", name.as_str()];
            if let Some(m) = mtu.as_deref() {
                set.extend_from_slice(&["mtu", m]);
            }
            set.push("up");
            match side {
                Side::Here => ip(&set)?,
                Side::In(ns) => ns.ip(&set)?,
            };
        }
        Ok(veth)
    }

    /// End A's interface name.
    pub fn a(&self) -> &str {
        &self.a
    }

    /// End B's interface name.
    pub fn b(&self) -> &str {
        &self.b
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let mut args = Vec::new();
        if let Some(ns) = &self.a_ns {
            args.extend_from_slice(&["ip", "-n", ns.as_str()]);
        } else {
            args.push("ip");
        }
        args.extend_from_slice(&["link", "del", self.a.as_str()]);
        // Fails harmlessly when the pair or its namespace is already gone.
        let _ = output(&args);
    }
}

/// A child process killed (SIGKILL, by its PID) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Takes ownership of `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    /// The child's PID.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child itself (to read its pipes or signal it).
    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("child present until drop or wait")
    }

    /// Waits up to `timeout` for the child to exit and returns its output;
    /// kills it and returns an error if it does not.
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Output, TopoError> {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("child present");
        loop {
            match child.try_wait() {
                Ok(Some(_)) => {
                    let pid = child.id();
                    return child.wait_with_output().map_err(|e| TopoError {
                        cmd: format!("pid {pid}"),
                        detail: e.to_string(),
                    });
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let out = child.wait_with_output();
                    let stderr = out
                        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                        .unwrap_or_default();
                    return Err(TopoError {
                        cmd: "child process".into(),
                        detail: format!(
                            "still running after {timeout:?}; killed. stderr: {stderr}"
                        ),
                    });
                }
                Err(e) => {
                    return Err(TopoError {
                        cmd: "child process".into(),
                        detail: e.to_string(),
                    })
                }
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// True when this process may create namespaces and attach XDP programs
/// (it runs as root). Privileged tests call this and fail with a clear
/// message rather than a confusing `ip` error.
pub fn have_privileges() -> bool {
    run(&["id", "-u"]).map(|s| s.trim() == "0").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_ifnamsiz_and_differ() {
        let a = unique_name("vethswitch");
        let b = unique_name("vethswitch");
        assert_ne!(a, b);
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert!(a.starts_with("veths"));
    }

    #[test]
    fn base36_round_trips() {
        for v in [0u32, 1, 35, 36, 1295, u32::MAX] {
            assert_eq!(u32::from_str_radix(&base36(v), 36).unwrap(), v);
        }
    }

    #[test]
    fn failed_command_reports_its_stderr() {
        let e = run(&["sh", "-c", "echo boom >&2; exit 3"]).unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        assert!(e.cmd.starts_with("sh -c"));
    }

    #[test]
    fn namespace_and_veth_are_removed_on_drop() {
        if !have_privileges() {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = Netns::create("tt").unwrap();
        let name = ns.name().to_string();
        let v = Veth::create(
            "ta",
            Side::In(&ns),
            "tb",
            Side::In(&ns),
            VethOpts::default(),
        )
        .unwrap();
        let (a, b) = (v.a().to_string(), v.b().to_string());
        assert!(ns.ip(&["link", "show", &a]).is_ok());
        assert_eq!(ns.sysfs_u64(&b, "mtu").unwrap(), 1500);
        drop(v);
        assert!(ns.ip(&["link", "show", &a]).is_err());
        drop(ns);
        let list = ip(&["netns", "list"]).unwrap();
        assert!(!list.split_whitespace().any(|w| w == name), "{list}");
    }
}
