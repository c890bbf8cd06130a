//! Privileged tests of the generator, sink and reference device on real
//! veths in throw-away namespaces (skipped, with a note, when not root).
//!
//! Topology: namespace G holds `g` and namespace S holds `s`, one veth
//! pair; or, for the redirect, G `g` — `d0` D `d1` — `s` S.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::netns::{ifindex_of, pin_current_thread, NetnsGuard};
use super::*;

/// Frames the kernel itself may send on a fresh interface (IPv6 router
/// solicitations, MLD reports): counts may exceed the generator's by this.
const STRAY: u64 = 16;

fn root() -> bool {
    // The real uid on the Uid: line of /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "xg{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Namespaces deleted on drop (their interfaces go with them).
struct World {
    ns: Vec<String>,
}

impl World {
    fn ns(&mut self, tag: &str) -> String {
        let n = name(tag);
        ip(&["netns", "add", &n]);
        self.ns.push(n.clone());
        n
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn veth(a: &str, a_ns: &str, b: &str, b_ns: &str) {
    ip(&[
        "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]);
    ip(&["-n", a_ns, "link", "set", a, "up"]);
    ip(&["-n", b_ns, "link", "set", b, "up"]);
}

fn mac(ns: &str, ifname: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{ifname}/address"))
        .output()
        .expect("read mac");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).expect("hex");
    }
    m
}

fn cfg(g_mac: [u8; 6], s_mac: [u8; 6], v6: bool) -> GenConfig {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1).into(),
            Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2).into(),
        )
    } else {
        (
            Ipv4Addr::new(10, 77, 0, 1).into(),
            Ipv4Addr::new(10, 77, 0, 2).into(),
        )
    };
    GenConfig::new(64, g_mac, s_mac, src, dst)
}

/// Runs the generator on a thread inside `ns`, pinned to CPU 0.
fn generate(ns: &str, ifname: &str, cfg: GenConfig, d: Duration) -> GenReport {
    let (ns, ifname) = (ns.to_string(), ifname.to_string());
    std::thread::spawn(move || {
        pin_current_thread(0).expect("pin");
        let _in = NetnsGuard::enter(&ns).expect("enter generator ns");
        let mut g = Generator::new(ifindex_of(&ifname).expect("ifindex"), cfg).expect("load");
        g.run_for(d).expect("run")
    })
    .join()
    .expect("generator thread")
}

#[test]
fn generator_frames_reach_an_xdp_sink_and_are_all_counted() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    for packet_socket in [false, true] {
        frames_reach_an_xdp_sink_and_are_all_counted(packet_socket);
    }
}

fn frames_reach_an_xdp_sink_and_are_all_counted(packet_socket: bool) {
    let mut w = World { ns: Vec::new() };
    let (g_ns, s_ns) = (w.ns("g"), w.ns("s"));
    let (g, s) = (name("a"), name("b"));
    veth(&g, &g_ns, &s, &s_ns);
    let sink = {
        let _in = NetnsGuard::enter(&s_ns).unwrap();
        XdpSink::attach(ifindex_of(&s).unwrap()).unwrap()
    };
    let mut c = cfg(mac(&g_ns, &g), mac(&s_ns, &s), false);
    c.packet_socket = packet_socket;
    let r = generate(&g_ns, &g, c, Duration::from_millis(300));
    assert!(r.sent > 0, "{r:?}");
    if packet_socket {
        assert_eq!(r.method, GenMethod::PacketSocket);
    }
    std::thread::sleep(Duration::from_millis(50));
    let got = sink.counts().unwrap();
    // Every frame sent is received (the XDP sink keeps up with one
    // generator core: its NAPI runs on the sending CPU, inside the send);
    // a stray kernel frame or two may come on top.
    assert!(got.packets >= r.sent, "{got:?} {r:?}");
    assert!(got.packets <= r.sent + STRAY, "{got:?} {r:?}");
    let stray = got.packets - r.sent;
    assert!(
        got.bytes >= r.sent * 60,
        "64-byte frames are 60-byte buffers"
    );
    assert!(got.bytes - r.sent * 60 <= stray * 1500, "{got:?}");
    eprintln!(
        "generator alone ({}): {:.2} Mpps sent, {:.2} Mpps at the XDP sink (cpu {:?})",
        r.method,
        r.pps() / 1e6,
        got.packets as f64 / r.elapsed.as_secs_f64() / 1e6,
        r.cpu
    );
}

#[test]
fn flows_vary_the_source_port_with_valid_checksums_v4_and_v6() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    for (v6, packet_socket) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut w = World { ns: Vec::new() };
        let (g_ns, s_ns) = (w.ns("g"), w.ns("s"));
        let (g, s) = (name("a"), name("b"));
        veth(&g, &g_ns, &s, &s_ns);
        let (addr, plen) = if v6 {
            ("fd00:77::2", "64")
        } else {
            ("10.77.0.2", "24")
        };
        ip(&[
            "-n",
            &s_ns,
            "addr",
            "add",
            &format!("{addr}/{plen}"),
            "dev",
            &s,
            "nodad",
        ]);
        // A veth receives redirected frames only with NAPI: GRO on.
        let out = Command::new("ip")
            .args(["netns", "exec", &s_ns, "ethtool", "-K", &s, "gro", "on"])
            .output()
            .expect("ethtool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sock = {
            let _in = NetnsGuard::enter(&s_ns).unwrap();
            let a: IpAddr = addr.parse().unwrap();
            UdpSocket::bind((a, 9)).unwrap()
        };
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut c = cfg(mac(&g_ns, &g), mac(&s_ns, &s), v6);
        c.frame_size = 128;
        c.flows = 8;
        c.rate_pps = Some(4000);
        c.packet_socket = packet_socket;
        // Read while the generator runs: a socket buffer holds only a few
        // hundred datagrams.
        let gen = {
            let (g_ns, g) = (g_ns.clone(), g.clone());
            std::thread::spawn(move || generate(&g_ns, &g, c, Duration::from_millis(250)))
        };
        let mut ports = BTreeSet::new();
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok((len, from)) = sock.recv_from(&mut buf) {
            // The kernel delivers a UDP datagram only if its checksum holds.
            assert_eq!(len, 128 - 4 - frame::udp_offset(v6) - 8);
            ports.insert(from.port());
            n += 1;
        }
        let r = gen.join().expect("generator thread");
        // ~1000 frames at 4000 pps for 0.25 s: pacing holds within 30 %.
        assert!((700..=1300).contains(&r.sent), "{r:?}");
        assert!(
            n * 10 >= r.sent * 9,
            "v6 {v6}, packet socket {packet_socket}: only {n} datagrams of {}",
            r.sent
        );
        let want: BTreeSet<u16> = (1024..1032).collect();
        assert_eq!(ports, want, "v6 {v6}, packet socket {packet_socket}");
    }
}

#[test]
fn redirect_pair_forwards_generator_traffic_to_the_sink() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut w = World { ns: Vec::new() };
    let (g_ns, d_ns, s_ns) = (w.ns("g"), w.ns("d"), w.ns("s"));
    let (g, d0, d1, s) = (name("a"), name("b"), name("c"), name("e"));
    veth(&g, &g_ns, &d0, &d_ns);
    veth(&d1, &d_ns, &s, &s_ns);
    let fwd = {
        let _in = NetnsGuard::enter(&d_ns).unwrap();
        XdpRedirect::attach_pair(ifindex_of(&d0).unwrap(), ifindex_of(&d1).unwrap()).unwrap()
    };
    let sink = {
        let _in = NetnsGuard::enter(&s_ns).unwrap();
        XdpSink::attach(ifindex_of(&s).unwrap()).unwrap()
    };
    let mut c = cfg(mac(&g_ns, &g), mac(&s_ns, &s), false);
    c.rate_pps = Some(100_000);
    let r = generate(&g_ns, &g, c, Duration::from_millis(200));
    std::thread::sleep(Duration::from_millis(50));
    let f = fwd.counts().unwrap();
    let got = sink.counts().unwrap();
    assert!(r.sent > 5_000, "{r:?}");
    // At a rate far below the limit nothing is lost on the way.
    assert!(
        (r.sent..=r.sent + STRAY).contains(&f.redirected),
        "{f:?} {r:?}"
    );
    assert_eq!(f.passed, 0);
    assert!(
        (r.sent..=r.sent + 2 * STRAY).contains(&got.packets),
        "{got:?} {r:?}"
    );
}
