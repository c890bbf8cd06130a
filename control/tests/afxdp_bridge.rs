//! `xswitch run` as a real bridge: AF_XDP ports on veths between network
//! namespaces, driven end to end through the binary.
//!
//! Every test builds its own world with `control::topo` — host namespaces
//! `h1`, `h2` (`h3`) and a switch namespace `sw` holding the switch-side
//! veth ends — runs `xswitch run` inside `sw` with `ip netns exec`, waits
//! for its ready line, sends real traffic (ping, iperf3), stops it by PID
//! and reads the final JSON report. Guards delete namespaces, veths and
//! processes on drop, also when an assertion fails. Every external command
//! runs under `timeout`, every wait has a deadline.
//!
//! IPv6 is disabled in every namespace before any interface exists, so the
//! only frames on the wire are the ones a test sends (no DAD or router
//! solicitations): counts like "h3 saw no unicast" and "nothing bypassed
//! the switch" are then exact.
//!
//! The tests need root (namespaces, XDP, AF_XDP); without it each prints
//! why it skipped. They run one at a time: two cores are shared with the
//! rest of the suite and the traffic checks compare counts.

use control::topo::{self, have_privileges, ChildGuard, Netns, Side, Veth, VethOpts};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const XSWITCH: &str = env!("CARGO_BIN_EXE_xswitch");
const READY: &str = "xswitch: forwarding between";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time; a failed test does not poison the rest.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn privileged(test: &str) -> bool {
    if have_privileges() {
        true
    } else {
        eprintln!("{test}: skipped: needs root (network namespaces, XDP, AF_XDP)");
        false
    }
}

/// A host namespace with one veth to the switch namespace.
struct Host {
    // Field order = drop order: the veth goes before its namespace.
    veth: Veth,
    ns: Netns,
    ip: String,
}

impl Host {
    /// The host's interface (in its namespace).
    fn ifname(&self) -> &str {
        self.veth.a()
    }

    /// The switch's port for this host (in the switch namespace).
    fn port(&self) -> &str {
        self.veth.b()
    }

    /// Packets the host's interface received (the kernel's counter).
    fn rx_packets(&self) -> u64 {
        self.ns
            .sysfs_u64(self.ifname(), "statistics/rx_packets")
            .unwrap()
    }
}

/// `n` hosts on `10.199.0.0/24` (`.1`, `.2`, ...) and the switch namespace.
struct World {
    hosts: Vec<Host>,
    sw: Netns,
}

fn no_ipv6(ns: &Netns) {
    ns.run(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ])
    .unwrap();
}

fn world(n: usize, opts: VethOpts) -> World {
    let sw = Netns::create("sw").unwrap();
    no_ipv6(&sw);
    let mut hosts = Vec::new();
    for i in 0..n {
        let ns = Netns::create(&format!("h{}", i + 1)).unwrap();
        no_ipv6(&ns);
        let veth = Veth::create("hv", Side::In(&ns), "sv", Side::In(&sw), opts).unwrap();
        let ip = format!("10.199.0.{}", i + 1);
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", veth.a()])
            .unwrap();
        // A veth hands TCP/UDP frames on with the checksum left to
        // offload (CHECKSUM_PARTIAL); AF_XDP sees the raw bytes and the
        // receiver drops the unfinished checksum. As with Open vSwitch's
        // afxdp ports, hosts compute checksums themselves.
        run_in(&ns, 10, &["ethtool", "-K", veth.a(), "tx", "off"]);
        hosts.push(Host { veth, ns, ip });
    }
    World { hosts, sw }
}

/// `xswitch run` with every host's port (ofports 1..n in host order) and
/// `extra` flags, ready.
fn bridge(w: &World, extra: &[&str]) -> Switch {
    let mut args: Vec<&str> = Vec::new();
    for h in &w.hosts {
        args.extend_from_slice(&["--port", h.port()]);
    }
    args.extend_from_slice(extra);
    Switch::start(&w.sw, &args)
}

/// A running `xswitch run` and its stderr, read line by line.
struct Switch {
    /// `None` once waited for.
    child: Option<ChildGuard>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Switch {
    /// Spawns `xswitch run --socket UNIQUE ARGS` in `sw` (its own
    /// management socket, so switches of concurrent tests never meet).
    fn spawn(sw: &Netns, args: &[&str]) -> Switch {
        let socket = std::env::temp_dir().join(format!("{}.sock", topo::unique_name("xsb")));
        let socket = socket.to_string_lossy().into_owned();
        let mut argv = vec![XSWITCH, "run", "--socket", socket.as_str()];
        argv.extend_from_slice(args);
        let mut child = sw.spawn(&argv).unwrap();
        let err = child.child_mut().stderr.take().expect("stderr piped");
        let (tx, rx) = channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Switch {
            child: Some(child),
            lines: rx,
            stderr,
            reader: Some(reader),
        }
    }

    /// Starts `xswitch run` in `sw` and waits for its ready line.
    fn start(sw: &Netns, args: &[&str]) -> Switch {
        let s = Switch::spawn(sw, args);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match s.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(READY) => return s,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no ready line after {START_TIMEOUT:?}: {}", s.stderr_text())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("xswitch run exited before ready: {}", s.stderr_text())
                }
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?}: {}", self.stderr_text()),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, ChildGuard::id)
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The ready line.
    fn ready_line(&self) -> String {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.starts_with(READY))
            .cloned()
            .unwrap_or_default()
    }

    /// Sends `signal` (by PID) and waits for the exit: status, stdout,
    /// stderr.
    fn stop(self, signal: &str) -> Finished {
        topo::run(&["kill", &format!("-{signal}"), &self.pid().to_string()]).unwrap();
        self.wait()
    }

    /// Waits for the process to exit by itself.
    fn wait(mut self) -> Finished {
        let child = self.child.take().expect("not waited for yet");
        let out = child.wait_timeout(EXIT_TIMEOUT).unwrap();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.stderr_text(),
        }
    }
}

struct Finished {
    /// Exit code; `None` if killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not the JSON report ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The report's entry for `ofport`.
fn port(report: &Value, ofport: u64) -> &Value {
    report["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ofport"] == ofport)
        .unwrap_or_else(|| panic!("no port {ofport} in {report:#}"))
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} not a number in {v:#}"))
}

fn drops_total(p: &Value) -> u64 {
    p["drops"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Every packet a port received (and every extra copy) was delivered or
/// counted under one drop reason.
fn assert_balanced(p: &Value) {
    assert_eq!(
        num(p, "rx_packets") + num(p, "rx_copies"),
        num(p, "rx_delivered") + drops_total(p),
        "accounting of {p:#}"
    );
}

/// Runs `args` in `ns` under `timeout secs`; stdout, or a panic with stderr.
fn run_in(ns: &Netns, secs: u32, args: &[&str]) -> String {
    let t = secs.to_string();
    let mut v = vec!["timeout", t.as_str()];
    v.extend_from_slice(args);
    ns.run(&v).unwrap_or_else(|e| panic!("{e}"))
}

fn ping(from: &Host, to: &Host, count: u32, interval: &str) {
    let c = count.to_string();
    run_in(
        &from.ns,
        30,
        &[
            "ping", "-n", "-q", "-c", &c, "-i", interval, "-W", "2", &to.ip,
        ],
    );
}

/// What XDP program `ifname` (in `ns`) carries: `None`, or its name.
fn attached_xdp(ns: &Netns, ifname: &str) -> Option<String> {
    let out = ns.ip(&["-j", "-d", "link", "show", "dev", ifname]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let xdp = v[0].get("xdp")?;
    Some(
        xdp["prog"]["name"]
            .as_str()
            .or_else(|| xdp["attached"][0]["prog"]["name"].as_str())
            .unwrap_or("?")
            .to_string(),
    )
}

/// Whether the AF_XDP sockets of a stopped switch are gone is checked by
/// what they would block: a queue with a bound socket refuses a second
/// bind (EBUSY), so a fresh `xswitch run` on the same ports that starts and
/// forwards proves the old sockets closed. (`ss --xdp` would list them, but
/// this kernel is built without CONFIG_XDP_SOCKETS_DIAG.)
fn ports_bind_and_forward_again(w: &World) {
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(w, &["--json-stats"]);
    ping(h1, h2, 2, "0.1");
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    assert!(num(port(&f.report(), 2), "tx_packets") >= 2);
}

/// Polls `f` until it holds or `d` passes.
fn eventually(d: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An iperf3 server in `host`'s namespace (one test, then it exits),
/// listening once this returns. The guard holds iperf3's own PID (`ip
/// netns exec` execs it), so dropping the guard kills the server itself;
/// `--idle-timeout` ends a server no client ever reached even if the test
/// process is killed before its guards run.
fn iperf3_server(host: &Host) -> ChildGuard {
    let s = host
        .ns
        .spawn(&["iperf3", "-s", "-1", "--idle-timeout", "60", "-B", &host.ip])
        .unwrap();
    let listening = eventually(Duration::from_secs(10), || {
        host.ns
            .run(&["ss", "-H", "-l", "-t", "-n", "sport", "=", ":5201"])
            .map(|o| !o.trim().is_empty())
            .unwrap_or(false)
    });
    assert!(listening, "iperf3 server did not start listening");
    s
}

/// `iperf3 -c` from `from` to `to` with `args`; its JSON output.
fn iperf3_client(from: &Host, to: &Host, args: &[&str]) -> Value {
    let mut v = vec!["iperf3", "-c", to.ip.as_str(), "-J"];
    v.extend_from_slice(args);
    let out = run_in(&from.ns, 60, &v);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {out}"))
}

/// The error line: the last line `xswitch` printed as `xswitch: ...`, or
/// clap's `error: ...` for arguments it refused.
fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| l.starts_with("xswitch: ") || l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in stderr: {s}"))
}

#[test]
fn ping_crosses_the_switch_both_ways() {
    if !privileged("ping_crosses_the_switch_both_ways") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(&w, &["--json-stats"]);
    assert_eq!(
        sw.ready_line(),
        "xswitch: forwarding between 2 ports (mode native)"
    );
    assert_eq!(
        attached_xdp(&w.sw, h1.port()).as_deref(),
        Some("xswitch_port")
    );
    ping(h1, h2, 5, "0.1");
    ping(h2, h1, 5, "0.1");
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "exit status; stderr: {}", f.stderr);
    let r = f.report();
    for ofport in [1, 2] {
        let p = port(&r, ofport);
        // 5 requests + 5 replies each way, plus ARP.
        assert!(num(p, "rx_packets") >= 10, "{p:#}");
        assert!(num(p, "tx_packets") >= 10, "{p:#}");
        assert_eq!(drops_total(p), 0, "{p:#}");
        assert_balanced(p);
        assert_eq!(p["state"]["registered"], true);
        assert_eq!(p["state"]["carrier"], true);
        assert_eq!(p["xdp"]["mode"], "native");
        // Every frame went to the socket; none slipped past to the stack.
        assert_eq!(u64s(&p["xdp"]["passed"]), vec![0], "{p:#}");
    }
    assert_eq!(port(&r, 1)["name"], h1.port());
    assert!(num(&r["pmds"][0], "rx_packets") >= 20, "{r:#}");
    assert_eq!(num(&r["watchdog"], "stalls"), 0);
}

#[test]
fn generic_mode_bridges_too() {
    if !privileged("generic_mode_bridges_too") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(
        &w,
        &[
            "--mode",
            "generic",
            "--stats-interval",
            "0.2",
            "--json-stats",
        ],
    );
    assert!(
        sw.ready_line().ends_with("(mode generic)"),
        "{}",
        sw.ready_line()
    );
    ping(h1, h2, 3, "0.1");
    std::thread::sleep(Duration::from_millis(300));
    let f = sw.stop("INT");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    // --stats-interval logged rates per port and busy % per PMD.
    let rates = format!("rates port={}", h2.port());
    assert!(f.stderr.contains(&rates), "{}", f.stderr);
    assert!(f.stderr.contains("busy_pct="), "{}", f.stderr);
    let r = f.report();
    assert_eq!(port(&r, 2)["xdp"]["mode"], "generic");
    assert!(num(port(&r, 2), "tx_packets") >= 3);
}

#[test]
fn tcp_transfer_with_iperf3() {
    if !privileged("tcp_transfer_with_iperf3") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(&w, &["--json-stats"]);
    let _server = iperf3_server(h2);
    let j = iperf3_client(h1, h2, &["-t", "2"]);
    let sent = j["end"]["sum_sent"]["bytes"].as_u64().unwrap_or(0);
    let received = j["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let bps = j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    eprintln!(
        "tcp through xswitch: {sent} bytes sent, {received} received, {:.2} Gbit/s",
        bps / 1e9
    );
    assert!(sent > 0 && received > 0, "{j:#}");
    // TCP delivers what was sent (the receiver may still be reading the
    // tail when the sender's summary is taken).
    assert!(
        received as f64 >= sent as f64 * 0.95,
        "{sent} vs {received}"
    );
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let r = f.report();
    let (p1, p2) = (port(&r, 1), port(&r, 2));
    // The payload crossed h1 → port 1 → port 2 → h2, headers on top.
    assert!(num(p1, "rx_bytes") >= received, "{p1:#}");
    assert!(num(p2, "tx_bytes") >= received, "{p2:#}");
    assert_balanced(p1);
    assert_balanced(p2);
}

#[test]
fn udp_with_iperf3_loses_little() {
    if !privileged("udp_with_iperf3_loses_little") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(&w, &["--json-stats"]);
    let _server = iperf3_server(h2);
    let j = iperf3_client(h1, h2, &["-u", "-b", "50M", "-t", "2"]);
    let sum = &j["end"]["sum"];
    let packets = sum["packets"].as_u64().unwrap_or(0);
    let lost = sum["lost_percent"].as_f64().unwrap_or(100.0);
    eprintln!("udp through xswitch: {packets} datagrams, {lost:.3}% lost");
    assert!(packets > 1000, "{j:#}");
    assert!(lost < 5.0, "lost {lost}%: {j:#}");
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let r = f.report();
    assert!(
        num(port(&r, 2), "tx_packets") >= packets * 95 / 100,
        "{r:#}"
    );
    assert_balanced(port(&r, 1));
}

#[test]
fn four_queue_veth_traffic_arrives_on_every_queue_and_is_all_forwarded() {
    if !privileged("four_queue_veth_traffic_arrives_on_every_queue_and_is_all_forwarded") {
        return;
    }
    let _g = serial();
    let w = world(
        2,
        VethOpts {
            queues: 4,
            mtu: None,
        },
    );
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    // Two PMDs: the 8 rx queues are dealt over both.
    let sw = bridge(&w, &["--pmd-cpus", "0-1", "--json-stats"]);
    let _server = iperf3_server(h2);
    // 64 UDP flows (one source port each): h1's veth hashes them over its
    // 4 tx queues, which land on the switch port's 4 rx queues. The rate
    // is low (~1300 datagrams/s in all) on purpose: this checks where
    // frames go, not capacity. At 6000/s, with the machine at load 5 (two
    // other switches spinning), a few hundred redirected frames once never
    // reached the socket (not reproduced since, also not under busy loops;
    // on a failure the report's `device` section says where they went).
    let j = iperf3_client(
        h1,
        h2,
        &["-u", "-P", "64", "-b", "64K", "-l", "400", "-t", "2"],
    );
    let sum = &j["end"]["sum"];
    let packets = sum["packets"].as_u64().unwrap_or(0);
    let lost = sum["lost_packets"].as_u64().unwrap_or(u64::MAX);
    eprintln!("4 queues: {packets} datagrams over 64 flows, {lost} lost");
    assert!(packets > 0, "{j:#}");
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let r = f.report();
    let p1 = port(&r, 1);
    let queues = u64s(&p1["queues"]);
    eprintln!("port 1 rx per queue: {queues:?}");
    assert_eq!(queues.len(), 4, "{p1:#}");
    assert!(
        queues.iter().all(|&q| q > 0),
        "a queue got nothing: {queues:?}"
    );
    assert_eq!(queues.iter().sum::<u64>(), num(p1, "rx_packets"));
    // Nothing bypassed the switch on any queue, every frame the program
    // redirected was received, and every received one was delivered.
    assert_eq!(u64s(&p1["xdp"]["passed"]), vec![0; 4], "{p1:#}");
    assert_eq!(u64s(&p1["xdp"]["redirected"]), queues, "{p1:#}");
    assert_eq!(drops_total(p1), 0, "{p1:#}");
    assert_balanced(p1);
    assert_eq!(
        num(p1, "rx_delivered"),
        num(p1, "rx_packets") + num(p1, "rx_copies")
    );
    assert_eq!(lost, 0, "iperf3 counted losses: {sum:#}");
    assert_eq!(r["pmds"].as_array().unwrap().len(), 2);
    let pmd_rx: u64 = r["pmds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| num(p, "rx_packets"))
        .sum();
    assert_eq!(
        pmd_rx,
        num(p1, "rx_packets") + num(port(&r, 2), "rx_packets")
    );
}

#[test]
fn learning_bridge_sends_known_unicast_to_one_port_only() {
    if !privileged("learning_bridge_sends_known_unicast_to_one_port_only") {
        return;
    }
    let _g = serial();
    let w = world(3, VethOpts::default());
    let (h1, h2, h3) = (&w.hosts[0], &w.hosts[1], &w.hosts[2]);
    let sw = bridge(&w, &["--json-stats"]);
    // Warm up: the ARP exchange teaches the switch where h1 and h2 are.
    ping(h1, h2, 1, "0.1");
    let h3_before = h3.rx_packets();
    let h2_before = h2.rx_packets();
    const N: u64 = 100;
    ping(h1, h2, N as u32, "0.01");
    let h3_seen = h3.rx_packets() - h3_before;
    let h2_seen = h2.rx_packets() - h2_before;
    eprintln!("after learning: h2 received {h2_seen}, h3 received {h3_seen} of {N} pings");
    assert!(h2_seen >= N, "h2 got {h2_seen}");
    // Known unicast goes to h2's port only; h3 could at most see an ARP
    // broadcast if an entry expired.
    assert!(
        h3_seen <= 2,
        "h3 received {h3_seen} frames of a flow not for it"
    );
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let r = f.report();
    let p3 = port(&r, 3);
    assert!(num(p3, "tx_packets") <= 4, "port 3 sent {p3:#}");
    // The warm-up ping and the N pings.
    assert!(num(port(&r, 2), "tx_packets") > N);
    for ofport in [1, 2, 3] {
        assert_balanced(port(&r, ofport));
    }
}

#[test]
fn mtu_too_large_is_refused_and_leaves_nothing_attached() {
    if !privileged("mtu_too_large_is_refused_and_leaves_nothing_attached") {
        return;
    }
    let _g = serial();
    let w = world(1, VethOpts::default());
    let big = Netns::create("hb").unwrap();
    let veth = Veth::create(
        "hb",
        Side::In(&big),
        "sb",
        Side::In(&w.sw),
        VethOpts {
            queues: 1,
            mtu: Some(3000),
        },
    )
    .unwrap();
    let ok_port = w.hosts[0].port();
    // The first port opens fine; the second is refused; the first must be
    // detached again.
    let f = Switch::spawn(&w.sw, &["--port", ok_port, "--port", veth.b()]).wait();
    assert_ne!(f.code, Some(0), "stderr: {}", f.stderr);
    assert!(f.code.is_some(), "exited by itself, not killed");
    let line = last_line(&f.stderr);
    eprintln!("refused: {line}");
    assert!(line.starts_with("xswitch: "), "{line}");
    assert!(line.contains(veth.b()), "names the interface: {line}");
    assert!(line.contains("3000"), "names the MTU: {line}");
    assert!(line.to_lowercase().contains("mtu"), "{line}");
    assert!(
        f.stdout.is_empty(),
        "no report on a failed start: {}",
        f.stdout
    );
    for ifname in [ok_port, veth.b()] {
        assert_eq!(attached_xdp(&w.sw, ifname), None, "{ifname} still has XDP");
    }
}

/// Builds a tiny XDP object that is not xswitch's, with the clang the
/// build already needs.
fn foreign_xdp_object(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("foreign.bpf.c");
    let obj = dir.join("foreign.bpf.o");
    std::fs::write(
        &src,
        "__attribute__((section(\"xdp\"), used)) int not_xswitch(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    topo::run(&[
        "clang",
        "-O2",
        "-g",
        "-target",
        "bpf",
        "-c",
        src.to_str().unwrap(),
        "-o",
        obj.to_str().unwrap(),
    ])
    .unwrap();
    obj
}

#[test]
fn bad_input_gets_one_line_errors_and_a_failing_exit() {
    if !privileged("bad_input_gets_one_line_errors_and_a_failing_exit") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (p1, p2) = (w.hosts[0].port(), w.hosts[1].port());
    let tmp = std::env::temp_dir().join(topo::unique_name("xswt"));
    std::fs::create_dir_all(&tmp).unwrap();
    let obj = foreign_xdp_object(&tmp);
    w.sw.ip(&[
        "link",
        "set",
        "dev",
        p2,
        "xdpdrv",
        "obj",
        obj.to_str().unwrap(),
        "sec",
        "xdp",
    ])
    .unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--port", p1, "--port", p1],
            vec![p1, "already configured"],
        ),
        (
            vec!["--port", p1, "--pmd-cpus", "3-1"],
            vec!["CPU list", "3-1"],
        ),
        (vec!["--port", p1, "--pmd-cpus", "4095"], vec!["CPU 4095"]),
        (
            vec!["--port", p1, "--helper-cpus", "4095"],
            vec!["CPU 4095", "--helper-cpus"],
        ),
        (vec!["--port", p1, "--mode", "turbo"], vec!["turbo"]),
        (
            vec!["--port", p1, "--port", p2],
            vec![p2, "not_xswitch", "detach it first"],
        ),
    ];
    for (args, needles) in cases {
        let f = Switch::spawn(&w.sw, &args).wait();
        assert!(
            matches!(f.code, Some(c) if c != 0),
            "{args:?}: exit {:?}",
            f.code
        );
        let line = last_line(&f.stderr);
        eprintln!("{args:?} -> {line}");
        for n in needles {
            assert!(line.contains(n), "{args:?}: {line:?} lacks {n:?}");
        }
        assert_eq!(attached_xdp(&w.sw, p1), None, "{args:?} left XDP on {p1}");
    }
    // The foreign program is still there, untouched.
    assert_eq!(attached_xdp(&w.sw, p2).as_deref(), Some("not_xswitch"));
    // A configured interface that does not exist (yet) is not fatal: the
    // daemon says so, naming it, and attaches it when it appears (tested
    // in link_monitor); the other ports forward meanwhile.
    let waiting = Switch::start(&w.sw, &["--port", p1, "--port", "nosuchif0"]);
    let text = waiting.stderr_text();
    let line = text
        .lines()
        .find(|l| l.contains("nosuchif0"))
        .unwrap_or_else(|| panic!("nothing names nosuchif0: {text}"));
    eprintln!("unknown interface at start -> {line}");
    assert!(line.contains("waits"), "{line}");
    assert!(waiting.ready_line().contains("between 1 ports"));
    let f = waiting.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    // Without CAP_NET_RAW (dropped from every set before exec).
    let out =
        w.sw.output(&[
            "timeout",
            "30",
            "setpriv",
            "--inh-caps=-net_raw",
            "--bounding-set=-net_raw",
            XSWITCH,
            "run",
            "--socket",
            &std::env::temp_dir()
                .join(format!("{}.sock", topo::unique_name("xsb")))
                .to_string_lossy(),
            "--port",
            p1,
        ])
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = last_line(&stderr);
    eprintln!("without CAP_NET_RAW -> {line}");
    assert!(!out.status.success());
    assert!(
        line.contains("missing") && line.contains("CAP_NET_RAW"),
        "{line}"
    );
    assert_eq!(attached_xdp(&w.sw, p1), None);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn sigterm_detaches_programs_closes_sockets_and_prints_a_table() {
    if !privileged("sigterm_detaches_programs_closes_sockets_and_prints_a_table") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(&w, &[]);
    ping(h1, h2, 2, "0.1");
    // While running: both programs attached, and the ports are taken: a
    // second switch on one of them is refused.
    for p in [h1.port(), h2.port()] {
        assert_eq!(attached_xdp(&w.sw, p).as_deref(), Some("xswitch_port"));
    }
    let second = Switch::spawn(&w.sw, &["--port", h2.port()]).wait();
    let line = last_line(&second.stderr);
    eprintln!("second switch while running -> {line}");
    assert!(matches!(second.code, Some(c) if c != 0));
    assert!(
        line.contains(h2.port()) && line.contains("in use"),
        "{line}"
    );
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    // The human-readable report.
    assert!(f.stdout.starts_with("port"), "{}", f.stdout);
    assert!(f.stdout.contains(h1.port()) && f.stdout.contains(h2.port()));
    assert!(f.stdout.contains("pmd0"), "{}", f.stdout);
    assert!(f.stdout.contains("watchdog: 0 stalls"), "{}", f.stdout);
    for p in [h1.port(), h2.port()] {
        assert_eq!(attached_xdp(&w.sw, p), None, "{p} still has XDP");
    }
    assert!(f.stderr.contains("detached"), "{}", f.stderr);
    ports_bind_and_forward_again(&w);
}

#[test]
fn sigkill_leaves_no_program_and_no_socket() {
    if !privileged("sigkill_leaves_no_program_and_no_socket") {
        return;
    }
    let _g = serial();
    let w = world(2, VethOpts::default());
    let (h1, h2) = (&w.hosts[0], &w.hosts[1]);
    let sw = bridge(&w, &[]);
    ping(h1, h2, 2, "0.1");
    let pid = sw.pid();
    let f = sw.stop("KILL");
    assert_eq!(f.code, None, "killed by the signal");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The kernel closes the BPF links (detaching the programs) and the
    // sockets with the process.
    let clean = eventually(Duration::from_secs(5), || {
        attached_xdp(&w.sw, h1.port()).is_none() && attached_xdp(&w.sw, h2.port()).is_none()
    });
    assert!(
        clean,
        "after SIGKILL: {:?} {:?}",
        attached_xdp(&w.sw, h1.port()),
        attached_xdp(&w.sw, h2.port()),
    );
    ports_bind_and_forward_again(&w);
}

#[test]
fn a_vanished_port_is_removed_and_the_others_keep_forwarding() {
    if !privileged("a_vanished_port_is_removed_and_the_others_keep_forwarding") {
        return;
    }
    let _g = serial();
    let w = world(3, VethOpts::default());
    let (h1, h2, h3) = (&w.hosts[0], &w.hosts[1], &w.hosts[2]);
    let sw = bridge(&w, &["--json-stats"]);
    ping(h1, h2, 2, "0.1");
    // h3's veth vanishes (both ends): the link monitor sees RTM_DELLINK
    // and detaches port 3 (and a frame sent to it meanwhile — the flooded
    // ARP request for h3 — finds the device gone: dropped, counted).
    h3.ns.ip(&["link", "del", h3.ifname()]).unwrap();
    let _ = h1
        .ns
        .output(&["timeout", "10", "ping", "-c", "2", "-W", "1", &h3.ip]);
    let line = sw.wait_for_line("port detached", Duration::from_secs(10));
    eprintln!("{line}");
    assert!(line.contains(h3.port()), "{line}");
    // The others carry on.
    ping(h1, h2, 5, "0.1");
    ping(h2, h1, 5, "0.1");
    let f = sw.stop("TERM");
    assert_eq!(f.code, Some(0), "stderr: {}", f.stderr);
    let r = f.report();
    let ofports: Vec<u64> = r["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| num(p, "ofport"))
        .collect();
    assert_eq!(ofports, vec![1, 2], "port 3 is gone from the report");
    assert!(num(port(&r, 2), "tx_packets") >= 12, "{r:#}");
    assert_eq!(attached_xdp(&w.sw, h1.port()), None);
}
