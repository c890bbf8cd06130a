//! `xswitch bench`: throughput and latency of xswitch against the Linux
//! bridge, Open vSwitch and the kernel's XDP limit, in one run, on this
//! machine.
//!
//! # What
//! For every device under test ([`dut::DutKind`]) and repetition, the
//! harness builds a fresh topology ([`net::BenchNet`]: generator namespace
//! → DUT namespace → sink namespace, veths between), sets the DUT up
//! between d0 and d1, checks that it forwards both ways (a UDP echo), then
//! for every frame size runs the project's own generator
//! ([`xswitch_bpf::gen::Generator`], BPF_PROG_RUN live frames) flat out on
//! one pinned CPU into g0, and counts what the sink interface s0 receives
//! with the kernel's own counter (`rx_packets`, read from /proc/net/dev in
//! the sink namespace) over a window after a warm-up. CPU busy time per
//! core comes from /proc/stat over the same window. In the last repetition
//! it also measures round-trip latency through the DUT at a low fixed rate
//! ([`latency`]). Results: a table, JSON (`--json`), an SVG plot
//! (`--plot`), see [`report`] for the units.
//!
//! # Fairness
//! * Repetitions alternate the devices (each repetition starts one device
//!   further down the list), so slow drifts of the machine spread over all.
//! * The generator runs on `--gen-cpu`, every DUT process and PMD on
//!   `--dut-cpus` (taskset + the DUT's own CPU option). On veth the receive
//!   NAPI of a veth runs on the CPU that transmitted into it, so some DUT
//!   work (the XDP programs on d0; all of the Linux bridge and of the XDP
//!   redirect) lands on the generator's CPU whatever we do; the report
//!   gives busy % per CPU so this is visible, not hidden.
//! * The default sink is an XDP drop program on s0 (`--sink xdp`): the
//!   cheapest receiver, so the DUT, not the sink, is measured (with
//!   `--sink stack` frames go up the sink's stack, whose softirq then runs
//!   on the DUT's transmitting CPU). The count is the kernel's interface
//!   counter either way.
//!
//! # Cleanup
//! Everything is a guard ([`crate::topo`]): namespaces deleted, child
//! processes (OVS daemons, `xswitch run`) killed by the PID we started,
//! BPF links closed — on success, on error and on SIGINT/SIGTERM, which
//! only set a flag the harness polls (the generator's syscall returns
//! early on a signal) before it unwinds through the guards.

pub mod cpu;
pub mod dut;
pub mod latency;
pub mod net;
pub mod ovs;
pub mod plot;
pub mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xswitch_bpf::gen::netns::{ifindex_of, pin_current_thread, NetnsGuard};
use xswitch_bpf::gen::{GenConfig, GenError, GenReport, Generator, XdpSink};

use cpu::CpuSnapshot;
use dut::{Dut, DutError, DutKind, DutPlacement};
use latency::Echo;
use net::BenchNet;
use report::{BenchReport, Machine, RunRecord, Skipped};

/// How long a DUT may take, once started, to forward an echo both ways.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the generator thread may take to load its program.
const GEN_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Generator keeps sending this long after the window closes, so the
/// window never sees its ramp-down.
const GEN_TAIL: Duration = Duration::from_millis(300);
/// The generator adds what it sent to the window's tally at least this
/// often, so the offered load is measured over the same window as the
/// received one (within one slice at each end).
const GEN_SLICE: Duration = Duration::from_millis(10);
/// Latency probe rate.
const LATENCY_PPS: u64 = 1000;

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Not root.
    #[error("xswitch bench needs root (it creates network namespaces and attaches XDP programs)")]
    NotRoot,
    /// A command-line value that cannot work.
    #[error("{0}")]
    BadArgs(String),
    /// Building the topology or reading counters failed.
    #[error("{0}")]
    Setup(String),
    /// An `ip`/`ethtool` command failed.
    #[error(transparent)]
    Topo(#[from] crate::topo::TopoError),
    /// The generator, sink or redirect failed.
    #[error(transparent)]
    Gen(#[from] GenError),
    /// SIGINT/SIGTERM: torn down early.
    #[error("interrupted; everything it set up has been removed")]
    Interrupted,
}

/// What the sink does with the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SinkMode {
    /// XDP drop program on s0 (counted by the kernel counter too).
    Xdp,
    /// Frames go up the sink namespace's stack (GRO on).
    Stack,
}

impl SinkMode {
    fn name(self) -> &'static str {
        match self {
            SinkMode::Xdp => "xdp",
            SinkMode::Stack => "stack",
        }
    }
}

/// `xswitch bench` command-line options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A short run (one repetition, 64-byte frames, 1 s windows) that
    /// finishes in well under two minutes.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Devices under test, comma-separated: direct, xdp-redirect,
    /// linux-bridge, ovs-afxdp, ovs-system, xswitch (default: all).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub duts: Option<Vec<DutKind>>,
    /// Frame sizes in bytes including FCS, comma-separated (default
    /// 64,512,1518; quick: 64).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Flows (distinct UDP source ports) per run.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub flows: u32,
    /// Repetitions per configuration (default 3; quick: 1).
    #[arg(long, value_name = "N")]
    pub repeat: Option<u32>,
    /// Measurement window per run, seconds (default 5; quick: 1).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Write an SVG plot of the medians here.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// CPU for the generator (default 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gen_cpu: usize,
    /// CPUs for the device under test, comma-separated (default: the last
    /// CPU).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub dut_cpus: Option<Vec<usize>>,
    /// What receives the frames at the sink.
    #[arg(long, value_enum, default_value_t = SinkMode::Xdp)]
    pub sink: SinkMode,
    /// Send IPv6/UDP instead of IPv4/UDP (frames from 66 bytes).
    #[arg(long)]
    pub ipv6: bool,
    /// Latency probes per device (at 1000/s), 0 to skip (default 2000;
    /// quick: 200).
    #[arg(long, value_name = "N")]
    pub latency_probes: Option<usize>,
}

/// A fully resolved benchmark plan.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Devices, in the order of the first repetition.
    pub duts: Vec<DutKind>,
    /// Frame sizes (incl. FCS).
    pub sizes: Vec<usize>,
    /// Flows.
    pub flows: u32,
    /// Repetitions.
    pub repeat: u32,
    /// Warm-up before each window.
    pub warmup: Duration,
    /// Measurement window.
    pub duration: Duration,
    /// Generator CPU.
    pub gen_cpu: usize,
    /// DUT CPUs.
    pub dut_cpus: Vec<usize>,
    /// Sink mode.
    pub sink: SinkMode,
    /// IPv6 frames?
    pub ipv6: bool,
    /// Latency probes per DUT (0: none).
    pub latency_probes: usize,
    /// The xswitch binary for the `xswitch` DUT.
    pub xswitch_exe: PathBuf,
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl BenchConfig {
    /// Resolves command-line options against the defaults and checks them.
    pub fn from_args(a: &BenchArgs) -> Result<BenchConfig, BenchError> {
        let cpus = online_cpus();
        let mut duts = a.duts.clone().unwrap_or_else(|| DutKind::ALL.to_vec());
        let mut seen = std::collections::BTreeSet::new();
        duts.retain(|d| seen.insert(*d));
        let sizes = a.sizes.clone().unwrap_or_else(|| {
            if a.quick {
                vec![64]
            } else {
                vec![64, 512, 1518]
            }
        });
        let min = xswitch_bpf::gen::frame::min_frame_size(a.ipv6);
        let max = xswitch_bpf::gen::frame::MAX_FRAME;
        if let Some(bad) = sizes.iter().find(|&&s| s < min || s > max) {
            return Err(BenchError::BadArgs(format!(
                "frame size {bad} is out of range: {min}..={max} bytes (including the 4-byte FCS)"
            )));
        }
        if sizes.is_empty() || duts.is_empty() {
            return Err(BenchError::BadArgs("nothing to measure".into()));
        }
        let duration = a.duration.unwrap_or(if a.quick { 1.0 } else { 5.0 });
        if !(0.1..=3600.0).contains(&duration) {
            return Err(BenchError::BadArgs(format!(
                "--duration {duration}: must be 0.1..=3600 seconds"
            )));
        }
        let repeat = a.repeat.unwrap_or(if a.quick { 1 } else { 3 });
        if repeat == 0 {
            return Err(BenchError::BadArgs("--repeat must be at least 1".into()));
        }
        let max_flows = 65536 - 1024;
        if a.flows == 0 || a.flows > max_flows {
            return Err(BenchError::BadArgs(format!(
                "--flows {}: must be 1..={max_flows}",
                a.flows
            )));
        }
        let dut_cpus = a.dut_cpus.clone().unwrap_or_else(|| vec![cpus - 1]);
        for &c in dut_cpus.iter().chain(std::iter::once(&a.gen_cpu)) {
            if c >= cpus {
                return Err(BenchError::BadArgs(format!(
                    "CPU {c} does not exist (this machine has CPUs 0..={})",
                    cpus - 1
                )));
            }
        }
        if dut_cpus.is_empty() {
            return Err(BenchError::BadArgs("--dut-cpus is empty".into()));
        }
        let xswitch_exe = std::env::current_exe()
            .map_err(|e| BenchError::Setup(format!("cannot find the xswitch binary: {e}")))?;
        Ok(BenchConfig {
            duts,
            sizes,
            flows: a.flows,
            repeat,
            warmup: Duration::from_secs_f64(if a.quick { 0.3 } else { 1.0 }),
            duration: Duration::from_secs_f64(duration),
            gen_cpu: a.gen_cpu,
            dut_cpus,
            sink: a.sink,
            ipv6: a.ipv6,
            latency_probes: a.latency_probes.unwrap_or(if a.quick { 200 } else { 2000 }),
            xswitch_exe,
        })
    }
}

/// `xswitch bench`: runs the plan, prints the table or JSON on `out`,
/// progress on stderr, and writes the plot if asked.
pub fn main(args: &BenchArgs, out: &mut dyn Write) -> Result<(), BenchError> {
    let cfg = BenchConfig::from_args(args)?;
    if !crate::topo::have_privileges() {
        return Err(BenchError::NotRoot);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| BenchError::Setup(format!("cannot handle signal {sig}: {e}")))?;
    }
    let rep = run(&cfg, &stop, &mut std::io::stderr())?;
    if let Some(path) = &args.plot {
        plot::write_svg(&rep, path).map_err(BenchError::Setup)?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&rep).map_err(|e| BenchError::Setup(e.to_string()))? + "\n"
    } else {
        report::render_table(&rep)
    };
    out.write_all(text.as_bytes())
        .map_err(|e| BenchError::Setup(format!("writing the report: {e}")))?;
    Ok(())
}

/// Runs the whole plan; `progress` gets one line per step.
pub fn run(
    cfg: &BenchConfig,
    stop: &AtomicBool,
    progress: &mut dyn Write,
) -> Result<BenchReport, BenchError> {
    let placement = DutPlacement {
        cpus: &cfg.dut_cpus,
        xswitch_exe: &cfg.xswitch_exe,
    };
    let mut runs = Vec::new();
    let mut latency = Vec::new();
    let mut skipped: BTreeMap<DutKind, String> = BTreeMap::new();
    let total = cfg.repeat as usize * cfg.duts.len() * cfg.sizes.len();
    let mut step = 0;
    if cfg.dut_cpus.contains(&cfg.gen_cpu) {
        let _ = writeln!(
            progress,
            "bench: warning: the generator's CPU {} is also a DUT CPU; figures will be lower",
            cfg.gen_cpu
        );
    }
    for rep in 1..=cfg.repeat {
        // Alternate: each repetition starts one device further on.
        let n = cfg.duts.len();
        let order: Vec<DutKind> = (0..n)
            .map(|i| cfg.duts[(i + rep as usize - 1) % n])
            .collect();
        for kind in order {
            if stop.load(Ordering::Relaxed) {
                return Err(BenchError::Interrupted);
            }
            if skipped.contains_key(&kind) {
                step += cfg.sizes.len();
                continue;
            }
            let net = BenchNet::create(kind != DutKind::Direct)?;
            let dut = match Dut::start(kind, &net, &placement) {
                Ok(d) => d,
                Err(e) => {
                    let reason = match e {
                        DutError::Unavailable(r) => r,
                        DutError::Failed(r) => format!("failed: {r}"),
                    };
                    let _ = writeln!(progress, "bench: skipping {kind}: {reason}");
                    skipped.insert(kind, reason);
                    step += cfg.sizes.len();
                    continue;
                }
            };
            let mut echo = Echo::start(&net, cfg.ipv6)?;
            if !echo.wait_forwarding(FORWARD_TIMEOUT, stop)? {
                if stop.load(Ordering::Relaxed) {
                    return Err(BenchError::Interrupted);
                }
                let reason = format!("failed: no echo through it within {FORWARD_TIMEOUT:?}");
                let _ = writeln!(progress, "bench: skipping {kind}: {reason}");
                skipped.insert(kind, reason);
                step += cfg.sizes.len();
                continue;
            }
            for &size in &cfg.sizes {
                step += 1;
                let r = measure(cfg, &net, kind, &dut.process_ids(), size, rep, stop)?;
                let _ = writeln!(
                    progress,
                    "bench [{step:>3}/{total}] {:<12} {size:>4} B  rep {rep}/{}: {:>6.3} Mpps \
                     (offered {:.2}), busy % per CPU {:?}",
                    kind.name(),
                    cfg.repeat,
                    r.mpps,
                    r.offered_mpps,
                    r.cpu_busy_pct
                        .iter()
                        .map(|p| p.round() as u32)
                        .collect::<Vec<_>>()
                );
                runs.push(r);
            }
            if rep == cfg.repeat && cfg.latency_probes > 0 {
                let l = echo.measure(kind.name(), cfg.latency_probes, LATENCY_PPS, stop)?;
                if stop.load(Ordering::Relaxed) {
                    return Err(BenchError::Interrupted);
                }
                let _ = writeln!(
                    progress,
                    "bench latency {:<12} p50 {:.1} µs, p99 {:.1} µs ({} lost of {})",
                    kind.name(),
                    l.p50_us,
                    l.p99_us,
                    l.lost,
                    cfg.latency_probes
                );
                latency.push(l);
            }
            // Teardown order: the echo, the DUT (its processes), then the
            // namespaces.
            drop(echo);
            drop(dut);
            drop(net);
        }
    }
    let summary = report::summarize(&runs);
    Ok(BenchReport {
        machine: machine(),
        sink: cfg.sink.name().into(),
        duration_s: cfg.duration.as_secs_f64(),
        runs,
        summary,
        latency,
        skipped: skipped
            .into_iter()
            .map(|(dut, reason)| Skipped { dut, reason })
            .collect(),
    })
}

/// Sleeps `d` in slices, returning false as soon as `stop` is set.
fn sleep_unless(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
    false
}

/// One window: generator flat out into g0, sink counted, CPUs sampled.
fn measure(
    cfg: &BenchConfig,
    net: &BenchNet,
    dut: DutKind,
    pids: &[u32],
    size: usize,
    rep: u32,
    stop: &AtomicBool,
) -> Result<RunRecord, BenchError> {
    let proc_cpu = || -> Option<f64> { pids.iter().map(|&p| cpu::process_cpu_secs(p)).sum() };
    let _sink = match cfg.sink {
        SinkMode::Xdp => {
            let _in = NetnsGuard::enter(net.sink.name())?;
            Some(XdpSink::attach(ifindex_of(&net.s0)?)?)
        }
        SinkMode::Stack => None,
    };
    let (src_ip, dst_ip) = net.addrs(cfg.ipv6);
    let mut gcfg = GenConfig::new(size, net.g_mac, net.s_mac, src_ip, dst_ip);
    gcfg.flows = cfg.flows;
    let run_for = cfg.warmup + cfg.duration + GEN_TAIL;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let gen_stop = Arc::new(AtomicBool::new(false));
    let gen_sent = Arc::new(AtomicU64::new(0));
    let handle = {
        let (ns, g0, cpu, gen_stop, gen_sent) = (
            net.gen.name().to_string(),
            net.g0.clone(),
            cfg.gen_cpu,
            Arc::clone(&gen_stop),
            Arc::clone(&gen_sent),
        );
        std::thread::spawn(move || -> Result<GenReport, GenError> {
            pin_current_thread(cpu)?;
            let _in = NetnsGuard::enter(&ns)?;
            let mut g = Generator::new(ifindex_of(&g0)?, gcfg)?;
            let _ = ready_tx.send(());
            let t0 = Instant::now();
            loop {
                let left = run_for.saturating_sub(t0.elapsed());
                let r = g.run_until(GEN_SLICE.min(left), || gen_stop.load(Ordering::Relaxed))?;
                gen_sent.fetch_add(r.sent, Ordering::Relaxed);
                if left <= GEN_SLICE || gen_stop.load(Ordering::Relaxed) {
                    return Ok(r);
                }
            }
        })
    };
    let finish = |h: std::thread::JoinHandle<Result<GenReport, GenError>>| {
        h.join()
            .map_err(|_| BenchError::Setup("the generator thread panicked".into()))?
            .map_err(BenchError::from)
    };
    if ready_rx.recv_timeout(GEN_START_TIMEOUT).is_err() {
        gen_stop.store(true, Ordering::Relaxed);
        finish(handle)?;
        return Err(BenchError::Setup(format!(
            "the generator did not start within {GEN_START_TIMEOUT:?}"
        )));
    }
    let window = (|| {
        if !sleep_unless(cfg.warmup, stop) {
            return Ok(None);
        }
        let (c0, cpu0, p0, s0, t0) = (
            net.sink_counters()?,
            CpuSnapshot::take(),
            proc_cpu(),
            gen_sent.load(Ordering::Relaxed),
            Instant::now(),
        );
        if !sleep_unless(cfg.duration, stop) {
            return Ok(None);
        }
        let (c1, cpu1, p1, s1, t1) = (
            net.sink_counters()?,
            CpuSnapshot::take(),
            proc_cpu(),
            gen_sent.load(Ordering::Relaxed),
            Instant::now(),
        );
        let proc_secs = match (p0, p1) {
            (Some(a), Some(b)) if !pids.is_empty() => Some(b - a),
            _ => None,
        };
        Ok::<_, BenchError>(Some((c0, c1, cpu0, cpu1, proc_secs, s1 - s0, t1 - t0)))
    })();
    gen_stop.store(true, Ordering::Relaxed);
    let gen = finish(handle)?;
    let Some((c0, c1, cpu0, cpu1, proc_secs, offered, elapsed)) = window? else {
        return Err(BenchError::Interrupted);
    };
    let cpu_busy_pct = match (cpu0, cpu1) {
        (Ok(a), Ok(b)) => a.busy_pct_until(&b),
        _ => Vec::new(),
    };
    let secs = elapsed.as_secs_f64();
    let mpps = c1.rx_packets.saturating_sub(c0.rx_packets) as f64 / secs / 1e6;
    let busy_cores = cpu_busy_pct.iter().sum::<f64>() / 100.0;
    let dut_process_cores = proc_secs.map(|p| p / secs);
    // Let the last frames drain before the sink goes.
    std::thread::sleep(Duration::from_millis(100));
    Ok(RunRecord {
        dut,
        frame_size: size,
        flows: cfg.flows,
        ipv6: cfg.ipv6,
        rep,
        mpps,
        gbps: mpps * size as f64 * 8.0 / 1000.0,
        busy_cores,
        mpps_per_busy_core: if busy_cores > 0.0 {
            mpps / busy_cores
        } else {
            0.0
        },
        cpu_busy_pct,
        dut_process_cores,
        mpps_per_dut_process_core: dut_process_cores.filter(|&c| c > 0.0).map(|c| mpps / c),
        offered_mpps: offered as f64 / secs / 1e6,
        sink_dropped_mpps: c1.rx_dropped.saturating_sub(c0.rx_dropped) as f64 / secs / 1e6,
        gen_cpu: gen.cpu,
        gen_method: gen.method.to_string(),
        dut_cpus: if dut == DutKind::Direct {
            Vec::new()
        } else {
            cfg.dut_cpus.clone()
        },
        window_s: secs,
    })
}

/// Date, kernel and CPU of this machine.
fn machine() -> Machine {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    Machine {
        date: civil_date(days),
        kernel,
        cpu_model,
        cpus: online_cpus(),
    }
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (proleptic Gregorian).
fn civil_date(days: i64) -> String {
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        b: BenchArgs,
    }

    fn cfg(args: &[&str]) -> Result<BenchConfig, BenchError> {
        let mut v = vec!["bench"];
        v.extend_from_slice(args);
        BenchConfig::from_args(&Cli::try_parse_from(v).unwrap().b)
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_779), "2026-11-22");
    }

    #[test]
    fn quick_is_one_short_repetition_of_64_byte_frames() {
        let c = cfg(&["--quick"]).unwrap();
        assert_eq!(c.sizes, vec![64]);
        assert_eq!(c.repeat, 1);
        assert_eq!(c.duration, Duration::from_secs(1));
        assert_eq!(c.duts, DutKind::ALL.to_vec());
        let full = cfg(&[]).unwrap();
        assert_eq!(full.sizes, vec![64, 512, 1518]);
        assert_eq!(full.repeat, 3);
    }

    #[test]
    fn lists_parse_and_duplicates_collapse() {
        let c = cfg(&[
            "--duts",
            "xswitch,linux-bridge,xswitch",
            "--sizes",
            "64,1518",
        ])
        .unwrap();
        assert_eq!(c.duts, vec![DutKind::Xswitch, DutKind::LinuxBridge]);
        assert_eq!(c.sizes, vec![64, 1518]);
    }

    #[test]
    fn bad_values_get_one_line_errors() {
        for (args, want) in [
            (vec!["--sizes", "32"], "frame size 32"),
            (vec!["--sizes", "64", "--ipv6"], "frame size 64"),
            (vec!["--repeat", "0"], "--repeat"),
            (vec!["--flows", "0"], "--flows 0"),
            (vec!["--gen-cpu", "4096"], "CPU 4096 does not exist"),
            (vec!["--duration", "0"], "--duration"),
        ] {
            let e = cfg(&args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn unknown_dut_is_refused_by_the_parser() {
        let r = Cli::try_parse_from(["bench", "--duts", "ovs"]);
        let e = r.err().expect("refused").to_string();
        assert!(e.contains("unknown device under test"), "{e}");
    }
}
