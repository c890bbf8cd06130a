//! The per-thread forwarding context and the packet walk.
//!
//! # What
//! A [`Pmd`] is everything one forwarding thread writes: its exact-match
//! cache, its buffer pool, one tx batch per (output port, tx queue), per-port
//! counter accumulators and its own totals. Nothing in it is shared, so the
//! packet path takes no lock and writes no shared cache line per packet;
//! shared counters (per port, per rule, [`PmdShared`]) are added once per
//! batch.
//!
//! # The walk ([`Pmd::process_batch`])
//! 1. Load the port map and the classifier snapshot once for the batch.
//! 2. Stage by stage over the whole batch (as OVS's `dfc_processing` /
//!    `fast_path_processing`, so one stage's loads overlap across packets):
//!    `extract` every key and hash it (`FlowKey::fast_hash`); then decide each
//!    packet — a frame shorter than an Ethernet header is dropped as
//!    `malformed`; with no rules the action list is `normal`; otherwise the
//!    EMC, then the classifier on a miss (a miss is cached too, and dropped
//!    as `no_match`).
//! 3. Per packet, run the actions. The common single `output:P` moves the
//!    packet into P's tx batch without running the executor. Otherwise, when
//!    every output of the list comes after every rewrite, outputs are only
//!    *collected* while the executor runs; afterwards all but the last
//!    destination get a copy from the pool and the last one gets the packet
//!    itself — so `normal` to a known station and `mod_*` + `output` copy
//!    nothing, and a flood to n ports copies n - 1 times. A list that
//!    rewrites between outputs copies at each output (the packet must be
//!    emitted as it is at that moment).
//! 4. Each output checks the port (in the map, [`PortState::output_check`],
//!    MTU) — the check result is cached per port for the batch — and appends
//!    to the batch of tx queue `pmd_id % n`, `n > 0` guaranteed by the check
//!    (`tx_queue`). The queue follows the PMD, not the flow hash (a
//!    deliberate departure from DESIGN.md's `hash % n`, keeping its `n > 0`
//!    guard): a port with at least as many tx queues as there are PMDs gives
//!    every PMD a tx queue of its own, so the per-queue `try_lock` in the
//!    vports is never contended (issue 4: "each PMD has its own tx path per
//!    port"); with fewer queues PMDs share and a lost `try_lock` is retried
//!    like a full ring. Per-flow order holds either way: one flow arrives on
//!    one rx queue, which one PMD serves.
//! 5. At the end of the batch every tx batch is flushed: the port state is
//!    checked again (a port deleted or downed during the batch drops here,
//!    the "next batch boundary" of the deletion protocol), then `send` is
//!    retried at most [`TX_RETRIES`] times while the ring stays full (then
//!    `tx_ring_full`); a send error drops the rest as `tx_error`.
//! 6. Counters are committed: per port, per rule, per PMD.
//!
//! # Accounting
//! Each packet leaves `process_batch` either transmitted at least once or
//! dropped under exactly one reason; each extra copy is counted in
//! `copies` and then likewise transmitted or dropped. So
//! `rx + copies == tx + drops` holds at every batch boundary
//! ([`PmdStats::balanced`]), and per ingress port as well.
//!
//! # Buffers
//! A PMD's pool never holds more than it created and never grows. Receiving
//! pays one pool buffer per frame into the port's fill ring; sending moves
//! the buffer to the port; the next `send` on that tx queue returns
//! completed buffers to the sender's pool. When PMDs share a tx queue a
//! completion can come home to another PMD than the one that sent it, so
//! buffers migrate: a buffer freed into a pool that is already full is
//! released and counted ([`PmdStats::buffers_released`]), and an idle PMD
//! reaps completions on every queue, and takes the buffers deleted ports
//! returned, so a pool that ran dry refills ([`Pmd::reap`]).
//!
//! # Rcu and the port table
//! Every batch runs against one port snapshot loaded through the PMD's rcu
//! participant and dropped before the quiescent point that ends the batch.
//! Tx batches remember their port by [`PortRef`] and resolve it again when
//! flushed; a `TxError::Gone` send marks the port unregistered and queues a
//! report for the control side ([`Datapath::process_port_requests`]). A PMD
//! driven by hand is rcu-offline between calls; a PMD thread stays online
//! and announces a quiescent point after every batch.
//!
//! [`PortState::output_check`]: crate::vport::PortState::output_check

use super::Datapath;
use crate::actions::{execute, Action, ActionContext, ExecResult};
use crate::cache::{EmcProbe, ExactMatchCache};
use crate::classifier::Rule;
use crate::extract::{extract, Layers};
use crate::flow_key::{FlowKey, PortNo};
use crate::learning::{is_bare_priority_tag, MacTable, NormalOutput};
use crate::packet::{Packet, PacketBatch, PacketPool, BATCH_SIZE};
use crate::port_table::{PortMap, PortRef, PortStats};
use crate::rcu::Participant;
use crate::stats::{DropCounters, DropReason};
use crate::vport::TxError;
use crate::watchdog::Heartbeat;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How often a flush re-offers a batch to a tx ring that stays full, after
/// the first attempt, before dropping the rest as `tx_ring_full`.
pub const TX_RETRIES: u32 = 4;

/// The action list of the learning bridge (no rules installed).
const NORMAL_ONLY: &[Action] = &[Action::Normal];

/// How a [`Pmd`] is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmdConfig {
    /// Identifies the PMD in statistics.
    pub id: usize,
    /// Exact-match cache entries (OVS's default is 8192).
    pub emc_entries: usize,
    /// Packet buffers in the PMD's pool.
    pub pool_size: usize,
}

impl Default for PmdConfig {
    fn default() -> Self {
        PmdConfig {
            id: 0,
            emc_entries: 8192,
            pool_size: 4096,
        }
    }
}

/// A PMD's own totals (plain integers; read them from the PMD's thread, or
/// through [`PmdShared`] from others).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PmdStats {
    /// Batches processed.
    pub batches: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Extra copies made (a packet sent to n ports makes n - 1).
    pub copies: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Drops by reason (packets and copies).
    pub drops: DropCounters,
    /// Packets whose rule came from the exact-match cache (including cached
    /// table misses).
    pub emc_hits: u64,
    /// Packets that needed a classifier lookup.
    pub classifier_lookups: u64,
    /// Frames with a truncated or malformed inner header (still switched on
    /// the fields that parsed, as OVS does).
    pub parse_errors: u64,
    /// Re-offers of a batch to a full tx ring.
    pub tx_retries: u64,
    /// Sends that reported the device gone.
    pub tx_gone: u64,
    /// Buffers freed instead of pooled because the pool was already full
    /// (see the module docs, "Buffers").
    pub buffers_released: u64,
}

impl PmdStats {
    /// The accounting invariant: `rx + copies == tx + drops`.
    pub fn balanced(&self) -> bool {
        self.rx_packets + self.copies == self.tx_packets + self.drops.total()
    }
}

/// The part of a PMD's totals other threads may read while it runs
/// (published with relaxed stores at the end of every batch).
#[derive(Debug, Default)]
pub struct PmdShared {
    batches: AtomicU64,
    rx_packets: AtomicU64,
    tx_packets: AtomicU64,
    drops: AtomicU64,
}

impl PmdShared {
    /// Batches processed; also a heartbeat.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Packets received.
    pub fn rx_packets(&self) -> u64 {
        self.rx_packets.load(Ordering::Relaxed)
    }
    /// Packets transmitted.
    pub fn tx_packets(&self) -> u64 {
        self.tx_packets.load(Ordering::Relaxed)
    }
    /// Packets dropped, all reasons.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

/// Counters of one port, accumulated over a batch.
#[derive(Default)]
struct PortAcc {
    touched: bool,
    rx_packets: u64,
    rx_bytes: u64,
    rx_copies: u64,
    rx_delivered: u64,
    tx_packets: u64,
    tx_bytes: u64,
    drops: DropCounters,
    tx_drops: DropCounters,
}

/// The pending output to one port in the current batch.
#[derive(Default)]
struct TxSlot {
    /// The port the queued packets are for, by value: the flush resolves it
    /// again and drops the batch as `port_unregistering` if the port was
    /// deleted or replaced since.
    port: Option<PortRef>,
    /// The port's output check, done at its first output in the batch.
    check: Option<Result<u32, DropReason>>,
    mtu: usize,
    /// One batch per tx queue (grown on first use of a queue, then reused).
    queues: Vec<PacketBatch>,
}

/// The output half of a PMD: pool, tx batches, counters.
struct Egress {
    pool: PacketPool,
    tx: Vec<TxSlot>,
    tx_dirty: Vec<usize>,
    acc: Vec<PortAcc>,
    acc_dirty: Vec<usize>,
    stats: PmdStats,
    /// The ingress port's index in this batch's map (`None` if it was
    /// deleted before its packets were processed).
    in_idx: Option<usize>,
    /// The last output port looked up in this batch's map: `(ofport, index)`.
    last_port: Option<(PortNo, usize)>,
    /// Ports whose send reported the device gone, for the control side.
    gone: Vec<PortRef>,
    /// The PMD thread's watchdog heartbeat (none for a PMD driven by hand).
    hb: Option<Heartbeat>,
    /// Picks this PMD's tx queue on every port (`PmdConfig::id`).
    txq_hint: u64,
}

impl Egress {
    fn begin(&mut self, ports: &PortMap, in_port: PortNo) {
        let n = ports.len();
        if self.tx.len() < n {
            self.tx.resize_with(n, TxSlot::default);
            self.acc.resize_with(n, PortAcc::default);
        }
        self.in_idx = ports.index(in_port);
        self.last_port = None;
    }

    #[inline]
    fn acc(&mut self, idx: usize) -> &mut PortAcc {
        let a = &mut self.acc[idx];
        if !a.touched {
            a.touched = true;
            self.acc_dirty.push(idx);
        }
        a
    }

    #[inline]
    fn count_rx(&mut self, packets: u64, bytes: u64) {
        self.stats.rx_packets += packets;
        self.stats.rx_bytes += bytes;
        if let Some(i) = self.in_idx {
            let a = self.acc(i);
            a.rx_packets += packets;
            a.rx_bytes += bytes;
        }
    }

    #[inline]
    fn count_copies(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.stats.copies += n;
        if let Some(i) = self.in_idx {
            self.acc(i).rx_copies += n;
        }
    }

    /// Counts `n` packets dropped for `reason`; `egress` is the port an
    /// output to which failed, if that is why.
    #[inline]
    fn count_drop(&mut self, reason: DropReason, n: u64, egress: Option<usize>) {
        self.stats.drops.add(reason, n);
        if let Some(i) = self.in_idx {
            self.acc(i).drops.add(reason, n);
        }
        if let Some(e) = egress {
            self.acc(e).tx_drops.add(reason, n);
        }
    }

    /// Returns a buffer to the pool — or, when the pool already holds every
    /// buffer it created, frees it and counts it (`buffers_released`). That
    /// happens when PMDs share a tx queue: completions come home to
    /// whichever PMD sends on the queue next, so buffers migrate between
    /// pools; a pool never grows past what it created (no allocation).
    #[inline]
    fn give_back(&mut self, pkt: Packet) {
        if self.pool.available() < self.pool.created() {
            self.pool.free(pkt);
        } else {
            self.stats.buffers_released += 1;
        }
    }

    /// Drops `pkt`: its buffer goes back to the pool.
    #[inline]
    fn drop_pkt(&mut self, pkt: Packet, reason: DropReason, egress: Option<usize>) {
        self.give_back(pkt);
        self.count_drop(reason, 1, egress);
    }

    /// A pool copy of `pkt`, or `None` (counted `umem_exhausted`).
    #[inline]
    fn copy(&mut self, pkt: &Packet) -> Option<Packet> {
        let Some(mut c) = self.pool.alloc() else {
            self.count_drop(DropReason::UmemExhausted, 1, None);
            return None;
        };
        // Cannot fail: the source came from a buffer of the same size.
        if c.set_data(pkt.data()) {
            Some(c)
        } else {
            self.drop_pkt(c, DropReason::UmemExhausted, None);
            None
        }
    }

    /// Queues `pkt` for output to `ofport`, or drops it with the reason the
    /// output may not happen.
    #[inline]
    fn enqueue(&mut self, ports: &PortMap, ofport: PortNo, pkt: Packet, hash: u64) {
        // Consecutive outputs mostly go to the same port: skip the search.
        let idx = match self.last_port {
            Some((p, i)) if p == ofport => i,
            _ => match ports.index(ofport) {
                Some(i) => {
                    self.last_port = Some((ofport, i));
                    i
                }
                None => return self.drop_pkt(pkt, DropReason::NoPort, None),
            },
        };
        let slot = &mut self.tx[idx];
        let n = match slot.check {
            Some(Ok(n)) => n,
            Some(Err(reason)) => return self.drop_pkt(pkt, reason, Some(idx)),
            None => return self.enqueue_first(ports, idx, pkt, hash),
        };
        if pkt.len() > slot.mtu {
            return self.drop_pkt(pkt, DropReason::MtuExceeded, Some(idx));
        }
        let q = pick_tx_queue(self.txq_hint, hash, n, self.hb.as_mut(), ofport);
        let slot = &mut self.tx[idx];
        match slot.queues.get_mut(q) {
            Some(b) if !b.is_full() => {
                // Cannot fail: not full.
                let _ = b.push(pkt);
            }
            _ => self.enqueue_slow(ports, idx, q, pkt),
        }
    }

    /// The first output to port `idx` in this batch: check the port, then
    /// queue.
    #[cold]
    fn enqueue_first(&mut self, ports: &PortMap, idx: usize, pkt: Packet, hash: u64) {
        let e = ports.at(idx);
        let slot = &mut self.tx[idx];
        slot.port = Some(e.port_ref());
        slot.check = Some(output_check(e.state()));
        slot.mtu = e.vport().mtu();
        self.tx_dirty.push(idx);
        self.enqueue(ports, e.ofport(), pkt, hash);
    }

    /// Queue `q` of port `idx` is not allocated yet or is full.
    #[cold]
    fn enqueue_slow(&mut self, ports: &PortMap, idx: usize, q: usize, pkt: Packet) {
        let queues = &mut self.tx[idx].queues;
        if queues.len() <= q {
            // First use of this queue by this PMD: allocate its batch once.
            queues.resize_with(q + 1, PacketBatch::new);
        }
        if queues[q].is_full() {
            self.flush_queue(ports, idx, q);
        }
        if let Err(pkt) = self.tx[idx].queues[q].push(pkt) {
            // The flush above always empties the batch; keep the count exact
            // regardless.
            self.drop_pkt(pkt, DropReason::TxRingFull, Some(idx));
        }
    }

    /// Drops every packet left in tx batch `(idx, q)` for `reason`.
    fn drop_queue(&mut self, idx: usize, q: usize, reason: DropReason) -> (u64, u64) {
        let mut n = 0;
        let mut bytes = 0;
        let Egress {
            tx, pool, stats, ..
        } = self;
        for p in tx[idx].queues[q].drain() {
            n += 1;
            bytes += p.len() as u64;
            if pool.available() < pool.created() {
                pool.free(p);
            } else {
                stats.buffers_released += 1;
            }
        }
        self.count_drop(reason, n, Some(idx));
        (n, bytes)
    }

    /// Sends tx batch `(idx, q)` (see the module docs, step 5).
    fn flush_queue(&mut self, ports: &PortMap, idx: usize, q: usize) {
        let batch_len = self.tx[idx].queues[q].len() as u64;
        if batch_len == 0 {
            return;
        }
        // Resolve the port the batch was queued for (deletion step 3) and
        // re-check it: it may have been deleted, replaced, downed or lost
        // its queues since the packets were queued.
        let resolved = match self.tx[idx].port {
            Some(r) => match ports.get(r.ofport) {
                Some(e) if e.generation() == r.generation => {
                    output_check(e.state()).map(|n| (e, n))
                }
                _ => Err(DropReason::PortUnregistering),
            },
            None => Err(DropReason::PortUnregistering),
        };
        let (entry, n) = match resolved {
            Ok(x) => x,
            Err(reason) => {
                self.drop_queue(idx, q, reason);
                return;
            }
        };
        let port = entry.vport();
        let qid = flush_queue_id(q, n);
        if let Some(hb) = self.hb.as_mut() {
            hb.tx(entry.ofport(), qid as u32);
        }
        let batch_bytes: u64 = self.tx[idx].queues[q].iter().map(|p| p.len() as u64).sum();
        let mut retries = 0;
        let (lost, lost_bytes) = loop {
            let batch = &mut self.tx[idx].queues[q];
            match port.send(qid, batch, &mut self.pool) {
                Ok(_) if batch.is_empty() => break (0, 0),
                Ok(_) if retries < TX_RETRIES => {
                    retries += 1;
                    core::hint::spin_loop();
                }
                Ok(_) => break self.drop_queue(idx, q, DropReason::TxRingFull),
                Err(e) => {
                    if e == TxError::Gone {
                        // ENETDOWN/ENXIO: no retry. Outputs stop at once
                        // (deletion step 1); the control side unlinks it.
                        self.stats.tx_gone += 1;
                        entry.state().registered.store(false, Ordering::Release);
                        // legacy-semantics: the pre-fix kernel's device
                        // being unregistered has no tx queue left
                        // (`real_num_tx_queues == 0`) and nothing stops
                        // output to it: the next output spins in the legacy
                        // tx-queue loop (background/ovs-veth-soft-lockup.txt).
                        #[cfg(feature = "legacy-semantics")]
                        entry.state().tx_queues.store(0, Ordering::Release);
                        let r = entry.port_ref();
                        if !self.gone.contains(&r) {
                            self.gone.push(r);
                        }
                    }
                    break self.drop_queue(idx, q, DropReason::TxError);
                }
            }
        };
        self.stats.tx_retries += u64::from(retries);
        let sent = batch_len - lost;
        let sent_bytes = batch_bytes - lost_bytes;
        if sent != 0 {
            self.stats.tx_packets += sent;
            self.stats.tx_bytes += sent_bytes;
            let a = self.acc(idx);
            a.tx_packets += sent;
            a.tx_bytes += sent_bytes;
            if let Some(i) = self.in_idx {
                self.acc(i).rx_delivered += sent;
            }
        }
    }

    /// Flushes every tx batch of this batch and forgets the cached checks.
    fn flush(&mut self, ports: &PortMap) {
        // Index loop: flushing may not add dirty slots (it only sends).
        for i in 0..self.tx_dirty.len() {
            let idx = self.tx_dirty[i];
            for q in 0..self.tx[idx].queues.len() {
                self.flush_queue(ports, idx, q);
            }
            self.tx[idx].check = None;
            self.tx[idx].port = None;
        }
        self.tx_dirty.clear();
    }

    /// Adds the batch's per-port counters to the shared ones.
    fn commit(&mut self, ports: &PortMap) {
        for &idx in &self.acc_dirty {
            let a = core::mem::take(&mut self.acc[idx]);
            ports.at(idx).counters().add_stats(&PortStats {
                rx_packets: a.rx_packets,
                rx_bytes: a.rx_bytes,
                rx_copies: a.rx_copies,
                rx_delivered: a.rx_delivered,
                tx_packets: a.tx_packets,
                tx_bytes: a.tx_bytes,
                drops: a.drops,
                tx_drops: a.tx_drops,
            });
        }
        self.acc_dirty.clear();
    }
}

/// Rules hit in the current batch with their packet and byte counts, so a
/// rule's shared counters are written once per batch.
struct RuleHits {
    hits: Vec<(Arc<Rule>, u64, u64)>,
}

impl RuleHits {
    /// Counts one packet of `bytes` for `rule`; returns its slot.
    #[inline]
    fn note(&mut self, rule: &Arc<Rule>, bytes: u64) -> usize {
        if let Some(i) = self.hits.iter().rposition(|(r, _, _)| Arc::ptr_eq(r, rule)) {
            let h = &mut self.hits[i];
            h.1 += 1;
            h.2 += bytes;
            return i;
        }
        self.hits.push((Arc::clone(rule), 1, bytes));
        self.hits.len() - 1
    }

    #[inline]
    fn actions(&self, slot: usize) -> &[Action] {
        self.hits[slot].0.actions()
    }

    fn commit(&mut self, now: Instant) {
        for (rule, packets, bytes) in self.hits.drain(..) {
            rule.record_hit(packets, bytes, now);
        }
    }
}

/// The tx queue PMD `hint` uses on a port with `n` usable queues:
/// `hint % n` (module docs, step 4). `n` comes from a passed `output_check`, so it is at
/// least 1; a 0 would still not loop or panic (queue 0, and the flush-time
/// re-check drops the packet). The single-queue case skips the division.
#[inline]
#[cfg(not(feature = "legacy-semantics"))]
fn tx_queue(hint: u64, n: u32) -> usize {
    match n {
        0 | 1 => 0,
        n => (hint % u64::from(n)) as usize,
    }
}

/// The output checks (DESIGN.md "Output semantics"): the usable tx-queue
/// count (`>= 1`) or the drop reason.
#[cfg(not(feature = "legacy-semantics"))]
#[inline]
fn output_check(state: &crate::vport::PortState) -> Result<u32, DropReason> {
    state.output_check()
}

/// `legacy-semantics`: the pre-fix kernel checked nothing before output;
/// the queue count is whatever the device says, 0 included.
#[cfg(feature = "legacy-semantics")]
#[inline]
fn output_check(state: &crate::vport::PortState) -> Result<u32, DropReason> {
    Ok(state.tx_queues.load(Ordering::Acquire))
}

/// The queue an enqueue picks.
#[cfg(not(feature = "legacy-semantics"))]
#[inline]
fn pick_tx_queue(
    hint: u64,
    _hash: u64,
    n: u32,
    _hb: Option<&mut Heartbeat>,
    _port: PortNo,
) -> usize {
    tx_queue(hint, n)
}

/// `legacy-semantics`: the queue choice of `skb_tx_hash` before the fix
/// (`background/ovs-veth-soft-lockup.txt`), recorded where the watchdog
/// sees it first.
#[cfg(feature = "legacy-semantics")]
#[inline]
fn pick_tx_queue(_hint: u64, hash: u64, n: u32, hb: Option<&mut Heartbeat>, port: PortNo) -> usize {
    if let Some(hb) = hb {
        hb.tx(port, 0);
    }
    legacy_tx_queue(hash, n)
}

/// The tx queue a flush sends tx batch `q` on, given the port's `n` usable
/// queues now (`n >= 1` after the flush-time check; the count may have
/// shrunk since the packets were queued).
#[cfg(not(feature = "legacy-semantics"))]
#[inline]
fn flush_queue_id(q: usize, n: u32) -> usize {
    q % n as usize
}

/// `legacy-semantics`: no re-check, the batch goes where it was queued.
#[cfg(feature = "legacy-semantics")]
#[inline]
fn flush_queue_id(q: usize, _n: u32) -> usize {
    q
}

/// Test-only escape from the legacy tx-queue loop (`legacy-semantics`
/// builds only). The loop below never ends when the port has 0 tx queues —
/// that is the bug being modelled, and the watchdog must report the stuck
/// PMD. A test sets this flag once it has checked the watchdog, so the
/// stuck PMD returns (queue 0) and its thread can be joined and the process
/// can exit. Nothing else reads or writes it.
#[cfg(feature = "legacy-semantics")]
pub static LEGACY_LOOP_ESCAPE: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// `legacy-semantics`: the pre-fix kernel loop. As in the kernel the
/// starting value is small (there, the recorded rx queue; here the low six
/// bits of the flow hash) and is reduced by repeated subtraction:
/// `while hash >= n { hash -= n }` — with `n == 0` the condition stays true
/// and the subtraction changes nothing, forever.
#[cfg(feature = "legacy-semantics")]
fn legacy_tx_queue(hash: u64, n: u32) -> usize {
    let mut h = (hash & 0x3f) as u32;
    while h >= n {
        if LEGACY_LOOP_ESCAPE.load(Ordering::Relaxed) {
            return 0;
        }
        h -= n;
        core::hint::spin_loop();
    }
    h as usize
}

/// True when no rewrite follows an output in `actions`: then every output
/// emits the same bytes and they can share the packet.
#[inline]
fn outputs_follow_rewrites(actions: &[Action]) -> bool {
    let mut output_seen = false;
    for a in actions {
        match a {
            Action::Output(_) | Action::InPort | Action::Normal | Action::Flood | Action::All => {
                output_seen = true
            }
            _ if output_seen => return false,
            _ => {}
        }
    }
    true
}

/// The [`ActionContext`] of one packet on the PMD path.
struct PacketCtx<'a> {
    eg: &'a mut Egress,
    /// Collected destinations (deferred mode).
    dests: &'a mut Vec<PortNo>,
    ports: &'a PortMap,
    macs: &'a MacTable,
    in_port: PortNo,
    hash: u64,
    now_secs: u32,
    /// Collect outputs and emit after execution (no rewrite follows an
    /// output), or copy at each output.
    deferred: bool,
    /// Output attempts made.
    outputs: u64,
    /// Why `normal` sent nothing (`loop_prevented`).
    hint: Option<DropReason>,
}

impl PacketCtx<'_> {
    #[inline]
    fn emit(&mut self, port: PortNo, pkt: &Packet) {
        if self.deferred {
            self.outputs += 1;
            self.dests.push(port);
        } else {
            self.emit_copy(port, pkt);
        }
    }

    /// Outputs a copy of `pkt` as it is now, whatever the mode.
    #[inline]
    fn emit_copy(&mut self, port: PortNo, pkt: &Packet) {
        self.outputs += 1;
        if let Some(c) = self.eg.copy(pkt) {
            self.eg.enqueue(self.ports, port, c, self.hash);
        }
    }

    /// `normal`'s output of a frame with a bare priority tag: the frame goes
    /// out untagged, so every destination gets a copy of an untagged scratch
    /// frame, emitted at once (in deferred mode no rewrite follows, so these
    /// bytes are final too).
    #[cold]
    fn emit_untagged(&mut self, out: NormalOutput, pkt: &Packet) {
        let Some(mut tmp) = self.eg.pool.alloc() else {
            self.hint = Some(DropReason::UmemExhausted);
            return;
        };
        if tmp.set_data(pkt.data()) && tmp.remove_range(VLAN_TAG_OFFSET, VLAN_TAG_LEN) {
            match out {
                NormalOutput::Port(p) => self.emit_copy(p, &tmp),
                _ => {
                    let ports = self.ports;
                    for e in ports.iter() {
                        if e.ofport() != self.in_port {
                            self.emit_copy(e.ofport(), &tmp);
                        }
                    }
                }
            }
        } else {
            self.hint = Some(DropReason::Malformed);
        }
        self.eg.give_back(tmp);
    }
}

/// Where the outer VLAN tag starts (after the two MAC addresses), and its size.
const VLAN_TAG_OFFSET: usize = 12;
const VLAN_TAG_LEN: usize = 4;

impl ActionContext for PacketCtx<'_> {
    fn output(&mut self, port: PortNo, pkt: &Packet) {
        self.emit(port, pkt);
    }

    fn flood(&mut self, in_port: PortNo, pkt: &Packet) {
        let ports = self.ports;
        for e in ports.iter() {
            if e.ofport() != in_port {
                self.emit(e.ofport(), pkt);
            }
        }
    }

    fn normal(&mut self, key: &FlowKey, pkt: &Packet) {
        let out = self
            .macs
            .normal_output(key, self.in_port, self.now_secs, true);
        match out {
            NormalOutput::Drop(r) => self.hint = Some(r),
            _ if is_bare_priority_tag(key) => self.emit_untagged(out, pkt),
            NormalOutput::Port(p) => self.emit(p, pkt),
            NormalOutput::Flood => self.flood(self.in_port, pkt),
        }
    }
}

/// One forwarding thread's context (see the module docs).
pub struct Pmd {
    dp: Arc<Datapath>,
    id: usize,
    /// Its reader registration in the datapath's rcu domain.
    rcu: Participant,
    /// Driven by hand (tests, tools): offline between calls, so an unused
    /// PMD never holds up reclamation. A PMD thread stays online and
    /// announces quiescent points instead.
    standalone: bool,
    walker: Walker,
    rx_batch: Option<PacketBatch>,
}

/// The state the packet walk writes (everything but the rcu registration,
/// so a snapshot borrowed from the participant and the walker can be used
/// together).
struct Walker {
    emc: ExactMatchCache,
    hits: RuleHits,
    eg: Egress,
    dests: Vec<PortNo>,
    scratch: Box<Scratch>,
    shared: Arc<PmdShared>,
}

/// What stage 2 of the walk decided for one packet.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// Drop for this reason (runt, table miss).
    Drop(DropReason),
    /// No rule installed: `normal`.
    Normal,
    /// The rule in this slot of the batch's [`RuleHits`].
    Rule(usize),
}

/// Per-batch working arrays, allocated once per PMD: the walk runs in
/// stages over the whole batch (keys and hashes, then lookups, then actions)
/// so that the loads of one stage overlap across packets.
struct Scratch {
    keys: [FlowKey; BATCH_SIZE],
    layers: [Layers; BATCH_SIZE],
    hashes: [u64; BATCH_SIZE],
    verdicts: [Verdict; BATCH_SIZE],
}

impl core::fmt::Debug for Pmd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pmd")
            .field("id", &self.id)
            .field("stats", &self.walker.eg.stats)
            .field("pool_available", &self.walker.eg.pool.available())
            .finish()
    }
}

impl Pmd {
    /// A PMD for `dp`. Allocates its cache, pool and batches here and
    /// registers with the datapath's rcu domain.
    ///
    /// # Panics
    /// If `dp` already has its configured maximum of PMDs
    /// ([`DatapathConfig::max_pmds`](super::DatapathConfig::max_pmds));
    /// see [`Pmd::try_new`].
    pub fn new(dp: Arc<Datapath>, cfg: PmdConfig) -> Self {
        match Pmd::try_new(dp, cfg) {
            Ok(p) => p,
            Err(e) => panic!("cannot create PMD {}: {e}", cfg.id),
        }
    }

    /// [`Pmd::new`], or why the PMD cannot register.
    pub fn try_new(dp: Arc<Datapath>, cfg: PmdConfig) -> Result<Self, crate::rcu::RcuError> {
        let mut rcu = dp.rcu().register(&format!("pmd{}", cfg.id))?;
        rcu.offline();
        Ok(Pmd {
            dp,
            id: cfg.id,
            rcu,
            standalone: true,
            walker: Walker {
                emc: ExactMatchCache::new(cfg.emc_entries),
                hits: RuleHits {
                    hits: Vec::with_capacity(BATCH_SIZE),
                },
                eg: Egress {
                    pool: PacketPool::new(cfg.pool_size),
                    tx: Vec::new(),
                    tx_dirty: Vec::new(),
                    acc: Vec::new(),
                    acc_dirty: Vec::new(),
                    stats: PmdStats::default(),
                    in_idx: None,
                    last_port: None,
                    gone: Vec::with_capacity(4),
                    hb: None,
                    txq_hint: cfg.id as u64,
                },
                dests: Vec::with_capacity(64),
                scratch: Box::new(Scratch {
                    keys: [FlowKey::ZERO; BATCH_SIZE],
                    layers: [Layers::default(); BATCH_SIZE],
                    hashes: [0; BATCH_SIZE],
                    verdicts: [Verdict::Normal; BATCH_SIZE],
                }),
                shared: Arc::new(PmdShared::default()),
            },
            rx_batch: Some(PacketBatch::new()),
        })
    }

    /// The PMD's id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The datapath it forwards for.
    pub fn datapath(&self) -> &Arc<Datapath> {
        &self.dp
    }

    /// Its totals.
    pub fn stats(&self) -> &PmdStats {
        &self.walker.eg.stats
    }

    /// The totals other threads can read while it runs.
    pub fn shared(&self) -> Arc<PmdShared> {
        Arc::clone(&self.walker.shared)
    }

    /// Its exact-match cache counters.
    pub fn emc_stats(&self) -> crate::cache::EmcStats {
        self.walker.emc.stats()
    }

    /// Its buffer pool (e.g. to check that no buffer leaked).
    pub fn pool(&self) -> &PacketPool {
        &self.walker.eg.pool
    }

    /// Its buffer pool, writable (tests hand buffers back through it).
    pub fn pool_mut(&mut self) -> &mut PacketPool {
        &mut self.walker.eg.pool
    }

    /// Turns this PMD into a thread's PMD: it stays online in the rcu
    /// domain (announcing quiescent points at batch boundaries) and beats
    /// `hb`.
    #[cfg(not(loom))]
    pub(crate) fn attach_thread(&mut self, hb: Heartbeat) {
        self.standalone = false;
        self.walker.eg.hb = Some(hb);
        self.rcu.online();
    }

    /// Back to a PMD driven by hand (its thread is exiting): offline in
    /// the rcu domain, heartbeat retired.
    #[cfg(not(loom))]
    pub(crate) fn detach_thread(&mut self) {
        self.standalone = true;
        self.walker.eg.hb = None;
        self.rcu.offline();
    }

    /// The thread's heartbeat, if attached.
    #[cfg(not(loom))]
    pub(crate) fn heartbeat(&mut self) -> Option<&mut Heartbeat> {
        self.walker.eg.hb.as_mut()
    }

    /// Goes offline in the rcu domain and idle for the watchdog (before a
    /// sleep); [`Pmd::wake`] undoes it.
    #[cfg(not(loom))]
    pub(crate) fn park(&mut self) {
        self.rcu.offline();
        if let Some(hb) = self.walker.eg.hb.as_mut() {
            hb.idle();
        }
    }

    /// Back from [`Pmd::park`].
    #[cfg(not(loom))]
    pub(crate) fn wake(&mut self) {
        if let Some(hb) = self.walker.eg.hb.as_mut() {
            hb.busy();
        }
        self.rcu.online();
    }

    /// Before touching published state.
    #[inline]
    fn enter(&mut self) {
        if self.standalone {
            self.rcu.online();
        }
    }

    /// At a batch boundary: hand "device gone" reports to the control side,
    /// then announce a quiescent point (or go offline when driven by hand).
    #[inline]
    fn boundary(&mut self) {
        if !self.walker.eg.gone.is_empty() {
            for r in self.walker.eg.gone.drain(..) {
                self.dp.report_gone(r);
            }
        }
        if self.standalone {
            self.rcu.offline();
        } else {
            self.rcu.quiescent();
        }
    }

    /// Receives one batch from every rx queue of every port and processes
    /// each (a snapshot per batch, a quiescent point after each). Returns
    /// how many packets were received.
    pub fn poll(&mut self) -> usize {
        let mut batch = self.rx_batch.take().unwrap_or_default();
        let mut total = 0;
        // The k-th (port, rx queue) of the current map; the map may change
        // between batches, which at worst skips or repeats one queue.
        let mut k = 0;
        loop {
            self.enter();
            let snap = self.dp.port_table().load(&self.rcu);
            let mut target = None;
            let mut seen = 0;
            for e in snap.map().iter() {
                let n = e.vport().n_rxq();
                if k < seen + n {
                    target = Some((e.ofport(), e.generation(), k - seen));
                    break;
                }
                seen += n;
            }
            let Some((ofport, generation, q)) = target else {
                drop(snap);
                self.boundary();
                break;
            };
            let got = self.walker.recv_and_walk(
                &self.dp,
                snap.map(),
                PortRef { ofport, generation },
                q,
                &mut batch,
            );
            total += got;
            drop(snap);
            self.boundary();
            k += 1;
        }
        self.rx_batch = Some(batch);
        total
    }

    /// Polls `rxqs` (a PMD thread's assignment) once each: per queue, a
    /// port snapshot, one batch received and walked, a quiescent point.
    /// Returns how many packets were received.
    #[cfg(not(loom))]
    pub(crate) fn poll_assigned(&mut self, rxqs: &[super::RxqRef]) -> usize {
        let mut batch = self.rx_batch.take().unwrap_or_default();
        let mut total = 0;
        for rq in rxqs {
            self.enter();
            let snap = self.dp.port_table().load(&self.rcu);
            total += self
                .walker
                .recv_and_walk(&self.dp, snap.map(), rq.port, rq.queue, &mut batch);
            drop(snap);
            self.boundary();
            if let Some(hb) = self.walker.eg.hb.as_mut() {
                hb.beat();
            }
        }
        self.rx_batch = Some(batch);
        total
    }

    /// Refills the pool when it is short: from the buffers torn-down ports
    /// returned ([`Datapath::spare_buffers`]), then by reaping tx
    /// completions on every port's usable tx queues (an empty `send` each,
    /// as an AF_XDP PMD reaps its completion rings when idle) — buffers
    /// that went out through a queue another PMD now serves come home, so
    /// a PMD whose pool ran dry can receive again. Never waits.
    pub fn reap(&mut self) {
        self.dp.take_spare(&mut self.walker.eg.pool);
        self.enter();
        let snap = self.dp.port_table().load(&self.rcu);
        let mut empty = self.rx_batch.take().unwrap_or_default();
        let pool = &mut self.walker.eg.pool;
        for e in snap.map().iter() {
            if pool.available() >= pool.created() {
                break;
            }
            let n = e.state().tx_queues.load(Ordering::Acquire) as usize;
            for q in 0..n {
                // Nothing to send: an error only means nothing to reap.
                let _ = e.vport().send(q, &mut empty, pool);
            }
        }
        self.rx_batch = Some(empty);
        drop(snap);
        self.boundary();
    }

    /// Polls until a round receives nothing; returns the packets received.
    pub fn run_until_idle(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.poll();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    /// Sends anything still queued and returns buffers whose transmission
    /// completed to the pool (an empty `send` on every usable tx queue, as
    /// an AF_XDP PMD kicks and reaps its completion ring when it goes idle).
    pub fn flush(&mut self) {
        self.enter();
        let snap = self.dp.port_table().load(&self.rcu);
        let ports = snap.map();
        let eg = &mut self.walker.eg;
        eg.flush(ports);
        eg.commit(ports);
        let mut empty = self.rx_batch.take().unwrap_or_default();
        for e in ports.iter() {
            let n = e.state().tx_queues.load(Ordering::Acquire) as usize;
            for q in 0..n {
                // Nothing to send, so an error here means nothing to reap.
                let _ = e.vport().send(q, &mut empty, &mut eg.pool);
            }
        }
        self.rx_batch = Some(empty);
        drop(snap);
        self.boundary();
    }

    /// Runs the packet walk on `batch`, received on `in_port`, and flushes
    /// the resulting outputs. `batch` is empty afterwards.
    pub fn process_batch(&mut self, in_port: PortNo, batch: &mut PacketBatch) {
        if batch.is_empty() {
            return;
        }
        self.enter();
        let snap = self.dp.port_table().load(&self.rcu);
        self.walker.walk(&self.dp, snap.map(), in_port, batch);
        drop(snap);
        self.boundary();
    }
}

impl Walker {
    /// Receives one batch from rx queue `q` of port `r` (if it is still
    /// that port and registered) and walks it. Returns the packets received.
    #[inline]
    fn recv_and_walk(
        &mut self,
        dp: &Datapath,
        ports: &PortMap,
        r: PortRef,
        q: usize,
        batch: &mut PacketBatch,
    ) -> usize {
        let Some(e) = ports.get(r.ofport) else {
            return 0;
        };
        if e.generation() != r.generation || !e.state().registered.load(Ordering::Acquire) {
            return 0;
        }
        if let Some(hb) = self.eg.hb.as_mut() {
            hb.rx(r.ofport, q as u32);
        }
        let n = e.vport().recv(q, &mut self.eg.pool, batch);
        if n > 0 {
            let n = batch.len();
            self.walk(dp, ports, r.ofport, batch);
            return n;
        }
        0
    }

    /// The packet walk (module docs) of `batch`, received on `in_port`,
    /// against `ports`.
    fn walk(&mut self, dp: &Datapath, ports: &PortMap, in_port: PortNo, batch: &mut PacketBatch) {
        if batch.is_empty() {
            return;
        }
        let Walker {
            emc,
            hits,
            eg,
            dests,
            shared,
            scratch: sc,
        } = self;
        let cls = dp.flow_table().snapshot();
        let now = dp.clock().now();
        let now_secs = dp.clock().secs(now);
        let generation = cls.generation();
        let bridge = cls.is_empty();
        let macs = dp.mac_table();
        eg.begin(ports, in_port);
        eg.stats.batches += 1;

        // Stage 1: keys and hashes for the whole batch.
        let n = batch.len();
        let mut bytes = 0;
        for (i, pkt) in batch.iter().enumerate() {
            bytes += pkt.len() as u64;
            sc.layers[i] = extract(pkt.data(), in_port, &mut sc.keys[i]);
            sc.hashes[i] = sc.keys[i].fast_hash();
        }
        eg.count_rx(n as u64, bytes);

        // Stage 2: what each packet does.
        for (i, pkt) in batch.iter().enumerate() {
            let (key, hash) = (&sc.keys[i], sc.hashes[i]);
            sc.verdicts[i] = if sc.layers[i].is_runt() {
                Verdict::Drop(DropReason::Malformed)
            } else if bridge {
                Verdict::Normal
            } else {
                let len = pkt.len() as u64;
                match emc.probe(key, hash, generation) {
                    EmcProbe::Rule(r) => {
                        eg.stats.emc_hits += 1;
                        Verdict::Rule(hits.note(r, len))
                    }
                    EmcProbe::TableMiss => {
                        eg.stats.emc_hits += 1;
                        Verdict::Drop(DropReason::NoMatch)
                    }
                    EmcProbe::Unknown => {
                        eg.stats.classifier_lookups += 1;
                        match cls.lookup(key) {
                            Some(r) => {
                                emc.insert(key, hash, generation, r);
                                Verdict::Rule(hits.note(r, len))
                            }
                            None => {
                                emc.insert_table_miss(key, hash, generation);
                                Verdict::Drop(DropReason::NoMatch)
                            }
                        }
                    }
                }
            };
        }

        // Stage 3: run the actions, queue the outputs.
        for (i, pkt) in batch.drain().enumerate().take(n) {
            let actions: &[Action] = match sc.verdicts[i] {
                Verdict::Drop(reason) => {
                    eg.drop_pkt(pkt, reason, None);
                    continue;
                }
                Verdict::Normal => NORMAL_ONLY,
                Verdict::Rule(slot) => hits.actions(slot),
            };
            if sc.layers[i].error.is_some() {
                eg.stats.parse_errors += 1;
            }
            run_actions(
                eg,
                dests,
                ports,
                macs,
                actions,
                pkt,
                &mut sc.keys[i],
                &mut sc.layers[i],
                in_port,
                sc.hashes[i],
                now_secs,
            );
        }

        eg.flush(ports);
        eg.commit(ports);
        hits.commit(now);
        let s = &eg.stats;
        shared.batches.store(s.batches, Ordering::Relaxed);
        shared.rx_packets.store(s.rx_packets, Ordering::Relaxed);
        shared.tx_packets.store(s.tx_packets, Ordering::Relaxed);
        shared.drops.store(s.drops.total(), Ordering::Relaxed);
    }
}

/// Executes `actions` on one packet and queues its outputs (step 3).
#[allow(clippy::too_many_arguments)]
#[inline]
fn run_actions(
    eg: &mut Egress,
    dests: &mut Vec<PortNo>,
    ports: &PortMap,
    macs: &MacTable,
    actions: &[Action],
    mut pkt: Packet,
    key: &mut FlowKey,
    layers: &mut Layers,
    in_port: PortNo,
    hash: u64,
    now_secs: u32,
) {
    // The common case: one output, no rewrite — move the packet.
    if let [Action::Output(p)] = *actions {
        if p != in_port {
            return eg.enqueue(ports, p, pkt, hash);
        }
    }
    dests.clear();
    let deferred = outputs_follow_rewrites(actions);
    let mut ctx = PacketCtx {
        eg,
        dests,
        ports,
        macs,
        in_port,
        hash,
        now_secs,
        deferred,
        outputs: 0,
        hint: None,
    };
    let result = execute(actions, &mut pkt, key, layers, &mut ctx);
    let (outputs, hint) = (ctx.outputs, ctx.hint);
    if outputs == 0 {
        let reason = match result {
            ExecResult::Stopped(r) => r,
            ExecResult::Done => hint.unwrap_or(DropReason::ActionDrop),
        };
        return eg.drop_pkt(pkt, reason, None);
    }
    eg.count_copies(outputs - 1);
    if deferred {
        let (last, rest) = dests
            .split_last()
            .map_or((None, &[][..]), |(l, r)| (Some(*l), r));
        for &p in rest {
            if let Some(c) = eg.copy(&pkt) {
                eg.enqueue(ports, p, c, hash);
            }
        }
        match last {
            Some(p) => eg.enqueue(ports, p, pkt, hash),
            None => eg.give_back(pkt),
        }
    } else {
        // Every output got its own copy as it happened.
        eg.give_back(pkt);
    }
}
