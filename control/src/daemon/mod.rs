//! The daemon core: the switch's configuration and every management
//! operation, shared by the management socket, the link monitor and the
//! control thread.
//!
//! # What
//! A [`Daemon`] owns a [`Datapath`] and the port configuration around it:
//! which interface carries which ofport, in which XDP mode, the open
//! AF_XDP handles, and the [`PortTracker`] that maps link events onto
//! ports. Its methods are the CLI's verbs: [`Daemon::port_add`],
//! [`Daemon::port_del`], [`Daemon::port_list`], [`Daemon::flow_add`],
//! [`Daemon::flow_del`], [`Daemon::flow_dump`], [`Daemon::fdb`],
//! [`Daemon::stats`], [`Daemon::trace`]. [`Daemon::on_link_event`] and
//! [`Daemon::resync`] are the link monitor's entry points
//! ([`links`]); [`service`] runs the whole daemon (`xswitch run`).
//!
//! # Port lifecycle as the daemon sees it
//! * A *configured* port has a name and an ofport; it is *attached* when a
//!   device carries it and it is in the datapath. `port add` attaches or
//!   fails (nothing stays configured on failure); a port configured at
//!   start whose interface does not exist yet stays configured, detached,
//!   and is attached when the interface appears.
//! * Link events ([`PortTracker`]): state changes go to the datapath at
//!   once ([`apply`]); a deleted device (`ip link del`, its peer's
//!   namespace deleted, moved away) runs the deletion protocol
//!   ([`Datapath::del_port`]; the reclaimer tears it down after the grace
//!   period) and the port stays configured; a device re-appearing under
//!   the name is re-attached under the same ofport; a rename is followed;
//!   a resync diffs a full dump.
//! * A port the datapath deleted by itself (a PMD saw the device gone) is
//!   noticed at the next state update for it and re-attached if the
//!   interface is still there.
//!
//! # Invariants
//! * Every failed operation leaves the configuration and the datapath as
//!   they were; flow files are all-or-nothing (every line parsed before
//!   the first is installed).
//! * The published [`View`] always equals the configuration as of the
//!   last completed port operation; readers never see half of one.
//!
//! # Locking
//! * `config` ([`OrderedMutex`] at [`LockLevel::Config`]) guards the port
//!   configuration and the tracker. Port operations and link events hold
//!   it for their whole duration, opening AF_XDP sockets included, and
//!   nest only `ports` (the datapath's port calls) below it.
//! * Flow operations, `trace`, `port list` and `stats` never take
//!   `config`: port names resolve through the [`View`], an immutable
//!   snapshot published with `arc-swap` after each port operation. A flow
//!   install takes only the flow table's own writer lock, so it never
//!   waits behind port churn (DESIGN.md failure 4; the test
//!   `flow_add_completes_while_a_port_add_holds_config` shows it).
//! * Nothing here runs [`Datapath::reclaim`]: the PMD threads' reclaimer
//!   does, outside every hierarchy lock.
//!
//! # Why a view
//! OVS resolves port names in flows through the bridge's port map under
//! its global mutex — exactly the coupling that starved flow installs. A
//! snapshot pointer costs one atomic load per request and can lag a
//! concurrent port operation only by that operation.

mod heap;
pub mod links;
mod opener;
mod render;
pub mod service;

pub use opener::{AfXdpOpener, AttachError, OpenedDevice, PortOpener};

use crate::flow_syntax::{
    format_actions, format_flow, format_match, parse_flow, parse_flow_filter, parse_packet,
    FlowSyntaxError,
};
use crate::mgmt::{
    FdbRow, FlowRow, Handler, PortAdded, PortDeleted, PortRow, Reply, Request, TraceReport,
};
use crate::monitor::{apply, LinkEvent, LinkState, PortAction, PortTracker};
use crate::report::{PmdReport, StatsReport};
use crate::run::BusyMeter;
use arc_swap::ArcSwap;
use dataplane::classifier::RuleSpec;
use dataplane::datapath::{Datapath, DatapathError, PmdShared, OFPP_MAX};
use dataplane::flow_key::PortNo;
use dataplane::locks::{LockLevel, OrderedGuard, OrderedMutex};
use dataplane::vport::afxdp::LinkInfo;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use xswitch_bpf::XdpMode;

/// Why an operation was refused. One line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonError {
    /// Not a possible interface name.
    #[error("{0:?} is not a valid interface name (1 to 15 characters, no '/', ':' or spaces)")]
    InvalidName(String),
    /// The interface is already a port.
    #[error("interface {name} is already port {ofport}")]
    AlreadyConfigured {
        /// The interface.
        name: String,
        /// Its ofport.
        ofport: PortNo,
    },
    /// The ofport is taken.
    #[error("ofport {ofport} is already in use by {name}")]
    OfportInUse {
        /// The ofport.
        ofport: PortNo,
        /// The port that has it.
        name: String,
    },
    /// The ofport is out of range.
    #[error("ofport {0} is not a valid port number (1..={max})", max = OFPP_MAX)]
    InvalidOfport(u32),
    /// Every ofport is taken.
    #[error("no free ofport left")]
    NoFreeOfport,
    /// `port del` of something that is not a port.
    #[error("no port named or numbered {0:?}")]
    NoSuchPort(String),
    /// A bad `--mode`.
    #[error("invalid mode {0:?}: expected auto, native or generic")]
    InvalidMode(String),
    /// The device could not be opened or added.
    #[error("cannot add port {name}: {reason}")]
    Attach {
        /// The interface.
        name: String,
        /// Why.
        reason: String,
    },
    /// A flow did not parse (the message points at the token).
    #[error("{0}")]
    Flow(FlowSyntaxError),
    /// A line of a flow file did not parse.
    #[error("line {line}: {err}")]
    FlowLine {
        /// 1-based line number.
        line: usize,
        /// The error on that line.
        err: FlowSyntaxError,
    },
    /// `flow add` with nothing to add.
    #[error("no flow given (only blank lines and comments)")]
    NoFlows,
}

/// One configured port, as published.
#[derive(Debug, Clone)]
pub struct ViewPort {
    /// Interface name (follows renames).
    pub name: String,
    /// The XDP mode asked for.
    pub mode: XdpMode,
    /// The open device while attached.
    pub device: Option<Arc<OpenedDevice>>,
    /// Why the last attach failed.
    pub error: Option<String>,
}

/// The published port configuration (see the module docs, "Locking").
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Configured ports by ofport.
    pub ports: BTreeMap<PortNo, ViewPort>,
}

impl View {
    /// The ofport configured for `name`.
    pub fn ofport_of(&self, name: &str) -> Option<PortNo> {
        self.ports
            .iter()
            .find(|(_, p)| p.name == name)
            .map(|(&o, _)| o)
    }
}

/// The state behind the `config` lock.
#[derive(Debug, Default)]
struct PortConfig {
    ports: BTreeMap<PortNo, ViewPort>,
    tracker: PortTracker,
}

/// The PMD threads' shared counters, for `stats`.
#[derive(Debug)]
struct PmdView {
    shared: Vec<Arc<PmdShared>>,
    cpus: Vec<usize>,
    started: BusyMeter,
}

/// The daemon core (see the module docs). `Sync`: share it in an `Arc`.
pub struct Daemon {
    dp: Arc<Datapath>,
    opener: Box<dyn PortOpener>,
    default_mode: XdpMode,
    config: OrderedMutex<PortConfig>,
    view: ArcSwap<View>,
    pmds: OnceLock<PmdView>,
}

impl core::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Daemon")
            .field("ports", &self.view.load().ports.len())
            .field("default_mode", &self.default_mode)
            .finish_non_exhaustive()
    }
}

/// True for a name the kernel could give an interface.
/// How long re-attaching a port waits for its old device to close.
pub const RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Parses a `--mode` value.
pub fn parse_mode(s: &str) -> Result<XdpMode, DaemonError> {
    s.parse::<XdpMode>()
        .map_err(|_| DaemonError::InvalidMode(s.into()))
}

impl Daemon {
    /// A daemon over `dp` with no ports; devices are opened by `opener`,
    /// in `default_mode` unless a request names one.
    pub fn new(dp: Arc<Datapath>, opener: Box<dyn PortOpener>, default_mode: XdpMode) -> Self {
        Daemon {
            dp,
            opener,
            default_mode,
            config: OrderedMutex::new(LockLevel::Config, PortConfig::default()),
            view: ArcSwap::from_pointee(View::default()),
            pmds: OnceLock::new(),
        }
    }

    /// The datapath.
    pub fn datapath(&self) -> &Arc<Datapath> {
        &self.dp
    }

    /// The current published port configuration.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Tells `stats` about the PMD threads (their counters and CPUs).
    /// Only the first call counts.
    pub fn set_pmds(&self, shared: Vec<Arc<PmdShared>>, cpus: Vec<usize>) {
        let _ = self.pmds.set(PmdView {
            shared,
            cpus,
            started: BusyMeter::start(),
        });
    }

    fn publish(&self, cfg: &PortConfig) {
        self.view.store(Arc::new(View {
            ports: cfg.ports.clone(),
        }));
    }

    // ---------------------------------------------------------------- ports

    /// `port add`: opens `ifname` and adds it as `ofport` (the lowest free
    /// one when `None`). On any error nothing is configured.
    pub fn port_add(
        &self,
        ifname: &str,
        mode: Option<XdpMode>,
        ofport: Option<u32>,
    ) -> Result<PortAdded, DaemonError> {
        let mut cfg = self.config.lock();
        let ofport = self.configure_locked(&mut cfg, ifname, mode, ofport)?;
        if let Err(e) = self.attach_locked(&mut cfg, ofport) {
            Self::unconfigure_locked(&mut cfg, ofport);
            return Err(DaemonError::Attach {
                name: ifname.into(),
                reason: e.to_string(),
            });
        }
        self.publish(&cfg);
        let xdp = cfg.ports[&ofport]
            .device
            .as_ref()
            .and_then(|d| d.xdp_mode())
            .map_or_else(String::new, |m| m.to_string());
        tracing::info!(port = ifname, ofport, mode = %xdp, "port added");
        Ok(PortAdded {
            name: ifname.into(),
            ofport,
            mode: xdp,
        })
    }

    /// Configures `ifname` as a port that attaches when its interface
    /// exists (the start-up path: ports from the config file or `--port`).
    /// Attaches now if it can; an interface that does not exist yet is not
    /// an error (the port waits, detached), any other failure is.
    pub fn port_configure(
        &self,
        ifname: &str,
        mode: Option<XdpMode>,
        ofport: Option<u32>,
    ) -> Result<PortNo, DaemonError> {
        let mut cfg = self.config.lock();
        let ofport = self.configure_locked(&mut cfg, ifname, mode, ofport)?;
        match self.attach_locked(&mut cfg, ofport) {
            Ok(()) => {}
            Err(AttachError::NoDevice(e)) => {
                tracing::warn!(port = ifname, ofport, "{e}: the port waits for it");
                if let Some(p) = cfg.ports.get_mut(&ofport) {
                    p.error = Some(e);
                }
            }
            Err(AttachError::Failed(e)) => {
                Self::unconfigure_locked(&mut cfg, ofport);
                return Err(DaemonError::Attach {
                    name: ifname.into(),
                    reason: e,
                });
            }
        }
        self.publish(&cfg);
        Ok(ofport)
    }

    /// Claims an ofport for `ifname` and records the port, detached, in
    /// the tracker and the view (not yet published).
    fn configure_locked(
        &self,
        cfg: &mut PortConfig,
        ifname: &str,
        mode: Option<XdpMode>,
        ofport: Option<u32>,
    ) -> Result<PortNo, DaemonError> {
        let ofport = self.claim_ofport(cfg, ifname, ofport)?;
        cfg.tracker.configure(ifname, ofport);
        cfg.ports.insert(
            ofport,
            ViewPort {
                name: ifname.into(),
                mode: mode.unwrap_or(self.default_mode),
                device: None,
                error: None,
            },
        );
        Ok(ofport)
    }

    /// Undoes [`Self::configure_locked`] for a port that did not attach.
    fn unconfigure_locked(cfg: &mut PortConfig, ofport: PortNo) {
        cfg.ports.remove(&ofport);
        cfg.tracker.forget(ofport);
    }

    fn claim_ofport(
        &self,
        cfg: &PortConfig,
        ifname: &str,
        ofport: Option<u32>,
    ) -> Result<PortNo, DaemonError> {
        if !valid_ifname(ifname) {
            return Err(DaemonError::InvalidName(ifname.into()));
        }
        if let Some((&o, _)) = cfg.ports.iter().find(|(_, p)| p.name == ifname) {
            return Err(DaemonError::AlreadyConfigured {
                name: ifname.into(),
                ofport: o,
            });
        }
        match ofport {
            Some(o) => {
                let o16 = PortNo::try_from(o)
                    .ok()
                    .filter(|&p| p != 0 && p <= OFPP_MAX)
                    .ok_or(DaemonError::InvalidOfport(o))?;
                match cfg.ports.get(&o16) {
                    Some(p) => Err(DaemonError::OfportInUse {
                        ofport: o16,
                        name: p.name.clone(),
                    }),
                    None => Ok(o16),
                }
            }
            None => (1..=OFPP_MAX)
                .find(|o| !cfg.ports.contains_key(o))
                .ok_or(DaemonError::NoFreeOfport),
        }
    }

    /// Opens the device of configured port `ofport` and adds it to the
    /// datapath with the state it was opened with; tells the tracker. On
    /// error the port is detached (tracker and datapath untouched).
    fn attach_locked(&self, cfg: &mut PortConfig, ofport: PortNo) -> Result<(), AttachError> {
        let Some(p) = cfg.ports.get(&ofport) else {
            return Err(AttachError::Failed(format!(
                "ofport {ofport} is not configured"
            )));
        };
        let (name, mode) = (p.name.clone(), p.mode);
        let dev = self.opener.open(&name, mode)?;
        let l = dev.link.clone();
        let added = self.dp.add_port(ofport, dev.vport.clone()).and_then(|()| {
            self.dp.set_admin_up(ofport, l.admin_up)?;
            // `running` as the datapath means it: see `datapath_view`.
            self.dp.set_running(ofport, l.admin_up)?;
            self.dp.set_carrier(ofport, l.carrier)
        });
        if let Err(e) = added {
            // Undo a half-done add; `dev` drops: sockets close, program
            // detaches.
            let _ = self.dp.del_port(ofport);
            return Err(AttachError::Failed(e.to_string()));
        }
        // Events that arrived while the device was being opened wait in
        // the monitor's socket behind this lock; the tracker hands back
        // anything it saw while `Attaching`.
        let act = cfg.tracker.attached(ofport, l.ifindex);
        if let Err(e) = apply(&self.dp, &act) {
            tracing::warn!(port = %name, error = %e, "applying link state");
        }
        log_attached(&l, ofport, dev.xdp_mode());
        if let Some(p) = cfg.ports.get_mut(&ofport) {
            p.device = Some(Arc::new(dev));
            p.error = None;
        }
        Ok(())
    }

    /// [`Daemon::detach_locked`], then waits (at most [`RELEASE_TIMEOUT`])
    /// until the old device is really closed: the datapath's deferred
    /// teardown has dropped its handle (sockets closed) and no published
    /// view holds it (BPF link closed). Re-opening the *same* interface
    /// before that fails — its queues still have bound sockets (EBUSY) and
    /// its program a live link ("in use") — which is what a port the
    /// datapath deleted on ENETDOWN met when the link came back up.
    fn detach_and_release(&self, cfg: &mut PortConfig, ofport: PortNo) {
        let old = cfg.ports.get(&ofport).and_then(|p| {
            p.device
                .as_ref()
                .map(|d| (Arc::downgrade(d), Arc::downgrade(&d.vport)))
        });
        self.detach_locked(cfg, ofport);
        self.publish(cfg);
        let Some((dev, vport)) = old else { return };
        let t0 = std::time::Instant::now();
        while dev.strong_count() + vport.strong_count() > 0 {
            if t0.elapsed() >= RELEASE_TIMEOUT {
                tracing::warn!(ofport, waited = ?t0.elapsed(), "old device still open; re-attaching anyway");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        tracing::debug!(ofport, waited = ?t0.elapsed(), "old device closed");
    }

    /// Whether a configured port waits for a retry: detached with an
    /// error (its interface missing, or an attach that failed). The link
    /// watcher then re-reads every link now and then
    /// ([`links::RETRY`]), which re-attaches it once it can.
    pub fn has_detached_ports(&self) -> bool {
        self.view()
            .ports
            .values()
            .any(|p| p.device.is_none() && p.error.is_some())
    }

    /// Runs the deletion protocol for `ofport`'s device (if attached) and
    /// forgets the device; the port stays configured.
    fn detach_locked(&self, cfg: &mut PortConfig, ofport: PortNo) {
        match self.dp.del_port(ofport) {
            Ok(_) | Err(DatapathError::NoSuchPort(_)) => {}
            Err(e) => tracing::warn!(ofport, error = %e, "deleting port"),
        }
        if let Some(p) = cfg.ports.get_mut(&ofport) {
            // The datapath keeps its own handle on the vport until the
            // reclaimer tears it down; ours can go now.
            p.device = None;
        }
    }

    /// `port del NAME|OFPORT`.
    pub fn port_del(&self, port: &str) -> Result<PortDeleted, DaemonError> {
        let mut cfg = self.config.lock();
        let by_no = port
            .parse::<PortNo>()
            .ok()
            .filter(|o| cfg.ports.contains_key(o));
        let ofport = by_no
            .or_else(|| {
                cfg.ports
                    .iter()
                    .find(|(_, p)| p.name == port)
                    .map(|(&o, _)| o)
            })
            .ok_or_else(|| DaemonError::NoSuchPort(port.into()))?;
        self.detach_locked(&mut cfg, ofport);
        cfg.tracker.forget(ofport);
        let p = cfg.ports.remove(&ofport);
        self.publish(&cfg);
        let name = p.map(|p| p.name).unwrap_or_default();
        tracing::info!(port = %name, ofport, "port deleted");
        Ok(PortDeleted { name, ofport })
    }

    /// Deletes every port (shutdown).
    pub fn port_del_all(&self) {
        let mut cfg = self.config.lock();
        let all: Vec<PortNo> = cfg.ports.keys().copied().collect();
        for o in all {
            self.detach_locked(&mut cfg, o);
            cfg.tracker.forget(o);
            cfg.ports.remove(&o);
        }
        self.publish(&cfg);
    }

    /// `port list`: every configured port with its state.
    pub fn port_list(&self) -> Vec<PortRow> {
        let view = self.view.load();
        let infos = self.dp.port_list();
        view.ports
            .iter()
            .map(|(&ofport, p)| {
                let info = infos.iter().find(|i| i.ofport == ofport);
                let dev = p.device.as_ref();
                PortRow {
                    name: p.name.clone(),
                    ofport,
                    attached: dev.is_some() && info.is_some(),
                    mode: p.mode.to_string(),
                    xdp: dev.and_then(|d| d.xdp_mode()).map(|m| m.to_string()),
                    ifindex: dev.map(|d| d.link.ifindex),
                    registered: info.is_some_and(|i| i.registered),
                    admin_up: info.is_some_and(|i| i.admin_up),
                    running: info.is_some_and(|i| i.running),
                    carrier: info.is_some_and(|i| i.carrier),
                    tx_queues: info.map_or(0, |i| i.tx_queues),
                    error: p.error.clone(),
                }
            })
            .collect()
    }

    // ----------------------------------------------------------- link events

    /// One link-monitor event (not `Resync`: call [`Daemon::resync`]).
    pub fn on_link_event(&self, ev: &LinkEvent) {
        let ev = match ev {
            LinkEvent::Changed(s) => LinkEvent::Changed(datapath_view(s)),
            other => other.clone(),
        };
        let mut cfg = self.config.lock();
        let act = cfg.tracker.on_event(&ev);
        tracing::debug!(event = ?ev, action = ?act, "link event");
        if act != PortAction::None {
            self.carry_out(&mut cfg, act);
            self.publish(&cfg);
        }
    }

    /// Diffs a full dump of the interfaces against the configuration.
    pub fn resync(&self, dump: &[LinkState]) {
        let dump: Vec<LinkState> = dump.iter().map(datapath_view).collect();
        let mut cfg = self.config.lock();
        let acts = cfg.tracker.resync(&dump);
        let mut changed = !acts.is_empty();
        for a in acts {
            self.carry_out(&mut cfg, a);
        }
        // Ports whose interface is gone were detached above; the rest of
        // the lost ones are still there.
        for ofport in self.lost_ports(&cfg.ports) {
            self.reattach_lost(&mut cfg, ofport);
            changed = true;
        }
        if changed {
            self.publish(&cfg);
        }
    }

    fn carry_out(&self, cfg: &mut OrderedGuard<'_, PortConfig>, act: PortAction) {
        match act {
            PortAction::Update { ofport, .. } => match apply(&self.dp, &act) {
                Ok(_) => {}
                Err(DatapathError::NoSuchPort(_)) => self.reattach_lost(cfg, ofport),
                Err(e) => tracing::warn!(ofport, error = %e, "applying link state"),
            },
            PortAction::Remove { ofport } => {
                let name = cfg.ports.get(&ofport).map_or("", |p| p.name.as_str());
                tracing::info!(port = %name, ofport, "interface gone: port detached");
                self.detach_locked(cfg, ofport);
            }
            PortAction::Reattach { name } => {
                if let Some(ofport) = cfg.tracker.ofport(&name) {
                    self.reattach(cfg, ofport);
                }
            }
            PortAction::Renamed { ofport, old, new } => {
                tracing::info!(ofport, %old, %new, "interface renamed");
                if let Some(p) = cfg.ports.get_mut(&ofport) {
                    p.name = new;
                }
            }
            PortAction::None => {}
        }
    }

    /// The datapath deleted attached port `ofport` by itself (a PMD's send
    /// found the device gone: ENETDOWN when the carrier dropped under it,
    /// ENXIO) but the interface is still there: open it again.
    fn reattach_lost(&self, cfg: &mut PortConfig, ofport: PortNo) {
        let Some(name) = cfg.tracker.name(ofport).map(str::to_owned) else {
            // Not tracked: nothing to re-open; forget the device so the
            // port is not found lost again at every poll.
            self.detach_locked(cfg, ofport);
            return;
        };
        tracing::warn!(port = %name, ofport, "port vanished from the datapath; re-attaching");
        self.detach_and_release(cfg, ofport);
        cfg.tracker.attach_failed(ofport);
        self.reattach(cfg, ofport);
    }

    /// Ports this daemon holds a device for that the datapath no longer
    /// has (see [`Daemon::reattach_lost`]).
    fn lost_ports(&self, ports: &BTreeMap<PortNo, ViewPort>) -> Vec<PortNo> {
        ports
            .iter()
            .filter(|(&o, p)| {
                p.device.is_some() && self.dp.port_table().with_port(o, |_| ()).is_none()
            })
            .map(|(&o, _)| o)
            .collect()
    }

    /// Whether the datapath deleted an attached port by itself. No link
    /// event need follow (the carrier can come back before the PMD's
    /// report is handled), so the link watcher checks this on every poll
    /// and resyncs: [`Daemon::resync`] re-attaches such a port if its
    /// interface is in the dump.
    pub fn has_lost_ports(&self) -> bool {
        !self.lost_ports(&self.view().ports).is_empty()
    }

    fn reattach(&self, cfg: &mut PortConfig, ofport: PortNo) {
        match self.attach_locked(cfg, ofport) {
            Ok(()) => tracing::info!(ofport, "port re-attached"),
            Err(e) => {
                tracing::warn!(ofport, error = %e, "re-attaching port");
                cfg.tracker.attach_failed(ofport);
                if let Some(p) = cfg.ports.get_mut(&ofport) {
                    p.error = Some(e.to_string());
                }
            }
        }
    }

    // ----------------------------------------------------------------- flows

    /// `flow add`: one flow, or a flow file's text (one flow per line, `#`
    /// comments, blank lines). Every line is parsed before anything is
    /// installed; a bad line installs nothing. Returns how many flows were
    /// added. Takes only the flow table's lock.
    pub fn flow_add(&self, text: &str) -> Result<usize, DaemonError> {
        let view = self.view.load();
        let resolve = |n: &str| view.ofport_of(n);
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
            .filter(|(_, l)| {
                let t = l.trim_start();
                !t.is_empty() && !t.starts_with('#')
            })
            .collect();
        let file = text.trim_end().contains('\n');
        let mut specs: Vec<RuleSpec> = Vec::with_capacity(lines.len());
        for (n, line) in lines {
            let spec = parse_flow(line, &resolve).map_err(|err| {
                if file {
                    DaemonError::FlowLine { line: n, err }
                } else {
                    DaemonError::Flow(err)
                }
            })?;
            specs.push(spec);
        }
        if specs.is_empty() {
            return Err(DaemonError::NoFlows);
        }
        Ok(self.dp.flow_table().add_batch(specs))
    }

    /// `flow del ['MATCH'] [--strict]`: returns how many flows went.
    pub fn flow_del(&self, filter: Option<&str>, strict: bool) -> Result<usize, DaemonError> {
        let view = self.view.load();
        let resolve = |n: &str| view.ofport_of(n);
        let f =
            parse_flow_filter(filter.unwrap_or(""), &resolve, strict).map_err(DaemonError::Flow)?;
        let table = self.dp.flow_table();
        if f.cookie_mask == 0 {
            return Ok(table.delete(&f.matcher, f.priority));
        }
        // A cookie condition: pick the rules, then remove each exactly.
        let victims: Vec<_> = table
            .rules()
            .into_iter()
            .filter(|r| f.selects(r.spec()))
            .collect();
        Ok(victims
            .iter()
            .map(|r| table.delete(r.matcher(), Some(r.priority())))
            .sum())
    }

    /// `flow dump`: every flow with its counters (priority descending).
    pub fn flow_dump(&self) -> Vec<FlowRow> {
        self.dp
            .flow_table()
            .rules()
            .iter()
            .map(|r| {
                let s = r.spec();
                FlowRow {
                    priority: s.priority,
                    cookie: s.cookie,
                    matcher: format_match(&s.matcher),
                    actions: format_actions(&s.actions),
                    n_packets: r.n_packets(),
                    n_bytes: r.n_bytes(),
                    duration_secs: (r.duration().as_secs_f64() * 1000.0).round() / 1000.0,
                    idle_timeout: s.idle_timeout,
                    hard_timeout: s.hard_timeout,
                }
            })
            .collect()
    }

    /// `fdb show`: the learned stations.
    pub fn fdb(&self) -> Vec<FdbRow> {
        let mut v: Vec<FdbRow> = self
            .dp
            .fdb()
            .into_iter()
            .map(|e| FdbRow {
                mac: fmt_mac(&e.mac),
                vlan: e.vlan,
                port: e.port,
                age_secs: e.age_secs,
            })
            .collect();
        v.sort_by(|a, b| (a.port, a.vlan, &a.mac).cmp(&(b.port, b.vlan, &b.mac)));
        v
    }

    // ------------------------------------------------------------ inspection

    /// `stats`: DESIGN.md's `stats --json` report, as of now.
    pub fn stats(&self) -> StatsReport {
        let view = self.view.load();
        let pmds = self
            .pmds
            .get()
            .map(|p| {
                let now = BusyMeter::start();
                p.shared
                    .iter()
                    .enumerate()
                    .map(|(id, s)| PmdReport {
                        id,
                        cpu: p.cpus.get(id).copied(),
                        rx_packets: s.rx_packets(),
                        tx_packets: s.tx_packets(),
                        drops: s.drops(),
                        busy_pct: p.started.busy_pct(&now, &format!("pmd{id}")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut r = StatsReport::collect(&self.dp, pmds, |info| {
            view.ports
                .get(&info.ofport)
                .and_then(|p| p.device.as_ref())
                .map(|d| d.extra())
                .unwrap_or_default()
        });
        // Names follow renames (the vport keeps the name it was opened by).
        for p in &mut r.ports {
            if let Some(v) = view.ports.get(&p.ofport) {
                p.name.clone_from(&v.name);
            }
        }
        r
    }

    /// `trace 'FLOW'`: what the switch would do with that packet now.
    pub fn trace(&self, flow: &str) -> Result<TraceReport, DaemonError> {
        let view = self.view.load();
        let resolve = |n: &str| view.ofport_of(n);
        let key = parse_packet(flow, &resolve).map_err(DaemonError::Flow)?;
        let t = self.dp.trace_key(&key);
        Ok(TraceReport {
            rule: t.rule.as_ref().map(|r| format_flow(r.spec())),
            actions: t
                .actions
                .iter()
                .map(|a| format_actions(std::slice::from_ref(a)))
                .collect(),
            outputs: t.outputs.clone(),
            dropped: t.dropped.map(|r| r.as_str().to_owned()),
            output_drops: t
                .output_drops
                .iter()
                .map(|&(p, r)| (p, r.as_str().to_owned()))
                .collect(),
        })
    }
}

impl Handler for Daemon {
    fn handle(&self, req: Request) -> Result<Reply, String> {
        let cmd = req.name();
        let t0 = std::time::Instant::now();
        let r = self.answer(req);
        tracing::debug!(
            cmd,
            ok = r.is_ok(),
            took_us = t0.elapsed().as_micros() as u64,
            "request handled"
        );
        r
    }
}

impl Daemon {
    fn answer(&self, req: Request) -> Result<Reply, String> {
        let e = |e: DaemonError| e.to_string();
        match req {
            Request::Ping => Ok(Reply::new(&"pong", "pong")),
            Request::PortAdd {
                ifname,
                mode,
                ofport,
            } => {
                let mode = mode.as_deref().map(parse_mode).transpose().map_err(e)?;
                let r = self.port_add(&ifname, mode, ofport).map_err(e)?;
                let text = render::port_added(&r);
                Ok(Reply::new(&r, text))
            }
            Request::PortDel { port } => {
                let r = self.port_del(&port).map_err(e)?;
                Ok(Reply::new(
                    &r,
                    format!("deleted port {} (ofport {})", r.name, r.ofport),
                ))
            }
            Request::PortList => {
                let rows = self.port_list();
                let text = render::port_list(&rows);
                Ok(Reply::new(&rows, text))
            }
            Request::FlowAdd { flows } => {
                let n = self.flow_add(&flows).map_err(e)?;
                Ok(Reply::new(
                    &serde_json::json!({ "added": n }),
                    format!("added {n} flow{}", if n == 1 { "" } else { "s" }),
                ))
            }
            Request::FlowDel { filter, strict } => {
                let n = self.flow_del(filter.as_deref(), strict).map_err(e)?;
                Ok(Reply::new(
                    &serde_json::json!({ "deleted": n }),
                    format!("deleted {n} flow{}", if n == 1 { "" } else { "s" }),
                ))
            }
            Request::FlowDump => {
                let text = render::flow_dump(&self.dp);
                Ok(Reply::new(&self.flow_dump(), text))
            }
            Request::FdbShow => {
                let rows = self.fdb();
                let text = render::fdb(&rows);
                Ok(Reply::new(&rows, text))
            }
            Request::Stats => {
                let r = self.stats();
                let mut text = Vec::new();
                let _ = r.write_table(&mut text);
                Ok(Reply::new(&r, String::from_utf8_lossy(&text).into_owned()))
            }
            Request::Trace { flow } => {
                let t = self.trace(&flow).map_err(e)?;
                let text = render::trace(&flow, &t, self.dp.flow_table().is_empty());
                Ok(Reply::new(&t, text))
            }
        }
    }
}

/// A link's state as the datapath's port flags mean it. The datapath's
/// `running` is the kernel's `netif_running()` — the device is open — the
/// condition the upstream OVS fix checks beside `netif_carrier_ok()`
/// (DESIGN.md failure 1). The `IFF_RUNNING` flag rtnetlink reports is
/// something else, the RFC 2863 oper state, which the kernel derives from
/// the carrier: it drops with it (a veth whose peer goes down is
/// `LOWERLAYERDOWN`, not RUNNING), so taking it as `running` would count
/// every carrier loss as `port_down` and `no_carrier` would never be seen.
/// An open device is exactly an administratively up one (`IFF_UP` is set
/// by `dev_open` and cleared by `dev_close`, which unregistering runs), so
/// `running` is taken from `admin_up`.
/// The "port attached" log line, and the hints a user needs about the
/// interface: a misnumbering generic mode, the veth checksum rule
/// ([`crate::run`] "checksums"), a link that is not up.
fn log_attached(l: &LinkInfo, ofport: PortNo, mode: Option<XdpMode>) {
    let mode_s = mode.map_or_else(|| "none".to_owned(), |m| m.to_string());
    tracing::info!(
        port = %l.name,
        ofport,
        ifindex = l.ifindex,
        mode = %mode_s,
        rx_queues = l.rx_queues,
        tx_queues = l.tx_queues,
        mtu = l.mtu,
        admin_up = l.admin_up,
        carrier = l.carrier,
        "port attached"
    );
    if mode == Some(XdpMode::Generic) && l.rx_queues > 1 {
        tracing::warn!(
            port = %l.name,
            "generic XDP on a multi-queue interface may misnumber rx queues (veth does); prefer --mode native"
        );
    }
    if mode.is_some() && crate::run::is_paired(&l.name, l.ifindex) {
        tracing::info!(
            port = %l.name,
            "port is one end of a pair (veth): its peer must compute checksums itself (ethtool -K PEER tx off), or TCP/UDP through the switch fails"
        );
    }
    if !(l.admin_up && l.carrier) {
        tracing::warn!(port = %l.name, "interface is not up with carrier: output to it is dropped until it is");
    }
}

/// The link state as the datapath's output check reads it. `running` is
/// the kernel's `netif_running()` — the device was opened (admin up) —
/// which is what the upstream fix tests next to `netif_carrier_ok()`, not
/// the IFF_RUNNING flag (DESIGN.md words it as IFF_RUNNING): the kernel
/// clears IFF_RUNNING together with carrier, so taking it would count a
/// peer going down as `not_running` instead of `no_carrier`, and carrier
/// is checked on its own anyway.
fn datapath_view(s: &LinkState) -> LinkState {
    LinkState {
        running: s.admin_up,
        ..s.clone()
    }
}

/// `aa:bb:cc:dd:ee:ff`.
fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
