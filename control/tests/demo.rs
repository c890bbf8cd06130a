//! The README's main command runs these demos; they must do what they say.
//!
//! * `xswitch demo` (root): real traffic between namespaces through the
//!   switch — ping without loss, TCP bytes delivered, the statistics show
//!   forwarded packets, and nothing is left behind, also after Ctrl-C.
//! * `xswitch demo --memory`: the packet walk on in-memory ports.

use control::topo::{self, ChildGuard};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

const XSWITCH: &str = env!("CARGO_BIN_EXE_xswitch");

fn privileged(test: &str) -> bool {
    if topo::have_privileges() {
        true
    } else {
        eprintln!("{test}: skipped, needs root (network namespaces, XDP)");
        false
    }
}

/// The namespaces the demo said it made (`namespace NAME` on its lines).
fn namespaces_named(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split("namespace ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_gone(names: &[String]) {
    let list = topo::ip(&["netns", "list"]).unwrap();
    for n in names {
        assert!(
            !list.split_whitespace().any(|w| w == n),
            "namespace {n} left behind: {list}"
        );
    }
}

fn field(line: &str, after: &str) -> u64 {
    line.split(after)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no number after {after:?} in {line:?}"))
}

#[test]
fn demo_pings_without_loss_moves_tcp_bytes_and_shows_forwarded_packets() {
    if !privileged("demo_pings_without_loss_moves_tcp_bytes_and_shows_forwarded_packets") {
        return;
    }
    let child = Command::new(XSWITCH)
        .args(["demo", "--tcp-secs", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = ChildGuard::new(child)
        .wait_timeout(Duration::from_secs(120))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {err}\n{text}");

    assert!(
        text.contains("xswitch: forwarding between 3 ports"),
        "{text}"
    );
    let pings: Vec<&str> = text.lines().filter(|l| l.contains("packet loss")).collect();
    assert_eq!(pings.len(), 3, "{text}");
    for p in &pings {
        assert!(p.contains(": 0% packet loss"), "{p}");
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    assert!(summary.contains("ping loss 0%"), "{summary}");
    let tcp_bytes = field(summary, "tcp bytes ");
    let forwarded = field(summary, "forwarded ");
    assert!(tcp_bytes > 0, "{summary}");
    // At least one full-size segment per 1500 bytes went through the switch.
    assert!(forwarded >= tcp_bytes / 1500, "{summary}");

    // `xswitch stats` of the running switch: every port forwarded
    // something, nothing dropped. Port rows are `NAME OFPORT STATE...
    // RX_PKTS RX_BYTES TX_PKTS TX_BYTES DROPS`; sub-lines (rx queues, xdp)
    // are indented.
    assert!(text.contains("xswitch stats"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 8 && c[0].starts_with("sv") && c[1].parse::<u16>().is_ok())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for cols in &rows {
        let n = cols.len();
        let tx: u64 = cols[n - 3].parse().unwrap();
        assert!(tx > 0, "port forwarded nothing: {cols:?}");
        assert_eq!(cols[n - 1], "0", "drops on {cols:?}");
    }
    assert!(text.contains("watchdog: 0 stalls"), "{text}");

    assert!(text.contains("cleaned up"), "{text}");
    let names = namespaces_named(&text);
    assert_eq!(names.len(), 4, "three hosts and the switch: {names:?}");
    assert_gone(&names);
}

#[test]
fn demo_interrupted_mid_transfer_removes_everything_and_says_so() {
    if !privileged("demo_interrupted_mid_transfer_removes_everything_and_says_so") {
        return;
    }
    let child = Command::new(XSWITCH)
        .args(["demo", "--tcp-secs", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard::new(child);
    let pid = guard.id();
    let stdout = guard.child_mut().stdout.take().unwrap();
    let (tx, rx) = channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("[4/5]") {
                let _ = tx.send(());
            }
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(90))
        .expect("the demo reached the TCP step");
    // Let the transfer get going, then Ctrl-C (SIGINT to the demo only).
    std::thread::sleep(Duration::from_millis(500));
    topo::run(&["kill", "-INT", &pid.to_string()]).unwrap();
    let out = guard.wait_timeout(Duration::from_secs(20)).unwrap();
    let text = reader.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted demo fails");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!text.contains("summary:"), "{text}");
    let names = namespaces_named(&text);
    assert_eq!(names.len(), 4, "{text}");
    assert_gone(&names);
    let links = topo::ip(&["-o", "link"]).unwrap();
    let ports: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("switch port ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    assert_eq!(ports.len(), 3, "{text}");
    for p in ports {
        assert!(!links.contains(p), "veth {p} left behind");
    }
}

#[test]
fn memory_demo_shows_learning_flows_trace_and_carrier_drop() {
    let mut out = Vec::new();
    control::demo::memory::run(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
            .to_string()
    };
    assert!(line("h1 ARP who-has").ends_with("-> h2, h3"));
    assert!(line("h2 ARP reply").ends_with("-> h1"));
    assert!(line("h1 UDP to h2 (h2 learned)").ends_with("-> h2"));
    assert!(line("h1 UDP to h2 port 53").contains("dropped: action_drop x1"));
    assert!(line("h1 UDP to h3 with TTL 1").contains("dropped: ttl_expired x1"));
    assert!(line("h1 UDP to h3  ").contains("dropped: no_carrier x1"));
    assert!(line("h1 UDP to h3 (carrier back)").ends_with("-> h3"));
    assert!(line("dropped:").contains("no"));
    assert!(text.contains("dropped: no_carrier\n"));
    assert!(text
        .contains("n_packets=1, n_bytes=64, idle_age=0, priority=300,udp,tp_dst=53 actions=drop"));
    assert!(text.contains("accounting balanced: true"));
}

#[test]
fn memory_demo_runs_from_the_cli_without_privileges() {
    let child = Command::new(XSWITCH)
        .args(["demo", "--memory"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = ChildGuard::new(child)
        .wait_timeout(Duration::from_secs(60))
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("accounting balanced: true"), "{text}");
}
