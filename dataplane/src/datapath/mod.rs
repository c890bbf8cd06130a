//! The datapath: ports, the flow table and the MAC table, and the PMD
//! pipeline that moves packets between them.
//!
//! # What
//! A [`Datapath`] is the shared state of one switch:
//! * the port table, ofport → [`Vport`] plus that port's counters, and the
//!   rcu domain its deleted ports are reclaimed through;
//! * the stall [`Watchdog`] the PMD threads beat;
//! * the OpenFlow table ([`FlowTable`]);
//! * the MAC learning table ([`MacTable`]) behind the `normal` action;
//! * a [`Clock`] (real time, or a manual clock that tests advance).
//!
//! A [`Pmd`] ("poll-mode driver", one per forwarding thread) owns everything
//! the packet path writes: an exact-match cache, a buffer pool, per-port tx
//! batches and counters. [`Pmd::process_batch`] is the packet walk of
//! DESIGN.md, in the order of OVS's `dp_netdev_input__`:
//!
//! ```text
//! batch ─ extract ─ EMC ─(miss)─ classifier snapshot ─ actions ─ per-port tx batches ─ flush
//! ```
//!
//! With no rule installed the switch is a learning bridge: every packet runs
//! `normal`. With rules installed, a table miss drops the packet (`no_match`).
//!
//! # Invariants
//! * **Accounting.** Every received packet ends as at least one transmitted
//!   copy or is counted under exactly one
//!   [`DropReason`](crate::stats::DropReason); every extra copy an action
//!   list makes (flood, several outputs) is likewise transmitted or counted.
//!   So, per PMD and summed over ports, `rx + extra_copies == tx + drops` at
//!   every batch boundary, and per
//!   ingress port `rx_packets + rx_copies == rx_delivered + drops`
//!   ([`PortStats::balanced`], [`PmdStats::balanced`]).
//! * **Buffers.** A packet buffer is always in exactly one place: a PMD's
//!   pool, a batch, or a port's ring. Dropping a packet returns its buffer to
//!   the pool; nothing on the packet path allocates.
//! * **Output.** A packet leaves by port P only if P is in the map and
//!   [`PortState::output_check`](crate::vport::PortState::output_check)
//!   passes (registered, up, running, carrier, ≥ 1 tx queue), the frame fits
//!   P's MTU, and P's `send` accepts it within a bounded number of retries.
//!   The tx queue is `hash % n` with `n > 0` checked first: no loop depends
//!   on a device field.
//!
//! # Ports and their lifecycle
//! * Ports live in a [`PortTable`] ([`crate::port_table`]): immutable maps
//!   published by `arc-swap`, read by PMDs through their rcu
//!   [`Participant`](crate::rcu::Participant) once per batch; a PMD announces
//!   a quiescent point at every batch boundary and goes offline when it
//!   sleeps, never holding a snapshot across either. The port table's
//!   [`PortCounters`] are the only per-port
//!   counters.
//! * [`Datapath::del_port`] runs DESIGN.md's five steps: `registered =
//!   false`, unlink, PMDs drop tx batches still addressed to the port when
//!   they flush (a tx batch names its port by [`PortRef`] and is resolved
//!   again), teardown by the reclaimer after a grace period, and the destroy
//!   hook takes back the buffers the device still held
//!   ([`Vport::release_buffers`]) into a spare stash idle PMDs refill their
//!   pools from, and folds the port's final counters into
//!   [`Datapath::retired`], so totals over live and retired ports stay exact.
//! * A send that returns `TxError::Gone` (ENETDOWN/ENXIO) is never retried:
//!   the PMD sets `registered = false` and reports the port through a
//!   lock-free channel; the control side deletes it
//!   ([`Datapath::process_port_requests`], run by the housekeeping thread of
//!   [`PmdThreads`], or by tests directly). A report for a port re-added
//!   since is ignored (generation mismatch).
//!
//! # Locking
//! * Port writers take only `ports` (inside [`PortTable`]); flow writers
//!   only `flow_table`. A port deletion flushes the port's MAC entries after
//!   releasing `ports` (`fdb` alone). Trace reads the map under `ports` and
//!   then the flow and MAC tables (downward). Lock order: `config` → `ports`
//!   → `flow_table` → `fdb`, checked in debug builds.
//! * PMDs hold no lock. Shared counters are relaxed atomics written once per
//!   batch; "device gone" reports go through an mpsc channel whose sending
//!   side is lock-free.
//! * [`Datapath::reclaim`] and [`Datapath::process_port_requests`] sit above
//!   the hierarchy (they run destructors / take `ports`): never call them
//!   while holding a hierarchy lock.
//!
//! # Why
//! Per-batch snapshots make every lookup in the batch see one consistent
//! port map and rule set, cost one atomic load each, and bound how long an
//! old map can live to one batch — the property the deletion protocol needs.

mod pmd;
// PMD threads run on real OS threads with a reclaimer thread; a loom build
// models only the reclamation protocol (tests/loom_reclaim.rs), not them.
#[cfg(not(loom))]
mod threads;
mod trace;

pub use crate::port_table::{PortEntry, PortInfo, PortMap, PortRef, PortStats};
#[cfg(feature = "legacy-semantics")]
pub use pmd::LEGACY_LOOP_ESCAPE;
pub use pmd::{Pmd, PmdConfig, PmdShared, PmdStats, TX_RETRIES};
#[cfg(not(loom))]
pub use threads::{Assignment, Backoff, IdleStats, PmdThreads, PmdThreadsConfig, RxqRef};
pub use trace::Trace;

use crate::classifier::{FlowTable, Rule};
use crate::flow_key::PortNo;
use crate::learning::{FdbEntry, MacTable};
use crate::packet::{Packet, PacketPool};
use crate::port_table::{DestroyHook, PortCounters, PortTable, PortTableError};
use crate::rcu::Rcu;
use crate::vport::Vport;
use crate::watchdog::{Watchdog, WatchdogConfig, WatchdogStats};
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The largest ofport a port may have (the port table's
/// [`MAX_OFPORT`](crate::port_table::MAX_OFPORT)); numbers from OpenFlow's
/// `OFPP_MAX` up are reserved (`in_port`, `flood`, `local`, ...), 0 is
/// invalid.
pub const OFPP_MAX: PortNo = crate::port_table::MAX_OFPORT;

/// Why a port operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatapathError {
    /// The ofport is 0 or above [`OFPP_MAX`].
    #[error("ofport {0} is not a valid port number (1..={max})", max = OFPP_MAX)]
    InvalidOfport(PortNo),
    /// Another port already has this ofport.
    #[error("ofport {0} is already in use")]
    OfportInUse(PortNo),
    /// No port has this ofport.
    #[error("no port with ofport {0}")]
    NoSuchPort(PortNo),
    /// Another port already has this interface name.
    #[error("a port named {0} already exists")]
    NameInUse(String),
    /// The device is already unregistering.
    #[error("port {0} is not registered")]
    NotRegistered(String),
}

/// The switch's time source. Rules' idle/hard timeouts and MAC aging read
/// it once per batch. A manual clock stands still until advanced, so tests
/// can age entries without sleeping.
#[derive(Debug)]
pub struct Clock {
    base: Instant,
    offset_ns: AtomicU64,
    manual: bool,
}

impl Clock {
    /// Real time.
    pub fn system() -> Self {
        Clock {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
            manual: false,
        }
    }

    /// A clock that only moves when [`Clock::advance`] is called.
    pub fn manual() -> Self {
        Clock {
            manual: true,
            ..Clock::system()
        }
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        let t = if self.manual {
            self.base
        } else {
            Instant::now()
        };
        t + Duration::from_nanos(self.offset_ns.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `d` (either kind of clock).
    pub fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Whole seconds from the clock's creation to `t`: the MAC table's time
    /// scale.
    #[inline]
    pub fn secs(&self, t: Instant) -> u32 {
        u32::try_from(t.saturating_duration_since(self.base).as_secs()).unwrap_or(u32::MAX)
    }
}

/// How a [`Datapath`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Stations the MAC table holds.
    pub mac_capacity: usize,
    /// Seconds before an unseen station is forgotten.
    pub mac_aging_secs: u32,
    /// Use a manual clock (tests) instead of real time.
    pub manual_clock: bool,
    /// Most PMDs (rcu participants) that may exist at once.
    pub max_pmds: usize,
    /// Stall watchdog timing.
    pub watchdog: WatchdogConfig,
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            mac_capacity: MacTable::DEFAULT_CAPACITY,
            mac_aging_secs: MacTable::DEFAULT_AGING_SECS,
            manual_clock: false,
            max_pmds: crate::rcu::DEFAULT_MAX_PARTICIPANTS,
            watchdog: WatchdogConfig::default(),
        }
    }
}

/// Totals over the ports that have been deleted and torn down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetiredPorts {
    /// Ports torn down (destroy hook run).
    pub ports: u64,
    /// Their final counters, summed.
    pub stats: PortStats,
    /// Buffers their devices still held at teardown, handed back then
    /// (deletion step 5) to the spare stash PMDs refill their pools from.
    pub buffers_returned: u64,
}

#[derive(Default)]
struct Retired {
    ports: AtomicU64,
    counters: PortCounters,
    buffers: AtomicU64,
    /// Buffers returned by torn-down ports, waiting for a PMD whose pool is
    /// short. A leaf lock: the reclaimer holds it while a teardown hands
    /// buffers over; an idle PMD only `try_lock`s it (never waits).
    spare: Mutex<Vec<Packet>>,
}

/// One switch: ports, flow table, MAC table (see the module docs).
pub struct Datapath {
    ports: PortTable,
    flows: FlowTable,
    macs: MacTable,
    clock: Clock,
    watchdog: Watchdog,
    retired: Arc<Retired>,
    /// "Device gone" reports from PMDs (lock-free on the sending side).
    gone_tx: Sender<PortRef>,
    gone_rx: Mutex<Receiver<PortRef>>,
}

impl core::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Datapath")
            .field("ports", &self.ports)
            .field("flows", &self.flows)
            .field("macs", &self.macs)
            .finish()
    }
}

impl Default for Datapath {
    fn default() -> Self {
        Datapath::new()
    }
}

impl Datapath {
    /// An empty switch with default MAC table settings and real time.
    pub fn new() -> Self {
        Datapath::with_config(DatapathConfig::default())
    }

    /// An empty switch.
    pub fn with_config(cfg: DatapathConfig) -> Self {
        let retired = Arc::new(Retired::default());
        let r = retired.clone();
        let hook: DestroyHook = Arc::new(move |e: &PortEntry| {
            // Deletion step 5, in the reclaimer: no PMD can reach the port.
            let mut spare = r.spare.lock().unwrap_or_else(|p| p.into_inner());
            let buffers = e.vport().release_buffers(&mut |p| spare.push(p));
            drop(spare);
            r.counters.add_stats(&e.counters().snapshot());
            r.buffers.fetch_add(buffers, Ordering::Relaxed);
            r.ports.fetch_add(1, Ordering::Release);
        });
        let (gone_tx, gone_rx) = channel();
        Datapath {
            ports: PortTable::with_destroy_hook(Rcu::with_capacity(cfg.max_pmds), hook),
            flows: FlowTable::new(),
            macs: MacTable::new(cfg.mac_capacity, cfg.mac_aging_secs),
            clock: if cfg.manual_clock {
                Clock::manual()
            } else {
                Clock::system()
            },
            watchdog: Watchdog::new(cfg.watchdog),
            retired,
            gone_tx,
            gone_rx: Mutex::new(gone_rx),
        }
    }

    /// The OpenFlow table (add/delete rules here).
    pub fn flow_table(&self) -> &FlowTable {
        &self.flows
    }

    /// The MAC learning table.
    pub fn mac_table(&self) -> &MacTable {
        &self.macs
    }

    /// The clock the packet path reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The current time on the MAC table's scale (seconds).
    pub fn now_secs(&self) -> u32 {
        self.clock.secs(self.clock.now())
    }

    /// The port table (PMDs read it through their rcu participant).
    pub fn port_table(&self) -> &PortTable {
        &self.ports
    }

    /// The reclamation domain PMDs register with.
    pub fn rcu(&self) -> &Rcu {
        self.ports.rcu()
    }

    /// The stall watchdog PMD threads beat (its thread runs with
    /// [`PmdThreads`]).
    pub fn watchdog(&self) -> &Watchdog {
        &self.watchdog
    }

    /// `watchdog.stalls`, `watchdog.max_stall_ms` (for `stats`).
    pub fn watchdog_stats(&self) -> WatchdogStats {
        self.watchdog.stats()
    }

    /// Adds `port` as `ofport` and publishes the new map.
    pub fn add_port(&self, ofport: PortNo, port: Arc<dyn Vport>) -> Result<(), DatapathError> {
        if ofport == 0 || ofport > OFPP_MAX {
            return Err(DatapathError::InvalidOfport(ofport));
        }
        self.ports
            .add(port, Some(ofport))
            .map(|_| ())
            .map_err(|e| match e {
                PortTableError::OfportInUse { ofport, .. } => DatapathError::OfportInUse(ofport),
                PortTableError::NameInUse(n) => DatapathError::NameInUse(n),
                PortTableError::NotRegistered(n) => DatapathError::NotRegistered(n),
                _ => DatapathError::InvalidOfport(ofport),
            })
    }

    /// Deletes port `ofport` (DESIGN.md's five steps, [`PortTable::del`]):
    /// outputs to it drop as `port_unregistering` from now on, a map
    /// without it is published, the stations learned behind it are
    /// forgotten, and its teardown is deferred until every PMD has passed a
    /// quiescent point. Returns the port and its counters as of the
    /// unlinking. Never waits for PMDs.
    pub fn del_port(&self, ofport: PortNo) -> Result<(Arc<dyn Vport>, PortStats), DatapathError> {
        let (r, vport, last) = self
            .ports
            .with_port(ofport, |e| {
                (e.port_ref(), e.vport_handle(), e.counters().snapshot())
            })
            .ok_or(DatapathError::NoSuchPort(ofport))?;
        self.ports
            .del_ref(r)
            .map_err(|_| DatapathError::NoSuchPort(ofport))?;
        // `ports` was released above; `fdb` alone is fine.
        self.macs.flush_port(ofport);
        Ok((vport, last))
    }

    /// Sets a port's `admin_up` flag (port mod / CLI).
    pub fn set_admin_up(&self, ofport: PortNo, up: bool) -> Result<(), DatapathError> {
        self.ports
            .set_admin_up(ofport, up)
            .map_err(|_| DatapathError::NoSuchPort(ofport))
    }

    /// Sets a port's `running` flag (link monitor).
    pub fn set_running(&self, ofport: PortNo, on: bool) -> Result<(), DatapathError> {
        self.ports
            .set_running(ofport, on)
            .map_err(|_| DatapathError::NoSuchPort(ofport))
    }

    /// Sets a port's `carrier` flag (link monitor).
    pub fn set_carrier(&self, ofport: PortNo, on: bool) -> Result<(), DatapathError> {
        self.ports
            .set_carrier(ofport, on)
            .map_err(|_| DatapathError::NoSuchPort(ofport))
    }

    /// Sets a port's usable tx-queue count (0 while it unregisters).
    pub fn set_tx_queues(&self, ofport: PortNo, n: u32) -> Result<(), DatapathError> {
        self.ports
            .set_tx_queues(ofport, n)
            .map_err(|_| DatapathError::NoSuchPort(ofport))
    }

    /// A PMD found port `r` gone (a send returned [`TxError::Gone`]): it
    /// has already set `registered = false`; the deletion itself is the
    /// control side's job ([`Datapath::process_port_requests`]). Lock-free.
    ///
    /// [`TxError::Gone`]: crate::vport::TxError::Gone
    pub(crate) fn report_gone(&self, r: PortRef) {
        // The receiver lives as long as `self`: this cannot fail.
        let _ = self.gone_tx.send(r);
    }

    /// Deletes the ports PMDs reported gone (the control thread calls this
    /// periodically; [`PmdThreads`] runs it in its housekeeping thread,
    /// tests call it directly). A port reported twice, or re-added under
    /// the same ofport since, is left alone. Returns how many were deleted.
    pub fn process_port_requests(&self) -> usize {
        let reqs: Vec<PortRef> = match self.gone_rx.try_lock() {
            Ok(rx) => rx.try_iter().collect(),
            Err(_) => return 0,
        };
        let mut n = 0;
        for r in reqs {
            if self.ports.del_ref(r).is_ok() {
                self.macs.flush_port(r.ofport);
                tracing::warn!(ofport = r.ofport, "port deleted: device gone");
                n += 1;
            }
        }
        n
    }

    /// Runs the deferred teardowns whose grace period is over (the
    /// reclaimer thread's job; tests without one call this). Returns how
    /// many destructors ran.
    pub fn reclaim(&self) -> usize {
        self.ports.reclaim()
    }

    /// What the deleted-and-torn-down ports left behind.
    pub fn retired(&self) -> RetiredPorts {
        RetiredPorts {
            ports: self.retired.ports.load(Ordering::Acquire),
            stats: self.retired.counters.snapshot(),
            buffers_returned: self.retired.buffers.load(Ordering::Relaxed),
        }
    }

    /// Buffers returned by torn-down ports and not yet taken by a PMD.
    pub fn spare_buffers(&self) -> usize {
        self.retired
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Refills `pool` up to what it created from the spare stash, without
    /// waiting (an idle PMD's call; `0` if the stash is busy). Returns how
    /// many buffers moved.
    pub(crate) fn take_spare(&self, pool: &mut PacketPool) -> usize {
        let mut spare = match self.retired.spare.try_lock() {
            Ok(s) => s,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return 0,
        };
        let mut n = 0;
        while pool.available() < pool.created() {
            let Some(p) = spare.pop() else { break };
            pool.free(p);
            n += 1;
        }
        n
    }

    /// The port with `ofport`.
    pub fn port(&self, ofport: PortNo) -> Option<Arc<dyn Vport>> {
        self.ports.with_port(ofport, |e| e.vport_handle())
    }

    /// `(ofport, port)` for every port, by ofport.
    pub fn ports(&self) -> Vec<(PortNo, Arc<dyn Vport>)> {
        self.ports.map_ports(|e| (e.ofport(), e.vport_handle()))
    }

    /// Every port's state and counters (`port list`).
    pub fn port_list(&self) -> Vec<PortInfo> {
        self.ports.list()
    }

    /// The counters of port `ofport`.
    pub fn port_stats(&self, ofport: PortNo) -> Option<PortStats> {
        self.ports.with_port(ofport, |e| e.counters().snapshot())
    }

    /// The live MAC table entries, for `fdb show`.
    pub fn fdb(&self) -> Vec<FdbEntry> {
        self.macs.entries(self.now_secs())
    }

    /// Runs the timers: removes flows whose idle or hard timeout passed and
    /// reclaims aged-out MAC entries (lookups already ignore them). The
    /// housekeeping thread calls this every [`TIMER_INTERVAL`]; a switch
    /// driven by hand (tests) calls it itself. Returns the expired flows.
    pub fn run_timers(&self) -> Vec<Arc<Rule>> {
        let now = self.clock.now();
        self.macs.expire(self.clock.secs(now));
        self.flows.expire(now)
    }
}

/// How often the timers run: OpenFlow timeouts are whole seconds, so a flow
/// outlives its timeout by at most this much.
pub const TIMER_INTERVAL: Duration = Duration::from_millis(100);
