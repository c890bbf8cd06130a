//! The daemon against the real kernel: ports added and removed at runtime
//! while traffic flows, carrier loss, interface deletion and re-creation,
//! namespace deletion — each through the CLI or the management socket,
//! with the latencies the issue bounds measured and printed
//! (`--nocapture`). Plus the opt-in figure: `flow add` latency while 100
//! ports churn (`--ignored`). Needs root; without it each test says so
//! and passes.
//!
//! Latencies are measured from the return of the `ip` command that made
//! the change to the first management-socket answer that shows it.

mod xswitchd;

use control::mgmt::{Client, Request};
use control::topo::{self, Netns};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use xswitchd::{privileged, wait_until, Host, Switchd};

/// The bound the issue sets for carrier and deletion to show.
const FAST: Duration = Duration::from_millis(100);

fn ask(c: &mut Client, r: &Request) -> Value {
    c.request(r).unwrap().result
}

fn port(stats: &Value, ofport: u64) -> &Value {
    stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ofport"] == ofport)
        .unwrap_or_else(|| panic!("no port {ofport} in {stats:#}"))
}

fn attached(c: &mut Client, ofport: u64) -> bool {
    ask(c, &Request::PortList)
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["ofport"] == ofport && r["attached"] == true)
}

/// The kernel's linkwatch sends a carrier change at most once a second
/// after the previous one it sent (non-urgent events are batched to
/// `HZ`): wait that out so the measured latency is the switch's, not the
/// kernel's batching.
fn let_linkwatch_settle() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn ports_added_and_removed_at_runtime_while_traffic_flows() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let (h1, h2, h3) = (
        Host::create(&sw, 1),
        Host::create(&sw, 2),
        Host::create(&sw, 3),
    );
    let d = Switchd::start(&sw, &[]);
    d.ok(&["port", "add", h1.port()]);
    d.ok(&["port", "add", h2.port()]);
    assert!(h1.ping(&h2.ip, 3), "h1 → h2 after port add");
    // Steady traffic h1 → h2 while h3's port comes and goes.
    let bg = h1
        .ns
        .spawn(&[
            "timeout", "30", "ping", "-n", "-q", "-c", "200", "-i", "0.02", "-W", "1", &h2.ip,
        ])
        .unwrap();
    for _ in 0..3 {
        d.ok(&["port", "add", h3.port()]);
        assert!(h1.ping(&h3.ip, 2), "h1 → h3 while its port is in");
        d.ok(&["port", "del", h3.port()]);
        assert!(
            !h1.ping(&h3.ip, 1),
            "h1 → h3 must fail once its port is out"
        );
    }
    let out = bg.wait_timeout(Duration::from_secs(40)).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let received: u32 = text
        .split(", ")
        .find_map(|f| f.strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    println!(
        "background ping h1 → h2 during 3 add/del cycles of a third port: {received}/200 replies"
    );
    assert!(received >= 196, "traffic on other ports disturbed: {text}");
    let s = Client::connect(&d.socket)
        .unwrap()
        .request(&Request::Stats)
        .unwrap()
        .result;
    assert_eq!(s["ports"].as_array().unwrap().len(), 2);
}

#[test]
fn carrier_off_shows_in_stats_within_100ms_and_outputs_count_as_no_carrier() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let (h1, h2) = (Host::create(&sw, 1), Host::create(&sw, 2));
    let d = Switchd::start(&sw, &["--port", h1.port(), "--port", h2.port()]);
    assert!(h1.ping(&h2.ip, 3));
    let mut c = Client::connect(&d.socket).unwrap();
    let_linkwatch_settle();
    h2.ns.ip(&["link", "set", h2.veth.a(), "down"]).unwrap();
    let t0 = Instant::now();
    let took = wait_until(Duration::from_secs(3), || {
        port(&ask(&mut c, &Request::Stats), 2)["state"]["carrier"] == false
    });
    let took = took.unwrap_or_else(|| panic!("carrier still on after 3 s"));
    println!("carrier off visible in stats after {took:?}");
    assert!(took < FAST, "carrier off took {took:?}");
    assert!(t0.elapsed() >= took);
    // h1 still knows h2's MAC: its pings are unicast to port 2 and dropped
    // there for lack of carrier.
    assert!(!h1.ping(&h2.ip, 3));
    let s = ask(&mut c, &Request::Stats);
    let p2 = port(&s, 2);
    let p1 = port(&s, 1);
    println!(
        "port 2 tx_drops: {}, port 1 drops: {}",
        p2["tx_drops"], p1["drops"]
    );
    assert!(
        p2["tx_drops"]["no_carrier"].as_u64().unwrap() >= 3,
        "{p2:#}"
    );
    assert_eq!(p2["tx_drops"]["port_down"], 0, "{p2:#}");
    // Carrier back: traffic resumes.
    h2.ns.ip(&["link", "set", h2.veth.a(), "up"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || h1.ping(&h2.ip, 1)).is_some(),
        "traffic did not resume after carrier came back"
    );
}

#[test]
fn ip_link_del_removes_the_port_within_100ms_and_recreating_it_reattaches() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let (h1, h2) = (Host::create(&sw, 1), Host::create(&sw, 2));
    let d = Switchd::start(&sw, &["--port", h1.port(), "--port", h2.port()]);
    assert!(h1.ping(&h2.ip, 2));
    let mut c = Client::connect(&d.socket).unwrap();
    sw.ip(&["link", "del", h2.port()]).unwrap();
    let took = wait_until(Duration::from_secs(3), || !attached(&mut c, 2))
        .unwrap_or_else(|| panic!("port 2 still attached after 3 s"));
    println!("ip link del → port detached in port list after {took:?}");
    assert!(took < FAST, "deletion took {took:?}");
    let row = ask(&mut c, &Request::PortList);
    assert_eq!(row[1]["name"], h2.port(), "still configured: {row:#}");
    assert!(!h1.ping(&h2.ip, 1));
    // Re-create the pair under the same names.
    topo::ip(&[
        "link",
        "add",
        h2.veth.a(),
        "netns",
        h2.ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        h2.port(),
        "netns",
        sw.name(),
    ])
    .unwrap();
    h2.ns.ip(&["link", "set", h2.veth.a(), "up"]).unwrap();
    sw.ip(&["link", "set", h2.port(), "up"]).unwrap();
    Host::configure(&h2.ns, h2.veth.a(), &h2.ip);
    let took = wait_until(Duration::from_secs(5), || attached(&mut c, 2))
        .unwrap_or_else(|| panic!("port 2 not re-attached: {}", d.stderr_text()));
    println!("re-created veth re-attached after {took:?}");
    // The new host end has a new MAC: h1 must forget the old one.
    h1.ns.ip(&["neigh", "flush", "all"]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || h1.ping(&h2.ip, 1)).is_some(),
        "traffic did not resume over the re-attached port"
    );
    let s = ask(&mut c, &Request::Stats);
    assert_eq!(port(&s, 2)["name"], h2.port());
}

#[test]
fn deleting_a_hosts_namespace_removes_its_port() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let (h1, h2) = (Host::create(&sw, 1), Host::create(&sw, 2));
    let d = Switchd::start(&sw, &["--port", h1.port(), "--port", h2.port()]);
    assert!(h1.ping(&h2.ip, 2));
    let mut c = Client::connect(&d.socket).unwrap();
    let Host { veth, ns, .. } = h2;
    ns.delete().unwrap();
    let took = wait_until(Duration::from_secs(5), || !attached(&mut c, 2))
        .unwrap_or_else(|| panic!("port 2 still attached 5 s after its peer's namespace went"));
    println!("netns del of the peer → port detached after {took:?}");
    assert_eq!(
        ask(&mut c, &Request::Stats)["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    drop(veth);
    // The other port still forwards to the stack-less void without harm.
    assert!(attached(&mut c, 1));
}

/// Each thread of process `pid`: its name and the CPUs it may run on.
fn threads_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        out.push((
            comm.trim().to_owned(),
            control::run::parse_cpu_list(list.trim()).unwrap(),
        ));
    }
    out
}

/// The helper threads, those whose work is the kernel's port changes.
const HELPERS: [&str; 4] = [
    "xswitch-mgmt-po", // the port lane (names are cut at 15 bytes)
    "rcu-reclaim",
    "xswitch-houseke",
    "xswitch-links",
];

/// Asserts where `pid`'s threads may run: the helpers on `helpers`, the
/// PMD on `pmd`, the management poller anywhere in `allowed`.
fn assert_placement(pid: u32, helpers: &[usize], pmd: usize, allowed: &[usize]) {
    let threads = threads_cpus(pid);
    let find = |name: &str| {
        threads
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no thread {name} in {threads:?}"))
            .1
            .clone()
    };
    for h in HELPERS {
        assert_eq!(find(h), helpers, "{h} in {threads:?}");
    }
    assert_eq!(find("pmd0"), vec![pmd], "{threads:?}");
    assert_eq!(find("xswitch-mgmt"), allowed, "{threads:?}");
}

#[test]
fn helper_threads_keep_to_the_cpus_without_a_pmd_or_to_helper_cpus() {
    if !privileged() {
        return;
    }
    let allowed = control::run::allowed_cpus().unwrap();
    let last = *allowed.last().unwrap();
    let sw = Netns::create("sw").unwrap();
    let h1 = Host::create(&sw, 1);
    // Default: one PMD on the last CPU, the helpers on the others (on a
    // one-CPU machine, that CPU).
    let d = Switchd::start(&sw, &["--port", h1.port()]);
    let mut free: Vec<usize> = allowed.iter().copied().filter(|&c| c != last).collect();
    if free.is_empty() {
        free.push(last);
    }
    assert_placement(d.pid(), &free, last, &allowed);
    // A port deleted through the lane leaves the lane where it was.
    let mut c = Client::connect(&d.socket).unwrap();
    ask(
        &mut c,
        &Request::PortDel {
            port: h1.port().into(),
        },
    );
    assert_placement(d.pid(), &free, last, &allowed);
    assert_eq!(d.stop().0, Some(0));
    // --helper-cpus puts them on the PMD's CPU if asked to.
    let d = Switchd::start(
        &sw,
        &["--port", h1.port(), "--helper-cpus", &last.to_string()],
    );
    assert_placement(d.pid(), &[last], last, &allowed);
    let line = d
        .stderr_text()
        .lines()
        .map(strip_ansi)
        .find(|l| l.contains("helper threads"))
        .expect("the daemon logs where its helpers run");
    assert!(line.contains(&format!("cpus={last}")), "{line}");
    assert_eq!(d.stop().0, Some(0));
}

/// `s` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How a measured `flow add` reaches the daemon.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// `xswitch flow add FLOW --socket S`: the command a user runs,
    /// process start and exit included.
    Cli,
    /// A new connection per request from this process: the CLI's socket
    /// work without the process start.
    NewConnection,
    /// Every request on one connection.
    OneConnection,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Cli => "the xswitch CLI, a process each",
            Via::NewConnection => "new connection each",
            Via::OneConnection => "one connection",
        }
    }
}

/// `n` `flow add`s, one every [`PACE`] so a run spans seconds of churn,
/// each timed from the start of the request (or of the CLI process) to its
/// answer (or the process's exit).
fn flow_add_latencies(sock: &Path, base: u32, n: u32, via: Via) -> Vec<Duration> {
    let mut v = Vec::with_capacity(n as usize);
    let mut kept = Client::connect(sock).unwrap();
    for i in 0..n {
        let flow = format!(
            "priority={},tcp,tp_dst={},actions=drop",
            1 + (base + i) % 60000,
            1 + (base + i) % 65000
        );
        let t = Instant::now();
        match via {
            Via::Cli => {
                // Blocking: the CLI's own reply timeout bounds it.
                let out = std::process::Command::new(xswitchd::XSWITCH)
                    .args(["flow", "add", &flow, "--socket"])
                    .arg(sock)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("spawn xswitch");
                assert!(
                    out.status.success(),
                    "xswitch flow add {flow}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Via::NewConnection => {
                let req = Request::FlowAdd { flows: flow };
                Client::connect(sock).unwrap().request(&req).unwrap();
            }
            Via::OneConnection => {
                kept.request(&Request::FlowAdd { flows: flow }).unwrap();
            }
        }
        v.push(t.elapsed());
        std::thread::sleep(PACE);
    }
    v.sort();
    v
}

/// The gap between two measured requests.
const PACE: Duration = Duration::from_millis(4);
/// A round trip counted as slow in the figure's output.
const SLOW: Duration = Duration::from_micros(600);

/// Requests measured per mode, idle and under churn.
const N: u32 = 1000;
/// Ports in the churn loop.
const PORTS: usize = 100;

#[test]
#[ignore = "figure: cargo test --release -p xswitch --test daemon -- --ignored --nocapture"]
fn flow_add_latency_idle_vs_100_ports_churning() {
    if !privileged() {
        return;
    }
    let sw = Netns::create("sw").unwrap();
    let mut batch = String::new();
    for i in 0..PORTS {
        batch.push_str(&format!(
            "link add c{i} type veth peer name d{i}\nlink set c{i} up\nlink set d{i} up\n"
        ));
    }
    let f = std::env::temp_dir().join(format!("{}.batch", topo::unique_name("chrn")));
    std::fs::write(&f, batch).unwrap();
    sw.ip(&["-batch", f.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_file(&f);
    // The peer in the same run: the helper threads (port changes and
    // teardown) free to run on every CPU, as before they were confined.
    let all = control::run::format_cpu_list(&control::run::allowed_cpus().unwrap());
    let peer = churn_figure(&sw, &["--helper-cpus", &all], "helpers on every CPU");
    let ratios = churn_figure(&sw, &[], "default: helpers on the CPUs without a PMD");
    // The target is printed, not asserted: on a 2-core machine shared with
    // other work the ratio says as much about the neighbours as about the
    // switch.
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    for ((via, r50, r99), (_, p50, p99)) in ratios.into_iter().zip(peer) {
        println!(
            "target within 2x of idle, {}: p50 {}, p99 {} (helpers on every CPU: p50 {p50:.2}x, p99 {p99:.2}x)",
            via.label(),
            verdict(r50 <= 2.0),
            verdict(r99 <= 2.0)
        );
    }
}

/// Starts a daemon in `sw` with `args` and measures `flow add`, idle and
/// while the [`PORTS`] ports churn, in each [`Via`]; returns the p50 and
/// p99 ratios (churn / idle).
fn churn_figure(sw: &Netns, args: &[&str], label: &str) -> Vec<(Via, f64, f64)> {
    println!("== {label}");
    let d = Switchd::start(sw, args);
    let mut ratios = Vec::new();
    for (k, via) in [
        (0u32, Via::Cli),
        (1, Via::NewConnection),
        (2, Via::OneConnection),
    ] {
        let idle = flow_add_latencies(&d.socket, 4 * k * N, N, via);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop2, sock) = (stop.clone(), d.socket.clone());
        let churn = std::thread::spawn(move || {
            let mut c = Client::connect(&sock).unwrap();
            let mut ops = 0u64;
            let t = Instant::now();
            'outer: loop {
                for i in 0..PORTS {
                    if stop2.load(std::sync::atomic::Ordering::Relaxed) {
                        break 'outer;
                    }
                    let name = format!("c{i}");
                    c.request(&Request::PortAdd {
                        ifname: name.clone(),
                        mode: None,
                        ofport: None,
                    })
                    .unwrap();
                    c.request(&Request::PortDel { port: name }).unwrap();
                    ops += 2;
                }
            }
            (ops, t.elapsed())
        });
        // Let the churn get going.
        std::thread::sleep(Duration::from_millis(300));
        let busy = flow_add_latencies(&d.socket, (4 * k + 2) * N, N, via);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (ops, dur) = churn.join().unwrap();
        let (i50, i99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
        let (b50, b99) = (percentile(&busy, 0.5), percentile(&busy, 0.99));
        let r50 = b50.as_secs_f64() / i50.as_secs_f64();
        let r99 = b99.as_secs_f64() / i99.as_secs_f64();
        // p99 of 1000 is the 10th slowest: the count of slow round trips
        // is the steadier figure from run to run.
        let over = |v: &[Duration]| v.iter().filter(|d| **d > SLOW).count();
        println!(
            "flow add round trip ({}), {N} each: idle p50 {i50:?} p99 {i99:?} max {:?}; \
             100 ports churning ({:.0} port ops/s, {ops} ops): p50 {b50:?} p99 {b99:?} max {:?}; \
             ratio p50 {r50:.2}x p99 {r99:.2}x; over {SLOW:?}: idle {}, churning {}",
            via.label(),
            idle[idle.len() - 1],
            ops as f64 / dur.as_secs_f64(),
            busy[busy.len() - 1],
            over(&idle),
            over(&busy),
        );
        assert!(ops >= 20, "the churn barely ran: {ops} ops");
        ratios.push((via, r50, r99));
        // With RUST_LOG=control::daemon=debug in the environment the
        // daemon logs each request's handling time: split the round trip
        // into time in the handler and the rest (socket, threads, CPU).
        let log = d.stderr_text();
        let mut handled: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("request handled") && l.contains("flow_add"))
            .map(strip_ansi)
            .filter_map(|l| {
                let at = l.find("took_us=")?;
                let digits: String = l[at..]
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .collect();
        if handled.len() >= N as usize {
            let from = handled.len() - N as usize;
            let busy_part = &mut handled[from..];
            busy_part.sort_unstable();
            println!(
                "  of which in the daemon's handler under churn: p50 {}µs p99 {}µs max {}µs",
                busy_part[busy_part.len() / 2],
                busy_part[(busy_part.len() as f64 * 0.99) as usize],
                busy_part[busy_part.len() - 1]
            );
        }
    }
    let mut c = Client::connect(&d.socket).unwrap();
    let flows = ask(&mut c, &Request::FlowDump).as_array().unwrap().len();
    // Every request above installed a rule (priorities and ports repeat
    // only after 60,000 requests).
    assert_eq!(flows, 6 * N as usize, "flows lost");
    assert_eq!(d.stop().0, Some(0));
    ratios
}
