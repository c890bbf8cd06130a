//! The port table: ofport → port, read lock-free by PMD threads.
//!
//! # What
//!
//! A [`PortTable`] publishes an immutable [`PortMap`] (ofport → [`PortEntry`];
//! an entry is the port's [`Vport`], its per-port counters and, through the
//! vport, the [`PortState`] the output path checks). PMD threads read it with
//! [`PortTable::load`] once per batch and look ports up by direct indexing.
//! Writers — port add, port delete, state changes — take only the `ports`
//! lock ([`crate::locks`]), build a new map and publish it; they never wait
//! for PMDs.
//!
//! # Deleting a port (DESIGN.md "Port lifecycle", step by step)
//!
//! [`PortTable::del`], under the `ports` lock:
//! 1. `state.registered = false`: from this store on, every output check on
//!    the port fails with `port_unregistering`, even in a PMD that still
//!    holds the old map;
//! 2. publishes a new map without the port;
//! 3. PMDs drop tx batches still addressed to it at their next batch
//!    boundary: a PMD keeps a [`PortRef`] (ofport + generation), never a
//!    reference, in anything that outlives a batch, and resolves it with
//!    [`PortSnapshot::resolve`] when it flushes; a deleted or replaced port
//!    resolves to `Err(DropReason::PortUnregistering)`;
//! 4. hands the port to [`Rcu::defer`]; only after every PMD has passed a
//!    quiescent point does the reclaimer run the destroy hook and drop the
//!    vport — the sockets, UMEM and XDP attachment an AF_XDP port owns — in
//!    the reclaimer thread, never in a PMD;
//! 5. the destroy hook ([`PortTable::with_destroy_hook`]) is where the owner
//!    accounts for the port's buffers, with exclusive access to the entry.
//!
//! Nothing the table hands out can outlive a port: readers get `&PortEntry`
//! borrowed from a [`PortSnapshot`], which borrows the PMD's rcu
//! [`Participant`], so the borrow checker forbids keeping it across a
//! quiescent point; deferred work (tx flush, wakeup retry, stats) names a port
//! by [`PortRef`] and re-resolves it. Teardown checks this: when the grace
//! period is over the entry must have no other owner (`Arc::try_unwrap`); a
//! failure is counted as a protocol violation (and is a panic in debug
//! builds).
//!
//! # Invariants
//!
//! * An ofport is in at most one published entry; a name likewise.
//! * A [`PortRef`]'s generation is unique for the table's lifetime, so a port
//!   deleted and re-added under the same ofport is a different port to
//!   anything that remembered the old one.
//! * `registered` goes false before the map that drops the port is published,
//!   and never becomes true again.
//! * Every published map and every deleted entry is freed by the reclaimer.
//!   A PMD only drops its snapshot guard; it never runs a destructor.
//!
//! # Locking
//!
//! Writers: the `ports` lock only (level [`LockLevel::Ports`]), then the rcu
//! queue's leaf lock inside it. Readers (PMDs): none — one `arc-swap` load
//! per batch (no `arc_swap::Cache`: an idle PMD would keep a vanished port
//! alive). State changes are stores to the port's [`PortState`] atomics,
//! visible to a PMD at its next output check (within the batch).

use crate::flow_key::PortNo;
use crate::locks::{LockLevel, OrderedMutex};
use crate::rcu::{Participant, Rcu};
use crate::stats::{AtomicDropCounters, DropCounters, DropReason};
use crate::vport::{PortState, Vport};
use arc_swap::ArcSwap;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The largest ofport a port may have (OpenFlow `OFPP_MAX`).
pub const MAX_OFPORT: PortNo = 0xff00 - 1;

/// Why a port-table operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortTableError {
    /// The requested ofport is 0 or above [`MAX_OFPORT`].
    #[error("ofport {0} is out of range (1..={MAX_OFPORT})")]
    InvalidOfport(PortNo),
    /// The requested ofport belongs to another port.
    #[error("ofport {ofport} is already used by port {name}")]
    OfportInUse {
        /// The ofport asked for.
        ofport: PortNo,
        /// The port that has it.
        name: String,
    },
    /// A port with this name is already in the table.
    #[error("a port named {0} already exists")]
    NameInUse(String),
    /// Every ofport is taken.
    #[error("no free ofport")]
    Full,
    /// No port has this ofport.
    #[error("no port with ofport {0}")]
    NoSuchPort(PortNo),
    /// No port has this name.
    #[error("no port named {0}")]
    NoSuchName(String),
    /// The vport is already unregistering.
    #[error("port {0} is not registered")]
    NotRegistered(String),
}

/// Per-port counters: relaxed atomics, added once per batch by PMDs. The one
/// source of per-port statistics (the datapath's accounting reads these).
/// Ingress-side counters describe the fate of packets *received* on the
/// port; `tx_*` describe packets *transmitted* by it.
#[derive(Debug, Default)]
pub struct PortCounters {
    pub(crate) rx_packets: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) rx_copies: AtomicU64,
    pub(crate) rx_delivered: AtomicU64,
    pub(crate) tx_packets: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) drops: AtomicDropCounters,
    pub(crate) tx_drops: AtomicDropCounters,
}

/// A copy of [`PortCounters`] for reporting.
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

    /// Adds `o` to these counters (totals over ports).
    pub fn add(&mut self, o: &PortStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_copies += o.rx_copies;
        self.rx_delivered += o.rx_delivered;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        for (r, n) in o.drops.nonzero() {
            self.drops.add(r, n);
        }
        for (r, n) in o.tx_drops.nonzero() {
            self.tx_drops.add(r, n);
        }
    }
}

#[inline]
fn add_nz(c: &AtomicU64, v: u64) {
    if v != 0 {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

impl PortCounters {
    /// Adds a batch of received packets.
    #[inline]
    pub fn add_rx(&self, packets: u64, bytes: u64) {
        add_nz(&self.rx_packets, packets);
        add_nz(&self.rx_bytes, bytes);
    }
    /// Adds a batch of transmitted packets.
    #[inline]
    pub fn add_tx(&self, packets: u64, bytes: u64) {
        add_nz(&self.tx_packets, packets);
        add_nz(&self.tx_bytes, bytes);
    }
    /// Counts `n` packets received here (or copies of them) dropped.
    #[inline]
    pub fn add_drop(&self, reason: DropReason, n: u64) {
        self.drops.add(reason, n);
    }
    /// Counts `n` packets dropped on their way out of this port.
    #[inline]
    pub fn add_tx_drop(&self, reason: DropReason, n: u64) {
        self.tx_drops.add(reason, n);
    }
    /// Adds a whole snapshot (one batch's accumulators, or a retired port's
    /// final counters).
    pub fn add_stats(&self, s: &PortStats) {
        self.add_rx(s.rx_packets, s.rx_bytes);
        add_nz(&self.rx_copies, s.rx_copies);
        add_nz(&self.rx_delivered, s.rx_delivered);
        self.add_tx(s.tx_packets, s.tx_bytes);
        for (r, n) in s.drops.nonzero() {
            self.drops.add(r, n);
        }
        for (r, n) in s.tx_drops.nonzero() {
            self.tx_drops.add(r, n);
        }
    }
    /// The current values.
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

/// A port as the table holds it.
pub struct PortEntry {
    ofport: PortNo,
    generation: u64,
    vport: Arc<dyn Vport>,
    counters: PortCounters,
}

impl core::fmt::Debug for PortEntry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortEntry")
            .field("ofport", &self.ofport)
            .field("generation", &self.generation)
            .field("name", &self.vport.name())
            .field("state", self.vport.state())
            .finish()
    }
}

impl PortEntry {
    /// The port's OpenFlow number.
    #[inline]
    pub fn ofport(&self) -> PortNo {
        self.ofport
    }
    /// Unique per add for the table's lifetime.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// How to name this port in anything that outlives a batch.
    #[inline]
    pub fn port_ref(&self) -> PortRef {
        PortRef {
            ofport: self.ofport,
            generation: self.generation,
        }
    }
    /// The device.
    #[inline]
    pub fn vport(&self) -> &dyn Vport {
        &*self.vport
    }
    /// A counted handle to the device, for the control plane (a handle
    /// still held at teardown is reported in
    /// [`PortTableStats::external_refs_at_destroy`]). PMDs never take one.
    pub fn vport_handle(&self) -> Arc<dyn Vport> {
        Arc::clone(&self.vport)
    }
    /// The interface name.
    #[inline]
    pub fn name(&self) -> &str {
        self.vport.name()
    }
    /// The lock-free state the output path checks.
    #[inline]
    pub fn state(&self) -> &PortState {
        self.vport.state()
    }
    /// The port's counters.
    #[inline]
    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }
    /// DESIGN.md's output checks on this port: the usable tx-queue count
    /// (`>= 1`), or why output must drop.
    #[inline]
    pub fn output_check(&self) -> Result<u32, DropReason> {
        self.vport.state().output_check()
    }
}

/// A port named by value: survives batches, never keeps the port alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// The ofport.
    pub ofport: PortNo,
    /// The generation of the entry it was taken from.
    pub generation: u64,
}

/// `PortMap::dense` value for "no port".
const NO_POS: u32 = u32::MAX;

/// One immutable version of the table.
pub struct PortMap {
    /// Indexed by ofport: the entry's position in `list`, or [`NO_POS`];
    /// sized to the largest ofport present + 1.
    dense: Box<[u32]>,
    /// The same entries in ofport order.
    list: Box<[Arc<PortEntry>]>,
    version: u64,
}

impl core::fmt::Debug for PortMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortMap")
            .field("version", &self.version)
            .field("ports", &self.list)
            .finish()
    }
}

impl PortMap {
    fn empty() -> Self {
        PortMap {
            dense: Box::new([]),
            list: Box::new([]),
            version: 0,
        }
    }

    fn build(mut list: Vec<Arc<PortEntry>>, version: u64) -> Self {
        list.sort_by_key(|e| e.ofport);
        let len = list.last().map_or(0, |e| e.ofport as usize + 1);
        let mut dense = vec![NO_POS; len].into_boxed_slice();
        for (i, e) in list.iter().enumerate() {
            // At most MAX_OFPORT entries, so the position fits.
            dense[e.ofport as usize] = i as u32;
        }
        PortMap {
            dense,
            list: list.into_boxed_slice(),
            version,
        }
    }

    /// The port with this ofport.
    #[inline]
    pub fn get(&self, ofport: PortNo) -> Option<&PortEntry> {
        self.index(ofport).map(|i| &*self.list[i])
    }

    /// The position of `ofport` in [`PortMap::iter`] order. PMDs index their
    /// per-batch, per-port state by it (valid for this map only).
    #[inline]
    pub fn index(&self, ofport: PortNo) -> Option<usize> {
        match self.dense.get(ofport as usize) {
            Some(&i) if i != NO_POS => Some(i as usize),
            _ => None,
        }
    }

    /// The entry at position `i` (see [`PortMap::index`]).
    ///
    /// # Panics
    /// If `i >= self.len()`; positions come from [`PortMap::index`].
    #[inline]
    pub fn at(&self, i: usize) -> &PortEntry {
        &self.list[i]
    }

    /// All ports in ofport order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &PortEntry> + '_ {
        self.list.iter().map(|e| &**e)
    }

    /// Number of ports.
    #[inline]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there are no ports.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bumped by every publication.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    fn by_name(&self, name: &str) -> Option<&Arc<PortEntry>> {
        self.list.iter().find(|e| e.vport.name() == name)
    }
}

/// A PMD's view of the table for one batch. Borrows the PMD's
/// [`Participant`], so it cannot live across a quiescent point.
pub struct PortSnapshot<'a> {
    map: arc_swap::Guard<Arc<PortMap>>,
    _batch: PhantomData<&'a Participant>,
}

impl core::fmt::Debug for PortSnapshot<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("PortSnapshot").field(&**self.map).finish()
    }
}

impl<'a> PortSnapshot<'a> {
    /// The port with this ofport.
    #[inline]
    pub fn get(&self, ofport: PortNo) -> Option<&PortEntry> {
        self.map.get(ofport)
    }

    /// Output to `ofport`: the port and its usable tx-queue count (`>= 1`),
    /// or the drop reason (`no_port`, then the [`PortState`] checks).
    #[inline]
    pub fn output(&self, ofport: PortNo) -> Result<(&PortEntry, u32), DropReason> {
        let e = self.map.get(ofport).ok_or(DropReason::NoPort)?;
        let n = e.output_check()?;
        Ok((e, n))
    }

    /// Resolves a port remembered across batches (a pending tx batch, a
    /// wakeup retry): the same port if it is still published and passes the
    /// output checks. A port deleted, or deleted and re-added under the same
    /// ofport, is `port_unregistering`.
    #[inline]
    pub fn resolve(&self, r: PortRef) -> Result<(&PortEntry, u32), DropReason> {
        match self.map.get(r.ofport) {
            Some(e) if e.generation == r.generation => Ok((e, e.output_check()?)),
            _ => Err(DropReason::PortUnregistering),
        }
    }

    /// The whole map (for flood / all).
    #[inline]
    pub fn map(&self) -> &PortMap {
        &self.map
    }
}

/// What the reclaimer calls on a deleted port, with exclusive access, just
/// before its vport is dropped (buffer accounting, DESIGN.md step 5). Ports
/// still in the table when the table itself is dropped (shutdown, after the
/// PMDs have exited) are dropped with it without the hook: delete them and
/// [`Rcu::barrier`] first if they need it.
pub type DestroyHook = Arc<dyn Fn(&PortEntry) + Send + Sync>;

/// A copy of one port's published state and counters (for `port list`,
/// `stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// OpenFlow port number.
    pub ofport: PortNo,
    /// Interface name.
    pub name: String,
    /// Entry generation.
    pub generation: u64,
    /// `registered` flag.
    pub registered: bool,
    /// `admin_up` flag.
    pub admin_up: bool,
    /// `running` flag.
    pub running: bool,
    /// `carrier` flag.
    pub carrier: bool,
    /// Usable tx queues.
    pub tx_queues: u32,
    /// Counters.
    pub counters: PortStats,
}

/// Port-table counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortTableStats {
    /// Ports published now.
    pub ports: usize,
    /// Version of the published map.
    pub version: u64,
    /// Ports ever added.
    pub added: u64,
    /// Ports ever deleted.
    pub deleted: u64,
    /// Deleted ports whose teardown has run.
    pub destroyed: u64,
    /// Teardowns that found the vport still referenced outside the table
    /// (its `Drop` then runs when the last outside owner lets go).
    pub external_refs_at_destroy: u64,
    /// Teardowns that found the entry still owned after its grace period —
    /// a reader broke the protocol. Always 0 unless there is a bug.
    pub protocol_violations: u64,
}

#[derive(Default)]
struct Counters {
    added: AtomicU64,
    deleted: AtomicU64,
    destroyed: AtomicU64,
    external_refs: AtomicU64,
    violations: AtomicU64,
}

struct WriterState {
    next_generation: u64,
}

/// The port table. See the module docs.
pub struct PortTable {
    current: ArcSwap<PortMap>,
    ports: OrderedMutex<WriterState>,
    rcu: Rcu,
    hook: Option<DestroyHook>,
    counters: Arc<Counters>,
}

impl core::fmt::Debug for PortTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortTable")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PortTable {
    /// An empty table whose deleted ports are reclaimed through `rcu`.
    pub fn new(rcu: Rcu) -> Self {
        PortTable {
            current: ArcSwap::from_pointee(PortMap::empty()),
            ports: OrderedMutex::new(LockLevel::Ports, WriterState { next_generation: 1 }),
            rcu,
            hook: None,
            counters: Arc::default(),
        }
    }

    /// [`PortTable::new`], with `hook` run on every deleted port at teardown.
    pub fn with_destroy_hook(rcu: Rcu, hook: DestroyHook) -> Self {
        PortTable {
            hook: Some(hook),
            ..PortTable::new(rcu)
        }
    }

    /// The reclamation domain PMDs must register with.
    pub fn rcu(&self) -> &Rcu {
        &self.rcu
    }

    /// The current map, for one batch (PMD hot path: one `arc-swap` load).
    /// `pmd` must be online in this table's rcu domain.
    #[inline]
    pub fn load<'a>(&'a self, pmd: &'a Participant) -> PortSnapshot<'a> {
        debug_assert!(pmd.is_online(), "port table read by an offline participant");
        debug_assert!(
            pmd.rcu().same_domain(&self.rcu),
            "port table read by a participant of another rcu domain"
        );
        PortSnapshot {
            map: self.current.load(),
            _batch: PhantomData,
        }
    }

    /// Adds `vport` as `ofport` (or the lowest free ofport when `None`).
    /// Returns the new port's reference.
    pub fn add(
        &self,
        vport: Arc<dyn Vport>,
        ofport: Option<PortNo>,
    ) -> Result<PortRef, PortTableError> {
        let mut w = self.ports.lock();
        let cur = self.current.load_full();
        let ofport = match ofport {
            Some(n) if n == 0 || n > MAX_OFPORT => {
                return Err(PortTableError::InvalidOfport(n));
            }
            Some(n) => {
                if let Some(other) = cur.get(n) {
                    return Err(PortTableError::OfportInUse {
                        ofport: n,
                        name: other.name().to_owned(),
                    });
                }
                n
            }
            None => (1..=MAX_OFPORT)
                .find(|&n| cur.get(n).is_none())
                .ok_or(PortTableError::Full)?,
        };
        let name = vport.name();
        if cur.by_name(name).is_some() {
            return Err(PortTableError::NameInUse(name.to_owned()));
        }
        if !vport.state().registered.load(Ordering::Acquire) {
            return Err(PortTableError::NotRegistered(name.to_owned()));
        }
        let generation = w.next_generation;
        w.next_generation += 1;
        let entry = Arc::new(PortEntry {
            ofport,
            generation,
            vport,
            counters: PortCounters::default(),
        });
        let mut list: Vec<_> = cur.list.to_vec();
        list.push(entry);
        self.publish(&cur, list);
        self.counters.added.fetch_add(1, Ordering::Relaxed);
        Ok(PortRef { ofport, generation })
    }

    /// Deletes the port with this ofport (DESIGN.md's five steps; see the
    /// module docs). Returns at once: teardown happens in the reclaimer
    /// after a grace period. Never waits for PMDs; never touches traffic on
    /// other ports.
    pub fn del(&self, ofport: PortNo) -> Result<(), PortTableError> {
        let _w = self.ports.lock();
        let cur = self.current.load_full();
        let entry = cur
            .map_get_arc(ofport)
            .ok_or(PortTableError::NoSuchPort(ofport))?;
        self.unlink(cur, entry);
        Ok(())
    }

    /// Deletes the port `r` names, only if it is still that port (not a
    /// port re-added under the same ofport since): the control side of a
    /// PMD's "device gone" report. `NoSuchPort` if it is already gone.
    pub fn del_ref(&self, r: PortRef) -> Result<(), PortTableError> {
        let _w = self.ports.lock();
        let cur = self.current.load_full();
        let entry = cur
            .map_get_arc(r.ofport)
            .filter(|e| e.generation == r.generation)
            .ok_or(PortTableError::NoSuchPort(r.ofport))?;
        self.unlink(cur, entry);
        Ok(())
    }

    /// [`PortTable::del`] by interface name.
    pub fn del_by_name(&self, name: &str) -> Result<PortNo, PortTableError> {
        let _w = self.ports.lock();
        let cur = self.current.load_full();
        let entry = cur
            .by_name(name)
            .cloned()
            .ok_or_else(|| PortTableError::NoSuchName(name.to_owned()))?;
        let ofport = entry.ofport;
        self.unlink(cur, entry);
        Ok(ofport)
    }

    /// Steps 1, 2 and 4 of deletion; the `ports` lock is held.
    fn unlink(&self, cur: Arc<PortMap>, entry: Arc<PortEntry>) {
        // 1. Outputs start dropping at once, even through old snapshots.
        entry.state().registered.store(false, Ordering::Release);
        // 2. Unpublish.
        let list: Vec<_> = cur
            .list
            .iter()
            .filter(|e| !Arc::ptr_eq(e, &entry))
            .cloned()
            .collect();
        self.publish(&cur, list);
        drop(cur);
        self.counters.deleted.fetch_add(1, Ordering::Relaxed);
        // 4. Teardown after a grace period. The map that still held the
        // entry was handed to the rcu by `publish`, queued before this, so
        // it is gone by the time this runs.
        let hook = self.hook.clone();
        let counters = self.counters.clone();
        self.rcu.defer(move || teardown(entry, hook, &counters));
    }

    /// Publishes a map of `list`, replacing `cur`, and defers freeing the
    /// old map to the reclaimer (so no PMD ever runs its destructor).
    fn publish(&self, cur: &Arc<PortMap>, list: Vec<Arc<PortEntry>>) {
        let next = Arc::new(PortMap::build(list, cur.version + 1));
        let old = self.current.swap(next);
        debug_assert!(Arc::ptr_eq(&old, cur), "map changed under the ports lock");
        self.rcu.defer(move || drop(old));
    }

    /// Sets `admin_up` (port mod / CLI).
    pub fn set_admin_up(&self, ofport: PortNo, up: bool) -> Result<(), PortTableError> {
        self.with_state(ofport, |s| s.admin_up.store(up, Ordering::Release))
    }

    /// Sets `running` (IFF_RUNNING from the link monitor).
    pub fn set_running(&self, ofport: PortNo, running: bool) -> Result<(), PortTableError> {
        self.with_state(ofport, |s| s.running.store(running, Ordering::Release))
    }

    /// Sets `carrier` (IFF_LOWER_UP from the link monitor).
    pub fn set_carrier(&self, ofport: PortNo, carrier: bool) -> Result<(), PortTableError> {
        self.with_state(ofport, |s| s.carrier.store(carrier, Ordering::Release))
    }

    /// Sets the usable tx-queue count (0 while the device unregisters).
    pub fn set_tx_queues(&self, ofport: PortNo, n: u32) -> Result<(), PortTableError> {
        self.with_state(ofport, |s| s.tx_queues.store(n, Ordering::Release))
    }

    /// Runs `f` on a published port's state under the `ports` lock (so it
    /// is ordered with adds and deletes).
    fn with_state(&self, ofport: PortNo, f: impl FnOnce(&PortState)) -> Result<(), PortTableError> {
        let _w = self.ports.lock();
        let cur = self.current.load();
        let e = cur.get(ofport).ok_or(PortTableError::NoSuchPort(ofport))?;
        f(e.state());
        Ok(())
    }

    /// Runs `f` on a published port under the `ports` lock (control plane:
    /// stats, CLI). `None` if there is no such port.
    pub fn with_port<R>(&self, ofport: PortNo, f: impl FnOnce(&PortEntry) -> R) -> Option<R> {
        let _w = self.ports.lock();
        let cur = self.current.load();
        cur.get(ofport).map(f)
    }

    /// Runs `f` on the published map under the `ports` lock (control side:
    /// trace, dumps). The map must not escape `f`.
    pub fn with_map<R>(&self, f: impl FnOnce(&PortMap) -> R) -> R {
        let _w = self.ports.lock();
        let cur = self.current.load();
        f(&cur)
    }

    /// `f` of every published port, in ofport order, under the `ports` lock
    /// (control plane).
    pub fn map_ports<R>(&self, f: impl FnMut(&PortEntry) -> R) -> Vec<R> {
        let _w = self.ports.lock();
        let cur = self.current.load();
        cur.iter().map(f).collect()
    }

    /// Every published port's state and counters, in ofport order.
    pub fn list(&self) -> Vec<PortInfo> {
        let _w = self.ports.lock();
        let cur = self.current.load();
        cur.iter()
            .map(|e| {
                let s = e.state();
                PortInfo {
                    ofport: e.ofport,
                    name: e.name().to_owned(),
                    generation: e.generation,
                    registered: s.registered.load(Ordering::Relaxed),
                    admin_up: s.admin_up.load(Ordering::Relaxed),
                    running: s.running.load(Ordering::Relaxed),
                    carrier: s.carrier.load(Ordering::Relaxed),
                    tx_queues: s.tx_queues.load(Ordering::Relaxed),
                    counters: e.counters.snapshot(),
                }
            })
            .collect()
    }

    /// Runs the rcu destructors whose grace period is over (normally the
    /// reclaimer thread's job). Returns how many ran.
    pub fn reclaim(&self) -> usize {
        self.rcu.poll()
    }

    /// Counters.
    pub fn stats(&self) -> PortTableStats {
        let cur = self.current.load();
        let c = &self.counters;
        PortTableStats {
            ports: cur.len(),
            version: cur.version,
            added: c.added.load(Ordering::Relaxed),
            deleted: c.deleted.load(Ordering::Relaxed),
            destroyed: c.destroyed.load(Ordering::Relaxed),
            external_refs_at_destroy: c.external_refs.load(Ordering::Relaxed),
            protocol_violations: c.violations.load(Ordering::Relaxed),
        }
    }
}

impl PortMap {
    fn map_get_arc(&self, ofport: PortNo) -> Option<Arc<PortEntry>> {
        self.index(ofport).map(|i| self.list[i].clone())
    }
}

/// Step 4/5: runs in the reclaimer once no PMD can hold the entry.
fn teardown(entry: Arc<PortEntry>, hook: Option<DestroyHook>, counters: &Counters) {
    match Arc::try_unwrap(entry) {
        Ok(entry) => {
            if let Some(h) = &hook {
                h(&entry);
            }
            let outside = Arc::strong_count(&entry.vport) - 1;
            if outside > 0 {
                counters.external_refs.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    port = entry.name(),
                    refs = outside,
                    "port torn down while its vport is still referenced outside the table"
                );
            }
            counters.destroyed.fetch_add(1, Ordering::Relaxed);
            drop(entry);
        }
        Err(entry) => {
            counters.violations.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                port = entry.name(),
                ofport = entry.ofport,
                refs = Arc::strong_count(&entry),
                "port entry still referenced after its grace period (rcu protocol violation)"
            );
            debug_assert!(
                false,
                "port {} still referenced after its grace period",
                entry.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{PacketBatch, PacketPool};
    use crate::vport::TxError;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use std::time::Duration;

    const T: Duration = Duration::from_secs(5);

    /// A vport that does no I/O and counts its drops.
    struct Dummy {
        name: String,
        state: PortState,
        drops: Arc<AtomicUsize>,
    }

    impl Vport for Dummy {
        fn name(&self) -> &str {
            &self.name
        }
        fn state(&self) -> &PortState {
            &self.state
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn n_rxq(&self) -> usize {
            1
        }
        fn recv(&self, _: usize, _: &mut PacketPool, _: &mut PacketBatch) -> usize {
            0
        }
        fn send(
            &self,
            _: usize,
            _: &mut PacketBatch,
            _: &mut PacketPool,
        ) -> Result<usize, TxError> {
            Ok(0)
        }
    }

    impl Drop for Dummy {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn dummy(name: &str, drops: &Arc<AtomicUsize>) -> Arc<dyn Vport> {
        Arc::new(Dummy {
            name: name.into(),
            state: PortState::up(2),
            drops: drops.clone(),
        })
    }

    #[test]
    fn add_assigns_lowest_free_ofport_and_refuses_duplicates() {
        let t = PortTable::new(Rcu::new());
        let d = Arc::new(AtomicUsize::new(0));
        assert_eq!(t.add(dummy("a", &d), None).unwrap().ofport, 1);
        assert_eq!(t.add(dummy("b", &d), Some(5)).unwrap().ofport, 5);
        assert_eq!(t.add(dummy("c", &d), None).unwrap().ofport, 2);
        assert_eq!(
            t.add(dummy("a", &d), None),
            Err(PortTableError::NameInUse("a".into()))
        );
        assert_eq!(
            t.add(dummy("x", &d), Some(5)),
            Err(PortTableError::OfportInUse {
                ofport: 5,
                name: "b".into()
            })
        );
        assert_eq!(
            t.add(dummy("y", &d), Some(0)),
            Err(PortTableError::InvalidOfport(0))
        );
        assert_eq!(
            t.add(dummy("z", &d), Some(MAX_OFPORT + 1)),
            Err(PortTableError::InvalidOfport(MAX_OFPORT + 1))
        );
        let names: Vec<_> = t.list().into_iter().map(|p| (p.ofport, p.name)).collect();
        assert_eq!(
            names,
            vec![(1, "a".into()), (2, "c".into()), (5, "b".into())]
        );
    }

    #[test]
    fn unregistered_vport_is_refused() {
        let t = PortTable::new(Rcu::new());
        let d = Arc::new(AtomicUsize::new(0));
        let v = dummy("gone", &d);
        v.state().registered.store(false, Ordering::SeqCst);
        assert_eq!(
            t.add(v, None),
            Err(PortTableError::NotRegistered("gone".into()))
        );
    }

    #[test]
    fn pmd_lookup_reports_drop_reasons() {
        let rcu = Rcu::new();
        let t = PortTable::new(rcu.clone());
        let d = Arc::new(AtomicUsize::new(0));
        t.add(dummy("a", &d), Some(3)).unwrap();
        let pmd = rcu.register("pmd0").unwrap();
        {
            let s = t.load(&pmd);
            assert_eq!(s.output(3).map(|(e, n)| (e.name(), n)), Ok(("a", 2)));
            assert_eq!(s.output(4).err(), Some(DropReason::NoPort));
            assert_eq!(s.output(1_000_000).err(), Some(DropReason::NoPort));
        }
        t.set_carrier(3, false).unwrap();
        assert_eq!(t.load(&pmd).output(3).err(), Some(DropReason::NoCarrier));
        t.set_carrier(3, true).unwrap();
        t.set_tx_queues(3, 0).unwrap();
        assert_eq!(t.load(&pmd).output(3).err(), Some(DropReason::NoTxQueue));
        t.set_running(3, false).unwrap();
        assert_eq!(t.load(&pmd).output(3).err(), Some(DropReason::PortDown));
        t.set_running(3, true).unwrap();
        t.set_admin_up(3, false).unwrap();
        assert_eq!(t.load(&pmd).output(3).err(), Some(DropReason::PortDown));
        assert_eq!(t.set_carrier(9, true), Err(PortTableError::NoSuchPort(9)));
    }

    #[test]
    fn deleted_port_drops_at_once_through_an_old_snapshot() {
        let rcu = Rcu::new();
        let t = PortTable::new(rcu.clone());
        let d = Arc::new(AtomicUsize::new(0));
        let r = t.add(dummy("a", &d), None).unwrap();
        let pmd = rcu.register("pmd0").unwrap();
        let s = t.load(&pmd);
        assert!(s.output(r.ofport).is_ok());
        t.del(r.ofport).unwrap();
        // The PMD is mid-batch with the old map: step 1 already bites.
        assert_eq!(
            s.output(r.ofport).err(),
            Some(DropReason::PortUnregistering)
        );
        assert!(s.get(r.ofport).is_some(), "old map still has it");
        drop(s);
        assert!(t.load(&pmd).get(r.ofport).is_none());
    }

    #[test]
    fn teardown_waits_for_every_pmd_and_runs_once_in_the_reclaimer() {
        let rcu = Rcu::new();
        let hooked = Arc::new(Mutex::new(Vec::new()));
        let h = hooked.clone();
        let t = PortTable::with_destroy_hook(
            rcu.clone(),
            Arc::new(move |e: &PortEntry| h.lock().unwrap().push(e.name().to_owned())),
        );
        let d = Arc::new(AtomicUsize::new(0));
        let r = t.add(dummy("a", &d), None).unwrap();
        let mut p0 = rcu.register("pmd0").unwrap();
        let mut p1 = rcu.register("pmd1").unwrap();
        t.del(r.ofport).unwrap();
        t.reclaim();
        assert_eq!(d.load(Ordering::SeqCst), 0, "no PMD has quiesced yet");
        p0.quiescent();
        t.reclaim();
        assert_eq!(d.load(Ordering::SeqCst), 0, "pmd1 may still hold it");
        p1.quiescent();
        t.reclaim();
        assert_eq!(d.load(Ordering::SeqCst), 1);
        assert_eq!(*hooked.lock().unwrap(), vec!["a".to_string()]);
        t.reclaim();
        assert_eq!(d.load(Ordering::SeqCst), 1, "exactly once");
        let s = t.stats();
        assert_eq!((s.added, s.deleted, s.destroyed), (1, 1, 1));
        assert_eq!(s.protocol_violations, 0);
        assert_eq!(s.external_refs_at_destroy, 0);
    }

    #[test]
    fn port_ref_of_a_readded_port_resolves_as_unregistering() {
        let rcu = Rcu::new();
        let t = PortTable::new(rcu.clone());
        let d = Arc::new(AtomicUsize::new(0));
        let old = t.add(dummy("a", &d), Some(7)).unwrap();
        t.del(7).unwrap();
        let new = t.add(dummy("a", &d), Some(7)).unwrap();
        assert_ne!(old.generation, new.generation);
        let pmd = rcu.register("pmd0").unwrap();
        let s = t.load(&pmd);
        assert_eq!(s.resolve(old).err(), Some(DropReason::PortUnregistering));
        assert_eq!(
            s.resolve(new).map(|(e, _)| e.generation()),
            Ok(new.generation)
        );
    }

    #[test]
    fn del_by_name_and_missing_ports() {
        let t = PortTable::new(Rcu::new());
        let d = Arc::new(AtomicUsize::new(0));
        t.add(dummy("veth0", &d), Some(4)).unwrap();
        assert_eq!(t.del_by_name("veth0"), Ok(4));
        assert_eq!(
            t.del_by_name("veth0"),
            Err(PortTableError::NoSuchName("veth0".into()))
        );
        assert_eq!(t.del(4), Err(PortTableError::NoSuchPort(4)));
        assert_eq!(t.rcu().barrier(T).unwrap(), 3, "two maps and one port");
        assert_eq!(d.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn vport_held_outside_the_table_is_counted_at_teardown() {
        let t = PortTable::new(Rcu::new());
        let d = Arc::new(AtomicUsize::new(0));
        let v = dummy("kept", &d);
        t.add(v.clone(), None).unwrap();
        t.del(1).unwrap();
        t.rcu().barrier(T).unwrap();
        assert_eq!(t.stats().external_refs_at_destroy, 1);
        assert_eq!(
            d.load(Ordering::SeqCst),
            0,
            "the outside owner still has it"
        );
        drop(v);
        assert_eq!(d.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn counters_accumulate_and_show_in_list() {
        let t = PortTable::new(Rcu::new());
        let d = Arc::new(AtomicUsize::new(0));
        t.add(dummy("a", &d), None).unwrap();
        t.with_port(1, |e| {
            e.counters().add_rx(3, 180);
            e.counters().add_tx(2, 120);
            e.counters().add_drop(DropReason::NoCarrier, 1);
        })
        .unwrap();
        let info = &t.list()[0];
        assert_eq!(info.counters.rx_packets, 3);
        assert_eq!(info.counters.tx_bytes, 120);
        assert_eq!(info.counters.drops.get(DropReason::NoCarrier), 1);
        assert!(info.registered && info.carrier && info.running && info.admin_up);
        assert_eq!(info.tx_queues, 2);
    }

    #[test]
    fn sparse_high_ofport_is_indexed() {
        let rcu = Rcu::new();
        let t = PortTable::new(rcu.clone());
        let d = Arc::new(AtomicUsize::new(0));
        t.add(dummy("hi", &d), Some(MAX_OFPORT)).unwrap();
        let pmd = rcu.register("pmd0").unwrap();
        let s = t.load(&pmd);
        assert_eq!(s.get(MAX_OFPORT).map(|e| e.name()), Some("hi"));
        assert_eq!(s.map().len(), 1);
    }
}
