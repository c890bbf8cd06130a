//! `xswitch run`: a foreground bridge between Linux interfaces on AF_XDP.
//!
//! # What
//! ```text
//! xswitch run --port IFNAME... [--pmd-cpus LIST] [--mode auto|native|generic]
//!             [--stats-interval SECS] [--json-stats]
//! ```
//! opens every `--port` as an AF_XDP port (ofports 1..n in the order
//! given; [`crate::afxdp::open_port`]: XDP program attached, one socket per
//! rx queue), adds them to one [`Datapath`] and starts PMD threads on the
//! listed CPUs ([`PmdThreads`]: the rx queues are dealt round-robin over
//! the PMDs). With no flow installed the datapath is a learning L2 bridge
//! (every packet runs `normal`, DESIGN.md "The user's contract"). Once every
//! port is attached it prints one line on stderr,
//! `xswitch: forwarding between N ports (mode native)`, that tests and the
//! bench harness wait for. SIGINT or SIGTERM stops it: PMDs stopped and
//! joined, every port deleted through the deletion protocol
//! ([`Datapath::del_port`], then [`Datapath::reclaim`] once the grace
//! period is over), sockets closed, programs detached, and the final
//! [`StatsReport`] printed on stdout (JSON with `--json-stats`, a table
//! otherwise); exit status 0. A second signal while it shuts down exits at
//! once (status 1).
//!
//! # Hosts behind veth ports: checksums
//! A veth passes a locally sent TCP/UDP frame on with its checksum left
//! for offload (CHECKSUM_PARTIAL: only the pseudo-header sum is in the
//! field). AF_XDP carries the bytes, not that skb state, so the frame
//! leaves the switch with an unfinished checksum and the receiving stack
//! drops it: ping works, TCP and UDP do not. As with Open vSwitch's afxdp
//! ports, the sending side must compute checksums itself: `ethtool -K
//! PEER tx off` on the host's end of each veth. `run` logs this hint for
//! every port that is one end of a pair (its `iflink` is another
//! interface); the switch cannot repair it, since AF_XDP delivers no
//! checksum status with a frame.
//!
//! # Errors
//! Everything the user can get wrong is refused before anything is
//! attached, each with one line naming what is wrong: no port, the same
//! interface twice, a bad or unusable CPU list, missing capabilities
//! (named), an unknown interface, an MTU the UMEM frame cannot carry (MTU
//! and maximum named), an interface carrying someone else's XDP program.
//! A port that fails to open drops the ports opened before it, so a failed
//! start leaves no program attached and no socket open.
//!
//! # Invariants
//! * Port state (running, carrier, admin up, tx queues) is taken from the
//!   interface at add time ([`LinkInfo`]); following later changes is the
//!   link monitor's job (issue 5), not a sysfs poll here. One exception,
//!   bounded: a link that is up with carrier but not yet RUNNING is still
//!   settling (the kernel's linkwatch sets IFF_RUNNING shortly after
//!   `ip link set up`; on a veth brought up a moment before `run` starts
//!   this was seen), so start re-reads such a link for at most
//!   [`SETTLE_TIMEOUT`] before it takes its state as final.
//! * Shutdown order: PMDs stop first (no packet is in flight when ports go),
//!   then the final report is taken (counters are final and ports still
//!   listed), then ports are deleted and reclaimed, then the last handles
//!   drop (sockets close, BPF links close: programs detach).
//! * A port whose device vanished while running (a send saw ENXIO or
//!   ENETDOWN) is deleted by the datapath itself; the run loop then drops
//!   its last handles ([`Bridge::reap_gone`]) and the other ports carry on.
//! * Even a SIGKILL leaves nothing behind: the programs hang on BPF links
//!   and the sockets on fds, both closed by the kernel with the process.
//!
//! # Locking
//! The control thread (this module) takes `ports` through the datapath's
//! port operations only; PMD threads take none. Signals only set a flag
//! the control thread polls every 50 ms.
//!
//! [`LinkInfo`]: dataplane::vport::afxdp::LinkInfo

mod cpus;
mod cputime;

pub use cpus::{allowed_cpus, format_cpu_list, parse_cpu_list, pmd_cpus, CpuListError};
pub use cputime::{threads_cpu_time, BusyMeter};

use crate::afxdp::{open_port, OpenError, OpenedPort};
use crate::report::{PmdReport, PortExtra, RateLog, StatsReport};
use dataplane::datapath::{Datapath, DatapathError, Pmd, PmdThreads, PmdThreadsConfig};
use dataplane::flow_key::PortNo;
use dataplane::vport::afxdp::{AfXdpConfig, LinkInfo};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xswitch_bpf::XdpMode;

/// What `xswitch run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Interfaces, in ofport order (ofport = index + 1).
    pub ports: Vec<String>,
    /// `--pmd-cpus` as given; `None`: one PMD on the last usable CPU.
    pub pmd_cpus: Option<String>,
    /// How to attach the XDP programs.
    pub mode: XdpMode,
    /// Log per-port rates this often.
    pub stats_interval: Option<Duration>,
    /// Print the final report as JSON.
    pub json_stats: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            ports: Vec::new(),
            pmd_cpus: None,
            mode: XdpMode::Auto,
            stats_interval: None,
            json_stats: false,
        }
    }
}

/// Why `xswitch run` could not start. One line each.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No `--port`.
    #[error("no ports: give at least one --port IFNAME")]
    NoPorts,
    /// An interface named twice.
    #[error("interface {0} is given twice (each --port must be a different interface)")]
    DuplicatePort(String),
    /// A bad `--pmd-cpus`.
    #[error(transparent)]
    Cpus(#[from] CpuListError),
    /// The process lacks capabilities it needs.
    #[error("missing {missing}: bridging with AF_XDP needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run as root)")]
    MissingCapabilities {
        /// The missing ones, comma-separated.
        missing: String,
    },
    /// A port failed to open.
    #[error(transparent)]
    Port(#[from] OpenError),
    /// The datapath refused a port.
    #[error("adding port {ifname}: {source}")]
    Datapath {
        /// The interface.
        ifname: String,
        /// Why.
        source: DatapathError,
    },
    /// PMD or helper threads could not start.
    #[error("cannot start PMD threads: {0}")]
    Threads(std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install SIGINT/SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    /// The final report could not be written.
    #[error("cannot write the stats report: {0}")]
    Output(std::io::Error),
}

/// Capability numbers (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// The capabilities `run` needs that this process's effective set lacks:
/// CAP_NET_ADMIN (attach XDP), CAP_NET_RAW (AF_XDP sockets), CAP_BPF or
/// CAP_SYS_ADMIN (load the program, update its maps). Empty when the set
/// cannot be read (the kernel will then say what it refuses).
pub fn missing_capabilities() -> Vec<&'static str> {
    let Some(eff) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
    else {
        return Vec::new();
    };
    missing_from(eff)
}

fn missing_from(eff: u64) -> Vec<&'static str> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_NET_RAW) {
        missing.push("CAP_NET_RAW");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    missing
}

/// How long start waits for a link that is up with carrier to become
/// RUNNING (see the module docs).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Re-reads `link` until it is RUNNING, or it is not worth waiting for
/// (down or no carrier), or [`SETTLE_TIMEOUT`] passed. Returns the last
/// reading (the first one if re-reading fails).
fn settle(link: &LinkInfo) -> LinkInfo {
    let t0 = Instant::now();
    let mut cur = link.clone();
    while cur.admin_up && cur.carrier && !cur.running && t0.elapsed() < SETTLE_TIMEOUT {
        std::thread::sleep(Duration::from_millis(10));
        match LinkInfo::query(&link.name) {
            Ok(l) => cur = l,
            Err(_) => break,
        }
    }
    if cur.running && !link.running {
        tracing::debug!(port = %link.name, waited = ?t0.elapsed(), "link became RUNNING");
    }
    cur
}

/// Whether `ifname` is one end of a pair (veth): its `iflink` names
/// another interface.
fn is_paired(ifname: &str, ifindex: u32) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/iflink"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|iflink| iflink != ifindex)
}

/// One port of the bridge.
struct BridgePort {
    ofport: PortNo,
    opened: OpenedPort,
}

/// A running bridge: ports attached, PMDs forwarding (see the module docs).
pub struct Bridge {
    dp: Arc<Datapath>,
    // Field order is drop order on an abnormal exit: PMDs stop before the
    // ports' handles go.
    pmds: Option<PmdThreads>,
    ports: Vec<BridgePort>,
    cpus: Vec<usize>,
    started: BusyMeter,
}

impl core::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bridge")
            .field("ports", &self.ports.len())
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

/// Checks what can be checked without touching an interface: ports given
/// and distinct, the CPU list. Returns the PMD CPUs.
pub fn validate(cfg: &RunConfig) -> Result<Vec<usize>, RunError> {
    if cfg.ports.is_empty() {
        return Err(RunError::NoPorts);
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if cfg.ports[..i].contains(p) {
            return Err(RunError::DuplicatePort(p.clone()));
        }
    }
    let allowed = allowed_cpus().unwrap_or_default();
    let cpus = pmd_cpus(cfg.pmd_cpus.as_deref(), &allowed)?;
    Ok(if cpus.is_empty() { vec![0] } else { cpus })
}

impl Bridge {
    /// Validates `cfg`, opens every port, adds them to a new datapath and
    /// starts the PMD threads. On error nothing stays attached.
    pub fn start(cfg: &RunConfig) -> Result<Bridge, RunError> {
        let cpus = validate(cfg)?;
        let missing = missing_capabilities();
        if !missing.is_empty() {
            return Err(RunError::MissingCapabilities {
                missing: missing.join(", "),
            });
        }
        let afxdp = AfXdpConfig::default();
        let mut ports = Vec::with_capacity(cfg.ports.len());
        for (i, name) in cfg.ports.iter().enumerate() {
            // An error drops `ports`: the ones opened so far detach.
            let mut opened = open_port(name, cfg.mode, &afxdp)?;
            let ofport = PortNo::try_from(i + 1).unwrap_or(PortNo::MAX);
            let fresh = settle(&opened.link);
            opened.link.admin_up = fresh.admin_up;
            opened.link.running = fresh.running;
            opened.link.carrier = fresh.carrier;
            let l = &opened.link;
            tracing::info!(
                port = %l.name,
                ofport,
                ifindex = l.ifindex,
                mode = %opened.mode(),
                rx_queues = l.rx_queues,
                tx_queues = l.tx_queues,
                mtu = l.mtu,
                admin_up = l.admin_up,
                running = l.running,
                carrier = l.carrier,
                "port attached"
            );
            if opened.mode() == XdpMode::Generic && l.rx_queues > 1 {
                tracing::warn!(
                    port = %l.name,
                    "generic XDP on a multi-queue interface may misnumber rx queues (veth does); prefer --mode native"
                );
            }
            if is_paired(&l.name, l.ifindex) {
                tracing::info!(
                    port = %l.name,
                    "port is one end of a pair (veth): its peer must compute checksums itself (ethtool -K PEER tx off), or TCP/UDP through the switch fails"
                );
            }
            if !(l.admin_up && l.running && l.carrier) {
                tracing::warn!(port = %l.name, "interface is not up with carrier: output to it is dropped");
            }
            ports.push(BridgePort { ofport, opened });
        }
        let dp = Arc::new(Datapath::new());
        for p in &ports {
            let l = &p.opened.link;
            let add = |r: Result<(), DatapathError>| {
                r.map_err(|source| RunError::Datapath {
                    ifname: l.name.clone(),
                    source,
                })
            };
            add(dp.add_port(p.ofport, p.opened.port.clone()))?;
            // The state as the interface reported it when opened.
            add(dp.set_admin_up(p.ofport, l.admin_up))?;
            add(dp.set_running(p.ofport, l.running))?;
            add(dp.set_carrier(p.ofport, l.carrier))?;
        }
        let pmds = PmdThreads::spawn(
            dp.clone(),
            cpus.len(),
            Some(cpus.clone()),
            PmdThreadsConfig::default(),
        )
        .map_err(RunError::Threads)?;
        tracing::info!(
            pmds = cpus.len(),
            cpus = %format_cpu_list(&{
                let mut c = cpus.clone();
                c.sort_unstable();
                c
            }),
            "PMD threads started"
        );
        Ok(Bridge {
            dp,
            pmds: Some(pmds),
            ports,
            cpus,
            started: BusyMeter::start(),
        })
    }

    /// The datapath (flows, MAC table, ports).
    pub fn datapath(&self) -> &Arc<Datapath> {
        &self.dp
    }

    /// Number of ports.
    pub fn n_ports(&self) -> usize {
        self.ports.len()
    }

    /// The modes the programs were attached in, per port.
    pub fn modes(&self) -> Vec<XdpMode> {
        self.ports.iter().map(|p| p.opened.mode()).collect()
    }

    /// The "ready" line: `xswitch: forwarding between N ports (mode M)`.
    pub fn ready_line(&self) -> String {
        let modes = self.modes();
        let mode = if modes.windows(2).all(|w| w[0] == w[1]) {
            modes.first().map_or_else(String::new, ToString::to_string)
        } else {
            self.ports
                .iter()
                .map(|p| format!("{} {}", p.opened.link.name, p.opened.mode()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "xswitch: forwarding between {} ports (mode {mode})",
            self.ports.len()
        )
    }

    fn extra_for(&self, ofport: PortNo) -> PortExtra {
        self.ports
            .iter()
            .find(|p| p.ofport == ofport)
            .map(|p| {
                let (queues, device) = p.opened.device_report();
                PortExtra {
                    queues,
                    xdp: p.opened.xdp_report(),
                    device: Some(device),
                }
            })
            .unwrap_or_default()
    }

    fn pmd_reports_live(&self, since: &BusyMeter, now: &BusyMeter) -> Vec<PmdReport> {
        let Some(t) = &self.pmds else {
            return Vec::new();
        };
        t.shared()
            .iter()
            .enumerate()
            .map(|(id, s)| PmdReport {
                id,
                cpu: self.cpus.get(id).copied(),
                rx_packets: s.rx_packets(),
                tx_packets: s.tx_packets(),
                drops: s.drops(),
                busy_pct: since.busy_pct(now, &format!("pmd{id}")),
            })
            .collect()
    }

    /// The report as of now, while forwarding (PMD figures are the live
    /// totals; busy % since the start).
    pub fn report(&self) -> StatsReport {
        self.report_since(&self.started)
    }

    /// [`Bridge::report`] with PMD busy % measured since `since` (an
    /// earlier [`BusyMeter::start`]).
    pub fn report_since(&self, since: &BusyMeter) -> StatsReport {
        let now = BusyMeter::start();
        StatsReport::collect(&self.dp, self.pmd_reports_live(since, &now), |p| {
            self.extra_for(p.ofport)
        })
    }

    /// Forgets the ports the datapath deleted by itself — a PMD found the
    /// device gone (ENXIO/ENETDOWN on send) and the housekeeping thread ran
    /// the deletion protocol — once their teardown has run, dropping the
    /// last handles (sockets, UMEM, program). The run loop calls this
    /// every tick, so a vanished interface does not keep its UMEM until
    /// exit. Returns the names of the ports released.
    pub fn reap_gone(&mut self) -> Vec<String> {
        let dp = &self.dp;
        let mut gone = Vec::new();
        self.ports.retain(|p| {
            let ours = Arc::as_ptr(&p.opened.port).cast::<()>();
            let present = dp
                .port(p.ofport)
                .is_some_and(|v| Arc::as_ptr(&v).cast::<()>() == ours);
            // Absent and torn down: ours is the last handle.
            if present || Arc::strong_count(&p.opened.port) > 1 {
                return true;
            }
            tracing::warn!(
                port = %p.opened.link.name,
                ofport = p.ofport,
                "port removed: its device is gone; sockets closed"
            );
            gone.push(p.opened.link.name.clone());
            false
        });
        gone
    }

    /// Stops the bridge (module docs, "Shutdown order") and returns the
    /// final report.
    pub fn shutdown(mut self) -> StatsReport {
        let now = BusyMeter::start();
        let busy: Vec<f64> = (0..self.cpus.len())
            .map(|id| self.started.busy_pct(&now, &format!("pmd{id}")))
            .collect();
        let pmds: Vec<Pmd> = self.pmds.take().map(PmdThreads::stop).unwrap_or_default();
        let pmd_reports = pmds
            .iter()
            .map(|p| {
                let s = p.stats();
                PmdReport {
                    id: p.id(),
                    cpu: self.cpus.get(p.id()).copied(),
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    drops: s.drops.total(),
                    busy_pct: busy.get(p.id()).copied().unwrap_or(0.0),
                }
            })
            .collect();
        let report = StatsReport::collect(&self.dp, pmd_reports, |p| self.extra_for(p.ofport));
        // The PMDs' rcu participants go with them: nothing blocks reclaim.
        drop(pmds);
        for p in &self.ports {
            match self.dp.del_port(p.ofport) {
                Ok(_) => {
                    tracing::info!(port = %p.opened.link.name, ofport = p.ofport, "port deleted")
                }
                // Deleted by the datapath since the last reap (device gone).
                Err(e) => tracing::debug!(port = %p.opened.link.name, error = %e, "deleting port"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.dp.port_table().stats().destroyed < self.dp.port_table().stats().deleted
            && Instant::now() < deadline
        {
            if self.dp.reclaim() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let st = self.dp.port_table().stats();
        if st.destroyed < st.deleted {
            tracing::warn!(
                deleted = st.deleted,
                destroyed = st.destroyed,
                "some ports were not torn down"
            );
        }
        for p in self.ports.drain(..) {
            let name = p.opened.link.name.clone();
            // Last handles: sockets close, then the BPF link (detach).
            drop(p);
            tracing::info!(port = %name, "port closed, XDP program detached");
        }
        report
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // An abnormal exit (error, panic): stop the PMDs before the port
        // handles drop. `shutdown` leaves nothing for this to do.
        if let Some(t) = self.pmds.take() {
            drop(t.stop());
        }
    }
}

/// The `--stats-interval` log over a [`Bridge`]: PMD busy % is measured
/// since the previous line ([`BusyMeter`]), the rates by [`RateLog`].
struct IntervalLog {
    at: Instant,
    cpu: BusyMeter,
    rates: RateLog,
}

impl IntervalLog {
    fn new() -> Self {
        IntervalLog {
            at: Instant::now(),
            cpu: BusyMeter::start(),
            rates: RateLog::default(),
        }
    }

    fn log(&mut self, bridge: &Bridge) {
        let r = bridge.report_since(&self.cpu);
        self.cpu = BusyMeter::start();
        let now = Instant::now();
        self.rates.log(&r, now.duration_since(self.at));
        self.at = now;
    }
}

/// Installs SIGINT/SIGTERM handling: the first signal sets the returned
/// flag, a second one exits the process at once with status 1.
fn install_signals() -> Result<Arc<AtomicBool>, RunError> {
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag before the second handler
        // sets it: only a second signal exits.
        signal_hook::flag::register_conditional_shutdown(sig, 1, term.clone())
            .map_err(RunError::Signals)?;
        signal_hook::flag::register(sig, term.clone()).map_err(RunError::Signals)?;
    }
    Ok(term)
}

/// `xswitch run`: starts the bridge, prints the ready line on stderr,
/// forwards until SIGINT/SIGTERM, shuts down and writes the final report to
/// `out`.
pub fn run(cfg: &RunConfig, out: &mut dyn Write) -> Result<(), RunError> {
    let term = install_signals()?;
    let mut bridge = Bridge::start(cfg)?;
    eprintln!("{}", bridge.ready_line());
    let mut rates = IntervalLog::new();
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        bridge.reap_gone();
        if let Some(iv) = cfg.stats_interval {
            if rates.at.elapsed() >= iv {
                rates.log(&bridge);
            }
        }
    }
    tracing::info!("signal received: stopping");
    let report = bridge.shutdown();
    if cfg.json_stats {
        writeln!(out, "{}", report.to_json()).map_err(RunError::Output)?;
    } else {
        report.write_table(out).map_err(RunError::Output)?;
    }
    out.flush().map_err(RunError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ports: &[&str]) -> RunConfig {
        RunConfig {
            ports: ports.iter().map(|s| s.to_string()).collect(),
            ..RunConfig::default()
        }
    }

    #[test]
    fn no_port_is_refused() {
        let e = validate(&cfg(&[])).unwrap_err();
        assert!(matches!(e, RunError::NoPorts));
        assert!(e.to_string().contains("--port"), "{e}");
    }

    #[test]
    fn the_same_interface_twice_is_refused_by_name() {
        let e = validate(&cfg(&["a0", "b0", "a0"])).unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1);
        assert!(e.to_string().contains("a0 is given twice"), "{e}");
    }

    #[test]
    fn a_bad_cpu_list_is_refused_before_any_interface_is_touched() {
        let mut c = cfg(&["no-such-if0"]);
        c.pmd_cpus = Some("1-0".into());
        let e = Bridge::start(&c).unwrap_err();
        assert!(matches!(e, RunError::Cpus(_)), "{e}");
        c.pmd_cpus = Some("4095".into());
        let e = Bridge::start(&c).unwrap_err();
        assert!(e.to_string().contains("CPU 4095"), "{e}");
    }

    #[test]
    fn default_pmd_cpu_is_one_usable_cpu() {
        let cpus = validate(&cfg(&["x"])).unwrap();
        assert_eq!(cpus.len(), 1);
        let allowed = allowed_cpus().unwrap();
        assert_eq!(cpus[0], *allowed.last().unwrap());
    }

    #[test]
    fn capabilities_are_named_when_missing() {
        assert_eq!(missing_from(u64::MAX), Vec::<&str>::new());
        assert_eq!(
            missing_from(0),
            vec!["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF"]
        );
        // CAP_SYS_ADMIN stands in for CAP_BPF (older kernels).
        let eff = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_SYS_ADMIN);
        assert!(missing_from(eff).is_empty());
        let eff = (1 << CAP_NET_ADMIN) | (1 << CAP_BPF);
        assert_eq!(missing_from(eff), vec!["CAP_NET_RAW"]);
    }
}
