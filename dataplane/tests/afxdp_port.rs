//! Privileged tests of the AF_XDP vport on real veths.
//!
//! Each test builds its own topology: a network namespace and a veth pair
//! whose `xa` end stays in the root namespace (so that `/sys/class/net`,
//! which `LinkInfo::query` reads, shows it) and whose `xb` end lives in the
//! namespace with an address and a permanent neighbour entry for a made-up
//! address behind `xa`. Names carry the process id and a counter; a guard
//! deletes the veth and the namespace on drop, also when a test panics.
//! IPv6 is off on both ends, so no stray neighbour discovery crosses the
//! link. The port program (`xswitch_bpf::PortProgram`, native mode) is
//! attached to `xa` and wrapped in a small `XskSteering` adapter that also
//! records what it was asked to do. Traffic is sent into `xa` from UDP
//! sockets on a thread that entered the namespace, and out of it by
//! `AfXdpPort::send`, counted by `xb`'s kernel counters. Every wait has a
//! deadline and every external command a timeout. Without root the tests
//! print a message and pass.

mod common;

use common::{is_root, run, unique, WAIT};
use dataplane::packet::{PacketBatch, PacketPool};
use dataplane::vport::afxdp::{
    AfXdpConfig, AfXdpError, AfXdpPort, FrameCensus, LinkInfo, XskSteering, MAX_MTU,
};
use dataplane::vport::{TxError, Vport};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xswitch_bpf::{attached_program, PortProgram, XdpMode};

/// Address of `xb`, in the namespace.
const ADDR_B: &str = "10.199.0.2";
/// The made-up address behind `xa` that the peer sends to.
const ADDR_A: &str = "10.199.0.1";
/// UDP port the test traffic goes to.
const DST_PORT: u16 = 47_001;
/// Ethertype of frames the port sends (IEEE local experimental).
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// A small UMEM so several tests can run at once.
fn small_cfg() -> AfXdpConfig {
    AfXdpConfig {
        ring_size: 256,
        frames_per_queue: 512,
        need_wakeup: true,
    }
}

/// A namespace and a veth pair (`xa` in the root namespace, `xb` in the
/// namespace), deleted on drop.
struct Topo {
    ns: String,
    xa: String,
    xb: String,
}

impl Topo {
    /// Creates the pair with `queues` rx and tx queues on each end, both up.
    fn new(queues: u32) -> Topo {
        let t = Topo {
            ns: unique("h2n"),
            xa: unique("h2a"),
            xb: unique("h2b"),
        };
        run(&["ip", "netns", "add", &t.ns]).expect("create the namespace");
        let q = queues.to_string();
        #[rustfmt::skip]
        run(&["ip", "link", "add", &t.xa, "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
              "peer", "name", &t.xb, "netns", &t.ns, "numtxqueues", &q, "numrxqueues", &q])
            .expect("create the veth pair");
        run(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", t.xa),
        ])
        .expect("IPv6 off on xa");
        for knob in ["all", "default"] {
            t.ns_exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{knob}.disable_ipv6=1"),
            ])
            .expect("IPv6 off in the namespace");
        }
        t.ns_ip(&["addr", "add", &format!("{ADDR_B}/24"), "dev", &t.xb])
            .expect("address on xb");
        let mac_a = t.mac_a();
        #[rustfmt::skip]
        t.ns_ip(&["neigh", "replace", ADDR_A, "lladdr", &mac_a, "dev", &t.xb, "nud", "permanent"])
            .expect("neighbour entry for the address behind xa");
        run(&["ip", "link", "set", "dev", &t.xa, "up"]).expect("xa up");
        t.ns_ip(&["link", "set", "dev", &t.xb, "up"])
            .expect("xb up");
        t
    }

    fn ns_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "-n", self.ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn ns_exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", self.ns.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }

    fn mac_a(&self) -> String {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", self.xa))
            .expect("xa's MAC")
            .trim()
            .to_string()
    }

    fn mac_b(&self) -> String {
        self.ns_exec(&["cat", &format!("/sys/class/net/{}/address", self.xb)])
            .expect("xb's MAC")
            .trim()
            .to_string()
    }

    /// `xb`'s kernel rx packet counter.
    fn rx_packets_b(&self) -> u64 {
        self.ns_exec(&[
            "cat",
            &format!("/sys/class/net/{}/statistics/rx_packets", self.xb),
        ])
        .expect("xb's rx_packets")
        .trim()
        .parse()
        .expect("a number")
    }

    /// Runs `f` on a thread that entered the namespace.
    fn in_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = File::open(format!("/run/netns/{}", self.ns)).expect("open the netns");
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns into the namespace");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Sends `per_flow` datagrams on each of `flows` UDP flows (distinct
    /// source ports) from `xb` to the address behind `xa`; the payload is
    /// `xsw-h2 <flow> <seq>`.
    fn send_udp_from_b(&self, flows: usize, per_flow: usize) {
        self.in_ns(|| {
            let socks: Vec<UdpSocket> = (0..flows)
                .map(|_| UdpSocket::bind((ADDR_B, 0)).expect("bind in the namespace"))
                .collect();
            for seq in 0..per_flow {
                for (f, s) in socks.iter().enumerate() {
                    s.send_to(format!("xsw-h2 {f} {seq}").as_bytes(), (ADDR_A, DST_PORT))
                        .expect("send a datagram");
                }
            }
        });
    }

    /// Attaches the port program to `xa` in native mode.
    fn attach(&self) -> PortProgram {
        let link = LinkInfo::query(&self.xa).expect("xa's link info");
        PortProgram::attach(link.ifindex, &self.xa, XdpMode::Native).expect("attach natively")
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting one end deletes both; it may be gone already.
        let _ = run(&["ip", "link", "del", "dev", &self.xa]);
        if let Err(e) = run(&["ip", "netns", "del", &self.ns]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// What the steering adapter saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Register(u32),
    Unregister(u32),
    /// The steering was dropped; `sockets_open` counts registered sockets
    /// whose fd still named the same socket inode at that moment.
    Detach {
        sockets_open: usize,
    },
}

/// `XskSteering` over the port program, recording every call.
struct Steering {
    prog: PortProgram,
    log: Arc<Mutex<Vec<Event>>>,
    /// (fd, socket inode) of each registered socket.
    sockets: Mutex<Vec<(RawFd, String)>>,
}

impl Steering {
    fn new(prog: PortProgram) -> (Box<Steering>, Arc<Mutex<Vec<Event>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let s = Steering {
            prog,
            log: Arc::clone(&log),
            sockets: Mutex::new(Vec::new()),
        };
        (Box::new(s), log)
    }
}

fn fd_target(fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.display().to_string())
}

impl XskSteering for Steering {
    fn register(&self, queue: u32, xsk_fd: RawFd) -> io::Result<()> {
        self.prog
            .register_xsk(queue, xsk_fd)
            .map_err(io::Error::other)?;
        let target = fd_target(xsk_fd).unwrap_or_default();
        self.sockets.lock().unwrap().push((xsk_fd, target));
        self.log.lock().unwrap().push(Event::Register(queue));
        Ok(())
    }

    fn unregister(&self, queue: u32) -> io::Result<()> {
        self.log.lock().unwrap().push(Event::Unregister(queue));
        self.prog.unregister_xsk(queue).map_err(io::Error::other)
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        let sockets_open = self
            .sockets
            .lock()
            .unwrap()
            .iter()
            .filter(|(fd, target)| fd_target(*fd).as_ref() == Some(target))
            .count();
        self.log
            .lock()
            .unwrap()
            .push(Event::Detach { sockets_open });
    }
}

/// Receives from every queue of `port` until `want` frames satisfy
/// `accept(frame, queue)` or [`WAIT`] passes; returns how many did. Every
/// packet goes back to `pool`.
fn recv_matching(
    port: &AfXdpPort,
    pool: &mut PacketPool,
    want: usize,
    mut accept: impl FnMut(&[u8], usize) -> bool,
) -> usize {
    let deadline = Instant::now() + WAIT;
    let mut got = 0;
    let mut batch = PacketBatch::new();
    while got < want && Instant::now() < deadline {
        let mut any = false;
        for q in 0..port.n_rxq() {
            if port.recv(q, pool, &mut batch) != 0 {
                any = true;
            }
            for p in batch.drain() {
                if accept(p.data(), q) {
                    got += 1;
                }
                pool.free(p);
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

/// Whether `frame` is one of the test's UDP datagrams to `DST_PORT`;
/// returns its payload.
fn test_udp_payload(frame: &[u8]) -> Option<&[u8]> {
    // Ethernet (14) + IPv4 without options (20) + UDP (8).
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 || frame[23] != 17 {
        return None;
    }
    let dport = u16::from_be_bytes([frame[36], frame[37]]);
    (dport == DST_PORT).then(|| &frame[42..])
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, part) in s.split(':').enumerate() {
        m[i] = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    m
}

/// An Ethernet frame of `len` bytes from `src` to `dst` carrying `seq`.
fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&TEST_ETHERTYPE);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Sends `frames` on tx queue `qid`, retrying (bounded by [`WAIT`]) while
/// the ring is full; returns what `send` reported last if it failed.
fn send_all(
    port: &AfXdpPort,
    qid: usize,
    frames: &[Vec<u8>],
    pool: &mut PacketPool,
) -> Result<usize, TxError> {
    let deadline = Instant::now() + WAIT;
    let mut batch = PacketBatch::new();
    let mut next = frames.iter();
    let mut sent = 0;
    loop {
        while !batch.is_full() {
            let Some(f) = next.next() else { break };
            let mut p = pool.alloc().expect("pool buffer");
            assert!(p.set_data(f));
            batch.push(p).unwrap();
        }
        if batch.is_empty() {
            return Ok(sent);
        }
        sent += port.send(qid, &mut batch, pool)?;
        if Instant::now() > deadline {
            panic!("send made no progress for {WAIT:?}: {sent} sent");
        }
    }
}

/// Empty sends (reap + kick) until no tx frame is in flight or [`WAIT`]
/// passes; the final census.
fn drain_tx(port: &AfXdpPort, pool: &mut PacketPool) -> FrameCensus {
    let deadline = Instant::now() + WAIT;
    let mut empty = PacketBatch::new();
    loop {
        for q in 0..port.n_sockets() {
            let _ = port.send(q, &mut empty, pool);
        }
        let c = port.frame_census();
        if c.tx_in_flight == 0 || Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn frames_sent_by_the_peer_come_out_of_recv_intact() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, _log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let cfg = small_cfg();
    let port = AfXdpPort::open(&link, &cfg, steering).expect("open the AF_XDP port");
    assert_eq!((port.n_sockets(), port.n_rxq()), (1, 1));
    assert_eq!(port.ifindex(), link.ifindex);
    assert_eq!(port.mtu(), link.mtu as usize + 18);

    const N: usize = 100;
    t.send_udp_from_b(1, N);
    let mac_a = parse_mac(&t.mac_a());
    let mut seen = [false; N];
    let mut pool = PacketPool::new(64);
    let got = recv_matching(&port, &mut pool, N, |frame, _| {
        let Some(payload) = test_udp_payload(frame) else {
            return false;
        };
        assert_eq!(frame[..6], mac_a, "addressed to xa");
        let text = std::str::from_utf8(payload).expect("ASCII payload");
        let seq: usize = text
            .strip_prefix("xsw-h2 0 ")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
        assert!(!seen[seq], "datagram {seq} received twice");
        seen[seq] = true;
        true
    });
    assert_eq!(got, N, "every datagram came out of recv");
    assert_eq!(pool.available(), pool.created(), "every buffer back");

    let c = port.counters();
    assert!(c.rx_packets >= N as u64, "{c:?}");
    assert_eq!(c.rx_per_queue, vec![c.rx_packets]);
    assert!(c.rx_bytes >= (N * 42) as u64);
    let census = port.frame_census();
    assert!(census.is_balanced(), "{census:?}");
    assert_eq!(census.total, u64::from(cfg.frames_per_queue));
    assert_eq!(
        census.rx_kernel,
        u64::from(cfg.ring_size),
        "rx frames went straight back to the fill ring"
    );
}

#[test]
fn send_reaches_the_peer_and_every_tx_frame_comes_back() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, _log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let cfg = small_cfg();
    let port = AfXdpPort::open(&link, &cfg, steering).expect("open the AF_XDP port");
    let (mac_a, mac_b) = (parse_mac(&t.mac_a()), parse_mac(&t.mac_b()));
    // More frames than the queue has tx frames, so frames must be reclaimed
    // from the completion ring and reused; sizes from minimum to the MTU.
    let n = 3 * (cfg.frames_per_queue - cfg.ring_size) as usize;
    let max_len = port.mtu();
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| test_frame(mac_b, mac_a, i as u32, 60 + (i * 37) % (max_len - 59)))
        .collect();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let before = t.rx_packets_b();
    let mut pool = PacketPool::new(64);
    assert_eq!(send_all(&port, 0, &frames, &mut pool), Ok(n));
    let census = drain_tx(&port, &mut pool);
    assert_eq!(
        census.tx_in_flight, 0,
        "every tx frame completed: {census:?}"
    );
    assert!(census.is_balanced(), "{census:?}");
    assert_eq!(
        census.tx_free,
        u64::from(cfg.frames_per_queue - cfg.ring_size)
    );
    assert_eq!(
        pool.available(),
        pool.created(),
        "accepted packets went back"
    );

    let deadline = Instant::now() + WAIT;
    while t.rx_packets_b() < before + n as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        t.rx_packets_b() - before,
        n as u64,
        "the peer counted each frame"
    );
    let c = port.counters();
    assert_eq!((c.tx_packets, c.tx_bytes), (n as u64, bytes));
    assert!(c.kicks >= 1);
    assert_eq!(c.kick_errors.gone() + c.kick_errors.other, 0, "{c:?}");
    assert_eq!(c.kernel_tx_invalid_descs, 0);
    eprintln!(
        "send: {n} frames, {} kicks, transient kick errors {:?} (last errno {})",
        c.kicks, c.kick_errors, c.last_kick_errno
    );
}

#[test]
fn mtu_3000_is_refused_with_mtu_too_large_and_the_program_detached() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    run(&["ip", "link", "set", "dev", &t.xa, "mtu", "3000"]).expect("MTU 3000");
    let link = LinkInfo::query(&t.xa).unwrap();
    assert_eq!(link.mtu, 3000);
    let (steering, log) = Steering::new(t.attach());
    let err = AfXdpPort::open(&link, &AfXdpConfig::default(), steering).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, AfXdpError::MtuTooLarge { ifname, mtu: 3000, max: MAX_MTU } if *ifname == t.xa),
        "{msg}"
    );
    assert!(msg.contains(&t.xa) && msg.contains("3000") && msg.contains(&MAX_MTU.to_string()));
    assert!(!msg.contains('\n'));
    assert_eq!(
        *log.lock().unwrap(),
        vec![Event::Detach { sockets_open: 0 }],
        "nothing registered; the steering was dropped"
    );
    assert_eq!(
        attached_program(link.ifindex).expect("query XDP"),
        None,
        "dropping the steering detached the program"
    );
}

#[test]
fn a_four_queue_veth_gets_a_socket_per_queue_and_traffic_on_every_queue() {
    if !is_root() {
        return;
    }
    let t = Topo::new(4);
    let link = LinkInfo::query(&t.xa).unwrap();
    assert_eq!((link.rx_queues, link.tx_queues), (4, 4));
    let (steering, log) = Steering::new(t.attach());
    let port = AfXdpPort::open(&link, &small_cfg(), steering).expect("open the AF_XDP port");
    assert_eq!((port.n_sockets(), port.n_rxq()), (4, 4));
    let fds = port.xsk_fds();
    for fd in &fds {
        let target = fd_target(*fd).unwrap_or_default();
        assert!(target.starts_with("socket:"), "fd {fd} is {target:?}");
    }
    assert_eq!(
        *log.lock().unwrap(),
        (0..4).map(Event::Register).collect::<Vec<_>>()
    );

    // 64 flows hash over the peer's 4 tx queues, which land on xa's rx
    // queue of the same number.
    const FLOWS: usize = 64;
    const PER_FLOW: usize = 4;
    t.send_udp_from_b(FLOWS, PER_FLOW);
    let mut per_queue = [0u64; 4];
    let mut pool = PacketPool::new(128);
    let got = recv_matching(&port, &mut pool, FLOWS * PER_FLOW, |frame, q| {
        let hit = test_udp_payload(frame).is_some();
        if hit {
            per_queue[q] += 1;
        }
        hit
    });
    assert_eq!(got, FLOWS * PER_FLOW, "per queue: {per_queue:?}");
    assert!(per_queue.iter().all(|&n| n > 0), "per queue: {per_queue:?}");
    let c = port.counters();
    assert_eq!(c.rx_per_queue.len(), 4);
    assert!(
        c.rx_per_queue.iter().zip(per_queue).all(|(&c, t)| c >= t),
        "{:?} vs {per_queue:?}",
        c.rx_per_queue
    );
    eprintln!("4 queues: test datagrams per queue {per_queue:?}");
    let census = port.frame_census();
    assert!(census.is_balanced(), "{census:?}");

    // Teardown order: every queue unregistered, then the sockets closed,
    // then the steering dropped (detach).
    drop(port);
    let mut expect: Vec<Event> = (0..4).map(Event::Register).collect();
    expect.extend((0..4).map(Event::Unregister));
    expect.push(Event::Detach { sockets_open: 0 });
    assert_eq!(*log.lock().unwrap(), expect);
    assert_eq!(attached_program(link.ifindex).expect("query XDP"), None);
}

#[test]
fn deleting_the_veth_under_an_open_port_makes_send_report_gone() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let port = AfXdpPort::open(&link, &small_cfg(), steering).expect("open the AF_XDP port");
    let (mac_a, mac_b) = (parse_mac(&t.mac_a()), parse_mac(&t.mac_b()));
    let frames: Vec<Vec<u8>> = (0..8).map(|i| test_frame(mac_b, mac_a, i, 60)).collect();
    let mut pool = PacketPool::new(64);
    assert_eq!(send_all(&port, 0, &frames, &mut pool), Ok(8));

    run(&["ip", "link", "del", "dev", &t.xa]).expect("delete the veth");
    assert!(matches!(
        LinkInfo::query(&t.xa),
        Err(AfXdpError::NoSuchInterface { .. })
    ));
    // One send is one kick: the first one after the deletion must say so.
    let started = Instant::now();
    let r = send_all(&port, 0, &frames, &mut pool);
    let c = port.counters();
    eprintln!(
        "deleted device: send -> {r:?}, last kick errno {} ({}), kick errors {:?}",
        c.last_kick_errno,
        io::Error::from_raw_os_error(c.last_kick_errno),
        c.kick_errors
    );
    assert_eq!(r, Err(TxError::Gone));
    assert_eq!(c.kick_errors.gone(), 1, "{c:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "no retry loop");
    // Rx on the dead socket: nothing, at once.
    let mut batch = PacketBatch::new();
    assert_eq!(port.recv(0, &mut pool, &mut batch), 0);
    assert!(port.frame_census().is_balanced());
    drop(port);
    let events = log.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            Event::Register(0),
            Event::Unregister(0),
            Event::Detach { sockets_open: 0 }
        ]
    );
}

#[test]
fn a_downed_interface_makes_send_report_gone_with_enetdown() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, _log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let port = AfXdpPort::open(&link, &small_cfg(), steering).expect("open the AF_XDP port");
    let (mac_a, mac_b) = (parse_mac(&t.mac_a()), parse_mac(&t.mac_b()));
    let frames: Vec<Vec<u8>> = (0..4).map(|i| test_frame(mac_b, mac_a, i, 60)).collect();
    let mut pool = PacketPool::new(64);
    run(&["ip", "link", "set", "dev", &t.xa, "down"]).expect("xa down");
    let r = send_all(&port, 0, &frames, &mut pool);
    let c = port.counters();
    eprintln!(
        "downed device: send -> {r:?}, last kick errno {} ({})",
        c.last_kick_errno,
        io::Error::from_raw_os_error(c.last_kick_errno)
    );
    assert_eq!(r, Err(TxError::Gone));
    assert_eq!(c.last_kick_errno, Errno::ENETDOWN as i32);
    assert_eq!(c.kick_errors.netdown, 1, "one kick, no retry: {c:?}");
    // The frames produced before the kick wait on the tx ring, counted.
    let census = port.frame_census();
    assert!(census.is_balanced(), "{census:?}");
    assert_eq!(census.tx_in_flight, frames.len() as u64);
    // The socket stays bound across down/up (only unregistering unbinds
    // it): once the link is up again the next kick sends them. The
    // datapath deletes the port on ENETDOWN anyway; this shows the ring
    // state it leaves is sound.
    run(&["ip", "link", "set", "dev", &t.xa, "up"]).expect("xa up");
    let census = drain_tx(&port, &mut pool);
    eprintln!(
        "after up again: {census:?}, {:?}",
        port.counters().kick_errors
    );
    assert_eq!(census.tx_in_flight, 0, "{census:?}");
    assert!(census.is_balanced());
}

#[test]
fn a_peer_that_is_down_drops_frames_with_transient_ebusy_and_nothing_leaks() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, _log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let port = AfXdpPort::open(&link, &small_cfg(), steering).expect("open the AF_XDP port");
    let (mac_a, mac_b) = (parse_mac(&t.mac_a()), parse_mac(&t.mac_b()));
    let frames: Vec<Vec<u8>> = (0..100).map(|i| test_frame(mac_b, mac_a, i, 60)).collect();
    let mut pool = PacketPool::new(64);
    t.ns_ip(&["link", "set", "dev", &t.xb, "down"])
        .expect("xb down");
    // Carrier drops at once; the operational state (hence `running`)
    // follows from the kernel's linkwatch work, up to a second later.
    let deadline = Instant::now() + WAIT;
    let now = loop {
        let now = LinkInfo::query(&t.xa).unwrap();
        if !now.running || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(now.admin_up && !now.running && !now.carrier, "{now:?}");
    let before = t.rx_packets_b();

    // The datapath's output check keeps packets away from a port without
    // carrier; if some reach the ring anyway the kernel completes them
    // unsent, one per kick, with EBUSY: transient, the port stays usable.
    let r = send_all(&port, 0, &frames, &mut pool);
    let census = drain_tx(&port, &mut pool);
    let c = port.counters();
    eprintln!(
        "peer down: send -> {r:?}, {} kicks, kick errors {:?} (last errno {})",
        c.kicks, c.kick_errors, c.last_kick_errno
    );
    assert_eq!(r, Ok(frames.len()));
    assert!(c.kick_errors.busy >= 1, "{c:?}");
    assert_eq!(c.kick_errors.gone() + c.kick_errors.other, 0, "{c:?}");
    assert_eq!(c.last_kick_errno, Errno::EBUSY as i32);
    assert_eq!(census.tx_in_flight, 0, "completed unsent: {census:?}");
    assert!(census.is_balanced(), "{census:?}");
    assert_eq!(t.rx_packets_b(), before, "nothing reached the downed peer");
}

#[test]
fn two_threads_on_one_queue_never_block_and_lose_nothing() {
    if !is_root() {
        return;
    }
    let t = Topo::new(1);
    let (steering, _log) = Steering::new(t.attach());
    let link = LinkInfo::query(&t.xa).unwrap();
    let port = AfXdpPort::open(&link, &small_cfg(), steering).expect("open the AF_XDP port");
    let (mac_a, mac_b) = (parse_mac(&t.mac_a()), parse_mac(&t.mac_b()));
    const PER_THREAD: u32 = 2000;
    let before = t.rx_packets_b();
    // Two senders (and two pollers) share queue 0: each half is taken with
    // try_lock, so a loser sees "ring full"/"nothing" and retries.
    std::thread::scope(|s| {
        for id in 0..2u32 {
            let port = &port;
            s.spawn(move || {
                let frames: Vec<Vec<u8>> = (0..PER_THREAD)
                    .map(|i| test_frame(mac_b, mac_a, id << 16 | i, 60))
                    .collect();
                let mut pool = PacketPool::new(64);
                assert_eq!(
                    send_all(port, 0, &frames, &mut pool),
                    Ok(PER_THREAD as usize)
                );
                let census = drain_tx(port, &mut pool);
                assert!(census.is_balanced(), "{census:?}");
                assert_eq!(pool.available(), pool.created());
            });
            s.spawn(move || {
                let mut pool = PacketPool::new(64);
                let mut batch = PacketBatch::new();
                let deadline = Instant::now() + Duration::from_millis(200);
                while Instant::now() < deadline {
                    port.recv(0, &mut pool, &mut batch);
                    for p in batch.drain() {
                        pool.free(p);
                    }
                }
                assert_eq!(pool.available(), pool.created());
            });
        }
    });
    let mut pool = PacketPool::new(8);
    let census = drain_tx(&port, &mut pool);
    assert_eq!(census.tx_in_flight, 0, "{census:?}");
    assert!(census.is_balanced(), "{census:?}");
    let total = 2 * u64::from(PER_THREAD);
    let deadline = Instant::now() + WAIT;
    while t.rx_packets_b() < before + total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(t.rx_packets_b() - before, total);
    let c = port.counters();
    assert_eq!(c.tx_packets, total);
    eprintln!(
        "two threads on one queue: tx contended {} times, rx contended {} times, ring full {}",
        c.tx_contended, c.rx_contended, c.tx_ring_full
    );
}
