//! The datapath: ports, the flow table and the MAC table, and the PMD
//! pipeline that moves packets between them.
//!
//! # What
//! A [`Datapath`] is the shared state of one switch:
//! * the port map, ofport → [`Vport`] plus that port's counters;
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
//! # Locking and publication
//! * The port map is an immutable [`PortMap`] behind an `ArcSwap`; a PMD loads
//!   it once per batch, lock-free, and holds the guard only for that batch.
//!   Port writers ([`Datapath::add_port`], [`Datapath::del_port`]) take the
//!   `ports` mutex, build a new map and publish it. Deletion marks the port
//!   `registered = false` *before* unpublishing it, so outputs to it start
//!   dropping (`port_unregistering`) at once, and a PMD that still holds the
//!   old map re-checks the state when it flushes its tx batches at the end of
//!   the batch. (A later issue puts epoch-based deferred destruction under
//!   this; today the last `Arc` frees the port.)
//! * The flow table publishes its own snapshots (`flow_table` lock for
//!   writers); PMDs load one per batch.
//! * Lock order: `config` → `ports` → `flow_table` → `fdb`. A port deletion
//!   flushes the port's MAC entries while holding `ports` (downward); nothing
//!   here takes `ports` while holding `flow_table` or `fdb`.
//! * PMDs hold no lock. Shared counters are relaxed atomics written once per
//!   batch.
//!
//! # Why
//! Per-batch snapshots make every lookup in the batch see one consistent
//! port map and rule set, cost one atomic load each, and bound how long an
//! old map can live to one batch — the property the deletion protocol needs.

mod pmd;
mod trace;

pub use pmd::{Pmd, PmdConfig, PmdShared, PmdStats, TX_RETRIES};
pub use trace::Trace;

use crate::classifier::FlowTable;
use crate::flow_key::PortNo;
use crate::learning::{FdbEntry, MacTable};
use crate::locks::{LockLevel, OrderedMutex};
use crate::stats::{AtomicDropCounters, DropCounters};
use crate::vport::Vport;
use arc_swap::ArcSwap;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest ofport a port may have (OpenFlow `OFPP_MAX`); numbers above
/// are reserved (`in_port`, `flood`, `local`, ...), 0 is invalid.
pub const OFPP_MAX: PortNo = 0xff00;

/// Why a port operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
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
}

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            mac_capacity: MacTable::DEFAULT_CAPACITY,
            mac_aging_secs: MacTable::DEFAULT_AGING_SECS,
            manual_clock: false,
        }
    }
}

/// Per-port counters shared by all PMDs (relaxed atomics, added once per
/// batch). Ingress-side counters describe the fate of packets *received* on
/// the port; `tx_*` describe packets *transmitted* by it.
#[derive(Debug, Default)]
pub struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_copies: AtomicU64,
    rx_delivered: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drops: AtomicDropCounters,
    tx_drops: AtomicDropCounters,
}

/// A snapshot of one port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received on the port.
    pub rx_packets: u64,
    /// Bytes received on the port.
    pub rx_bytes: u64,
    /// Extra copies made of packets received here (flood, several outputs).
    pub rx_copies: u64,
    /// Transmissions (on any port) of packets received here.
    pub rx_delivered: u64,
    /// Packets transmitted by the port.
    pub tx_packets: u64,
    /// Bytes transmitted by the port.
    pub tx_bytes: u64,
    /// Drops of packets (and copies) received here, by reason: the
    /// accounting view.
    pub drops: DropCounters,
    /// Output attempts *to* this port that failed, by reason (port state,
    /// MTU, tx ring, tx error): the "why does this port not send" view.
    pub tx_drops: DropCounters,
}

impl PortStats {
    /// The per-port accounting invariant: every packet received here (and
    /// every extra copy of one) was delivered or dropped for one reason.
    pub fn balanced(&self) -> bool {
        self.rx_packets + self.rx_copies == self.rx_delivered + self.drops.total()
    }
}

impl PortCounters {
    /// A snapshot for reporting.
    pub fn snapshot(&self) -> PortStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PortStats {
            rx_packets: l(&self.rx_packets),
            rx_bytes: l(&self.rx_bytes),
            rx_copies: l(&self.rx_copies),
            rx_delivered: l(&self.rx_delivered),
            tx_packets: l(&self.tx_packets),
            tx_bytes: l(&self.tx_bytes),
            drops: self.drops.snapshot(),
            tx_drops: self.tx_drops.snapshot(),
        }
    }
}

/// One port in the map.
#[derive(Clone)]
pub struct PortEntry {
    /// Its OpenFlow port number.
    pub ofport: PortNo,
    /// The device.
    pub port: Arc<dyn Vport>,
    /// Its counters (survive republication of the map).
    pub counters: Arc<PortCounters>,
}

impl core::fmt::Debug for PortEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortEntry")
            .field("ofport", &self.ofport)
            .field("name", &self.port.name())
            .finish()
    }
}

/// An immutable port map, sorted by ofport. PMDs index their per-port state
/// by position in the map they loaded for the batch.
#[derive(Debug, Default)]
pub struct PortMap {
    entries: Box<[PortEntry]>,
}

impl PortMap {
    /// Position of `ofport` in the map.
    #[inline]
    pub fn index(&self, ofport: PortNo) -> Option<usize> {
        self.entries
            .binary_search_by_key(&ofport, |e| e.ofport)
            .ok()
    }
    /// The entry for `ofport`.
    #[inline]
    pub fn get(&self, ofport: PortNo) -> Option<&PortEntry> {
        self.index(ofport).map(|i| &self.entries[i])
    }
    /// All entries, by ofport.
    #[inline]
    pub fn entries(&self) -> &[PortEntry] {
        &self.entries
    }
    /// Number of ports.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// True when there is no port.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One switch: ports, flow table, MAC table (see the module docs).
pub struct Datapath {
    ports: ArcSwap<PortMap>,
    /// The `ports` lock: serialises port writers (second in the hierarchy,
    /// checked in debug builds).
    ports_lock: OrderedMutex<()>,
    flows: FlowTable,
    macs: MacTable,
    clock: Clock,
}

impl core::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Datapath")
            .field("ports", &*self.ports.load())
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
        Datapath {
            ports: ArcSwap::from_pointee(PortMap::default()),
            ports_lock: OrderedMutex::new(LockLevel::Ports, ()),
            flows: FlowTable::new(),
            macs: MacTable::new(cfg.mac_capacity, cfg.mac_aging_secs),
            clock: if cfg.manual_clock {
                Clock::manual()
            } else {
                Clock::system()
            },
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

    /// The current port map (lock-free; do not hold it across blocking).
    pub fn port_map(&self) -> arc_swap::Guard<Arc<PortMap>> {
        self.ports.load()
    }

    /// Adds `port` as `ofport` and publishes the new map.
    pub fn add_port(&self, ofport: PortNo, port: Arc<dyn Vport>) -> Result<(), DatapathError> {
        if ofport == 0 || ofport > OFPP_MAX {
            return Err(DatapathError::InvalidOfport(ofport));
        }
        let _ports = self.ports_lock.lock();
        let cur = self.ports.load();
        if cur.index(ofport).is_some() {
            return Err(DatapathError::OfportInUse(ofport));
        }
        let mut entries = cur.entries.to_vec();
        entries.push(PortEntry {
            ofport,
            port,
            counters: Arc::new(PortCounters::default()),
        });
        entries.sort_by_key(|e| e.ofport);
        self.ports.store(Arc::new(PortMap {
            entries: entries.into_boxed_slice(),
        }));
        Ok(())
    }

    /// Deletes port `ofport`: marks it unregistered (outputs to it drop as
    /// `port_unregistering` from now on), publishes a map without it, and
    /// forgets the stations learned behind it. Returns the port and its
    /// final counters. Never waits for PMDs.
    pub fn del_port(&self, ofport: PortNo) -> Result<(Arc<dyn Vport>, PortStats), DatapathError> {
        let _ports = self.ports_lock.lock();
        let cur = self.ports.load();
        let idx = cur.index(ofport).ok_or(DatapathError::NoSuchPort(ofport))?;
        let victim = cur.entries[idx].clone();
        // Step 1 of the deletion protocol: stop outputs before unlinking.
        victim
            .port
            .state()
            .registered
            .store(false, Ordering::Release);
        let entries: Vec<PortEntry> = cur
            .entries
            .iter()
            .filter(|e| e.ofport != ofport)
            .cloned()
            .collect();
        // Step 2: unlink.
        self.ports.store(Arc::new(PortMap {
            entries: entries.into_boxed_slice(),
        }));
        drop(cur);
        // `ports` → `fdb` is downward in the hierarchy.
        self.macs.flush_port(ofport);
        Ok((victim.port, victim.counters.snapshot()))
    }

    /// The port with `ofport`.
    pub fn port(&self, ofport: PortNo) -> Option<Arc<dyn Vport>> {
        self.ports.load().get(ofport).map(|e| Arc::clone(&e.port))
    }

    /// `(ofport, port)` for every port, by ofport.
    pub fn ports(&self) -> Vec<(PortNo, Arc<dyn Vport>)> {
        self.ports
            .load()
            .entries
            .iter()
            .map(|e| (e.ofport, Arc::clone(&e.port)))
            .collect()
    }

    /// The counters of port `ofport`.
    pub fn port_stats(&self, ofport: PortNo) -> Option<PortStats> {
        self.ports.load().get(ofport).map(|e| e.counters.snapshot())
    }

    /// The live MAC table entries, for `fdb show`.
    pub fn fdb(&self) -> Vec<FdbEntry> {
        self.macs.entries(self.now_secs())
    }
}
