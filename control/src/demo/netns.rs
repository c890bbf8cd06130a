//! `xswitch demo`: real traffic through xswitch between network namespaces.
//!
//! # What
//! ```text
//!   h1 (10.0.0.1)      h2 (10.0.0.2)      h3 (10.0.0.3)      one namespace each
//!        |                  |                  |             veth pairs
//!   +----+------------------+------------------+----+
//!   |  xswitch run --port sv..1 --port sv..2 ...   |         namespace "sw"
//!   |  AF_XDP sockets, PMD thread, learning bridge |
//!   +----------------------------------------------+
//! ```
//! 1. Creates the four namespaces and three veth pairs ([`crate::topo`];
//!    host ends get 10.0.0.N/24 with tx checksum offload off, as with
//!    Open vSwitch's afxdp ports: AF_XDP sees raw bytes, so hosts must
//!    finish their own checksums).
//! 2. Starts `xswitch run` from this same binary inside the switch's
//!    namespace and waits for its ready line.
//! 3. Pings h1 → h2, h2 → h3 and h3 → h1 (first packets flood, then the
//!    switch has learned every station).
//! 4. Runs a short TCP transfer h1 → h2 with iperf3.
//! 5. Asks the running switch for its statistics with `xswitch stats`
//!    over its management socket (its own path, `--socket`), then stops it
//!    with SIGTERM: it shuts down through the deletion protocol and prints
//!    its final statistics (`--json-stats`), which give the summary.
//! 6. Removes everything, and prints one `summary:` line (what the test of
//!    this demo checks).
//!
//! # Cleanup
//! Every namespace, veth and process has a guard that removes it on drop
//! (`topo`), so an error, a panic or Ctrl-C (SIGINT/SIGTERM set a flag
//! that every wait checks; the children get the terminal's SIGINT too and
//! end) leaves nothing behind. Every external command runs under
//! `timeout`, every wait has a deadline: the demo cannot hang.
//!
//! # Statistics
//! The table is what `xswitch stats` prints while the switch runs; the
//! summary's totals come from the final report `xswitch run` prints on
//! SIGTERM (the `stats --json` shape), so they include the last packets.

use crate::topo::{self, ChildGuard, Netns, Side, TopoError, Veth, VethOpts};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `xswitch` binary that runs the switch (normally this one).
    pub xswitch: PathBuf,
    /// Seconds of TCP transfer.
    pub tcp_secs: u32,
}

/// What the demo measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Packet loss of each ping, in percent.
    pub ping_loss_pct: Vec<f64>,
    /// Bytes the iperf3 receiver got.
    pub tcp_bytes: u64,
    /// Packets the switch transmitted, all ports.
    pub forwarded: u64,
    /// Packets the switch dropped, all reasons.
    pub dropped: u64,
}

/// Why the demo stopped. One line each.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Not root.
    #[error(
        "xswitch demo creates network namespaces and attaches XDP programs: run it as root \
         (or try `xswitch demo --memory`, which needs no privileges)"
    )]
    NotRoot,
    /// A program the demo runs is not installed.
    #[error(
        "`{tool}` is not installed (apt-get install {package}); ./scripts/demo.sh installs it"
    )]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A command failed.
    #[error(transparent)]
    Topo(#[from] TopoError),
    /// The switch did not start or stop as it should.
    #[error("the switch {0}")]
    Switch(String),
    /// A step's result was not what it should be.
    #[error("{0}")]
    Step(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted; namespaces, veths and processes removed")]
    Interrupted,
    /// Writing the output failed.
    #[error("cannot write the demo output: {0}")]
    Output(#[from] std::io::Error),
}

/// The programs the demo runs, with their Debian packages.
const TOOLS: [(&str, &str); 6] = [
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("ping", "iputils-ping"),
    ("iperf3", "iperf3"),
    ("ethtool", "ethtool"),
    ("sysctl", "procps"),
];

const READY: &str = "xswitch: forwarding between";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// SIGINT/SIGTERM handling for the demo's lifetime: the signals set a
/// flag instead of killing the process, so guards run; restored on drop.
struct Signals {
    flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn install() -> Result<Signals, DemoError> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let id = signal_hook::flag::register(sig, flag.clone()).map_err(|e| {
                DemoError::Step(format!("cannot install SIGINT/SIGTERM handlers: {e}"))
            })?;
            ids.push(id);
        }
        Ok(Signals { flag, ids })
    }

    fn check(&self) -> Result<(), DemoError> {
        if self.flag.load(Ordering::Relaxed) {
            Err(DemoError::Interrupted)
        } else {
            Ok(())
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn have_tool(tool: &str) -> bool {
    topo::output(&["sh", "-c", &format!("command -v {tool}")])
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `args` in `ns` under `timeout secs`.
fn run_in(ns: &Netns, secs: u32, args: &[&str]) -> Result<String, TopoError> {
    let s = secs.to_string();
    let mut v = vec!["timeout", s.as_str()];
    v.extend_from_slice(args);
    ns.run(&v)
}

/// Runs `args` in `ns` as a child of this process (no `timeout`
/// wrapper: `ip netns exec` execs the program, so the PID is the
/// program's own and a kill reaches it), polling for its exit, the
/// deadline and the interrupt flag; killed by PID on either of the last
/// two. Output is drained by reader threads so a chatty program cannot
/// block on a full pipe.
fn run_polled(
    ns: &Netns,
    args: &[&str],
    limit: Duration,
    sig: &Signals,
) -> Result<std::process::Output, DemoError> {
    let mut child = ns.spawn(args)?;
    fn drain<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let so = drain(child.child_mut().stdout.take());
    let se = drain(child.child_mut().stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        let polled = child.child_mut().try_wait();
        if let Some(st) =
            polled.map_err(|e| DemoError::Step(format!("waiting for {}: {e}", args[0])))?
        {
            break st;
        }
        // An early return drops `child`: killed by PID and reaped.
        sig.check()?;
        if Instant::now() >= deadline {
            return Err(DemoError::Step(format!(
                "`{}` did not finish within {limit:?}; killed",
                args.join(" ")
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: so.join().unwrap_or_default(),
        stderr: se.join().unwrap_or_default(),
    })
}

struct Host {
    name: String,
    ns: Netns,
    veth: Veth,
    ip: String,
}

/// The switch process and its stderr lines.
struct Switch {
    child: Option<ChildGuard>,
    /// Its management socket (`--socket`).
    socket: PathBuf,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Switch {
    fn start(
        sw: &Netns,
        opts: &DemoOptions,
        ports: &[&str],
        sig: &Signals,
    ) -> Result<Switch, DemoError> {
        let exe = opts.xswitch.to_string_lossy().into_owned();
        // Its own socket: the demo never meets a daemon already running
        // on the default path.
        let socket = std::env::temp_dir().join(format!("{}.sock", topo::unique_name("xsdemo")));
        let sock = socket.to_string_lossy().into_owned();
        let mut args = vec![exe.as_str(), "run", "--json-stats", "--socket", &sock];
        for p in ports {
            args.extend_from_slice(&["--port", p]);
        }
        let child = sw
            .command(&args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DemoError::Switch(format!("could not be started ({exe}): {e}")))?;
        let mut child = ChildGuard::new(child);
        let err = child
            .child_mut()
            .stderr
            .take()
            .ok_or_else(|| DemoError::Switch("has no stderr pipe".into()))?;
        let (tx, rx) = channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut k) = keep.lock() {
                    k.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let s = Switch {
            child: Some(child),
            socket,
            lines: rx,
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            sig.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match s.lines.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(l) if l.starts_with(READY) => return Ok(s),
                Ok(_) | Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Ok(_) | Err(RecvTimeoutError::Timeout) => {
                    return Err(DemoError::Switch(format!(
                        "did not report ready within {START_TIMEOUT:?}: {}",
                        s.stderr_text()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Give the exit a moment so its last words are kept.
                    std::thread::sleep(Duration::from_millis(100));
                    return Err(DemoError::Switch(format!(
                        "exited before it was ready: {}",
                        s.stderr_text()
                    )));
                }
            }
        }
    }

    fn ready_line(&self) -> String {
        self.stderr
            .lock()
            .map(|v| v.iter().find(|l| l.starts_with(READY)).cloned())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|v| v.join(" | "))
            .unwrap_or_default()
    }

    /// `xswitch ARGS --socket SOCKET` (the CLI, as a user types it), with a
    /// timeout; its stdout.
    fn cli(&self, exe: &std::path::Path, args: &[&str]) -> Result<String, DemoError> {
        let mut c = std::process::Command::new("timeout");
        c.arg("10")
            .arg(exe)
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null());
        let o = c
            .output()
            .map_err(|e| DemoError::Step(format!("xswitch {}: {e}", args.join(" "))))?;
        if !o.status.success() {
            return Err(DemoError::Step(format!(
                "xswitch {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// SIGTERM by PID, then the final report it printed.
    fn stop(mut self) -> Result<Value, DemoError> {
        let child = self
            .child
            .take()
            .ok_or_else(|| DemoError::Switch("already stopped".into()))?;
        topo::run(&["kill", "-TERM", &child.id().to_string()])?;
        let out = child.wait_timeout(EXIT_TIMEOUT)?;
        if !out.status.success() {
            return Err(DemoError::Switch(format!(
                "exited with {} after SIGTERM: {}",
                out.status,
                self.stderr_text()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text).map_err(|e| {
            DemoError::Switch(format!("printed a report that is not JSON ({e}): {text}"))
        })
    }
}

/// `ping` summary: (loss %, average rtt ms).
fn parse_ping(out: &str) -> Option<(f64, Option<f64>)> {
    let loss = out
        .split(',')
        .find(|p| p.contains("packet loss"))?
        .split('%')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let avg = out
        .lines()
        .find(|l| l.starts_with("rtt") || l.starts_with("round-trip"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok());
    Some((loss, avg))
}

fn u64_at(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Runs the demo (module docs), writing its story to `out`.
pub fn run(opts: &DemoOptions, mut out: impl Write) -> Result<DemoSummary, DemoError> {
    if !topo::have_privileges() {
        return Err(DemoError::NotRoot);
    }
    for (tool, package) in TOOLS {
        if !have_tool(tool) {
            return Err(DemoError::MissingTool { tool, package });
        }
    }
    let sig = Signals::install()?;
    let out: &mut dyn Write = &mut out;
    writeln!(
        out,
        "xswitch demo: three hosts in network namespaces, bridged by `xswitch run` on AF_XDP\n"
    )?;

    // 1. Topology. Declared before the switch so they drop after it.
    writeln!(out, "[1/5] topology")?;
    let sw = Netns::create("sw")?;
    let mut hosts: Vec<Host> = Vec::new();
    for i in 1..=3 {
        sig.check()?;
        let ns = Netns::create(&format!("h{i}"))?;
        let veth = Veth::create(
            "hv",
            Side::In(&ns),
            "sv",
            Side::In(&sw),
            VethOpts::default(),
        )?;
        let ip = format!("10.0.0.{i}");
        for n in [&ns, &sw] {
            run_in(
                n,
                5,
                &[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", veth.a()])?;
        run_in(&ns, 10, &["ethtool", "-K", veth.a(), "tx", "off"])?;
        writeln!(
            out,
            "  h{i}: namespace {:<12} {:<10} on {:<12} <-> switch port {} (ofport {i})",
            ns.name(),
            ip,
            veth.a(),
            veth.b()
        )?;
        hosts.push(Host {
            name: format!("h{i}"),
            ns,
            veth,
            ip,
        });
    }
    writeln!(out, "  switch: namespace {}", sw.name())?;

    // 2. The switch.
    let ports: Vec<&str> = hosts.iter().map(|h| h.veth.b()).collect();
    writeln!(
        out,
        "\n[2/5] starting the switch: xswitch run --port {} (no flows: learning bridge)",
        ports.join(" --port ")
    )?;
    let switch = Switch::start(&sw, opts, &ports, &sig)?;
    writeln!(out, "  {}", switch.ready_line())?;

    // 3. Ping.
    writeln!(out, "\n[3/5] ping (5 packets each way)")?;
    let mut losses = Vec::new();
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        sig.check()?;
        let (from, to) = (&hosts[a], &hosts[b]);
        let o = run_polled(
            &from.ns,
            &[
                "ping", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "2", &to.ip,
            ],
            Duration::from_secs(20),
            &sig,
        )?;
        let text = String::from_utf8_lossy(&o.stdout);
        let (loss, avg) = parse_ping(&text).ok_or_else(|| {
            DemoError::Step(format!(
                "ping {} -> {} printed no summary: {text}",
                from.name, to.name
            ))
        })?;
        writeln!(
            out,
            "  {} -> {} ({}): {loss}% packet loss, rtt avg {}",
            from.name,
            to.name,
            to.ip,
            avg.map_or_else(|| "-".into(), |a| format!("{a:.3} ms"))
        )?;
        losses.push(loss);
    }

    // 4. TCP.
    let (h1, h2) = (&hosts[0], &hosts[1]);
    writeln!(
        out,
        "\n[4/5] TCP: iperf3 {} -> {} for {} s",
        h1.name, h2.name, opts.tcp_secs
    )?;
    // Killed by PID when the demo ends, whatever happens to the client.
    let _server = h2.ns.spawn(&["iperf3", "-s", "-1", "-B", &h2.ip])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sig.check()?;
        let listening = run_in(
            &h2.ns,
            5,
            &["ss", "-H", "-l", "-t", "-n", "sport", "=", ":5201"],
        )
        .map(|o| !o.trim().is_empty())
        .unwrap_or(false);
        if listening {
            break;
        }
        if Instant::now() >= deadline {
            return Err(DemoError::Step(
                "the iperf3 server did not start listening".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = opts.tcp_secs.to_string();
    let o = run_polled(
        &h1.ns,
        &["iperf3", "-c", &h2.ip, "-t", &secs, "-J"],
        Duration::from_secs(u64::from(opts.tcp_secs) + 30),
        &sig,
    )?;
    let j: Value = serde_json::from_slice(&o.stdout).map_err(|e| {
        DemoError::Step(format!(
            "iperf3 printed no JSON ({e}): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    })?;
    if let Some(e) = j.get("error").and_then(Value::as_str) {
        return Err(DemoError::Step(format!("iperf3: {e}")));
    }
    let recv = &j["end"]["sum_received"];
    let tcp_bytes = u64_at(recv, "bytes");
    let gbps = recv["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9;
    let retrans = u64_at(&j["end"]["sum_sent"], "retransmits");
    writeln!(
        out,
        "  received {tcp_bytes} bytes ({:.1} MB) at {gbps:.2} Gbit/s, {retrans} retransmits",
        tcp_bytes as f64 / 1e6
    )?;

    // 5. Statistics, from the running daemon through the CLI.
    writeln!(
        out,
        "\n[5/5] xswitch stats (asked over the management socket)"
    )?;
    let stats = switch.cli(&opts.xswitch, &["stats"])?;
    for l in stats.lines() {
        writeln!(out, "  {l}")?;
    }
    writeln!(out, "  stopping the switch (SIGTERM)")?;
    let report = switch.stop()?;
    let ports_v = report["ports"].as_array().cloned().unwrap_or_default();
    let forwarded: u64 = ports_v.iter().map(|p| u64_at(p, "tx_packets")).sum();
    let dropped: u64 = ports_v
        .iter()
        .flat_map(|p| p["drops"].as_object().into_iter().flatten())
        .filter_map(|(_, v)| v.as_u64())
        .sum();

    drop(_server);
    drop(hosts);
    drop(sw);
    writeln!(
        out,
        "\ncleaned up: switch stopped, namespaces and veths removed"
    )?;
    let summary = DemoSummary {
        ping_loss_pct: losses,
        tcp_bytes,
        forwarded,
        dropped,
    };
    let worst = summary.ping_loss_pct.iter().copied().fold(0.0, f64::max);
    writeln!(
        out,
        "summary: ping loss {worst}%, tcp bytes {tcp_bytes}, switch forwarded {forwarded} packets, dropped {dropped}"
    )?;
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_gives_loss_and_average_rtt() {
        let out = "--- 10.0.0.2 ping statistics ---\n5 packets transmitted, 5 received, 0% packet loss, time 801ms\nrtt min/avg/max/mdev = 0.051/0.083/0.120/0.020 ms\n";
        assert_eq!(parse_ping(out), Some((0.0, Some(0.083))));
        let out = "3 packets transmitted, 1 received, +2 errors, 66.6667% packet loss, time 2ms\n";
        assert_eq!(parse_ping(out), Some((66.6667, None)));
        assert_eq!(parse_ping("connect: Network is unreachable"), None);
    }
}
