//! The whole daemon: datapath, ports, flows, PMD threads, link monitor and
//! management socket, from start to clean shutdown (`xswitch run`).
//!
//! # Start order
//! 1. Everything checkable without side effects: CPU list, capabilities.
//! 2. The management socket ([`Server::start`]): refused if another daemon
//!    answers on the path — before any interface is touched.
//! 3. Ports from the configuration, in order ([`Daemon::port_configure`]:
//!    a missing interface waits, any other failure aborts the start and
//!    every port attached so far is dropped, i.e. detached).
//! 4. Flows from the configuration (all-or-nothing).
//! 5. PMD threads, then the link monitor (its first dump attaches ports
//!    whose interface appeared meanwhile and corrects every port's state),
//!    then the metrics endpoint if asked for ([`MetricsServer`], scraping
//!    [`Daemon::stats`]).
//!
//! # Thread placement
//! PMDs go to `--pmd-cpus`. The threads whose work is mostly the kernel's
//! port changes (the socket's port lane, the reclaimer, housekeeping, the
//! link monitor) are confined to `--helper-cpus`, by default the CPUs
//! without a PMD ([`helper_cpus`]; why: `dataplane::affinity`). The
//! management poller and workers are not confined: they take whichever
//! CPU is free.
//!
//! # Shutdown order ([`Service::shutdown`])
//! Metrics, then the socket (no new requests; the file is removed), then the link
//! monitor, then the PMDs (nothing in flight), then the final report is
//! taken, then every port is deleted and reclaimed, then the last handles
//! drop: sockets close and XDP programs detach.
//!
//! # Locking
//! Start and shutdown run on the control thread; they use the daemon's
//! operations, which take `config` → `ports`. Reclaim runs with no lock
//! held.

use super::{AfXdpOpener, Daemon, DaemonError};
use crate::daemon::links::LinkWatcher;
use crate::metrics::{MetricsError, MetricsServer};
use crate::mgmt::{Server, ServerError, ServerOptions};
use crate::monitor::{MonitorConfig, MonitorError};
use crate::report::{PmdReport, RateLog, StatsReport};
use crate::run::{
    allowed_cpus, format_cpu_list, helper_cpus, missing_capabilities, pmd_cpus, CpuListError,
};
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{Datapath, DatapathConfig, Pmd, PmdConfig, PmdThreads, PmdThreadsConfig};
use dataplane::vport::afxdp::AfXdpConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xswitch_bpf::XdpMode;

/// One port to configure at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Interface name.
    pub name: String,
    /// XDP mode (default: [`ServiceConfig::mode`]).
    pub mode: Option<XdpMode>,
    /// OpenFlow port number (default: the lowest free one, in order).
    pub ofport: Option<u32>,
}

/// What the daemon starts with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The management socket path.
    pub socket: PathBuf,
    /// Ports, in order.
    pub ports: Vec<PortSpec>,
    /// Flows in `ovs-ofctl` syntax, installed at start (port names
    /// resolve to the ports above).
    pub flows: Vec<String>,
    /// Flows already parsed (the config file's), installed before `flows`.
    pub rules: Vec<RuleSpec>,
    /// `--pmd-cpus`; `None`: one PMD on the last usable CPU.
    pub pmd_cpus: Option<String>,
    /// `--helper-cpus`; `None`: the usable CPUs without a PMD
    /// ([`helper_cpus`]).
    pub helper_cpus: Option<String>,
    /// Default XDP mode.
    pub mode: XdpMode,
    /// Datapath options (MAC table, watchdog).
    pub datapath: DatapathConfig,
    /// AF_XDP ring and UMEM sizes.
    pub afxdp: AfXdpConfig,
    /// Per-PMD settings (exact-match cache size).
    pub pmd: PmdConfig,
    /// Prometheus metrics on this loopback address (`None`: off).
    pub metrics: Option<SocketAddr>,
    /// Log per-port rates and PMD busy % this often (`None`: never).
    pub stats_interval: Option<Duration>,
}

impl ServiceConfig {
    /// A configuration with `socket` and defaults elsewhere.
    pub fn new(socket: PathBuf) -> Self {
        ServiceConfig {
            socket,
            ports: Vec::new(),
            flows: Vec::new(),
            rules: Vec::new(),
            pmd_cpus: None,
            helper_cpus: None,
            mode: XdpMode::Auto,
            datapath: DatapathConfig::default(),
            afxdp: AfXdpConfig::default(),
            pmd: PmdConfig::default(),
            metrics: None,
            stats_interval: None,
        }
    }
}

/// Why the daemon could not start. One line each.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The same interface twice.
    #[error("interface {0} is given twice (each port must be a different interface)")]
    DuplicatePort(String),
    /// A bad CPU list.
    #[error(transparent)]
    Cpus(#[from] CpuListError),
    /// Missing capabilities.
    #[error(
        "xswitch run needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run as root); missing: {0}"
    )]
    MissingCapabilities(String),
    /// The management socket.
    #[error(transparent)]
    Socket(#[from] ServerError),
    /// A port or a flow of the configuration.
    #[error(transparent)]
    Config(#[from] DaemonError),
    /// The link monitor.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// The metrics endpoint.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// Threads or signal handlers.
    #[error("cannot start {what}: {source}")]
    Start {
        /// What.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A running daemon (see the module docs).
pub struct Service {
    daemon: Arc<Daemon>,
    // Drop order on an abnormal exit: metrics, socket, monitor, PMDs, then
    // the daemon (ports).
    metrics: Option<MetricsServer>,
    server: Option<Server>,
    links: Option<LinkWatcher>,
    pmds: Option<PmdThreads>,
    cpus: Vec<usize>,
}

impl core::fmt::Debug for Service {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Service")
            .field("daemon", &self.daemon)
            .field("cpus", &self.cpus)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Starts the daemon (module docs, "Start order").
    pub fn start(cfg: &ServiceConfig) -> Result<Service, ServiceError> {
        for (i, p) in cfg.ports.iter().enumerate() {
            if cfg.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(ServiceError::DuplicatePort(p.name.clone()));
            }
        }
        let allowed = allowed_cpus().unwrap_or_default();
        let mut cpus = pmd_cpus(cfg.pmd_cpus.as_deref(), &allowed)?;
        if cpus.is_empty() {
            cpus.push(0);
        }
        let helpers = helper_cpus(cfg.helper_cpus.as_deref(), &allowed, &cpus)?;
        let missing = missing_capabilities();
        if !missing.is_empty() {
            return Err(ServiceError::MissingCapabilities(missing.join(", ")));
        }
        let dp = Arc::new(Datapath::with_config(cfg.datapath));
        let opener = AfXdpOpener {
            cfg: cfg.afxdp.clone(),
        };
        let daemon = Arc::new(Daemon::new(dp.clone(), Box::new(opener), cfg.mode));
        let options = ServerOptions {
            port_lane_cpus: helpers.clone(),
        };
        let server = Server::start_with(&cfg.socket, daemon.clone(), options)?;
        let mut svc = Service {
            daemon: daemon.clone(),
            metrics: None,
            server: Some(server),
            links: None,
            pmds: None,
            cpus: cpus.clone(),
        };
        for p in &cfg.ports {
            // On error `svc` drops: the ports so far are deleted.
            daemon.port_configure(&p.name, p.mode, p.ofport)?;
        }
        if !cfg.rules.is_empty() {
            dp.flow_table().add_batch(cfg.rules.iter().cloned());
        }
        if !cfg.flows.is_empty() {
            daemon.flow_add(&cfg.flows.join("\n"))?;
        }
        let threads = PmdThreadsConfig {
            pmd: cfg.pmd,
            helper_cpus: helpers.clone(),
            ..PmdThreadsConfig::default()
        };
        let pmds =
            PmdThreads::spawn(dp, cpus.len(), Some(cpus.clone()), threads).map_err(|source| {
                ServiceError::Start {
                    what: "PMD threads",
                    source,
                }
            })?;
        daemon.set_pmds(pmds.shared().to_vec(), cpus.clone());
        svc.pmds = Some(pmds);
        let mut sorted = cpus;
        sorted.sort_unstable();
        tracing::info!(pmds = sorted.len(), cpus = %format_cpu_list(&sorted), "PMD threads started");
        svc.links = Some(LinkWatcher::start(
            daemon.clone(),
            MonitorConfig::default(),
            helpers.clone(),
        )?);
        let mut sorted = helpers;
        sorted.sort_unstable();
        if sorted.is_empty() {
            tracing::info!("helper threads not confined (the usable CPUs are unknown)");
        } else {
            tracing::info!(
                cpus = %format_cpu_list(&sorted),
                "helper threads (port changes, teardown, link monitor) confined"
            );
        }
        if let Some(addr) = cfg.metrics {
            let m = MetricsServer::start(addr, Arc::new(move || daemon.stats()))?;
            tracing::info!(addr = %m.local_addr(), "metrics served at /metrics");
            svc.metrics = Some(m);
        }
        Ok(svc)
    }

    /// The daemon core.
    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    /// The management socket path.
    pub fn socket(&self) -> Option<PathBuf> {
        self.server.as_ref().map(|s| s.path().to_path_buf())
    }

    /// `xswitch: forwarding between N ports (mode M)` (the line tests and
    /// harnesses wait for; N counts attached ports).
    pub fn ready_line(&self) -> String {
        let view = self.daemon.view();
        let modes: Vec<(String, String)> = view
            .ports
            .values()
            .filter_map(|p| {
                let m = p.device.as_ref()?.xdp_mode()?;
                Some((p.name.clone(), m.to_string()))
            })
            .collect();
        let mode = if modes.windows(2).all(|w| w[0].1 == w[1].1) {
            modes.first().map_or_else(|| "none".into(), |m| m.1.clone())
        } else {
            modes
                .iter()
                .map(|(n, m)| format!("{n} {m}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "xswitch: forwarding between {} ports (mode {mode})",
            modes.len()
        )
    }

    /// Stops everything (module docs, "Shutdown order"); returns the final
    /// report.
    pub fn shutdown(mut self) -> StatsReport {
        drop(self.metrics.take());
        if let Some(s) = self.server.take() {
            s.stop();
        }
        if let Some(l) = self.links.take() {
            l.stop();
        }
        let live = self.daemon.stats();
        let pmds: Vec<Pmd> = self.pmds.take().map(PmdThreads::stop).unwrap_or_default();
        let mut report = self.daemon.stats();
        report.pmds = pmds
            .iter()
            .map(|p| {
                let s = p.stats();
                PmdReport {
                    id: p.id(),
                    cpu: self.cpus.get(p.id()).copied(),
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    drops: s.drops.total(),
                    busy_pct: live.pmds.get(p.id()).map_or(0.0, |r| r.busy_pct),
                }
            })
            .collect();
        drop(pmds);
        self.daemon.port_del_all();
        let dp = self.daemon.datapath();
        let deadline = Instant::now() + Duration::from_secs(2);
        while dp.port_table().stats().destroyed < dp.port_table().stats().deleted
            && Instant::now() < deadline
        {
            if dp.reclaim() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let st = dp.port_table().stats();
        if st.destroyed < st.deleted {
            tracing::warn!(
                deleted = st.deleted,
                destroyed = st.destroyed,
                "some ports were not torn down"
            );
        } else {
            tracing::info!(ports = st.deleted, "ports closed, XDP programs detached");
        }
        report
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // An abnormal exit: stop taking requests and events, stop the PMDs
        // before the ports' handles go.
        drop(self.metrics.take());
        drop(self.server.take());
        drop(self.links.take());
        if let Some(t) = self.pmds.take() {
            drop(t.stop());
        }
        self.daemon.port_del_all();
        self.daemon.datapath().reclaim();
    }
}

/// Installs SIGINT/SIGTERM handling: the first signal sets the returned
/// flag, a second one exits at once with status 1.
pub fn install_signals() -> Result<Arc<AtomicBool>, ServiceError> {
    let term = Arc::new(AtomicBool::new(false));
    let err = |source| ServiceError::Start {
        what: "signal handlers",
        source,
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 1, term.clone()).map_err(err)?;
        signal_hook::flag::register(sig, term.clone()).map_err(err)?;
    }
    Ok(term)
}

/// Runs the daemon until SIGINT/SIGTERM: starts it, prints the ready line
/// on stderr, waits, shuts down and returns the final report.
pub fn run_until_signal(cfg: &ServiceConfig) -> Result<StatsReport, ServiceError> {
    // First, while this is the only thread (see heap.rs).
    super::heap::keep_heap_mapped();
    let term = install_signals()?;
    let svc = Service::start(cfg)?;
    if let Some(p) = svc.socket() {
        tracing::info!(socket = %p.display(), "management socket ready");
    }
    eprintln!("{}", svc.ready_line());
    let mut rates = RateLog::default();
    let mut last = Instant::now();
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(iv) = cfg.stats_interval {
            if last.elapsed() >= iv {
                rates.log(&svc.daemon.stats(), last.elapsed());
                last = Instant::now();
            }
        }
    }
    tracing::info!("signal received: stopping");
    Ok(svc.shutdown())
}
