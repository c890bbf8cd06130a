//! Helpers shared by the dataplane's integration tests (`mod common;`):
//! privilege check, unique interface names, commands under a timeout,
//! deadline waits, a test frame and PMD thread probes. Each test binary
//! uses a subset.
#![allow(dead_code)]

use dataplane::datapath::PmdThreads;
use dataplane::flow_key::FlowKey;
use dataplane::wire::builder::build_frame;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Deadline of every wait for traffic or a state.
pub const WAIT: Duration = Duration::from_secs(10);

/// True when running as root; otherwise says why the test is skipped.
pub fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("skipped: needs root (AF_XDP, BPF, network namespaces)");
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

/// Runs a command under `timeout 20` (so it can never hang); its stdout.
pub fn run(args: &[&str]) -> Result<String, String> {
    let line = args.join(" ");
    let out = Command::new("timeout")
        .arg("20")
        .args(args)
        .output()
        .map_err(|e| format!("`{line}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Polls `cond` every millisecond for up to [`WAIT`]; its last answer.
pub fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// A 64-byte UDP frame 10.0.0.1 → 10.0.0.2:53 from source port `sport`.
pub fn udp_frame(sport: u16) -> Vec<u8> {
    let mut k = FlowKey::ZERO;
    k.set_dl_src([0x02, 0, 0, 0, 0, 0x0a]);
    k.set_dl_dst([0x02, 0, 0, 0, 0, 0x0b]);
    k.set_dl_type(0x0800);
    k.set_nw_src(Ipv4Addr::new(10, 0, 0, 1));
    k.set_nw_dst(Ipv4Addr::new(10, 0, 0, 2));
    k.set_nw_proto(17);
    k.set_nw_ttl(64);
    k.set_tp_src(sport);
    k.set_tp_dst(53);
    build_frame(&k, 22)
}

/// The CPU time thread `tid` of this process has used (`schedstat`, ns).
pub fn thread_cpu(tid: u32) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .expect("read the thread's schedstat");
    let ns: u64 = s
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("schedstat starts with nanoseconds on CPU");
    Duration::from_nanos(ns)
}

/// PMD `i`'s thread id, once it has started.
pub fn tid(t: &PmdThreads, i: usize) -> u32 {
    let mut id = None;
    assert!(
        wait_until(|| {
            id = t.thread_ids()[i];
            id.is_some()
        }),
        "PMD {i} never started"
    );
    id.unwrap()
}

/// The `p` quantile (0..=1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The silence before latency trial `i`: sleeps `gap`, then busy-waits a
/// part of a millisecond (the PMD's longest timed sleep) that differs
/// from trial to trial. The kernel may end a sleep together with the
/// PMD's own timed sleep (timer slack), so a frame sent right after it
/// would land at the same point of the PMD's sleep every time: measured,
/// just after it looked (timed p50 exactly 1.0 ms) in a release build and
/// just before it looks (p50 0.1 ms) in a debug one. The spread puts the
/// arrivals all over the PMD's sleep, as real traffic is.
pub fn quiet_for(gap: Duration, i: usize) {
    std::thread::sleep(gap);
    let spin = Duration::from_micros((i as u64 * 389) % 1000);
    let t = std::time::Instant::now();
    while t.elapsed() < spin {
        std::hint::spin_loop();
    }
}
