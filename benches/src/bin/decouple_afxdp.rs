//! `decouple_afxdp`: flow-install latency while *real* AF_XDP ports churn,
//! xswitch's daemon against the same daemon behind one global mutex — the
//! end-to-end companion of `benches/benches/decouple.rs` (issue 3).
//!
//! # What
//! `benches/benches/decouple.rs` churns in-memory ports: a port add there
//! costs microseconds, so the global mutex is held only briefly and the
//! scheduler on two cores hides most of the difference. The failure the
//! decoupling fixes (background/ovs-flow-table-decouple.txt) was flow
//! installs queued behind *device setup*. Here a port add is the daemon's
//! real one ([`Daemon::port_add`]: the XDP program attached, one AF_XDP
//! socket per queue, a UMEM mapped and populated, the port published) and a
//! delete the real deletion protocol ([`Daemon::port_del`]; the PMD
//! threads' reclaimer closes the sockets after the grace period).
//!
//! # The threads
//! * **churn** — `port add cN` then `port del cN` over 100 veth ends in
//!   the namespace, as fast as it can (only in the `churn` scenarios).
//! * **pmd** — one real PMD thread ([`PmdThreads`]) on the last CPU,
//!   polling every attached port's queues, announcing quiescent points.
//! * **installer** (measuring) — `flow add` of one rule in ovs-ofctl text
//!   ([`Daemon::flow_add`]: parse, resolve port names through the view,
//!   install) into a table of 1,000 rules, deleted again 16 installs later
//!   (`flow del --strict`), one every `--interval-us` (250 µs): a
//!   controller's stream of installs, so the measured ones fall across many
//!   port operations. Each install's latency, lock wait included.
//!
//! # The two variants
//! * `decoupled` — what xswitch runs: a port operation holds the daemon's
//!   `config` lock (then `ports`), a flow install only the flow table's.
//! * `global-mutex` — the same calls, each wrapped in one bench-level
//!   `Mutex<()>` (the churn thread's add and its delete, each install and
//!   each delete): ports and flows behind one lock, as `ovs_mutex` was.
//!   The work inside is identical; only where a flow install can wait
//!   differs.
//!
//! Each variant runs idle (no churn) and under churn; rounds alternate
//! the four scenarios so drift on this shared machine hits them alike.
//!
//! # Running
//! Needs root. `cargo run --release -p xswitch-benches --bin
//! decouple_afxdp [-- --rounds 3 --installs 2000]`. It creates a namespace
//! with 100 veth pairs (and deletes it at the end) and re-runs itself
//! inside it (`ip netns exec`), so the daemon sees that namespace's
//! interfaces in sysfs too.

use clap::Parser;
use control::daemon::{AfXdpOpener, Daemon};
use control::topo::{self, Netns};
use dataplane::datapath::{Datapath, PmdThreads, PmdThreadsConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xswitch_bpf::XdpMode;

/// Veth pairs the churn cycles over.
const PORTS: usize = 100;
/// Permanent rules in the table.
const BASE_RULES: u32 = 1000;
/// A measured rule is deleted this many installs later.
const KEEP: usize = 16;

#[derive(Parser, Debug, Clone)]
#[command(about = "flow-install latency while real AF_XDP ports churn: decoupled vs global mutex")]
struct Args {
    /// Rounds; each runs the four scenarios once, in alternating order.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Measured installs per scenario per round.
    #[arg(long, default_value_t = 2000)]
    installs: usize,
    /// Pause between installs, µs (a controller's install stream, not a
    /// burst: a burst of 3 µs installs would finish inside one port add).
    #[arg(long, default_value_t = 250)]
    interval_us: u64,
    /// Internal: run the measurement in the current namespace named here.
    #[arg(long, hide = true)]
    inside: Option<String>,
}

fn main() {
    let args = Args::parse();
    let res = match &args.inside {
        Some(_) => measure(&args),
        None => outside(&args),
    };
    if let Err(e) = res {
        eprintln!("decouple_afxdp: {e}");
        std::process::exit(1);
    }
}

/// Builds the namespace and its veths, re-runs this binary inside it.
fn outside(args: &Args) -> Result<(), String> {
    if !topo::have_privileges() {
        return Err("needs root (namespaces, XDP, AF_XDP)".into());
    }
    let ns = Netns::create("dcpl").map_err(|e| e.to_string())?;
    let mut batch = String::new();
    for i in 0..PORTS {
        batch.push_str(&format!(
            "link add c{i} type veth peer name d{i}\nlink set c{i} up\nlink set d{i} up\n"
        ));
    }
    let f = std::env::temp_dir().join(format!("{}.batch", topo::unique_name("dcpl")));
    std::fs::write(&f, batch).map_err(|e| e.to_string())?;
    let made = ns.ip(&["-batch", &f.to_string_lossy()]);
    let _ = std::fs::remove_file(&f);
    made.map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let exe = exe.to_string_lossy().into_owned();
    let (rounds, installs) = (args.rounds.to_string(), args.installs.to_string());
    let interval = args.interval_us.to_string();
    let argv = [
        exe.as_str(),
        "--inside",
        ns.name(),
        "--rounds",
        &rounds,
        "--installs",
        &installs,
        "--interval-us",
        &interval,
    ];
    let status = ns
        .command(&argv)
        .status()
        .map_err(|e| format!("cannot run {exe} in {}: {e}", ns.name()))?;
    if !status.success() {
        return Err(format!("the measurement in {} failed: {status}", ns.name()));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Decoupled,
    Global,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Decoupled => "decoupled",
            Variant::Global => "global-mutex",
        }
    }
}

/// One scenario's figures over every round.
#[derive(Default)]
struct Figures {
    lat: Vec<Duration>,
    port_ops: u64,
    churn_time: Duration,
    port_op_max: Duration,
}

/// Runs `f` under the global mutex in the global variant, bare otherwise.
fn write<T>(v: Variant, g: &Mutex<()>, f: impl FnOnce() -> T) -> T {
    match v {
        Variant::Decoupled => f(),
        Variant::Global => {
            let _held = g.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f()
        }
    }
}

fn measure(args: &Args) -> Result<(), String> {
    let dp = Arc::new(Datapath::new());
    let daemon = Arc::new(Daemon::new(
        dp.clone(),
        Box::new(AfXdpOpener::default()),
        XdpMode::Native,
    ));
    let cpus = control::run::allowed_cpus().unwrap_or_else(|| vec![0]);
    let pmd_cpu = *cpus.last().ok_or("no usable CPU")?;
    let pmds = PmdThreads::spawn(
        dp.clone(),
        1,
        Some(vec![pmd_cpu]),
        PmdThreadsConfig::default(),
    )
    .map_err(|e| format!("PMD thread: {e}"))?;
    daemon.set_pmds(pmds.shared().to_vec(), vec![pmd_cpu]);
    // Two fixed ports the rules name, and the permanent rules.
    for name in ["d0", "d1"] {
        daemon
            .port_add(name, None, None)
            .map_err(|e| e.to_string())?;
    }
    let base: Vec<String> = (0..BASE_RULES)
        .map(|i| {
            format!(
                "priority=100,in_port=d0,ip,nw_dst=10.1.{}.{},actions=output:d1",
                i / 250,
                i % 250 + 1
            )
        })
        .collect();
    daemon
        .flow_add(&base.join("\n"))
        .map_err(|e| e.to_string())?;

    let global = Arc::new(Mutex::new(()));
    let scenarios = [
        (Variant::Decoupled, false),
        (Variant::Decoupled, true),
        (Variant::Global, false),
        (Variant::Global, true),
    ];
    let mut figs: Vec<Figures> = scenarios.iter().map(|_| Figures::default()).collect();
    let mut seq = 0u64;
    eprintln!(
        "decouple_afxdp: {} rounds x 4 scenarios x {} installs, {PORTS} AF_XDP ports churning, PMD on CPU {pmd_cpu}",
        args.rounds, args.installs
    );
    for round in 0..args.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1, 2, 3]
        } else {
            vec![3, 2, 1, 0]
        };
        for k in order {
            let (v, churn) = scenarios[k];
            let stop = Arc::new(AtomicBool::new(false));
            let ops = Arc::new(AtomicU64::new(0));
            let churner = churn.then(|| {
                let (d, g, stop, ops) = (daemon.clone(), global.clone(), stop.clone(), ops.clone());
                std::thread::spawn(move || churn_loop(&d, v, &g, &stop, &ops))
            });
            if churn {
                // Let the churn get going.
                std::thread::sleep(Duration::from_millis(200));
            }
            let t0 = Instant::now();
            let ops0 = ops.load(Ordering::Relaxed);
            let pause = Duration::from_micros(args.interval_us);
            install_loop(
                &daemon,
                v,
                &global,
                args.installs,
                pause,
                &mut seq,
                &mut figs[k].lat,
            )?;
            let f = &mut figs[k];
            f.churn_time += t0.elapsed();
            f.port_ops += ops.load(Ordering::Relaxed) - ops0;
            stop.store(true, Ordering::Relaxed);
            if let Some(c) = churner {
                let max = c.join().map_err(|_| "churn thread panicked")??;
                f.port_op_max = f.port_op_max.max(max);
            }
            eprintln!(
                "  round {} {:<12} {:<5} done",
                round + 1,
                v.name(),
                if churn { "churn" } else { "idle" }
            );
        }
    }
    daemon.port_del_all();
    drop(pmds.stop());

    println!("\nflow add latency (µs), {PORTS} AF_XDP ports churning (add + del loop) or idle:");
    println!(
        "{:<13} {:<6} {:>8} {:>9} {:>9} {:>10} {:>10} {:>12} {:>12}",
        "variant", "churn", "installs", "p50", "p99", "p99.9", "max", "port ops/s", "port op max"
    );
    let mut p99 = [0.0f64; 4];
    for (k, (v, churn)) in scenarios.iter().enumerate() {
        let f = &mut figs[k];
        f.lat.sort_unstable();
        let us = |q: f64| pct(&f.lat, q).as_secs_f64() * 1e6;
        p99[k] = us(0.99);
        println!(
            "{:<13} {:<6} {:>8} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>12} {:>12}",
            v.name(),
            if *churn { "yes" } else { "no" },
            f.lat.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            us(1.0),
            if *churn {
                format!("{:.0}", f.port_ops as f64 / f.churn_time.as_secs_f64())
            } else {
                "-".into()
            },
            if *churn {
                format!("{:.1} ms", f.port_op_max.as_secs_f64() * 1e3)
            } else {
                "-".into()
            }
        );
    }
    println!(
        "p99 under churn, global-mutex / decoupled: {:.1}x (target >= 10x); decoupled churn / idle p99: {:.2}x",
        p99[3] / p99[1],
        p99[1] / p99[0]
    );
    Ok(())
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Adds and deletes the churn ports until `stop`; returns the longest
/// single port operation.
fn churn_loop(
    d: &Daemon,
    v: Variant,
    g: &Mutex<()>,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Result<Duration, String> {
    let mut max = Duration::ZERO;
    'all: loop {
        for i in 2..PORTS {
            if stop.load(Ordering::Relaxed) {
                break 'all;
            }
            let name = format!("d{i}");
            let t = Instant::now();
            write(v, g, || d.port_add(&name, None, None)).map_err(|e| e.to_string())?;
            max = max.max(t.elapsed());
            let t = Instant::now();
            write(v, g, || d.port_del(&name)).map_err(|e| e.to_string())?;
            max = max.max(t.elapsed());
            ops.fetch_add(2, Ordering::Relaxed);
        }
    }
    Ok(max)
}

/// `n` measured installs (each rule deleted [`KEEP`] installs later).
fn install_loop(
    d: &Daemon,
    v: Variant,
    g: &Mutex<()>,
    n: usize,
    pause: Duration,
    seq: &mut u64,
    lat: &mut Vec<Duration>,
) -> Result<(), String> {
    let rule = |s: u64| {
        format!(
            "priority=200,in_port=d0,ip,nw_dst=10.2.{}.{}",
            (s / 250) % 250,
            s % 250 + 1
        )
    };
    let mut live = std::collections::VecDeque::with_capacity(KEEP + 1);
    lat.reserve(n);
    for _ in 0..n {
        let m = rule(*seq);
        *seq += 1;
        let text = format!("{m},actions=output:d1");
        let t = Instant::now();
        write(v, g, || d.flow_add(&text)).map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
        live.push_back(m);
        if live.len() > KEEP {
            let old = live.pop_front().expect("non-empty");
            write(v, g, || d.flow_del(Some(&old), true)).map_err(|e| e.to_string())?;
        }
        std::thread::sleep(pause);
    }
    for m in live {
        write(v, g, || d.flow_del(Some(&m), true)).map_err(|e| e.to_string())?;
    }
    Ok(())
}
