//! `xswitch bench --quick --json` end to end: every device under test that
//! is available on this machine yields sane, non-zero figures; devices that
//! are not are skipped with a reason, never with a failure; nothing is left
//! behind. No speed thresholds: this machine's speed is not the test's
//! business, the harness's honesty is.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `--quick` promises under two minutes; the test allows some slack for a
/// loaded CI machine, then kills it.
const TIMEOUT: Duration = Duration::from_secs(180);

fn is_root() -> bool {
    control::topo::have_privileges()
}

/// Namespaces that process `pid` made through control::topo::unique_name
/// for the harness (`bgen`, `bdut`, `bsnk` + its pid in base 36 + `x`).
fn bench_namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let tags: Vec<String> = ["bgen", "bdut", "bsnk"]
        .iter()
        .map(|p| format!("{p}{}x", to_base36(pid)))
        .collect();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| tags.iter().any(|t| n.starts_with(t.as_str())))
        .map(str::to_string)
        .collect()
}

fn to_base36(mut v: u32) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(D[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

#[test]
fn quick_bench_reports_sane_figures_for_every_available_dut() {
    if !is_root() {
        eprintln!("skipped: xswitch bench needs root");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_xswitch"))
        .args(["bench", "--quick", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xswitch bench");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > TIMEOUT {
            // SIGINT first: the harness tears down on it.
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "xswitch bench --quick did not finish within {TIMEOUT:?}; stderr:\n{}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = t0.elapsed();
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    eprintln!("xswitch bench --quick took {took:?}\n{stderr}");

    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    let runs = report["runs"].as_array().expect("runs[]");
    let skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .expect("skipped[]")
        .iter()
        .map(|s| {
            (
                s["dut"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // A device is either measured or skipped as unavailable; one that was
    // set up and then did not work is a failure of the harness or of it.
    for (dut, reason) in &skipped {
        assert!(
            !reason.starts_with("failed"),
            "{dut} failed: {reason}\nstderr:\n{stderr}"
        );
    }
    let all = [
        "direct",
        "xdp-redirect",
        "linux-bridge",
        "ovs-afxdp",
        "ovs-system",
        "xswitch",
    ];
    // These need nothing but the kernel: always available.
    for must in ["direct", "xdp-redirect", "linux-bridge"] {
        assert!(
            runs.iter().any(|r| r["dut"] == must),
            "{must} not measured; skipped: {skipped:?}"
        );
    }
    let cpus = std::thread::available_parallelism().unwrap().get();
    for dut in all {
        let mine: Vec<&Value> = runs.iter().filter(|r| r["dut"] == dut).collect();
        if mine.is_empty() {
            assert!(
                skipped.iter().any(|(d, _)| d == dut),
                "{dut}: neither measured nor skipped"
            );
            continue;
        }
        // --quick: one repetition of 64-byte frames, one flow.
        assert_eq!(mine.len(), 1, "{dut}: {mine:?}");
        let r = mine[0];
        assert_eq!(r["frame_size"], 64);
        assert_eq!(r["flows"], 1);
        let mpps = r["mpps"].as_f64().unwrap();
        let gbps = r["gbps"].as_f64().unwrap();
        let offered = r["offered_mpps"].as_f64().unwrap();
        assert!(mpps > 0.0, "{dut}: {r}");
        // No device delivers more than was offered (allowing a little for
        // window alignment), and Gbps follows from Mpps and the size.
        assert!(mpps <= offered * 1.10 + 0.01, "{dut}: {r}");
        assert!(
            (gbps - mpps * 64.0 * 8.0 / 1000.0).abs() < 1e-9,
            "{dut}: {r}"
        );
        let busy = r["cpu_busy_pct"].as_array().unwrap();
        assert_eq!(busy.len(), cpus, "{dut}: one figure per CPU: {r}");
        for b in busy {
            let b = b.as_f64().unwrap();
            assert!((0.0..=100.0).contains(&b), "{dut}: {r}");
        }
        // The generator's CPU ran flat out.
        let gen_cpu = r["gen_cpu"].as_u64().unwrap() as usize;
        assert!(busy[gen_cpu].as_f64().unwrap() > 50.0, "{dut}: {r}");
    }
    // Latency through every measured device, probes answered.
    let latency = report["latency"].as_array().expect("latency[]");
    for dut in all {
        if !runs.iter().any(|r| r["dut"] == dut) {
            continue;
        }
        let l = latency
            .iter()
            .find(|l| l["dut"] == dut)
            .unwrap_or_else(|| panic!("no latency for {dut}"));
        let p50 = l["p50_us"].as_f64().unwrap();
        let p99 = l["p99_us"].as_f64().unwrap();
        assert!(l["samples"].as_u64().unwrap() > 0, "{l}");
        assert!(p50 > 0.0 && p99 >= p50, "{l}");
    }
    // Summary: medians with ratios to the XDP limit.
    let summary = report["summary"].as_array().unwrap();
    let xdp = summary.iter().find(|s| s["dut"] == "xdp-redirect").unwrap();
    assert_eq!(xdp["ratio_to_xdp_limit"].as_f64(), Some(1.0));
    // Nothing left behind.
    let leaked = bench_namespaces_of(pid);
    assert!(leaked.is_empty(), "namespaces left behind: {leaked:?}");
}
