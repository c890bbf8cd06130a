//! `xswitch chaos`: the fault-injection harness — ports vanishing under
//! load, the failure class that hung the Linux OVS datapath
//! (`background/ovs-veth-soft-lockup.txt`).
//!
//! # What
//! Each scenario builds its own world ([`world`]): a switch namespace
//! running the real daemon (`xswitch daemon`, soon `run`, as a child
//! process, [`process`]), a generator namespace whose BPF live-frame
//! generator floods the switch's generator port as fast as one core goes,
//! a sink namespace behind the *untouched* port (an XDP counter sampled
//! every 5 ms, [`traffic`]), and *victim* ports that the faults hit. One
//! explicit flow sends every generated packet to the untouched port **and**
//! to every victim, so each fault lands on a port that is being output to
//! at that very moment — the upstream bug's situation — and the
//! accounting is exact. Then the scenario injects its faults
//! ([`scenarios`]; netns-del in `netns_del.rs`):
//!
//! | name | fault, per cycle |
//! |---|---|
//! | `link-del` | `ip link del` of the victim's veth mid-burst; re-created (same names) for the next cycle |
//! | `netns-del` | the namespace holding a 32-queue victim's peer deleted under HTTP load (H2) |
//! | `link-down` | the switch-side victim set down, then up |
//! | `carrier-off` | the victim's peer set down, then up (veth has no `carrier off`) |
//! | `readd-same-name` | victim deleted and re-created at once under the same name: must forward again |
//! | `queue-change` | `ethtool -L rx N tx N` on a 4-queue victim, 4 ↔ 2 |
//! | `flow-churn` | flows added/removed through the socket as fast as it answers, while the victim flaps |
//! | `kill-restart` | SIGKILL of the daemon under traffic; no XDP program/socket left; restart; forwarding resumes |
//!
//! # Criteria (PASS needs all; [`harness`])
//! * **No stall**: the daemon's watchdog (threshold 100 ms) counted 0
//!   stalls (`stats`: `watchdog.stalls`).
//! * **No crash**: the daemon is alive at the end and exits 0 within 8 s
//!   of SIGTERM.
//! * **Untouched port keeps forwarding**: its sink count never stays flat
//!   for more than 100 ms while faults run (kill-restart declares its
//!   outages; there the criterion is recovery).
//! * **Zero leaked frames**: after traffic stops, every UMEM frame of
//!   every live port is in one census place (`stats`:
//!   `ports[].device.umem_frames == umem_placed`).
//! * **RSS** (`VmRSS` of the daemon) grows by less than 1 MiB — judged
//!   only when a scenario ran ≥ 1,000 cycles (long mode); quick mode
//!   reports the growth and notes that it was not judged.
//! * **Accounting**, per port of the daemon's final report (printed on
//!   SIGTERM, PMDs stopped, so nothing is in flight):
//!   `rx_packets + rx_copies == rx_delivered + Σ drops` — every packet
//!   received on the port, and every extra copy the actions made of it,
//!   was transmitted (on some port) or counted under exactly one drop
//!   reason. A re-created victim restarts its counters; the generator
//!   port, where the drops of outputs to vanishing victims are counted,
//!   lives for the whole scenario.
//! * Each scenario's own checks (the victim was fed before each fault,
//!   forwarding resumed, the driver accepted the change, ...).
//!
//! # Invariants
//! * Nothing is left behind: namespaces, veths and processes are guards
//!   (drop deletes / kills by PID), also when a scenario fails or the
//!   daemon hangs (the legacy build's stuck PMD: SIGKILL after 8 s).
//! * Memory is bounded in long runs: per-cycle timings are 16 bytes each,
//!   the daemon's log is a ring of 40 lines, progress goes to stderr.
//! * Quick mode (CI) fits in about two minutes on two cores; `--cycles N`
//!   runs N cycles of each scenario with no time budget.
//!
//! # Scenario API (stable; H2's `netns_del.rs` is written against it)
//! ```text
//! pub fn run(env: &ScenarioEnv<'_>) -> Result<ScenarioOutcome, ChaosError>
//!
//! ScenarioEnv { name, exe: &Path, world: &World, daemon: &SwitchProcess,
//!               traffic: &Traffic, cycles: u64, quick: bool, deadline: Instant }
//!   env.go_on(done) -> bool             // budget + deadline; progress on stderr
//!   env.request(&Request) -> Result<Reply, ChaosError>   // mgmt socket, in-process
//!   env.port_list() -> Result<Vec<PortRow>, _>;  env.stats() -> Result<Value, _>
//!   env.wait_detached(name, since) / env.wait_attached(name, since) -> Result<Duration, _>
//!   env.wait_port(name, since, timeout, what, |row| pred) -> Result<Duration, _>
//!   env.route_to(&[ofport]) -> Result<(), _>  // base flow: gen port → untouched + these
//! World { switch, gen, sink, victim_ns: Netns, gen_port, out_port: PortName{name, ofport},
//!         victims: Vec<Victim>, .. }   // netns-del gets 0 victims and makes its own
//! SwitchProcess: socket(), pid(), alive(), request(), port_list(), stats(), rss_kib()
//! Traffic: reading(), wait_forwarding(timeout), outage(bool)
//! ScenarioOutcome { cycles, removal, reaction, recovery: Vec<Duration>,
//!                   checks: Vec<Check>, notes: Vec<String> }
//!   out.check(what, ok, detail); out.note(text)
//! ChaosError: NotRoot | UnknownScenario | Topo(TopoError) | Traffic(String)
//!           | Daemon(String) | Timeout{what, after} | Scenario(String)
//! ```
//! `removal` is fault → the daemon lists the port detached; the harness
//! reports its p50/max. A scenario that adds ports (`port add` through
//! `env.request`) must leave them configured or deleted — the harness
//! judges the accounting over whatever the final report lists.

pub mod harness;
pub mod http;
pub mod netns_del;
pub mod process;
pub mod scenario;
pub mod scenarios;
pub mod table;
pub mod traffic;
pub mod world;

pub use harness::{Options, ScenarioResult, Spec, Verdict};
pub use scenario::{ChaosError, Check, ScenarioEnv, ScenarioOutcome};
pub use table::ChaosReport;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Every scenario, in run order.
pub const SCENARIOS: &[Spec] = &[
    Spec {
        name: "link-del",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 15,
        quick_budget: Duration::from_secs(8),
        run: scenarios::link_del,
    },
    Spec {
        name: "netns-del",
        victims: 0,
        victim_queues: 1,
        quick_cycles: 3,
        quick_budget: Duration::from_secs(25),
        run: netns_del::run,
    },
    Spec {
        name: "link-down",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 20,
        quick_budget: Duration::from_secs(6),
        run: scenarios::link_down,
    },
    Spec {
        name: "carrier-off",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 20,
        quick_budget: Duration::from_secs(6),
        run: scenarios::carrier_off,
    },
    Spec {
        name: "readd-same-name",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 10,
        quick_budget: Duration::from_secs(8),
        run: scenarios::readd_same_name,
    },
    Spec {
        name: "queue-change",
        victims: 1,
        victim_queues: 4,
        quick_cycles: 12,
        quick_budget: Duration::from_secs(6),
        run: scenarios::queue_change,
    },
    Spec {
        name: "flow-churn",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 3000,
        quick_budget: Duration::from_secs(6),
        run: scenarios::flow_churn,
    },
    Spec {
        name: "kill-restart",
        victims: 1,
        victim_queues: 1,
        quick_cycles: 3,
        quick_budget: Duration::from_secs(10),
        run: scenarios::kill_restart,
    },
];

/// `xswitch chaos [--scenarios a,b] [--quick] [--cycles N] [--json]
/// [--xswitch PATH]`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Scenarios to run, comma-separated (default: all): link-del,
    /// netns-del, link-down, carrier-off, readd-same-name, queue-change,
    /// flow-churn, kill-restart.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub scenarios: Vec<String>,
    /// Small budgets: every scenario in about two minutes in all (CI).
    #[arg(long)]
    pub quick: bool,
    /// Fault cycles per scenario (long runs; no time budget).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The xswitch binary whose daemon is tested (default: this one).
    #[arg(long, value_name = "PATH")]
    pub xswitch: Option<PathBuf>,
}

/// The scenarios `names` select (all when empty), in run order.
pub fn select(names: &[String]) -> Result<Vec<&'static Spec>, ChaosError> {
    if names.is_empty() {
        return Ok(SCENARIOS.iter().collect());
    }
    let mut out = Vec::new();
    for n in names {
        let n = n.trim();
        let s = SCENARIOS.iter().find(|s| s.name == n).ok_or_else(|| {
            ChaosError::UnknownScenario(
                n.to_string(),
                SCENARIOS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
        if !out.iter().any(|x: &&Spec| x.name == s.name) {
            out.push(s);
        }
    }
    Ok(out)
}

/// The generator's and the PMD's CPUs: the first and the last allowed.
fn cpus() -> (usize, usize) {
    let allowed = crate::run::allowed_cpus().unwrap_or_default();
    match (allowed.first(), allowed.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => (0, 0),
    }
}

/// Runs the selected scenarios and writes the report; the report's
/// verdict, or an error when nothing could run.
pub fn run(args: &ChaosArgs, w: &mut dyn Write) -> Result<ChaosReport, ChaosError> {
    let specs = select(&args.scenarios)?;
    if !crate::topo::have_privileges() {
        return Err(ChaosError::NotRoot);
    }
    catch_interrupts()?;
    let exe = match &args.xswitch {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| ChaosError::Daemon(format!("cannot find this executable: {e}")))?,
    };
    let (gen_cpu, pmd_cpu) = cpus();
    let opts = Options {
        exe,
        quick: args.quick,
        cycles: args.cycles,
        gen_cpu,
        pmd_cpu,
    };
    let mut results = Vec::new();
    let total = specs.len();
    for s in specs {
        if interrupted() {
            break;
        }
        eprintln!("chaos: {} ...", s.name);
        let t = Instant::now();
        let r = harness::run(s, &opts).unwrap_or_else(|e| harness::setup_failure(s.name, &e, t));
        eprintln!(
            "chaos: {}: {} ({} cycles, {:.1} s)",
            s.name,
            match r.result {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
            },
            r.cycles,
            r.seconds
        );
        results.push(r);
    }
    let report = ChaosReport::new(results, args.quick);
    let written = if args.json {
        writeln!(w, "{}", report.to_json())
    } else {
        report.write_table(w)
    };
    written
        .and_then(|()| w.flush())
        .map_err(|e| ChaosError::Scenario(format!("cannot write the report: {e}")))?;
    if interrupted() {
        return Err(ChaosError::Interrupted {
            ran: report.scenarios.len(),
            total,
        });
    }
    Ok(report)
}

/// Set by SIGINT or SIGTERM while `xswitch chaos` runs.
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes SIGINT and SIGTERM end the run instead of the process: the
/// scenario under way stops at its next cycle ([`ScenarioEnv::go_on`]),
/// its daemon is stopped and its namespaces and interfaces are deleted by
/// their guards, and no further scenario starts. Killed outright, the
/// harness would leave all of them behind.
fn catch_interrupts() -> Result<(), ChaosError> {
    if INTERRUPT.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone())
            .map_err(|e| ChaosError::Scenario(format!("cannot handle signal {sig}: {e}")))?;
    }
    let _ = INTERRUPT.set(flag);
    Ok(())
}

/// Whether a SIGINT or SIGTERM asked the run to end.
pub fn interrupted() -> bool {
    INTERRUPT
        .get()
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
}

/// `xswitch chaos`: runs, prints, and fails (non-zero exit) when any
/// scenario failed.
pub fn main(args: &ChaosArgs, w: &mut dyn Write) -> Result<(), String> {
    let report = run(args, w).map_err(|e| e.to_string())?;
    let failed = report.failed();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "chaos: {} of {} scenarios failed: {}",
            failed.len(),
            report.scenarios.len(),
            failed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_the_given_order_and_refuses_unknown_names() {
        let s = select(&["kill-restart".into(), "link-del".into()]).unwrap();
        let names: Vec<&str> = s.iter().map(|s| s.name).collect();
        assert_eq!(names, ["kill-restart", "link-del"]);
        let e = select(&["link-delete".into()]).unwrap_err().to_string();
        assert!(
            e.contains("link-delete") && e.contains("queue-change"),
            "{e}"
        );
        assert_eq!(select(&[]).unwrap().len(), SCENARIOS.len());
    }
}
