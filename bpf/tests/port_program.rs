//! Privileged tests of the port program's loader, on veths in network
//! namespaces these tests create and always delete.
//!
//! Each test builds two namespaces joined by one veth pair (`va` in A, `vb`
//! in B, unique names), works on `va` from a thread that entered A, and
//! drops the namespaces (and with them the veths and any program attached)
//! when it ends, also on panic. IPv6 is off in both so no stray neighbour
//! discovery lands on the interface behind a test's back. Every external
//! command runs under a timeout. Without root the tests skip with a message.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Xdp, XdpFlags};
use nix::sched::{setns, CloneFlags};
use xswitch_bpf::{
    attached_program, ifindex_of, BpfError, PortProgram, QueueStats, XdpMode, MAX_QUEUES,
    PORT_PROG_NAME,
};

/// The port program's own skeleton, to attach it the old way (netlink, no
/// link) as a crashed earlier run would have left it.
mod port_skel {
    #![allow(
        clippy::all,
        missing_docs,
        unused,
        unsafe_code,
        clippy::undocumented_unsafe_blocks
    )]
    include!(concat!(env!("OUT_DIR"), "/xswitch_port.skel.rs"));
}

/// `xsw_foreign` (src/bpf/xswitch_test_foreign.bpf.c): somebody
/// else's program.
mod foreign_skel {
    #![allow(
        clippy::all,
        missing_docs,
        unused,
        unsafe_code,
        clippy::undocumented_unsafe_blocks
    )]
    include!(concat!(env!("OUT_DIR"), "/xswitch_test_foreign.skel.rs"));
}

const CMD_TIMEOUT: Duration = Duration::from_secs(20);
const CHILD_ENV: &str = "XSWITCH_BPF_TEST_CHILD";
const ADDR_A: &str = "192.0.2.1";
const ADDR_B: &str = "192.0.2.2";

fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("skipped: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for namespaces)");
    }
    root
}

/// A name unique to this process and call, ≤ 15 bytes.
fn unique(prefix: &str) -> String {
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
fn run(args: &[&str]) -> Result<String, String> {
    let line = args.join(" ");
    let mut child = Command::new(args[0])
        .args(&args[1..])
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
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
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

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "-n", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Runs `f` on a thread that entered this namespace; a panic in `f`
    /// continues in the caller.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
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
struct Pair {
    a: Netns,
    b: Netns,
    va: String,
    vb: String,
}

impl Pair {
    fn new() -> Pair {
        let (a, b) = (Netns::new(), Netns::new());
        let (va, vb) = (unique("xva"), unique("xvb"));
        #[rustfmt::skip]
        run(&["ip", "link", "add", &va, "netns", &a.name, "type", "veth",
              "peer", "name", &vb, "netns", &b.name])
            .expect("create the veth pair");
        Pair { a, b, va, vb }
    }

    /// Addresses and links up on both sides.
    fn up(&self) {
        for (ns, dev, addr) in [(&self.a, &self.va, ADDR_A), (&self.b, &self.vb, ADDR_B)] {
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", dev])
                .expect("address");
            ns.ip(&["link", "set", "dev", dev, "up"]).expect("link up");
        }
    }

    /// Pings A's address from B; whether all `count` replies came back.
    fn ping_a_from_b(&self, count: u32) -> bool {
        #[rustfmt::skip]
        let r = self.b.exec(&["ping", "-n", "-q", "-c", &count.to_string(), "-i", "0.2",
                              "-w", "10", ADDR_A]);
        r.is_ok()
    }

    fn ifindex_a(&self) -> u32 {
        self.a
            .enter(|| ifindex_of(&self.va))
            .expect("ifindex of va")
    }

    /// `ip -d link show dev va` in A.
    fn ip_details_a(&self) -> String {
        self.a
            .ip(&["-d", "link", "show", "dev", &self.va])
            .expect("ip link show")
    }
}

fn attach_a(pair: &Pair, mode: XdpMode) -> Result<PortProgram, BpfError> {
    let ifindex = pair.ifindex_a();
    pair.a
        .enter(|| PortProgram::attach(ifindex, &pair.va, mode))
}

fn attached_a(pair: &Pair) -> Option<xswitch_bpf::AttachedProgram> {
    let ifindex = pair.ifindex_a();
    pair.a
        .enter(|| attached_program(ifindex))
        .expect("query the attached program")
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn native_attach_shows_in_ip_link_and_attached_program() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Native).expect("native attach on a veth");
    assert_eq!(prog.mode(), XdpMode::Native);
    assert_eq!(prog.ifindex(), pair.ifindex_a());
    assert_ne!(prog.prog_id(), 0);

    let details = pair.ip_details_a();
    assert!(
        details.contains(&format!("prog/xdp id {} ", prog.prog_id())),
        "ip -d link show lacks our program id {}:\n{details}",
        prog.prog_id()
    );
    // Native attach shows as plain `xdp` on the link line, generic as
    // `xdpgeneric`.
    assert!(details.contains(" xdp "), "not in driver mode:\n{details}");
    assert_eq!(
        attached_a(&pair),
        Some(xswitch_bpf::AttachedProgram {
            id: prog.prog_id(),
            name: PORT_PROG_NAME.to_string(),
            mode: XdpMode::Native,
        })
    );
}

#[test]
fn generic_attach_runs_in_skb_mode() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Generic).expect("generic attach");
    assert_eq!(prog.mode(), XdpMode::Generic);
    let details = pair.ip_details_a();
    assert!(
        details.contains("xdpgeneric"),
        "not in SKB mode:\n{details}"
    );
    let seen = attached_a(&pair).expect("a program is attached");
    assert_eq!((seen.id, seen.mode), (prog.prog_id(), XdpMode::Generic));
}

#[test]
fn auto_mode_picks_native_on_veth() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Auto).expect("auto attach");
    assert_eq!(prog.mode(), XdpMode::Native);
    assert_eq!(attached_a(&pair).map(|p| p.mode), Some(XdpMode::Native));
}

#[test]
fn native_attach_with_mtu_too_large_says_so_and_auto_falls_back_to_generic() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    // veth checks its peer's MTU (the largest frame that can arrive), so
    // raise both ends, as a user raising a veth pair's MTU would.
    pair.a
        .ip(&["link", "set", "dev", &pair.va, "mtu", "4000"])
        .expect("set mtu");
    pair.b
        .ip(&["link", "set", "dev", &pair.vb, "mtu", "4000"])
        .expect("set peer mtu");
    let err = attach_a(&pair, XdpMode::Native).expect_err("native XDP must refuse mtu 4000");
    assert_eq!(
        err,
        BpfError::MtuTooLarge {
            ifname: pair.va.clone(),
            mtu: Some(4000),
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&pair.va) && msg.contains("mtu 4000") && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(attached_a(&pair), None, "a failed attach leaves nothing");

    let prog = attach_a(&pair, XdpMode::Auto).expect("auto falls back to generic");
    assert_eq!(prog.mode(), XdpMode::Generic);
    assert_eq!(attached_a(&pair).map(|p| p.mode), Some(XdpMode::Generic));
}

#[test]
fn drop_detaches_the_program() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    for mode in [XdpMode::Native, XdpMode::Generic] {
        let prog = attach_a(&pair, mode).expect("attach");
        assert_eq!(attached_a(&pair).map(|p| p.id), Some(prog.prog_id()));
        pair.a.enter(move || drop(prog));
        assert_eq!(attached_a(&pair), None, "{mode}: still attached after drop");
        let details = pair.ip_details_a();
        assert!(!details.contains("prog/xdp"), "{mode}:\n{details}");
    }
}

#[test]
fn second_attach_while_the_first_lives_is_in_use() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let first = attach_a(&pair, XdpMode::Native).expect("first attach");
    let err = attach_a(&pair, XdpMode::Auto).expect_err("the first holds the interface");
    assert_eq!(
        err,
        BpfError::InUse {
            ifname: pair.va.clone(),
            prog_name: PORT_PROG_NAME.to_string(),
            prog_id: first.prog_id(),
        }
    );
    assert_eq!(
        attached_a(&pair).map(|p| p.id),
        Some(first.prog_id()),
        "the live program was left alone"
    );
}

#[test]
fn foreign_program_is_never_replaced() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let ifindex = pair.ifindex_a();
    let foreign_id = pair.a.enter(|| {
        let mut storage = std::mem::MaybeUninit::uninit();
        let skel = foreign_skel::XswitchTestForeignSkelBuilder::default()
            .open(&mut storage)
            .expect("open the foreign program")
            .load()
            .expect("load the foreign program");
        let prog = skel.progs.xsw_foreign.as_fd();
        Xdp::new(prog)
            .attach(ifindex as i32, XdpFlags::DRV_MODE)
            .expect("attach the foreign program by netlink");
        libbpf_rs::Program::id_from_fd(prog).expect("foreign id")
    });

    for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Generic] {
        let err = attach_a(&pair, mode).expect_err("someone else's program is there");
        assert_eq!(
            err,
            BpfError::Busy {
                ifname: pair.va.clone(),
                prog_name: "xsw_foreign".to_string(),
                prog_id: foreign_id,
            },
            "{mode}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "interface {} already has XDP program xsw_foreign (id {foreign_id}) attached; detach it first",
                pair.va
            )
        );
    }
    let still = attached_a(&pair).expect("the foreign program is still attached");
    assert_eq!((still.id, still.name.as_str()), (foreign_id, "xsw_foreign"));
}

#[test]
fn stale_program_from_a_crashed_run_is_replaced() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let ifindex = pair.ifindex_a();
    // A crashed run of an xswitch that attached by netlink: the program
    // stays after its loader is gone.
    let stale_id = pair.a.enter(|| {
        let mut storage = std::mem::MaybeUninit::uninit();
        let skel = port_skel::XswitchPortSkelBuilder::default()
            .open(&mut storage)
            .expect("open")
            .load()
            .expect("load");
        let prog = skel.progs.xswitch_port.as_fd();
        Xdp::new(prog)
            .attach(ifindex as i32, XdpFlags::SKB_MODE)
            .expect("attach by netlink");
        libbpf_rs::Program::id_from_fd(prog).expect("stale id")
    });
    assert_eq!(attached_a(&pair).map(|p| p.id), Some(stale_id));

    let prog = attach_a(&pair, XdpMode::Native).expect("the stale program is replaced");
    assert_ne!(prog.prog_id(), stale_id);
    assert_eq!(
        attached_a(&pair),
        Some(xswitch_bpf::AttachedProgram {
            id: prog.prog_id(),
            name: PORT_PROG_NAME.to_string(),
            mode: XdpMode::Native,
        })
    );
    pair.a.enter(move || drop(prog));
    assert_eq!(attached_a(&pair), None);
}

#[test]
fn register_xsk_refuses_what_is_not_an_xsk_and_bad_queues() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Native).expect("attach");
    let udp = std::net::UdpSocket::bind(("127.0.0.1", 0)).expect("udp socket");
    let file = File::open("/proc/self/status").expect("a plain file");
    for fd in [udp.as_raw_fd(), file.as_raw_fd()] {
        let err = prog.register_xsk(0, fd).expect_err("not an AF_XDP socket");
        let msg = err.to_string();
        assert!(
            matches!(err, BpfError::Os { .. })
                && msg.contains(&pair.va)
                && msg.contains(&format!("fd {fd}"))
                && !msg.contains('\n'),
            "{msg}"
        );
    }
    assert_eq!(
        prog.register_xsk(MAX_QUEUES, udp.as_raw_fd()),
        Err(BpfError::QueueOutOfRange {
            ifname: pair.va.clone(),
            queue: MAX_QUEUES,
            max: MAX_QUEUES,
        })
    );
    assert!(matches!(prog.register_xsk(0, -1), Err(BpfError::Os { .. })));
    // Nothing registered: unregistering is a no-op, in range or at the edge.
    assert_eq!(prog.unregister_xsk(0), Ok(()));
    assert_eq!(prog.unregister_xsk(MAX_QUEUES - 1), Ok(()));
    assert!(matches!(
        prog.unregister_xsk(MAX_QUEUES),
        Err(BpfError::QueueOutOfRange { .. })
    ));
}

#[test]
fn frames_without_a_socket_pass_to_the_stack_and_are_counted() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Native).expect("attach");
    assert_eq!(
        prog.queue_stats().expect("stats"),
        Vec::<QueueStats>::new(),
        "no frame has arrived yet"
    );
    pair.up();
    assert!(pair.ping_a_from_b(5), "ping through the attached program");
    let stats = prog.queue_stats().expect("stats");
    // A single-queue veth: every frame arrives on queue 0. The 5 echo
    // requests and at least one ARP frame passed; none was redirected.
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].redirected, 0);
    assert!(stats[0].passed >= 6, "{stats:?}");
    let total: QueueStats = stats.iter().copied().sum();
    assert_eq!(total, stats[0]);
}

#[test]
fn killed_process_leaves_no_program_attached() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .args([
            "--exact",
            "child_holds_a_port_program_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}:{}", pair.a.name, pair.va))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test NAME ... " before the child's output,
            // on the same line.
            if let Some((_, id)) = line.split_once("ATTACHED ") {
                let _ = tx.send(id.trim().parse::<u32>().ok());
                break;
            }
        }
    });
    let child_id = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child reports its attach in time")
        .expect("a program id");
    assert_eq!(attached_a(&pair).map(|p| p.id), Some(child_id));

    child.0.kill().expect("SIGKILL the child by its PID");
    child.0.wait().expect("reap the child");
    // The kernel releases the link when the dead process's fds close; the
    // release may run from a workqueue, so allow it a moment.
    eventually(
        "the killed child's program to go",
        Duration::from_secs(5),
        || attached_a(&pair).is_none(),
    );
}

/// Kills (SIGKILL, by PID) and reaps the child on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run only by `killed_process_leaves_no_program_attached` (in a child
/// process it SIGKILLs): attach, report the program id, wait to be killed.
#[test]
#[ignore = "helper process of killed_process_leaves_no_program_attached"]
fn child_holds_a_port_program_until_killed() {
    let spec = std::env::var(CHILD_ENV)
        .expect("run by killed_process_leaves_no_program_attached, which sets the env");
    let (ns, ifname) = spec.split_once(':').expect("NETNS:IFNAME");
    let ns = File::open(format!("/run/netns/{ns}")).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            let ifindex = ifindex_of(ifname).expect("ifindex");
            let prog = PortProgram::attach(ifindex, ifname, XdpMode::Native).expect("attach");
            println!("ATTACHED {}", prog.prog_id());
            // The parent kills us long before this; the bound keeps an
            // orphaned child from lingering.
            std::thread::sleep(Duration::from_secs(60));
            drop(prog);
        });
    });
}

#[test]
fn unknown_interfaces_are_reported_as_such() {
    if !is_root() {
        return;
    }
    let ns = Netns::new();
    ns.enter(|| {
        let missing = "xbpfmissing0";
        assert_eq!(
            ifindex_of(missing),
            Err(BpfError::NoSuchInterface {
                ifname: missing.to_string()
            })
        );
        assert_eq!(
            ifindex_of("name-longer-than-ifnamsiz"),
            Err(BpfError::NoSuchInterface {
                ifname: "name-longer-than-ifnamsiz".to_string()
            })
        );
        assert!(matches!(
            ifindex_of("bad\0name"),
            Err(BpfError::NoSuchInterface { .. })
        ));
        // A fresh namespace has only `lo` (index 1); 4242 names nothing.
        let err = PortProgram::attach(4242, "gone0", XdpMode::Auto).expect_err("no such index");
        assert_eq!(
            err,
            BpfError::NoSuchInterface {
                ifname: "gone0".to_string()
            }
        );
        assert_eq!(
            PortProgram::attach(0, "zero", XdpMode::Native).expect_err("index 0"),
            BpfError::NoSuchInterface {
                ifname: "zero".to_string()
            }
        );
    });
}
