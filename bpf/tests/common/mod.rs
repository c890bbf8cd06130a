//! Shared by the privileged test binaries: namespaces, a veth pair between
//! two of them, commands under a timeout. Everything created here is unique
//! to the process (pid + counter in every name) and deleted on drop, also
//! when a test panics.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use xswitch_bpf::{attached_program, ifindex_of, AttachedProgram, BpfError, PortProgram, XdpMode};

pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);
pub const ADDR_A: &str = "192.0.2.1";
pub const ADDR_B: &str = "192.0.2.2";

pub fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("skipped: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces)");
    }
    root
}

/// A name unique to this process and call, ≤ 15 bytes.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{prefix}{:x}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    assert!(name.len() <= 15, "{name} is too long for an interface name");
    name
}

/// Runs a command to completion or kills it (by its PID) after
/// `CMD_TIMEOUT`; stdout on success, a description of the failure otherwise.
pub fn run(args: &[&str]) -> Result<String, String> {
    run_env(args, &[])
}

/// [`run`] with extra environment variables.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let line = args.join(" ");
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{line}`: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`{line}` timed out after {CMD_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("`{line}`: {e}")),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(format!("`{line}` failed ({status}): {}", err.trim()))
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// A network namespace, deleted on drop (with the interfaces in it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let ns = Netns {
            name: unique("xbpf"),
        };
        run(&["ip", "netns", "add", &ns.name]).expect("create namespace");
        for knob in ["all", "default"] {
            ns.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{knob}.disable_ipv6=1"),
            ])
            .expect("disable IPv6 in the test namespace");
        }
        ns
    }

    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs `f` on a thread that entered this namespace; a panic in `f`
    /// continues in the caller.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into the test netns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Namespaces A and B joined by the veth pair `va` (in A) – `vb` (in B),
/// both down until [`Pair::up`].
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    pub va: String,
    pub vb: String,
}

impl Pair {
    pub fn new() -> Pair {
        let (a, b) = (Netns::new(), Netns::new());
        let (va, vb) = (unique("xva"), unique("xvb"));
        #[rustfmt::skip]
        run(&["ip", "link", "add", &va, "netns", &a.name, "type", "veth",
              "peer", "name", &vb, "netns", &b.name])
            .expect("create the veth pair");
        Pair { a, b, va, vb }
    }

    /// Addresses and links up on both sides.
    pub fn up(&self) {
        for (ns, dev, addr) in [(&self.a, &self.va, ADDR_A), (&self.b, &self.vb, ADDR_B)] {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev])
                .expect("address");
            ns.ip(&["link", "set", "dev", dev, "up"]).expect("link up");
        }
    }

    /// Pings A's address from B; whether all `count` replies came back.
    pub fn ping_a_from_b(&self, count: u32) -> bool {
        self.ping_a_from_b_within(count, 10)
    }

    /// Pings A's address from B, giving up after `secs`; whether all
    /// `count` replies came back.
    pub fn ping_a_from_b_within(&self, count: u32, secs: u32) -> bool {
        #[rustfmt::skip]
        let r = self.b.exec(&["ping", "-n", "-q", "-c", &count.to_string(), "-i", "0.2",
                              "-w", &secs.to_string(), ADDR_A]);
        r.is_ok()
    }

    pub fn ifindex_a(&self) -> u32 {
        self.a
            .enter(|| ifindex_of(&self.va))
            .expect("ifindex of va")
    }

    /// `ip -d link show dev va` in A.
    pub fn ip_details_a(&self) -> String {
        self.a
            .ip(&["-d", "link", "show", "dev", &self.va])
            .expect("ip link show")
    }
}

pub fn attach_a(pair: &Pair, mode: XdpMode) -> Result<PortProgram, BpfError> {
    let ifindex = pair.ifindex_a();
    pair.a
        .enter(|| PortProgram::attach(ifindex, &pair.va, mode))
}

pub fn attached_a(pair: &Pair) -> Option<AttachedProgram> {
    let ifindex = pair.ifindex_a();
    pair.a
        .enter(|| attached_program(ifindex))
        .expect("query the attached program")
}

/// Waits (bounded) until `cond` holds.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills (SIGKILL, by PID) and reaps the child on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
