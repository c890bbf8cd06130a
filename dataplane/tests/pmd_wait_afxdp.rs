//! Privileged: idle PMD threads blocked on real AF_XDP sockets
//! (`datapath/threads.rs`, "Blocking on rx").
//!
//! Each test builds its own topology: two network namespaces, each with a
//! veth pair whose `*0` end stays in the root namespace as a switch port
//! (so that `/sys/class/net`, which `LinkInfo::query` reads, shows it) and
//! whose `*1` end lives in the namespace with an address and a permanent
//! neighbour entry for the other side. The switch forwards port 1 ↔ port 2
//! by two rules. UDP datagrams go from a socket made in namespace A to one
//! made in namespace B (a socket stays in the namespace it was created in,
//! so one thread uses both). Names carry the process id and a counter; a
//! guard deletes the veths and namespaces on drop, also on panic. IPv6 is
//! off everywhere. Every wait has a deadline, every command a timeout.
//! Without root the tests print a message and pass.
//!
//! * `idle_pmd_on_af_xdp_wakes_on_one_frame_and_idles_below_five_percent_cpu`:
//!   200 single datagrams 5 ms apart through one idle PMD blocked on the
//!   two sockets, then the same with timed sleeps (`rx_wait` off) as the
//!   peer in the same run: one-way p50/p99, loss, the idle PMD's CPU share
//!   over 1 s (< 5 % asserted for the blocked mode) and its idle counters.
//! * `af_xdp_port_deleted_while_pmds_block_on_it_is_torn_down_and_reopens`:
//!   two PMDs blocked on one socket each (60 s timeout), port 1 deleted:
//!   it is torn down (program detached) without waiting for them, and the
//!   same queue binds again. Right after a socket closes the kernel may
//!   still answer EBUSY for a few ms (it releases the queue in deferred
//!   work under the RTNL lock), with or without blocked PMDs — the peer
//!   run with timed sleeps shows the same — so the reopen retries on
//!   EBUSY for up to 3 s and reports the attempts.
//!
//! `cargo test -p xswitch-dataplane --release --test pmd_wait_afxdp -- --nocapture`

mod common;

use common::{is_root, percentile, quiet_for, run, thread_cpu, tid, unique, wait_until};
use dataplane::actions::Action;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{Backoff, Datapath, IdleStats, PmdThreads, PmdThreadsConfig};
use dataplane::flow_key::{field, FlowMatch, PortNo};
use dataplane::vport::afxdp::{AfXdpConfig, AfXdpPort, LinkInfo, XskSteering};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xswitch_bpf::{attached_program, PortProgram, XdpMode};

const ADDR_A: &str = "10.203.0.1";
const ADDR_B: &str = "10.203.0.2";
const PORT_B: u16 = 47_203;

/// One side: a namespace and a veth pair, `dev` in the root namespace,
/// `peer` in the namespace with `addr`.
struct Side {
    ns: String,
    dev: String,
    peer: String,
}

impl Side {
    fn new(tag: &str, addr: &str) -> Side {
        let s = Side {
            ns: unique(&format!("h3{tag}n")),
            dev: unique(&format!("h3{tag}0")),
            peer: unique(&format!("h3{tag}1")),
        };
        run(&["ip", "netns", "add", &s.ns]).expect("create the namespace");
        #[rustfmt::skip]
        run(&["ip", "link", "add", &s.dev, "type", "veth", "peer", "name", &s.peer, "netns", &s.ns])
            .expect("create the veth pair");
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", s.dev),
        ])
        .expect("IPv6 off on the switch end");
        for knob in ["all", "default"] {
            s.ns_run(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{knob}.disable_ipv6=1"),
            ])
            .expect("IPv6 off in the namespace");
        }
        // A veth leaves the UDP checksum to "hardware" (CHECKSUM_PARTIAL);
        // through AF_XDP the frame arrives with it unfilled and the far
        // side drops it. Compute it in software.
        s.ns_run(&["ethtool", "-K", &s.peer, "tx", "off"])
            .expect("tx checksum offload off on the peer");
        s.ns_run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", &s.peer])
            .expect("address on the peer");
        run(&["ip", "link", "set", "dev", &s.dev, "up"]).expect("switch end up");
        s.ns_run(&["ip", "link", "set", "dev", &s.peer, "up"])
            .expect("peer up");
        s
    }

    fn ns_run(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn peer_mac(&self) -> String {
        self.ns_run(&["cat", &format!("/sys/class/net/{}/address", self.peer)])
            .expect("the peer's MAC")
            .trim()
            .to_string()
    }

    /// A permanent neighbour entry for `addr` at `mac` in this namespace.
    fn neighbour(&self, addr: &str, mac: &str) {
        #[rustfmt::skip]
        self.ns_run(&["ip", "neigh", "replace", addr, "lladdr", mac, "dev", &self.peer, "nud", "permanent"])
            .expect("neighbour entry");
    }

    /// A UDP socket made inside the namespace, bound to `addr:port`.
    fn socket(&self, addr: &str, port: u16) -> UdpSocket {
        let file = File::open(format!("/run/netns/{}", self.ns)).expect("open the netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into the namespace");
                UdpSocket::bind((addr, port)).expect("bind in the namespace")
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Opens the switch end as an AF_XDP port (native XDP).
    fn open_port(&self) -> Arc<AfXdpPort> {
        let link = LinkInfo::query(&self.dev).expect("link info");
        let prog =
            PortProgram::attach(link.ifindex, &self.dev, XdpMode::Native).expect("attach natively");
        let cfg = AfXdpConfig {
            ring_size: 256,
            frames_per_queue: 512,
            need_wakeup: true,
        };
        Arc::new(AfXdpPort::open(&link, &cfg, Box::new(Steering(prog))).expect("open AF_XDP"))
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", "dev", &self.dev]);
        if let Err(e) = run(&["ip", "netns", "del", &self.ns]) {
            eprintln!("cleanup: {e}");
        }
    }
}

struct Steering(PortProgram);

impl XskSteering for Steering {
    fn register(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        self.0.register_xsk(queue, xsk_fd).map_err(io::Error::other)
    }
    fn unregister(&self, queue: u32) -> io::Result<()> {
        self.0.unregister_xsk(queue).map_err(io::Error::other)
    }
}

/// Two sides, a switch forwarding 1 ↔ 2 over their `*0` ends, and the two
/// UDP sockets.
/// Fields drop in order: the switch (its ports close and detach) before
/// the veths and namespaces go.
struct Bench {
    dp: Arc<Datapath>,
    tx: UdpSocket,
    rx: UdpSocket,
    a: Side,
    /// Held for its drop (the B side's veth and namespace).
    _b: Side,
}

fn rule(from: PortNo, to: PortNo) -> RuleSpec {
    let mut m = FlowMatch::ANY;
    m.set_masked(field::IN_PORT, u64::from(from), u64::from(u32::MAX));
    let mut s = RuleSpec::new(m, vec![Action::Output(to)]);
    s.priority = 10;
    s
}

impl Bench {
    fn new() -> Bench {
        let (a, b) = (Side::new("a", ADDR_A), Side::new("b", ADDR_B));
        a.neighbour(ADDR_B, &b.peer_mac());
        b.neighbour(ADDR_A, &a.peer_mac());
        let dp = Arc::new(Datapath::new());
        dp.add_port(1, a.open_port()).unwrap();
        dp.add_port(2, b.open_port()).unwrap();
        dp.flow_table().add(rule(1, 2));
        dp.flow_table().add(rule(2, 1));
        let tx = a.socket(ADDR_A, 0);
        let rx = b.socket(ADDR_B, PORT_B);
        rx.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        Bench {
            dp,
            tx,
            rx,
            a,
            _b: b,
        }
    }

    /// Sends one datagram A → B and times it until B's socket has it;
    /// `None` if it did not arrive within a second.
    fn one(&self, seq: u32) -> Option<Duration> {
        let start = Instant::now();
        self.tx
            .send_to(&seq.to_be_bytes(), (ADDR_B, PORT_B))
            .expect("send");
        let mut buf = [0u8; 64];
        loop {
            match self.rx.recv(&mut buf) {
                Ok(4) if buf[..4] == seq.to_be_bytes() => return Some(start.elapsed()),
                Ok(_) => continue, // A late earlier datagram.
                Err(_) => return None,
            }
        }
    }
}

fn threads(dp: &Arc<Datapath>, n: usize, rx_wait: bool, max_block: Duration) -> PmdThreads {
    let cfg = PmdThreadsConfig {
        backoff: Backoff {
            rx_wait,
            max_block,
            ..Backoff::default()
        },
        ..PmdThreadsConfig::default()
    };
    PmdThreads::spawn(dp.clone(), n, None, cfg).expect("spawn PMD threads")
}

/// What one mode measured.
struct Run {
    lat: Vec<Duration>,
    lost: usize,
    cpu: f64,
    idle: IdleStats,
}

/// `trials` single datagrams `gap` apart through one PMD, then the idle
/// PMD's CPU share over one second.
fn measure(bench: &Bench, rx_wait: bool, trials: u32, gap: Duration) -> Run {
    let t = threads(&bench.dp, 1, rx_wait, Duration::from_millis(10));
    // Warm-up: the path works (caches, neighbour entries, the socket).
    assert!(
        (0..5).any(|i| bench.one(1_000_000 + i).is_some()),
        "nothing crosses the switch: port 1 {:?}, port 2 {:?}, {:?}",
        bench.dp.port_stats(1),
        bench.dp.port_stats(2),
        t.idle_stats()
    );
    let mut lat = Vec::new();
    let mut lost = 0;
    for seq in 0..trials {
        quiet_for(gap, seq as usize);
        match bench.one(seq) {
            Some(d) => lat.push(d),
            None => lost += 1,
        }
    }
    lat.sort_unstable();
    let id = tid(&t, 0);
    std::thread::sleep(Duration::from_millis(50));
    let (c0, t0) = (thread_cpu(id), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let cpu = (thread_cpu(id) - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let idle = t.idle_stats()[0];
    drop(t.stop());
    Run {
        lat,
        lost,
        cpu,
        idle,
    }
}

#[test]
fn idle_pmd_on_af_xdp_wakes_on_one_frame_and_idles_below_five_percent_cpu() {
    if !is_root() {
        return;
    }
    let bench = Bench::new();
    let trials = 200;
    let gap = Duration::from_millis(5);
    let fd = measure(&bench, true, trials, gap);
    let timed = measure(&bench, false, trials, gap);
    let p = |r: &Run, q| percentile(&r.lat, q);
    println!(
        "AF_XDP one-way latency A → switch → B, {trials} single datagrams {gap:?} apart:\n  \
         blocked on the sockets: p50 {:?} p99 {:?}, lost {}, idle PMD CPU {:.2} %, {:?}\n  \
         timed sleeps (peer):    p50 {:?} p99 {:?}, lost {}, idle PMD CPU {:.2} %, {:?}\n  \
         p50 ratio timed/blocked {:.1}x",
        p(&fd, 0.5),
        p(&fd, 0.99),
        fd.lost,
        fd.cpu * 100.0,
        fd.idle,
        p(&timed, 0.5),
        p(&timed, 0.99),
        timed.lost,
        timed.cpu * 100.0,
        timed.idle,
        p(&timed, 0.5).as_secs_f64() / p(&fd, 0.5).as_secs_f64()
    );
    // Both sockets were in the set and the PMD never fell back to a timer.
    assert_eq!(
        (fd.idle.rx_fds, fd.idle.timed_sleeps),
        (2, 0),
        "{:?}",
        fd.idle
    );
    assert!(
        fd.idle.rx_wakeups >= u64::from(trials) / 2,
        "the sockets did not wake the PMD: {:?}",
        fd.idle
    );
    assert_eq!(timed.idle.rx_waits, 0);
    assert!(
        fd.lost <= 2 && timed.lost <= 2,
        "lost {} / {}",
        fd.lost,
        timed.lost
    );
    assert!(fd.cpu < 0.05, "idle PMD used {:.2} % CPU", fd.cpu * 100.0);
    assert!(
        p(&fd, 0.5) < p(&timed, 0.5),
        "blocked p50 {:?} is not below timed p50 {:?}",
        p(&fd, 0.5),
        p(&timed, 0.5)
    );
}

/// Opens `side`'s switch end again, retrying while the kernel still has
/// the queue bound (EBUSY: it releases a closed socket's queue in deferred
/// work, under the RTNL lock); how long it took, or `None` after 3 s.
fn reopen(side: &Side) -> Option<(Arc<AfXdpPort>, Duration, u32)> {
    let link = LinkInfo::query(&side.dev).expect("link info");
    let cfg = AfXdpConfig {
        ring_size: 256,
        frames_per_queue: 512,
        need_wakeup: true,
    };
    let start = Instant::now();
    let mut tries = 0;
    while start.elapsed() < Duration::from_secs(3) {
        tries += 1;
        let prog =
            PortProgram::attach(link.ifindex, &side.dev, XdpMode::Native).expect("attach natively");
        match AfXdpPort::open(&link, &cfg, Box::new(Steering(prog))) {
            Ok(p) => return Some((Arc::new(p), start.elapsed(), tries)),
            Err(e) if e.to_string().contains("os error 16") => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
    None
}

/// Deletes port 1 while two PMDs block on their sockets (`rx_wait`) or
/// sleep on timers, waits for its teardown, reopens it on the same queue;
/// returns (torn down after, reopened after, open attempts, first datagram
/// through the reopened port).
fn delete_and_reopen(bench: &Bench, rx_wait: bool) -> (Duration, Duration, u32, Option<Duration>) {
    let t = threads(&bench.dp, 2, rx_wait, Duration::from_secs(60));
    assert!(
        (0..50).any(|i| bench.one(3_000_000 + i).is_some()),
        "nothing crosses the switch"
    );
    if rx_wait {
        assert!(
            wait_until(|| t
                .idle_stats()
                .iter()
                .all(|s| s.rx_waits > 0 && s.rx_fds == 1)),
            "PMDs did not block on their sockets: {:?}",
            t.idle_stats()
        );
    }
    std::thread::sleep(Duration::from_millis(20));
    let ifindex = LinkInfo::query(&bench.a.dev).unwrap().ifindex;
    let retired = bench.dp.retired().ports;
    let start = Instant::now();
    drop(bench.dp.del_port(1).unwrap());
    // Torn down: its destroy hook ran and its drop detached the port
    // program (the sockets close just before, in the port's field order).
    assert!(
        wait_until(|| bench.dp.retired().ports == retired + 1
            && attached_program(ifindex).is_ok_and(|p| p.is_none())),
        "the deleted port was not torn down"
    );
    let teardown = start.elapsed();
    let (port, _, tries) = reopen(&bench.a).expect("the queue was never released");
    let reopened = start.elapsed();
    bench.dp.add_port(1, port).unwrap();
    let first = (0..50).find_map(|i| bench.one(4_000_000 + i));
    t.stop();
    (teardown, reopened, tries, first)
}

#[test]
fn af_xdp_port_deleted_while_pmds_block_on_it_is_torn_down_and_reopens() {
    if !is_root() {
        return;
    }
    let bench = Bench::new();
    let blocked = delete_and_reopen(&bench, true);
    let timed = delete_and_reopen(&bench, false);
    println!(
        "AF_XDP port deleted under 2 PMDs: blocked on its sockets → torn down {:?}, reopened \
         {:?} ({} tries), first datagram {:?}; timed sleeps (peer) → torn down {:?}, reopened \
         {:?} ({} tries), first datagram {:?}",
        blocked.0, blocked.1, blocked.2, blocked.3, timed.0, timed.1, timed.2, timed.3
    );
    assert!(
        blocked.0 < Duration::from_secs(1),
        "teardown took {:?}",
        blocked.0
    );
    assert!(
        blocked.3.is_some() && timed.3.is_some(),
        "nothing crosses the re-added port"
    );
}
