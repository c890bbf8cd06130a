//! Privileged tests of the port program's loader, on veths in network
//! namespaces these tests create and always delete.
//!
//! Each test builds two namespaces joined by one veth pair (`va` in A, `vb`
//! in B, unique names), works on `va` from a thread that entered A, and
//! drops the namespaces (and with them the veths and any program attached)
//! when it ends, also on panic. IPv6 is off in both so no stray neighbour
//! discovery lands on the interface behind a test's back. Every external
//! command runs under a timeout. Without root the tests skip with a message.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{attach_a, attached_a, eventually, is_root, KillOnDrop, Netns, Pair};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Xdp, XdpFlags};
use nix::sched::{setns, CloneFlags};
use xswitch_bpf::{
    ifindex_of, BpfError, PortProgram, QueueStats, XdpMode, MAX_QUEUES, PORT_PROG_NAME,
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

const CHILD_ENV: &str = "XSWITCH_BPF_TEST_CHILD";
const NOPRIV_ENV: &str = "XSWITCH_BPF_TEST_NOPRIV";

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
fn interface_deleted_under_a_live_program_then_drop_is_quiet() {
    if !is_root() {
        return;
    }
    let pair = Pair::new();
    let prog = attach_a(&pair, XdpMode::Native).expect("attach");
    pair.a
        .ip(&["link", "del", "dev", &pair.va])
        .expect("delete the interface");
    // The maps outlive the interface: counters stay readable, sockets can
    // still be unregistered during the port's teardown.
    assert_eq!(prog.queue_stats(), Ok(Vec::new()));
    assert_eq!(prog.unregister_xsk(0), Ok(()));
    pair.a.enter(move || drop(prog));
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
        assert_eq!(
            xswitch_bpf::attached_program(4242),
            Err(BpfError::NoSuchInterface {
                ifname: "ifindex 4242".to_string()
            })
        );
        assert_eq!(xswitch_bpf::attached_program(1), Ok(None), "lo has no XDP");
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

#[test]
fn attach_without_privileges_says_run_as_root() {
    if !is_root() {
        return;
    }
    // The same binary, as `nobody` with no capabilities at all. The index
    // names no interface, so nothing could be attached even if loading
    // were allowed; loading is refused first.
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("utf-8 path");
    #[rustfmt::skip]
    let out = common::run_env(
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
          "--inh-caps=-all", "--bounding-set=-all",
          exe, "--exact", "child_attaches_without_privileges", "--ignored",
          "--nocapture", "--test-threads=1"],
        &[(NOPRIV_ENV, "1")],
    )
    .expect("the unprivileged child runs");
    let line = out
        .lines()
        .find_map(|l| l.split_once("ERROR: ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("the child reported no error:\n{out}"));
    assert_eq!(
        line,
        "loading the XDP port program on xnopriv0 needs CAP_BPF and CAP_NET_ADMIN (run as root)"
    );
}

/// Run only by `attach_without_privileges_says_run_as_root`, without
/// privileges: try to attach and print the error.
#[test]
#[ignore = "helper process of attach_without_privileges_says_run_as_root"]
fn child_attaches_without_privileges() {
    assert!(
        std::env::var_os(NOPRIV_ENV).is_some(),
        "run by attach_without_privileges_says_run_as_root"
    );
    let err = PortProgram::attach(999_999, "xnopriv0", XdpMode::Auto)
        .expect_err("an unprivileged process cannot load BPF");
    println!("ERROR: {err}");
}
